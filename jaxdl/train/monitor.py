"""Early stopping on a score: the validation scores of an epoch, and the update they make on the host's word.

Early stopping (`jaxdl.train.early_stopping`) minimises one value. A per-example mean (`val_loss`,
`val_accuracy`, ...) is known on the device, so `finish_epoch` updates early stopping there with
`sign * value`. A score (`val_f1_macro`, ...; `jaxdl.train.scores`) is computed on the host from the
validation outputs the epoch's program returns; `EpochScores` computes the scores and then runs one
small compiled update of the early-stopping state with the monitored one, for one run or for each
member of a stack.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import parallel
from jaxdl.train import scores as scores_lib
from jaxdl.train.early_stopping import update_early_stopping

OUTPUTS = "val_outputs"  # the key of the validation outputs among an epoch's metrics


def update_monitored(fit_state, value: jax.Array, *, patience: int):
    """`fit_state` (a FitState, or a stack of them) after early stopping saw `value` ((), or (M,) for a
    stack: sign * score, lower is better) for its latest epoch. A member that did not train this epoch
    (stopped before it) or diverged in it keeps its early-stopping state, as `finish_epoch` keeps it."""

    def one(state, value, trained):
        early = update_early_stopping(state.early, value, state.epoch, state.train, patience)
        keep = trained & ~state.diverged
        return state.replace(early=jax.tree.map(functools.partial(jnp.where, keep), early, state.early))

    if fit_state.epoch.ndim:
        trained = fit_state.epoch == jnp.max(fit_state.epoch)
        return jax.vmap(one)(fit_state, value, trained)
    return one(fit_state, value, jnp.ones((), bool))


class EpochScores:
    """The scores of each epoch's validation outputs, and early stopping on one of them.

    Args:
      names: the scores to compute (the monitored one among them when it is a score).
      targets: the validation targets (N,) or (N, ...) on the host.
      monitor: what early stopping watches (`scores.monitor_of`).
      patience: as `fit`'s.
      members: 0 for one run, M for a stack.
      mesh: the device mesh (the monitored values go to every device).
    """

    def __init__(self, names: tuple[str, ...], targets: np.ndarray, monitor: scores_lib.Monitor, *, patience: int,
                 members: int, mesh):
        self.names, self.targets, self.monitor, self.members = names, np.asarray(targets), monitor, members
        self.replicated = parallel.replicated(mesh)
        self.update = jax.jit(functools.partial(update_monitored, patience=patience), donate_argnums=0)

    def __call__(self, fit_state, metrics: dict) -> tuple[object, dict]:
        """(fit state, the epoch's device metrics with OUTPUTS) -> (fit state, metrics without OUTPUTS,
        with "val_<score>" for each score: () or (M,) host arrays)."""
        metrics = dict(metrics)
        outputs = np.asarray(parallel.host_get(metrics.pop(OUTPUTS)))
        lead = 1 if self.members else 0  # (M,) before (num_batches, batch, ...) for a stack
        shape = outputs.shape
        outputs = outputs.reshape(*shape[:lead], shape[lead] * shape[lead + 1], *shape[lead + 2:])
        outputs = outputs[(slice(None),) * lead + (slice(0, len(self.targets)),)]  # padding rows are last
        values = scores_lib.compute_stacked(self.names, outputs, self.targets, bool(self.members))
        if self.monitor.score:
            monitored = np.asarray(values[self.monitor.key], np.float32) * np.float32(self.monitor.sign)
            fit_state = self.update(fit_state, jax.device_put(monitored, self.replicated))
        metrics.update({f"val_{name}": np.asarray(value, np.float32) for name, value in values.items()})
        return fit_state, metrics
