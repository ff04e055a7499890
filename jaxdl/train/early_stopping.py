"""Early stopping as device state: the best validation loss, its epoch, and the model that reached it.

All fields are arrays updated with `jnp.where`, not Python branches, so a stack of runs can be
`vmap`-ed and each member stops on its own; the best model is kept on device and saved with every
checkpoint.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxdl.train.state import TrainState

PyTree = Any


class EarlyStopping(struct.PyTreeNode):
    """Validation-loss bookkeeping; all fields are arrays so it can be stacked and vmapped.

    Attributes:
      best_loss: () float32, the lowest validation loss so far (inf before the first epoch).
      best_epoch: () int32, the epoch that reached it (0: none yet).
      bad_epochs: () int32, epochs since the last improvement.
      stopped: () bool, patience ran out.
      best_params, best_batch_stats: the model at `best_epoch`.
    """

    best_loss: jax.Array
    best_epoch: jax.Array
    bad_epochs: jax.Array
    stopped: jax.Array
    best_params: PyTree
    best_batch_stats: PyTree


def update_early_stopping(early: EarlyStopping, val_loss: jax.Array, epoch: jax.Array, state: TrainState,
                          patience: int) -> EarlyStopping:
    """Records `val_loss` of `epoch`; keeps the model if it improved; stops after `patience` bad epochs."""
    improved = val_loss < early.best_loss  # False for NaN: a diverged epoch is never "best".
    keep = functools.partial(jnp.where, improved)
    bad_epochs = jnp.where(improved, 0, early.bad_epochs + 1)
    return EarlyStopping(best_loss=keep(val_loss, early.best_loss), best_epoch=keep(epoch, early.best_epoch),
                         bad_epochs=bad_epochs, stopped=(patience > 0) & (bad_epochs >= patience),
                         best_params=jax.tree.map(keep, state.params, early.best_params),
                         best_batch_stats=jax.tree.map(keep, state.batch_stats, early.best_batch_stats))
