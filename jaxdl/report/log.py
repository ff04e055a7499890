"""What a run leaves in its workdir and shows on the terminal.

Workdir files: `config.json` (resolved config), `metrics.jsonl` (one JSON object per epoch),
`summary.json` (final figures). JSON files are written to a temporary name and renamed, so a
reader never sees half a file. Paths go through `etils.epath` (as in TFDS and Orbax), so a workdir
may be a bucket (gs://...) as well as a local folder. The figures and report.html are drawn by `jaxdl.report.build`
(matplotlib is imported only there), TensorBoard events by `jaxdl.report.scalars`.
"""

from __future__ import annotations

import json
from typing import Any

import ml_collections
from etils import epath

from jaxdl import paths
from jaxdl.errors import InputError
from jaxdl.report import run_schema


def write_json(path: str, value: Any) -> None:
    """Writes `value` as indented JSON, atomically (temp file + rename)."""
    paths.write_text_atomic(path, json.dumps(value, indent=2, sort_keys=False) + "\n")


def write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
    write_json(paths.join(workdir, "config.json"), json.loads(config.to_json()))


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
        path = epath.Path(self.path)
        if not path.exists():
            return []
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as error:
            raise InputError("--workdir", f"metrics.jsonl: not a text file (byte {error.start} is not UTF-8)",
                             got=self.path, expected="the file the run wrote") from None
        lines = [line for line in text.splitlines(keepends=True) if line.strip()]
        if lines and not lines[-1].endswith("\n"):
            lines.pop()
        return run_schema.parse_lines(lines, "metrics.jsonl", run_schema.METRICS_RECORD)

    def keep_through(self, epoch: int) -> None:
        """Drops records after `epoch` (those of a run that was interrupted before its next checkpoint)."""
        self.rewrite([r for r in self.read() if r["epoch"] <= epoch])

    def rewrite(self, records: list[dict]) -> None:
        """Replaces the file with `records` (temp file + rename)."""
        paths.write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in records))

    def append(self, record: dict) -> None:
        if not self._appended:
            self.keep_through(record["epoch"] - 1)
            self._appended = True
        if paths.is_url(self.path):  # a bucket object cannot be appended to: written anew (a few KB)
            self.rewrite([*self.read(), record])
            return
        with epath.Path(self.path).open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()


def write_load_report(report: dict, workdir: str, name: str = "transfer.json") -> str:
    """Writes a load report of `jaxdl.transfer.pretrained` as `workdir/transfer.json`; returns the path."""
    path = paths.join(workdir, name)
    write_json(path, report)
    return path
