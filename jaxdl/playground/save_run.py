""""Save as run": the page's current network written as a complete jaxdl run.

The workdir holds what every run holds (config.json, data_info.json, a checkpoint, metrics.jsonl,
report.html, drift_reference.json, summary.json), written by the same writers as the playground
experiment (`jaxdl.run.pipeline.complete_run`), so `jaxdl.predict`, `jaxdl.serve`,
`jaxdl.export` and `jaxdl.drift` accept it. config.json is the playground experiment's config
(configs/playground.py) set to the page's network, points and optimizer; its `playground` field
holds the page's settings. The model is `jaxdl.models.playground.PlaygroundNet`, whose parameters
are the page's padded ones cut to the chosen features and widths (`network.flax_params`).

The page has no validation split: the run's validation split is its training points (the page
trained on all of them); its test split is the page's test points.
"""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxdl import parallel, paths
from jaxdl.data import DataInfo, Splits
from jaxdl.data.playground import CLASS_NAMES, GENERATORS
from jaxdl.errors import InputError
from jaxdl.evaluate.passes import count_params, evaluate_split
from jaxdl.models import build_model
from jaxdl.playground import network
from jaxdl.playground.settings import Settings
from jaxdl.report import log
from jaxdl.run.config import load_config, packaged_configs
from jaxdl.run.pipeline import complete_run, prepare_workdir
from jaxdl.train.build import build_state
from jaxdl.train.checkpoint import Checkpointer
from jaxdl.train.fit import init_fit_state


def run_config(settings: Settings, epochs: int, n_points: int) -> ml_collections.ConfigDict:
    """configs/playground.py set to the page's network, points and optimizer."""
    config = load_config(packaged_configs()["playground"])
    config.seed = settings.seed
    config.data.name = settings.dataset
    config.data.noise = settings.noise / 100.0
    config.data.train_fraction = settings.train_percent / 100.0
    config.data.num_examples = n_points
    config.data.data_seed = settings.seed
    config.model.features = settings.features
    config.model.hidden_sizes = settings.hidden
    config.model.activation = settings.activation
    config.optimizer.name = settings.optimizer
    config.optimizer.learning_rate = settings.learning_rate
    config.optimizer.schedule = "constant"
    config.optimizer.l1 = settings.regularization_rate if settings.regularization == "L1" else 0.0
    config.optimizer.weight_decay = settings.regularization_rate if settings.regularization == "L2" else 0.0
    config.train.batch_size = settings.batch_size
    config.train.epochs = epochs
    config.train.patience = 0
    config.eval.batch_size = 1024
    return config


def splits_of(settings: Settings, points: np.ndarray, targets: np.ndarray, in_train: np.ndarray) -> Splits:
    classification = settings.dataset in GENERATORS
    y = targets.astype(np.int64) if classification else targets[:, None].astype(np.float32)
    name = (f"{settings.dataset}/noise{settings.noise / 100:g}-train{settings.train_percent / 100:g}-n{len(points)}"
            f"-seed{settings.seed}")
    info = DataInfo(name=name, task="classification" if classification else "regression", input_shape=(2,),
                    num_classes=2 if classification else 0, target_shape=() if classification else (1,),
                    class_names=CLASS_NAMES if classification else (), stored={"kind": "array", "dtype": "float32"})
    train = {"x": points[in_train], "y": y[in_train]}
    return Splits(train=train, validation=train, test={"x": points[~in_train], "y": y[~in_train]}, info=info)


def save_run(workdir: str, settings: Settings, params: dict, epochs: int, points: tuple, *,
             seconds: float = 0.0) -> dict:
    """Writes the network `params` (padded, one member) trained `epochs` epochs on `points` (points,
    targets, in_train) as a complete run in `workdir`, a new folder; returns its summary."""
    if epochs < 1:
        raise InputError("save", "the network has not trained yet", got="epoch 0", expected="at least one epoch")
    folder = paths.as_path(workdir)
    if folder.exists():
        raise InputError("workdir", "exists already", got=workdir, expected="a new folder")
    try:
        return write_run(workdir, settings, params, epochs, points, seconds)
    except BaseException:
        if folder.exists():  # a save that fails leaves nothing behind
            folder.rmtree()
        raise


def write_run(workdir: str, settings: Settings, params: dict, epochs: int, points: tuple, seconds: float) -> dict:
    started = time.perf_counter()
    splits = splits_of(settings, *points)
    config = run_config(settings, epochs, len(points[0]))
    mesh = parallel.make_mesh()
    workdir = prepare_workdir(workdir)
    model = build_model(config.model, splits.info)
    steps_per_epoch = max(len(splits.train["x"]) // settings.batch_size, 1)
    state = build_state(config, splits.info, steps_per_epoch, model)
    own = network.flax_params(params, settings.features, settings.hidden, settings.regression)
    if jax.tree.structure(jax.tree.map(np.asarray, dict(state.params))) != jax.tree.structure(own):
        raise AssertionError("the page's network and PlaygroundNet differ in structure")  # a bug, not input
    state = state.replace(params=jax.tree.map(jnp.asarray, own))
    fit_state = init_fit_state(state).replace(epoch=jnp.int32(epochs))
    config_record = {**json.loads(config.to_json()), "playground": settings.as_json()}
    log.write_json(paths.join(workdir, "config.json"), config_record)
    checkpointer = Checkpointer(paths.join(workdir, "checkpoints"), keep=1)
    try:
        checkpointer.save(epochs, fit_state, {"config": json.loads(config.to_json())})
    finally:
        checkpointer.close()
    test = evaluate_split(state, splits.test, mesh=mesh, batch_size=config.eval.batch_size)
    train = evaluate_split(state, splits.train, mesh=mesh, batch_size=config.eval.batch_size)
    record = {"epoch": epochs, **{f"train_{k}": v for k, v in train.items() if k != "count"},
              **{f"val_{k}": v for k, v in train.items() if k != "count"}, "seconds": seconds}
    summary = {"experiment": "playground", "workdir": workdir, "task": splits.info.task,
               "data": {"name": splits.info.name, **splits.sizes(), "pipeline": "memory"},
               "source": "jaxdl.playground (saved from the live page)", "model": "playground",
               "model_dtype": "float32", "num_params": count_params(state.params), "test": test,
               "epochs_run": epochs, "best_epoch": epochs, "stopped_early": False, "train_seconds": seconds,
               "devices": parallel.describe_devices(mesh), "processes": parallel.describe_processes(),
               "jax_version": jax.__version__}
    summary = complete_run(config, workdir, splits, state, summary=summary, history=[record], mesh=mesh)
    summary["total_seconds"] = time.perf_counter() - started
    log.write_json(paths.join(workdir, "summary.json"), summary)
    return summary
