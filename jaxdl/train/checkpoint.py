"""Orbax checkpoints of a training run: save on a schedule, keep the last K, resume from the newest good one.

A checkpoint `<directory>/<epoch>/` holds two items:
  - `state`: the whole `FitState` pytree (parameters, optimizer state, step, RNG key, batch-norm
    statistics, early stopping with the best model so far, epoch count, non-finite streak), so the
    best model is in every checkpoint and needs no checkpoint of its own;
  - `meta` (JSON): what the caller passes (the config), plus the epoch, the library versions, and
    the SHA-256 and the dtype[shape] of every leaf of `state`.

Crash safety. Orbax writes a checkpoint into `<epoch>.orbax-checkpoint-tmp-*` and renames it when
every file is written, so `kill -9` during a save leaves only a temporary folder; opening a
Checkpointer removes those. Orbax reports a truncated or missing file as an error when reading,
but reads a flipped byte inside an array back silently (checked by hand on this version), so
`restore` recomputes the SHA-256 of what it read and compares it with `meta`. A checkpoint that
fails either way is moved to `<directory>.corrupt/` with a warning and the next older one is used;
when none is good, an InputError names them.

Schedule. Saves are asynchronous: `save` returns once the state is copied to host memory; the
Checkpointer's worker thread then hashes that copy, writes the meta and has Orbax write the arrays
from that copy while training goes on (restore puts them back with the target's shardings). A save
due while the previous one is still being written waits for it; an error of a background save is
raised by the next `save`, `wait` or `close`. What the training thread waits for
(benchmarks/checkpoint_save.py, CPU): ~1 ms instead of ~30 ms for the default digits MLP, ~4 ms
instead of ~100 ms for ResNet-20; most of the old cost was Orbax's own blocking part, not the hash.
Many processes (jax.distributed): every process calls `save` and `restore` alike (the host copy
comes through `parallel.host_get`); Orbax lets process 0 write the meta and the replicated arrays
and waits for all before a checkpoint counts as complete. `fit` agrees on when to save, since
each process keeps its own clock. Saves are then made on the training thread, not the worker:
Orbax's barriers are device collectives (`sync_global_devices`), which must come in the same
order on every process as the training step's own. Every process checks the SHA-256 of what it read (so all find
the same checkpoint corrupted) and process 0 alone moves a corrupted one aside.

Readers. Whatever only reads a run (`jaxdl.load_run` and so predict, serve, export and drift;
`jaxdl.load_pretrained`) opens it with `CheckpointReader`, never with a Checkpointer: a
Checkpointer is the run's one writer (it creates the folder, removes the temporary folders of
unfinished saves, deletes checkpoints beyond `keep`), so a second one on a workdir that is
training deletes the save being written and the training dies. A reader creates, cleans, moves
and locks nothing, starts no thread, lists only complete checkpoints (Orbax's own test:
`ocp.utils.checkpoint_steps`) and reads them SHA-256 checked as `restore` does.

Until written a save still takes ~150-500 ms of background work, as much as a small-data epoch or
more, so the default is by time (`every_seconds=30`) rather than every epoch. The price: a run
killed without warning repeats the epochs since its last completely written checkpoint (about
`every_seconds` of training), with the same result. Which epochs get a checkpoint depends on
timing; the numbers never do. The last epoch, and the epoch a SIGTERM or SIGINT stops at, are
always saved.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import functools
import gc
import importlib.metadata
import logging
import platform
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxdl import parallel, paths
from jaxdl.errors import InputError
from jaxdl.train.digest import leaf_specs, params_sha256

log = logging.getLogger("jaxdl")

VERSIONED = ("jaxdl", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")


class CorruptCheckpoint(Exception):
    """Checkpoint `epoch` at `path` cannot be read back as it was written (`reason`)."""

    def __init__(self, epoch: int, path: str, reason: str):
        self.epoch, self.path, self.reason = epoch, path, reason
        super().__init__(f"{path}: {reason}")


@functools.cache  # reading the package metadata costs milliseconds, and it does not change in a process
def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries whose numerics a checkpoint depends on (do not mutate: cached)."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def tree_digest(tree: Any) -> tuple[str, dict[str, str]]:
    """(SHA-256 of the leaves' bytes, {leaf path: "dtype[shape]"}) of a pytree, read to the host."""
    host = parallel.host_get(tree)
    return params_sha256(host), leaf_specs(host)


def host_copy(tree: Any) -> Any:
    """The pytree with every leaf copied to a numpy array that owns its memory.

    On CPU `jax.device_get` returns views of the device buffers; a copy that outlives the next
    training step must not alias them (and a live view would stop that step from donating them).
    """
    def owned(leaf: Any) -> np.ndarray:
        return leaf if isinstance(leaf, np.ndarray) and leaf.flags.owndata else np.array(leaf)
    return jax.tree.map(owned, parallel.host_get(tree))


@contextlib.contextmanager
def quiet_unraisable() -> Iterator[None]:
    """Silences "Exception ignored in <coroutine>" noise of a failed Orbax read; we report the failure."""
    previous = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        yield
    finally:
        gc.collect()
        sys.unraisablehook = previous


class Checkpointer:
    """Checkpoints of one run in `directory`, by epoch number.

    Args:
      directory: where the checkpoints go (created if needed).
      every_epochs: save every this many epochs (0: not by count).
      every_seconds: save when this many seconds passed since the last save, or since the
        Checkpointer was made (0: not by time).
      keep: how many of the latest checkpoints to keep.
      clock: seconds, monotonic (for tests of the schedule).

    The last epoch of a run is always saved (`due(..., final=True)`). Saves run on one worker
    thread, one at a time: the manager is only used by the calling thread when no save is pending.
    """

    def __init__(self, directory: str, *, every_epochs: int = 0, every_seconds: float = 30.0, keep: int = 2,
                 clock: Callable[[], float] = time.monotonic):
        self.directory = paths.join(directory)  # a bucket URL (gs://...) stays one; Orbax takes both
        self.every_epochs = every_epochs
        self.every_seconds = every_seconds
        self.clock = clock
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=True,
                                               cleanup_tmp_directories=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)
        self._last_save = clock()
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jaxdl-checkpoint")
        self._pending: concurrent.futures.Future | None = None
        self._pending_epoch: int | None = None

    def path(self, epoch: int) -> str:
        return paths.join(self.directory, str(epoch))

    def epochs(self) -> list[int]:
        """Epochs of the complete checkpoints, oldest first (unfinished ones are not listed)."""
        self._drain()
        return sorted(self.manager.all_steps())

    def latest_epoch(self) -> int | None:
        """The newest checkpoint's epoch, or None; a save in progress counts (as in Orbax)."""
        if self._pending is not None and not self._pending.done():
            return self._pending_epoch
        return self.manager.latest_step()

    def due(self, epoch: int, *, final: bool = False) -> bool:
        """Whether the checkpoint policy asks for a save after `epoch`."""
        if final:
            return True
        if self.every_epochs and epoch % self.every_epochs == 0:
            return True
        return bool(self.every_seconds) and self.clock() - self._last_save >= self.every_seconds

    def save(self, epoch: int, state: Any, meta: dict) -> None:
        """Saves the pytree `state` and the JSON-able `meta` as checkpoint `epoch` (asynchronously).

        Returns once `state` and `meta` are copied: the caller may then change or donate them. Waits
        for the previous save first and raises its error, if it had one.
        """
        self._settle()
        host = host_copy(state)
        if jax.process_count() > 1:
            # Orbax's barriers are device collectives: from the worker thread they could interleave with the
            # training step's own collectives in a different order on each process, so the save is made here.
            self._write(epoch, host, meta)
            self._last_save = self.clock()
            return
        self._pending = self._worker.submit(self._write, epoch, host, copy.deepcopy(meta))
        self._pending_epoch = epoch
        self._last_save = self.clock()

    def _write(self, epoch: int, host: Any, meta: dict) -> None:
        """On the worker: hashes the host copy and writes checkpoint `epoch` completely."""
        sha256, leaves = params_sha256(host), leaf_specs(host)
        meta = {**meta, "epoch": epoch, "versions": library_versions(), "state_sha256": sha256,
                "state_leaves": leaves}
        args = ocp.args.Composite(state=ocp.args.StandardSave(host), meta=ocp.args.JsonSave(meta))
        self.manager.save(epoch, args=args, force=True)
        self.manager.wait_until_finished()

    def _drain(self) -> None:
        """Waits for a pending save, leaving its error (if any) for the next `save`, `wait` or `close`."""
        if self._pending is not None:
            concurrent.futures.wait([self._pending])

    def _settle(self) -> None:
        """Waits for a pending save and raises its error."""
        pending, self._pending, self._pending_epoch = self._pending, None, None
        if pending is not None:
            pending.result()

    def wait(self) -> None:
        """Waits until the last save is completely written; raises the error of a failed one."""
        self._settle()

    def read_meta(self, epoch: int) -> dict:
        """The `meta` item of checkpoint `epoch`; CorruptCheckpoint when it cannot be read."""
        self._drain()
        try:
            meta = self.manager.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
        except Exception as error:  # noqa: BLE001 (JSON, Unicode and file errors all mean the same here)
            raise CorruptCheckpoint(epoch, self.path(epoch), f"unreadable meta ({first_line(error)})") from error
        if not isinstance(meta, dict):
            raise CorruptCheckpoint(epoch, self.path(epoch), "meta is not a JSON object")
        return meta

    def latest_meta(self) -> tuple[int, dict] | None:
        """(epoch, meta) of the newest checkpoint whose meta can be read, or None."""
        for epoch in reversed(self.epochs()):
            with contextlib.suppress(CorruptCheckpoint):
                return epoch, self.read_meta(epoch)
        return None

    def restore(self, like: Any, epoch: int | None = None) -> tuple[Any, dict]:
        """Restores checkpoint `epoch` (default: the newest good one) into the structure, dtypes and
        shardings of `like`; returns (state, meta).

        Newer checkpoints that turn out corrupted are moved aside with a warning. Raises InputError
        when there is no good checkpoint, or when the checkpoint holds a differently shaped state.
        """
        self._drain()
        candidates = [epoch] if epoch is not None else list(reversed(self.epochs()))
        if not candidates:
            raise InputError(self.directory, "no checkpoint to resume from")
        corrupt: list[CorruptCheckpoint] = []
        for candidate in candidates:
            try:
                state, meta = self._restore_checked(like, candidate)
            except CorruptCheckpoint as error:
                corrupt.append(error)
                continue
            for error in corrupt:
                moved = self.set_aside(error.epoch)
                log.warning("checkpoint %s is corrupted (%s); moved it to %s and resumed from epoch %d",
                            error.path, error.reason, moved, candidate)
            warn_on_version_change(meta, self.path(candidate))
            return state, meta
        newest = corrupt[0]
        older = f" (and {len(corrupt) - 1} older ones)" if len(corrupt) > 1 else ""
        raise InputError(newest.path, f"checkpoint is corrupted{older}", got=newest.reason,
                         expected="a complete checkpoint",
                         hint=f"move {self.directory} away to start the run over")

    def _restore_checked(self, like: Any, epoch: int) -> tuple[Any, dict]:
        meta = self.read_meta(epoch)
        check_same_leaves(meta.get("state_leaves"), leaf_specs(like), self.path(epoch))
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
        try:
            with quiet_unraisable():
                state = self.manager.restore(epoch, args=args).state
        except Exception as error:  # noqa: BLE001 (TensorStore raises several kinds for missing or cut files)
            raise CorruptCheckpoint(epoch, self.path(epoch), f"unreadable arrays ({first_line(error)})") from error
        check_sha256(state, meta, epoch, self.path(epoch))
        return state, meta

    def set_aside(self, epoch: int) -> str:
        """Moves checkpoint `epoch` to `<directory>.corrupt/`; returns where it went (process 0 moves it)."""
        target = paths.join(f"{self.directory}.corrupt", f"{epoch}-{time.strftime('%Y%m%d-%H%M%S')}")
        self._drain()
        if parallel.is_leader():  # with many processes, all found it corrupted; process 0 moves it
            paths.as_path(target).parent.mkdir(parents=True, exist_ok=True)
            paths.as_path(self.path(epoch)).rename(target)
        parallel.sync("jaxdl-checkpoint-set-aside")
        self.manager.reload()
        return target

    def close(self) -> None:
        """Waits for pending writes and releases the manager; raises the error of a failed save."""
        try:
            self._settle()
            self.manager.wait_until_finished()
        finally:
            self._worker.shutdown(wait=True)
            self.manager.close()


