"""Orbax checkpoints of a training run: save on a schedule, keep the last K, resume from the latest.

A checkpoint is written with Orbax's temporary-directory-then-rename protocol, so a crash during
a save leaves the previous checkpoints usable. Saves are asynchronous: the arrays are copied to
host memory before `save` returns, and the files are written while training goes on.
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    """Checkpoints of one run in `directory`, by epoch number.

    Args:
      directory: where the checkpoints go (created if needed).
      every_epochs: save every this many epochs (0: not by count).
      every_seconds: save when this many seconds passed since the last save (0: not by time).
      keep: how many of the latest checkpoints to keep.

    The last epoch of a run is always saved (`due(..., final=True)`).
    """

    def __init__(self, directory: str, *, every_epochs: int = 0, every_seconds: float = 30.0, keep: int = 2):
        self.directory = os.path.abspath(directory)
        self.every_epochs = every_epochs
        self.every_seconds = every_seconds
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)
        self._last_save = time.monotonic()

    def latest_epoch(self) -> int | None:
        """The newest complete checkpoint's epoch, or None."""
        return self.manager.latest_step()

    def due(self, epoch: int, *, final: bool = False) -> bool:
        """Whether the checkpoint policy asks for a save after `epoch`."""
        if final:
            return True
        if self.every_epochs and epoch % self.every_epochs == 0:
            return True
        return bool(self.every_seconds) and time.monotonic() - self._last_save >= self.every_seconds

    def save(self, epoch: int, state: Any, meta: dict) -> None:
        """Saves the pytree `state` and the JSON-able `meta` as checkpoint `epoch` (asynchronously)."""
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        self.manager.save(epoch, args=args, force=True)
        self._last_save = time.monotonic()

    def restore(self, like: Any, epoch: int | None = None) -> tuple[Any, dict]:
        """Restores checkpoint `epoch` (default: latest) into the structure, dtypes and shardings of `like`."""
        epoch = self.latest_epoch() if epoch is None else epoch
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
        restored = self.manager.restore(epoch, args=args)
        return restored.state, restored.meta

    def close(self) -> None:
        """Waits for pending writes and releases the manager."""
        self.manager.wait_until_finished()
        self.manager.close()
