"""TensorBoard event files for a run's scalars, written with tensorboardX (no TensorFlow needed).

The files go straight into a local workdir, so `tensorboard --logdir runs/` lists each run under
its folder name. On a bucket workdir (gs://...) they are written to a local temporary folder and
copied into the workdir through `etils.epath` when the writer closes (at the end of training and of
the run): writing them there directly would need tensorboardX's own GCS client
(google-cloud-storage, with its own credentials handling), and a bucket object cannot be appended
to anyway. A process killed without warning loses the events since its writer opened. Tags:
`train/<metric>` and `val/<metric>` per epoch (`.../member_<i>` per member of a sweep),
`time/seconds_per_epoch`, and at the end `test/<metric>` (and `baseline/test_<metric>`) at the last
epoch.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile

from jaxdl import paths

# A diverged run logs NaN losses on purpose (the curve shows where); tensorboardX would also warn
# on stderr, which the command line keeps for its one `error:` line.
logging.getLogger("tensorboardX.x2num").setLevel(logging.ERROR)


class ScalarLog:
    """Per-epoch scalars to TensorBoard. A resumed run purges the events after its checkpoint.

    Args:
      logdir: the run's workdir.
      resumed_epoch: the checkpoint epoch the run resumes from (0: a fresh start); events
        written after it by an interrupted run are dropped by TensorBoard.
    """

    def __init__(self, logdir: str, resumed_epoch: int = 0):
        self.logdir = logdir
        self._local = None  # on a bucket: the temporary folder the open writer writes into
        self.purge_step = resumed_epoch + 1 if resumed_epoch else None
        self._writer = None
        self._opened = 0

    @property
    def writer(self):
        """The open SummaryWriter; opened on first use (again after `close`, as a new event file)."""
        if self._writer is None:
            SummaryWriter = import_summary_writer()  # noqa: N806

            # The suffix keeps two files opened within the same second (named by time) apart.
            if paths.is_url(self.logdir):
                self._local = tempfile.mkdtemp(prefix="jaxdl-events-")
            self._writer = SummaryWriter(self._local or self.logdir, purge_step=self.purge_step, flush_secs=10,
                                         filename_suffix=f".{os.getpid()}.{self._opened}")
            self.purge_step = None
            self._opened += 1
        return self._writer

    def epoch(self, record: dict) -> None:
        """One metrics.jsonl record: {"epoch", "train_*", "val_*", "seconds"}."""
        step = record["epoch"]
        member = f"/member_{record['member']}" if "member" in record else ""  # a sweep: one series per member
        for key, value in record.items():
            split, _, name = key.partition("_")
            if split in ("train", "val") and name:
                self.writer.add_scalar(f"{split}/{name}{member}", value, step)
        if "seconds" in record and not member:
            self.writer.add_scalar("time/seconds_per_epoch", record["seconds"], step)

    def final(self, summary: dict) -> None:
        """The test figures (and the baseline's) at the last epoch."""
        step = summary.get("epochs_run", 0)
        for name, value in summary["test"].items():
            if name != "count":
                self.writer.add_scalar(f"test/{name}", value, step)
        for name, value in summary.get("baseline", {}).get("test", {}).items():
            if name != "count":
                self.writer.add_scalar(f"baseline/test_{name}", value, step)
        self.close()

    def close(self) -> None:
        """Writes out and closes the event file (a later write opens a new one)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._local is not None:
            local, self._local = self._local, None
            for name in sorted(os.listdir(local)):  # the local temporary folder, not the workdir
                with open(os.path.join(local, name), "rb") as f:  # bytes, since a copy cannot cross file systems
                    paths.as_path(self.logdir).joinpath(name).write_bytes(f.read())
            shutil.rmtree(local)


def import_summary_writer():
    """tensorboardX's SummaryWriter, imported without PyTorch.

    tensorboardX imports torch, when it is installed, only to accept torch tensors, which jaxdl
    never passes; that import cost 3 s of a 25 s run (benchmarks/whole_run.py). Unless torch is
    already loaded, it is hidden for the duration of the import (a None entry in sys.modules makes
    `import torch` raise ImportError, which tensorboardX handles), then made importable again.
    """
    if "tensorboardX" in sys.modules or "torch" in sys.modules:
        from tensorboardX import SummaryWriter  # noqa: PLC0415

        return SummaryWriter
    sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        from tensorboardX import SummaryWriter  # noqa: PLC0415
    finally:
        del sys.modules["torch"]
    return SummaryWriter