class NoCompleteCheckpoint(InputError):
    """A run's checkpoints folder holds no complete checkpoint (yet); `unfinished` names the temporary
    folders of saves being written (or left by a killed process)."""

    def __init__(self, directory: str, unfinished: list[str]):
        self.directory, self.unfinished = directory, unfinished
        if unfinished:
            super().__init__(directory, "no checkpoint is complete yet", got=", ".join(unfinished[:3]),
                             expected="a complete checkpoints/<epoch>/ folder",
                             hint="the run is training its first epochs (or was stopped during its first save)")
        else:
            super().__init__(directory, "the run has no checkpoint", expected="checkpoints/<epoch>/ written by the run")


class CheckpointReader:
    """Read-only access to the checkpoints of a run in `directory` (see "Readers" in the module docstring).

    A separate class rather than a read-only mode of `Checkpointer`: a Checkpointer owns an Orbax
    CheckpointManager (whose constructor creates the folder and starts removing unfinished saves in
    the background, and which deletes checkpoints beyond `keep` after a save), a worker thread and
    the save schedule, and it moves corrupted checkpoints aside; a reader needs none of that, so it
    has none of it to switch off (Orbax's own `read_only=True` manager still builds the rest). It
    reads the two items of a checkpoint with Orbax's item handlers directly, as the
    CheckpointManager's composite handler does; the only threads are Orbax's short-lived ones
    while listing, joined before `epochs` returns.

    Safe while a training process writes the same folder: a save in progress is an
    `<epoch>.orbax-checkpoint-tmp-*` folder (or, on a bucket, a folder without its
    commit_success.txt) and is not listed; a checkpoint that the writer deletes (beyond `keep`)
    while it is read is noticed (it is then no longer the newest complete one) and the newest
    complete one is read instead.
    """

    ATTEMPTS = 5  # reads of a checkpoint the writer deleted meanwhile, before giving up

    def __init__(self, directory: str):
        self.directory = paths.join(directory)

    def path(self, epoch: int) -> str:
        return paths.join(self.directory, str(epoch))

    def epochs(self) -> list[int]:
        """Epochs of the complete checkpoints, oldest first; [] when the folder does not exist."""
        try:  # Orbax's own test of a finalized step folder (and [] when there is no folder)
            return sorted(ocp.utils.checkpoint_steps(paths.as_path(self.directory)))
        except FileNotFoundError:  # the folder was deleted while being listed
            return []

    def unfinished(self) -> list[str]:
        """Names of the temporary folders of saves not (yet) complete."""
        folder = paths.as_path(self.directory)
        try:
            return sorted(child.name for child in folder.iterdir() if ocp.path.atomicity.TMP_DIR_SUFFIX in child.name)
        except (FileNotFoundError, NotADirectoryError):
            return []

    def read_meta(self, epoch: int) -> dict:
        """The `meta` item of checkpoint `epoch`; CorruptCheckpoint when it cannot be read."""
        try:
            meta = ocp.JsonCheckpointHandler().restore(paths.as_path(self.path(epoch)) / "meta")
        except Exception as error:  # noqa: BLE001 (JSON, Unicode and file errors all mean the same here)
            raise CorruptCheckpoint(epoch, self.path(epoch), f"unreadable meta ({first_line(error)})") from error
        if not isinstance(meta, dict):
            raise CorruptCheckpoint(epoch, self.path(epoch), "meta is not a JSON object")
        return meta

    def read(self, like: Any, epoch: int) -> tuple[Any, dict]:
        """Checkpoint `epoch` into the structure, dtypes and shardings of `like`: (state, meta).

        CorruptCheckpoint when it cannot be read back as written (SHA-256 checked); InputError when
        it holds a differently shaped state.
        """
        meta = self.read_meta(epoch)
        check_same_leaves(meta.get("state_leaves"), leaf_specs(like), self.path(epoch))
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        handler = ocp.StandardCheckpointHandler()
        try:
            with quiet_unraisable():
                state = handler.restore(paths.as_path(self.path(epoch)) / "state",
                                        args=ocp.args.StandardRestore(abstract))
        except Exception as error:  # noqa: BLE001 (TensorStore raises several kinds for missing or cut files)
            raise CorruptCheckpoint(epoch, self.path(epoch), f"unreadable arrays ({first_line(error)})") from error
        finally:
            handler.close()
        check_sha256(state, meta, epoch, self.path(epoch))
        return state, meta

    def read_newest(self, like: Any) -> tuple[Any, dict, int]:
        """The newest complete checkpoint: (state, meta, epoch).

        NoCompleteCheckpoint when there is none. A checkpoint that fails to read while it is still
        the newest complete one raises CorruptCheckpoint (nothing is moved: that is the writer's
        business); one that meanwhile was deleted or superseded by a newer save is replaced by the
        newest complete one, up to ATTEMPTS times.
        """
        failed: CorruptCheckpoint | None = None
        for _ in range(self.ATTEMPTS):
            epochs = self.epochs()
            if not epochs:
                if failed is not None:
                    raise failed
                raise NoCompleteCheckpoint(self.directory, self.unfinished())
            if failed is not None and epochs[-1] == failed.epoch:
                raise failed  # still there and still the newest: it really is damaged
            epoch = epochs[-1]
            try:
                state, meta = self.read(like, epoch)
            except CorruptCheckpoint as error:
                failed = error
                continue
            return state, meta, epoch
        assert failed is not None
        raise failed


