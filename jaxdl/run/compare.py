"""Side by side: what differs between finished runs, and how they did.

    python -m jaxdl.compare runs/a runs/b ... [--out compare.png]

Prints one row per run: the config keys whose values differ between the runs, then the test
figures (and the baseline's, the target, overfitting, epochs, size, time). Writes the runs'
validation curves into one plot (`--out`, default compare.png). Reads only the workdir files
(config.json, metrics.jsonl, summary.json); a run still in progress shows "-" for its test figures,
and a sweep is represented by its best member.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from jaxdl import paths as path_lib
from jaxdl.errors import InputError
from jaxdl.report import run_schema
from jaxdl.report.curves import plot_curves
from jaxdl.report.schema_checks import Obj
from jaxdl.run.config import IMPLIED_KEYS, flatten

USAGE = "usage: python -m jaxdl.compare RUN_DIR [RUN_DIR ...] [--out PLOT.png]"


@dataclasses.dataclass
class Run:
    """A workdir's files: flattened config {"a.b": value}, summary ({} while running), history."""

    name: str
    config: dict
    summary: dict
    history: list[dict]


def read_json(path, where: str, name: str):
    """Workdir file `name` at `path` through the run door (`jaxdl.report.run_schema`): UTF-8 JSON of
    an object (compare shows whatever keys a run has, also a run of an older jaxdl, so no field is
    required), its errors named by the run folder `where` as given on the command line."""
    try:
        return run_schema.read_file(path, name, Obj())
    except InputError as error:
        raise InputError(where, error.what, got=error.got, expected=error.expected, hint=error.hint) from None


def load_run(path: str, name: str) -> Run:
    """Reads a run's workdir; an InputError when it is not one. A config key of IMPLIED_KEYS that an
    older run's config lacks reads as its implied value (model.dtype: float32)."""
    folder = path_lib.as_path(path)  # a local folder or a bucket URL (gs://...)
    if not folder.is_dir():
        raise InputError(path, "no such run folder", expected="a workdir written by an experiment")
    if not folder.joinpath("config.json").is_file():
        raise InputError(path, "not a run folder (no config.json)", expected="a workdir written by an experiment")
    config = read_json(folder / "config.json", path, "config.json")
    summary_path = folder / "summary.json"
    summary = read_json(summary_path, path, "summary.json") if summary_path.is_file() else {}
    history = []
    metrics_path = folder / "metrics.jsonl"
    if metrics_path.is_file():
        lines = [line for line in metrics_path.read_text().splitlines() if line.strip()]
        try:
            history = run_schema.parse_lines(lines, "metrics.jsonl", run_schema.METRICS_RECORD)
        except InputError as error:
            raise InputError(path, error.what, got=error.got, expected=error.expected) from None
    if any("member" in record for record in history):  # a sweep: its best member stands for it
        best = summary.get("best_member", 0)
        history = [{k: v for k, v in r.items() if k != "member"} for r in history if r.get("member") == best]
    flat = flatten(config)
    for key, value in IMPLIED_KEYS.items():  # a run saved before the key existed had its implied value
        if key.split(".")[0] in config:
            flat.setdefault(key, value)
    return Run(name=name, config=flat, summary=summary, history=history)


def run_names(paths: list[str]) -> list[str]:
    """Folder names, or the paths as given where two folders share a name."""
    names = [os.path.basename(os.path.normpath(p)) for p in paths]
    return [n if names.count(n) == 1 else p for n, p in zip(names, paths, strict=True)]


def differing_keys(runs: list[Run]) -> list[str]:
    """Config keys whose value is not the same in every run (a key missing from a run counts as differing)."""
    keys = sorted({k for run in runs for k in run.config})
    missing = object()
    return [k for k in keys if len({json.dumps(run.config.get(k, missing), default=str) for run in runs}) > 1]


def number(value, digits: int = 4) -> str:
    return "-" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))


def outcome(summary: dict) -> dict[str, str]:
    """The figures a row shows for one run's summary."""
    test = summary.get("test", {})
    baseline = (summary.get("baseline") or {}).get("test", {})
    target = summary.get("target")
    cells = {f"test {k}": number(v) for k, v in test.items() if k != "count"}
    cells.update({f"baseline {k}": number(v) for k, v in baseline.items() if k != "count"})
    cells["target"] = "-" if not target else ("met" if target["met"] else "not met")
    cells["overfitting"] = "-" if "overfitting" not in summary else ("yes" if summary["overfitting"] else "no")
    cells["epochs (best)"] = f"{summary['epochs_run']} ({summary['best_epoch']})" if summary else "-"
    cells["params"] = f"{summary['num_params']:,}" if "num_params" in summary else "-"
    cells["train s"] = number(summary.get("train_seconds"), 1)
    return cells


def comparison_table(runs: list[Run]) -> str:
    """Plain-text table: one row per run; columns = differing config keys, then outcomes."""
    keys = differing_keys(runs)
    outcomes = [outcome(run.summary) for run in runs]
    metric_columns = list(dict.fromkeys(c for cells in outcomes for c in cells))
    header = ["run", *keys, *metric_columns]
    rows = [[run.name, *(json.dumps(run.config[k]) if k in run.config else "-" for k in keys),
             *(cells.get(c, "-") for c in metric_columns)] for run, cells in zip(runs, outcomes, strict=True)]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if not keys:
        lines.append("(the configs are identical)")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> tuple[list[str], str]:
    paths, out, i = [], "compare.png", 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--out" or arg.startswith("--out="):
            if arg == "--out":
                if i + 1 >= len(argv):
                    raise InputError("--out", "missing value", expected="a .png path")
                i += 1
            out = argv[i] if arg == "--out" else arg.partition("=")[2]
        elif arg.startswith("--"):
            raise InputError(arg.partition("=")[0], "unknown flag", expected="run folders and --out PATH")
        else:
            paths.append(arg)
        i += 1
    if not paths:
        raise InputError("command line", "no run folders given", expected=USAGE)
    if not out.endswith(".png"):
        raise InputError("--out", "the plot is a PNG", got=out, expected="a path ending in .png")
    return paths, out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--help" in argv or "-h" in argv:
        print(USAGE)
        print(__doc__)
        return 0
    try:
        paths, out = parse_args(argv)
        runs = [load_run(path, name) for path, name in zip(paths, run_names(paths), strict=True)]
        print(comparison_table(runs))
        # The runs as members of one sweep: plot_curves draws each one's validation curves.
        records = [{**record, "member": i} for i, run in enumerate(runs) for record in run.history]
        try:
            path_lib.as_path(out).parent.mkdir(parents=True, exist_ok=True)
            plot_curves(records, out, labels={i: run.name for i, run in enumerate(runs)},
                        title=f"validation curves of {len(runs)} runs")
        except OSError as error:
            raise InputError("--out", f"cannot write the plot ({error.strerror})", got=out) from error
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"\nvalidation curves: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
