"""Which model a finished run kept, how to rebuild it, and how to read its parameters back.

The module: the one passed to `load_run(RUN, model=...)`, else the one config.json's `model_source`
records (a run trained with its own Flax module, `jaxdl.models.record`), else the one config.json's
`model` section builds.

The parameters: a run trained with the optimizer its config describes is restored whole (the
`FitState`, every leaf checked against the SHA-256 saved with it) into a template built from
config.json. A run whose checkpoint holds another optimizer state (its own optax optimizer passed
to `train_and_evaluate`, or a transfer run's fine-tuning phases, whose optimizers freeze layers)
needs no optimizer to predict: only the model's arrays (parameters, batch-norm statistics, the
early-stopping best) are read, by an Orbax partial restore (`jaxdl.transfer.pretrained.read_pretrained`),
and summary.json's `params_sha256` checks them.
"""

from __future__ import annotations

import jax
import ml_collections
import numpy as np

from jaxdl.data import DataInfo
from jaxdl.errors import InputError
from jaxdl.models import build_model
from jaxdl.models.record import describe, rebuild
from jaxdl.models.train_argument import with_train_argument
from jaxdl.train.digest import leaf_specs
from jaxdl.train.state import TrainState
from jaxdl.train.sweep import member_labels, members_of
from jaxdl.transfer.pretrained import read_pretrained

WHERE = "--workdir"
MODEL_LEAVES = (".train.params", ".train.batch_stats", ".early.best_params", ".early.best_batch_stats")


def model_of_run(config: ml_collections.ConfigDict, info: DataInfo, model=None):
    """(the Flax module of the run, what it came from: words for error messages)."""
    if model is not None:
        return with_train_argument(model), f"the model passed to load_run ({type(model).__qualname__})"
    record = config.get("model_source")
    if record is not None:
        record = record.to_dict() if isinstance(record, ml_collections.ConfigDict) else record
        return with_train_argument(rebuild(record, WHERE)), f"config.json's model_source ({describe(record)})"
    return build_model(config.model, info), f"config.json's model section ({config.model.get('name')!r})"


def is_model_leaf(path: str) -> bool:
    return path.startswith(MODEL_LEAVES)


def restore_whole(saved: dict | None, template_leaves: dict, checkpoint: str, source: str) -> bool:
    """Whether the checkpoint holds exactly the template's state (restore it whole), or only the same
    model with another optimizer state (read the model's arrays alone). InputError when the model itself
    differs, naming where the model came from."""
    if saved is None or saved == template_leaves:
        return True
    model_saved = {k: v for k, v in saved.items() if is_model_leaf(k)}
    model_now = {k: v for k, v in template_leaves.items() if is_model_leaf(k)}
    if model_saved == model_now:
        return False
    differences = [f"{key} saved {model_saved.get(key, 'absent')}, rebuilt {model_now.get(key, 'absent')}"
                   for key in sorted(set(model_saved) | set(model_now)) if model_saved.get(key) != model_now.get(key)]
    more = f" and {len(differences) - 2} more" if len(differences) > 2 else ""
    raise InputError(WHERE, f"its checkpoint {checkpoint} holds a different model than {source} builds",
                     got="; ".join(differences[:2]) + more, expected="the model the run was trained with",
                     hint="pass that module: jaxdl.load_run(RUN, model=...)" if "passed" not in source else None)


def restore_model_only(checkpoints: str, epoch: int, state: TrainState, members: bool) -> TrainState:
    """`state` (the rebuilt model's) with the kept model's parameters and batch-norm statistics read
    from checkpoint `epoch` alone (no optimizer state); a sweep's best member."""
    try:
        pretrained = read_pretrained(checkpoints, epoch=epoch, which="final", member=-1)
    except InputError as error:
        raise InputError(WHERE, f"its checkpoint cannot be read: {error.what}", got=error.got,
                         expected=error.expected) from error
    variables = pretrained.variables
    like = jax.tree.map(lambda a: a[0], state.params) if members else state.params
    if leaf_specs(variables["params"]) != leaf_specs(like):
        raise InputError(WHERE, "its checkpoint's parameters do not fit the rebuilt model",
                         got=pretrained.checkpoint, expected="the model the run was trained with")
    return TrainState(step=np.zeros((), np.int32), params=variables["params"], opt_state=None, rng=None,
                      batch_stats=variables.get("batch_stats") or {}, apply_fn=state.apply_fn, tx=None,
                      metrics_fn=state.metrics_fn)


def kept_epoch(summary: dict, patience: int, best_epoch: int | None = None, epochs_run: int | None = None) -> int:
    """The epoch whose model the run kept: the best one with early stopping (when an epoch improved), else the last."""
    best = summary.get("best_epoch", 0) if best_epoch is None else best_epoch
    last = summary.get("epochs_run", 0) if epochs_run is None else epochs_run
    return int(best) if patience and best and int(best) > 0 else int(last)


def describe_kept(config: ml_collections.ConfigDict, summary: dict, epoch: int, last: int, member: int | None) -> str:
    """The model that answers, in words: "epoch 19 (best of 39)", "epoch 8 (the last)", a sweep's member,
    a transfer run's strategy. `epoch`: the kept model's, `last`: the run's last epoch."""
    words = f"epoch {epoch} (best of {last})" if epoch < last else f"epoch {epoch} (the last)"
    chosen = summary.get("kept_model")
    if isinstance(chosen, dict) and chosen.get("strategy"):
        budget = chosen.get("labels_per_class")
        labels = "all labels" if not budget else f"{budget} labels per class"
        return f"{chosen['strategy']} ({labels}, seed {chosen.get('seed')}), {words}"
    if member is not None:
        members = members_of(config)
        label = member_labels(members)[member] if member < len(members) else ""
        return f"member {member}{f' ({label})' if label else ''} of {len(members)}, {words}"
    return words


__all__ = ["describe_kept", "kept_epoch", "model_of_run", "restore_model_only", "restore_whole"]
