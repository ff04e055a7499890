"""Answers of a finished run on new inputs.

    python -m jaxdl.predict --workdir RUN INPUTS... [--output FILE.csv|FILE.jsonl] [--top_k K] [--debug]

INPUTS: .npy / .npz arrays (x, optionally y), image files or folders of images, or a CSV table
with the run's columns (see `jaxdl.deploy.inputs`). Writes one row per input: `input` (its path,
or `path[row]`), then for classification `predicted` (the class name) and `probability`, and with
--top_k K > 1 also `class_2`, `probability_2`, ... `class_K`, `probability_K`; for regression
`output` (or `output_0`, `output_1`, ...). `label` is added where the inputs give labels, and then
the accuracy and the confusion counts (rows: true class, columns: predicted) are printed (the mean
squared error for regression). Rows go to FILE.csv, FILE.jsonl (JSON lines), or a table on stdout.

A sweep's workdir predicts with its best member (summary.json's `best_member`).
Exit codes: 0 done, 2 bad input (one `error:` line), 130 interrupted.
"""

from __future__ import annotations

import csv
import json
import os
import sys

import numpy as np

from jaxdl.deploy.command import parse_flags, run_command
from jaxdl.deploy.inputs import read_inputs
from jaxdl.deploy.run_loader import Predictor, load_run
from jaxdl.errors import InputError, parse_number
from jaxdl.paths import check_storage

MAX_TOP_K = 100_000  # --top_k: 1 .. this (and at most the number of classes)
USAGE = ("usage: python -m jaxdl.predict --workdir RUN INPUTS... [--output FILE.csv|FILE.jsonl] [--top_k K] "
         "[--debug]")


def prediction_rows(predictor: Predictor, names: list[str], outputs: np.ndarray, labels: np.ndarray | None,
                    top_k: int) -> list[dict]:
    """One dict per input (see the module docstring); `outputs` from `predictor(x)`."""
    info, rows = predictor.info, []
    for i, name in enumerate(names):
        row = {"input": name}
        if info.task == "classification":
            order = np.argsort(-outputs[i], kind="stable")[:top_k]
            row["predicted"], row["probability"] = predictor.class_names[order[0]], float(outputs[i, order[0]])
            for rank, index in enumerate(order[1:], start=2):
                row[f"class_{rank}"] = predictor.class_names[index]
                row[f"probability_{rank}"] = float(outputs[i, index])
            if labels is not None:
                row["label"] = predictor.class_names[int(labels[i])]
        else:
            values = np.ravel(outputs[i])
            row.update({"output": float(values[0])} if values.size == 1
                       else {f"output_{j}": float(v) for j, v in enumerate(values)})
            if labels is not None:
                target = np.ravel(labels[i])
                row.update({"label": float(target[0])} if target.size == 1
                           else {f"label_{j}": float(v) for j, v in enumerate(target)})
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    columns = list(rows[0])
    cells = [[f"{row[c]:.4f}" if isinstance(row[c], float) else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[j]) for line in cells)) for j, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(line.rstrip() for line in lines)


def confusion_counts(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64: rows = true class, columns = predicted class."""
    counts = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(counts, (labels, predicted), 1)
    return counts


def scores(predictor: Predictor, outputs: np.ndarray, labels: np.ndarray) -> str:
    """Accuracy and confusion counts (classification) or the mean squared error (regression)."""
    if predictor.info.task != "classification":
        error = float(np.mean((outputs.reshape(len(labels), -1) - labels.reshape(len(labels), -1)) ** 2))
        return f"mean squared error {error:.6g} over {len(labels)} inputs"
    predicted = outputs.argmax(-1)
    right = int(np.sum(predicted == labels))
    names = [str(name) for name in predictor.class_names]
    counts = confusion_counts(labels, predicted, len(names))
    width = max(len("true \\ predicted"), *(len(n) for n in names))
    cell = max(5, *(len(n) for n in names), len(str(counts.max())))
    lines = [f"accuracy {right / len(labels):.4f} ({right} of {len(labels)})", "confusion counts:",
             "true \\ predicted".ljust(width) + "".join(n.rjust(cell + 1) for n in names)]
    lines += [name.ljust(width) + "".join(str(v).rjust(cell + 1) for v in row) for name, row in zip(names, counts,
                                                                                                    strict=True)]
    return "\n".join(lines)


def write_rows(rows: list[dict], output: str) -> None:
    try:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with open(output, "w", newline="") as f:
            if output.endswith(".jsonl"):
                f.writelines(json.dumps(row) + "\n" for row in rows)
            else:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
    except OSError as error:
        raise InputError("--output", f"cannot write the file ({error.strerror})", got=output) from error


def predict_command(argv: list[str]) -> int:
    flags, paths = parse_flags(argv, valued=("workdir", "output", "top_k"), switches=(), usage=USAGE)
    if "workdir" not in flags:
        raise InputError("--workdir", "missing", expected="the workdir of a finished run")
    output = flags.get("output", "")
    if output and not output.endswith((".csv", ".jsonl")):
        raise InputError("--output", "unknown file kind", got=output, expected="a path ending in .csv or .jsonl")
    top_k = parse_number("--top_k", flags.get("top_k", "1"), low=1, high=MAX_TOP_K, integer=True)
    check_storage(flags["workdir"])
    predictor = load_run(flags["workdir"])
    if predictor.info.task == "classification":
        top_k = min(top_k, predictor.info.num_classes)
    inputs = read_inputs(paths, predictor.info)
    outputs = predictor(inputs.x)
    rows = prediction_rows(predictor, inputs.names, outputs, inputs.labels, top_k)
    if output:
        write_rows(rows, output)
        print(f"wrote {len(rows)} rows to {output}")
    else:
        print(format_table(rows))
    if inputs.labels is not None:
        print(scores(predictor, outputs, inputs.labels))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(predict_command, argv, USAGE, __doc__)


if __name__ == "__main__":
    sys.exit(main())