def check_sha256(state: Any, meta: dict, epoch: int, path: str) -> None:
    """CorruptCheckpoint unless `state` has the SHA-256 that `meta` recorded when it was saved."""
    expected = meta.get("state_sha256")
    if expected is not None and tree_digest(state)[0] != expected:
        raise CorruptCheckpoint(epoch, path, "arrays differ from the SHA-256 recorded when saved")


def check_same_leaves(saved: dict | None, current: dict[str, str], path: str) -> None:
    """InputError naming the first differences when a checkpoint holds a differently shaped state."""
    if saved is None or saved == current:
        return
    differences = [f"{key} saved {saved.get(key, 'absent')}, now {current.get(key, 'absent')}"
                   for key in sorted(set(saved) | set(current)) if saved.get(key) != current.get(key)]
    more = f" and {len(differences) - 3} more" if len(differences) > 3 else ""
    raise InputError(path, "checkpoint holds a different model or optimizer state",
                     got="; ".join(differences[:3]) + more, expected="the state this config builds",
                     hint="use a new --workdir for a different model")


def warn_on_version_change(meta: dict, path: str) -> None:
    saved = meta.get("versions") or {}
    changed = [f"{name} {saved[name]} -> {version}" for name, version in library_versions().items()
               if name in saved and saved[name] != version]
    if changed:
        log.warning("checkpoint %s was written with other library versions (%s); the resumed run may not be "
                    "bit-identical to an uninterrupted one", path, ", ".join(changed))


def first_line(error: BaseException) -> str:
    """`Type: first line of the message`, at most 160 characters (TensorStore messages run long)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = text.split(" See full TensorStore details")[0]
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."
