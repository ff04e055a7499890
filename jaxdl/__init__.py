"""jaxdl: deep learning in JAX as pure functions.

The pieces of the supervised-learning cycle, each usable on its own:

    splits = jaxdl.load_data("digits")    # or (config.data), ("folder:photos", image_size=(64, 64)): TFDS -> arrays
    model = jaxdl.build_model(config.model, splits.info)        # a Flax Linen module
    tx = jaxdl.build_optimizer(config.optimizer, steps_per_epoch=..., epochs=...)
    state = jaxdl.create_state(model, tx, splits.info.input_shape, seed, jaxdl.metrics_for_task(splits.info.task))
    state, metrics = jax.jit(jaxdl.train_step)(state, batch)   # or a whole epoch: jaxdl.train_epoch
    result = jaxdl.fit(state, splits.train, splits.validation, epochs=..., batch_size=..., progress=True)
    test = jaxdl.evaluate_split(result.state, splits.test)
    found = jaxdl.lr_find(state, splits.train, splits.validation, batch_size=64)  # found.rate: the rate to train at

A sweep trains many members as one program: `members = jaxdl.members_of(config)`, `states =
jaxdl.create_states(model, tx, input_shape, members, metrics_fn)`, `jaxdl.fit(states, ...,
members=len(members))`, `jaxdl.evaluate_members(result.state, splits.test, task=...)`.

Transfer: `jaxdl.load_pretrained(state, workdir, skip=("head",))` starts a new model from a trained
one; `jaxdl.run_phases(state, train, validation, jaxdl.two_phases(optimizer_config, ...), ...)`
trains the new head with the body frozen, then everything at lower rates.

Deployment: `predictor = jaxdl.load_run(workdir)` gives the model a finished run kept;
`predictor(x)` answers on inputs as the dataset stores them (uint8 images, raw table rows).
`python -m jaxdl.predict`, `python -m jaxdl.export` and `python -m jaxdl.serve` are its commands
(docs/deploy.md). `jaxdl.check_drift(workdir, x)` compares new inputs with the reference a run keeps
of its training data (`python -m jaxdl.drift`); `jaxdl.DriftMonitor` does it over a window of served
requests.

The subpackages follow the data flow, and each imports only those before it:
data -> models -> train -> evaluate -> transfer -> report -> deploy -> run (errors and parallel at the bottom).
No name below shadows a subpackage or module.
"""

from jaxdl.data import DataInfo, Splits
from jaxdl.data import load as load_data
from jaxdl.deploy.drift import DriftMonitor, check_drift
from jaxdl.deploy.run_loader import Predictor, load_run
from jaxdl.errors import InputError
from jaxdl.evaluate.members import evaluate_members
from jaxdl.evaluate.passes import count_params, evaluate_split, predict_split
from jaxdl.models import build_model
from jaxdl.parallel import make_mesh
from jaxdl.run.config import apply_override, load_config
from jaxdl.run.pipeline import train_and_evaluate
from jaxdl.train.checkpoint import Checkpointer
from jaxdl.train.digest import params_sha256
from jaxdl.train.early_stopping import EarlyStopping
from jaxdl.train.fit import FitResult, FitState, fit, fit_epoch, init_fit_state
from jaxdl.train.losses import (
    classification_metrics,
    cross_entropy,
    metrics_for_task,
    regression_metrics,
    squared_error,
)
from jaxdl.train.lr_find import LrFindResult, lr_find
from jaxdl.train.optimizer import build_optimizer
from jaxdl.train.state import TrainState, create_state
from jaxdl.train.step import eval_batches, eval_step, evaluate_batches, train_epoch, train_step
from jaxdl.train.sweep import Member, create_states, members_of
from jaxdl.transfer.phases import Phase, prepare_phase, run_phases, two_phases
from jaxdl.transfer.pretrained import format_report, initialise_from, load_pretrained, read_pretrained

__all__ = [
    "Checkpointer", "DataInfo", "DriftMonitor", "EarlyStopping", "FitResult", "FitState", "InputError", "LrFindResult",
    "Member", "Phase", "Predictor", "Splits", "TrainState", "apply_override", "build_model", "build_optimizer",
    "check_drift", "classification_metrics", "count_params", "create_state", "create_states", "cross_entropy",
    "eval_batches", "eval_step", "evaluate_batches", "evaluate_members", "evaluate_split", "fit", "fit_epoch",
    "format_report", "init_fit_state", "initialise_from", "load_config", "load_data", "load_pretrained", "load_run",
    "lr_find", "make_mesh", "members_of", "metrics_for_task", "params_sha256", "predict_split", "prepare_phase",
    "read_pretrained", "regression_metrics", "run_phases", "squared_error", "train_and_evaluate", "train_epoch",
    "train_step", "two_phases",
]
