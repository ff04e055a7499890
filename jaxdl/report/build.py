"""Draws a finished run's figures into its workdir and assembles report.html from them.

Files written (classification): learning_curves.png, confusion_matrix.png, worst_errors.png
(image data), activations_<layer>.png, report.html. Regression: learning_curves.png,
predicted_vs_true.png, residuals.png, activations_<layer>.png, report.html.
"""

from __future__ import annotations

import json
import os

import ml_collections

from jaxdl.data import Splits
from jaxdl.evaluate.review import Review
from jaxdl.report.page import activation_file, render


def draw_figures(workdir: str, summary: dict, history: list[dict], review: Review, splits: Splits) -> list[str]:
    """Writes the PNGs of the run into `workdir`; returns their file names."""
    from jaxdl.report import figures  # noqa: PLC0415 (matplotlib: only when a report is drawn)

    info, test = splits.info, splits.test
    baseline = summary.get("baseline") or {}
    written = [figures.learning_curves(history, os.path.join(workdir, "learning_curves.png"), task=info.task,
                                       best_epoch=summary["best_epoch"],
                                       stopped_epoch=summary["epochs_run"] if summary.get("stopped_early") else None,
                                       baseline_history=baseline.get("history"))]
    if info.task == "classification":
        written.append(figures.confusion_matrix(review.predictions.confusion, info.class_names,
                                                os.path.join(workdir, "confusion_matrix.png")))
        worst = summary["worst_errors"]
        if figures.is_image(info.input_shape) and worst:
            images = test["x"][[row["index"] for row in worst]]
            written.append(figures.worst_errors(images, worst, os.path.join(workdir, "worst_errors.png")))
    else:
        outputs = review.predictions.outputs
        written.append(figures.predicted_vs_true(outputs, test["y"], os.path.join(workdir, "predicted_vs_true.png")))
        written.append(figures.residuals(outputs, test["y"], os.path.join(workdir, "residuals.png")))
    labels = [row_label(int(test["y"][i]), i, info) for i in review.examples] if info.num_classes else \
        [f"test #{i}" for i in review.examples]
    inputs = test["x"][review.examples]
    for layer, values in review.activations.items():
        written.append(figures.activations(layer, values, os.path.join(workdir, activation_file(layer)),
                                           row_labels=labels, inputs=inputs))
    return [os.path.basename(path) for path in written]


def row_label(label: int, index: int, info) -> str:
    name = info.class_names[label] if info.class_names else str(label)
    return f"class {name} (#{index})"


def write_report(workdir: str, config: ml_collections.ConfigDict, summary: dict, *, history: list[dict],
                 review: Review, splits: Splits) -> list[str]:
    """Draws the figures and writes report.html; returns the file names written (report.html last)."""
    names = draw_figures(workdir, summary, history, review, splits)
    images = {}
    for name in names:
        with open(os.path.join(workdir, name), "rb") as f:
            images[name] = f.read()
    page = render(summary, json.loads(config.to_json()), images)
    tmp = os.path.join(workdir, "report.html.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, os.path.join(workdir, "report.html"))
    return [*names, "report.html"]

