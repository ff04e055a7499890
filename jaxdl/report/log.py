"""What a run leaves in its workdir and shows on the terminal.

Workdir files: `config.json` (resolved config), `metrics.jsonl` (one JSON object per epoch),
`summary.json` (final figures). JSON files are written to a temporary name and renamed, so a
reader never sees half a file. The figures and report.html are drawn by `jaxdl.report.build`
(matplotlib is imported only there), TensorBoard events by `jaxdl.report.scalars`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections


def write_json(path: str, value: Any) -> None:
    """Writes `value` as indented JSON, atomically (temp file + rename)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
    write_json(os.path.join(workdir, "config.json"), json.loads(config.to_json()))


class MetricsLog:
    """`metrics.jsonl`: one JSON object per epoch, each epoch once, even across resumes.

    The first `append` of a MetricsLog drops the records from its epoch on: they belong to a run
    that went past its last checkpoint before it was stopped, and the resumed run writes them again.
    """

    def __init__(self, path: str):
        self.path = path
        self._appended = False

    def read(self) -> list[dict]:
        """The records; a last line cut short (a process killed while writing it) is left out."""
        if not os.path.exists(self.path):
            return []
        with open(self.path) as f:
            lines = [line for line in f if line.strip()]
        if lines and not lines[-1].endswith("\n"):
            lines.pop()
        return [json.loads(line) for line in lines]

    def keep_through(self, epoch: int) -> None:
        """Drops records after `epoch` (those of a run that was interrupted before its next checkpoint)."""
        kept = [r for r in self.read() if r["epoch"] <= epoch]
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        os.replace(tmp, self.path)

    def append(self, record: dict) -> None:
        if not self._appended:
            self.keep_through(record["epoch"] - 1)
            self._appended = True
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()


def write_load_report(report: dict, workdir: str, name: str = "transfer.json") -> str:
    """Writes a load report of `jaxdl.transfer.pretrained` as `workdir/transfer.json`; returns the path."""
    path = os.path.join(workdir, name)
    write_json(path, report)
    return path
