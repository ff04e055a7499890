"""What a run leaves in its workdir and shows on the terminal.

Workdir files: `config.json` (resolved config), `metrics.jsonl` (one JSON object per epoch),
`summary.json` (final figures). JSON files are written to a temporary name and renamed, so a
reader never sees half a file. The figures and report.html are drawn by `jaxdl.report.build`
(matplotlib is imported only there), TensorBoard events by `jaxdl.report.scalars`.
"""

from __future__ import annotations

import json
import os
import sys
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


class Progress:
    """A bar over epochs with the latest loss, accuracy and epoch time (stderr)."""

    def __init__(self, total: int, initial: int = 0, enabled: bool = True):
        from tqdm.auto import tqdm  # noqa: PLC0415

        self.bar = tqdm(total=total, initial=initial, unit="epoch", file=sys.stderr, disable=not enabled,
                        dynamic_ncols=True, leave=True)

    def update(self, record: dict) -> None:
        shown = {"loss": record.get("train_loss"), "val_loss": record.get("val_loss")}
        for key in ("train_accuracy", "val_accuracy", "val_mse"):
            if key in record:
                shown[key.replace("train_", "")] = record[key]
        postfix = {k: f"{v:.4f}" for k, v in shown.items() if v is not None}
        postfix["s/epoch"] = f"{record['seconds']:.3f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def final_table(summary: dict) -> str:
    """A short plain-text table of a run's outcome."""
    rows = [(f"test {name}", f"{value:.4f}") for name, value in summary["test"].items() if name != "count"]
    if "members" in summary:  # a sweep: the figures above are the best member's
        rows.insert(0, ("sweep", f"{len(summary['members'])} members, best: member {summary['best_member']}"))
        rows += [(f"ensemble test {k}", f"{v:.4f}") for k, v in summary["ensemble"]["test"].items() if k != "count"]
    baseline = summary.get("baseline") or {}
    if "test" in baseline:
        rows += [(f"baseline test {k}", f"{v:.4f}  ({baseline['model']})")
                 for k, v in baseline["test"].items() if k != "count"]
    if summary.get("target"):
        target = summary["target"]
        rows.append((f"target {target['metric']}", f"{target['target']:g}: {'met' if target['met'] else 'NOT met'}"))
    if "overfitting" in summary:
        evidence = summary.get("overfitting_evidence", {})
        rows.append(("overfitting", f"yes (validation loss up since epoch {evidence.get('best_epoch')})"
                     if summary["overfitting"] else "no"))
    rows += [
        ("epochs", f"{summary['epochs_run']} (best {summary['best_epoch']}"
                   + (", stopped early)" if summary.get("stopped_early") else ")")),
        ("train time", f"{summary['train_seconds']:.1f} s"),
        ("parameters", f"{summary['num_params']:,}"),
        ("devices", f"{summary['devices']['count']} x {summary['devices']['kind']}"),
        ("workdir", summary.get("workdir", "")),
    ]
    if summary.get("report"):
        rows.append(("report", summary["report"]))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)
