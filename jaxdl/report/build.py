"""Draws a finished run's figures into its workdir and assembles report.html from them.

Files written (classification): learning_curves.png, confusion_matrix.png, worst_errors.png
(image or signal data), activations_<layer>.png, report.html. Regression: learning_curves.png,
predicted_vs_true.png, residuals.png, activations_<layer>.png, report.html. Both: why_attributions.png
(image or signal data: the attributions of a few test answers, `jaxdl.evaluate.why`).

How an input is shown depends on the data and the model (`input_kind`): an image as an image, a
1-D signal (the input of a CNN or RNN shaped (length,) or (length, channels)) as a line plot,
tabular features (any other 1-D input, e.g. an MLP's) as a row of numbers in the page's tables.
"""

from __future__ import annotations

import json

import ml_collections

from jaxdl import paths
from jaxdl.data import Splits
from jaxdl.evaluate.review import Review
from jaxdl.report import why_figures, why_page
from jaxdl.report.page import activation_file, render
from jaxdl.report.questions_page import questions_section

# Model families whose 1-D inputs are signals (steps in order), not unordered features.
SIGNAL_MODELS = ("cnn", "rnn")


def input_kind(input_shape: tuple[int, ...], model_config: ml_collections.ConfigDict | dict) -> str:
    """How the report shows one input of `input_shape` to the model `model_config` describes:
    "image", "signal" (a line plot), "table" (a row of numbers) or "other" (not shown)."""
    name = model_config.get("name", "")
    if name in SIGNAL_MODELS and len(input_shape) in (1, 2):
        return "other" if model_config.get("vocab_size", 0) else "signal"  # token ids are no curve
    if len(input_shape) == 2 or (len(input_shape) == 3 and input_shape[-1] in (1, 3, 4)):
        return "image"
    return "table" if len(input_shape) == 1 else "other"


def draw_figures(workdir: str, summary: dict, history: list[dict], review: Review, splits: Splits, *,
                 kind: str = "image") -> list[str]:
    """Writes the PNGs of the run into `workdir`; returns their file names. `kind`: see `input_kind`."""
    from jaxdl.report import figures, question_figures  # noqa: PLC0415 (matplotlib: only when a report is drawn)

    info, test = splits.info, splits.test
    baseline = summary.get("baseline") or {}
    written = [figures.learning_curves(history, paths.join(workdir, "learning_curves.png"), task=info.task,
                                       best_epoch=summary["best_epoch"],
                                       stopped_epoch=summary["epochs_run"] if summary.get("stopped_early") else None,
                                       baseline_history=baseline.get("history"))]
    if info.task == "classification":
        written.append(figures.confusion_matrix(review.predictions.confusion, info.class_names,
                                                paths.join(workdir, "confusion_matrix.png")))
        worst = summary["worst_errors"]
        worst_path = paths.join(workdir, "worst_errors.png")
        if kind == "image" and worst:
            written.append(figures.worst_errors(test["x"][[row["index"] for row in worst]], worst, worst_path))
        elif kind == "signal" and worst:
            written.append(figures.worst_errors_signals(test["x"][[row["index"] for row in worst]], worst,
                                                        worst_path))
    else:
        outputs = review.predictions.outputs
        written.append(figures.predicted_vs_true(outputs, test["y"], paths.join(workdir, "predicted_vs_true.png")))
        written.append(figures.residuals(outputs, test["y"], paths.join(workdir, "residuals.png")))
    if summary.get("lr_find"):
        from jaxdl.report.lr_curve import FILE, lr_find_curve  # noqa: PLC0415 (matplotlib, as above)

        written.append(lr_find_curve(summary["lr_find"], paths.join(workdir, FILE)))
    labels = [row_label(int(test["y"][i]), i, info) for i in review.examples] if info.num_classes else \
        [f"test #{i}" for i in review.examples]
    inputs = test["x"][review.examples]
    why = review.why
    if why is not None and why.attributions is not None and kind in ("image", "signal"):
        rows = why_page.why_answer(summary)["examples"]
        written.append(why_figures.attribution_figure(test["x"][why.indices], why.attributions.integrated_gradients,
                                                      rows, paths.join(workdir, why_page.FIGURE),
                                                      image=kind == "image"))
    for layer, values in review.activations.items():
        written.append(figures.activations(layer, values, paths.join(workdir, activation_file(layer)),
                                           row_labels=labels, inputs=inputs if kind != "table" else None,
                                           signal=kind == "signal"))
    names = [paths.as_path(path).name for path in written]
    return names + question_figures.draw(workdir, summary.get("questions") or {}, history=history,
                                         model_name=str(summary.get("model", "deep model")),
                                         class_names=list(info.class_names) or None)


def row_label(label: int, index: int, info) -> str:
    name = info.class_names[label] if info.class_names else str(label)
    return f"class {name} (#{index})"


def write_report(workdir: str, config: ml_collections.ConfigDict, summary: dict, *, history: list[dict],
                 review: Review, splits: Splits) -> list[str]:
    """Draws the figures and writes report.html; returns the file names written (report.html last)."""
    kind = input_kind(splits.info.input_shape, config.model)
    names = draw_figures(workdir, summary, history, review, splits, kind=kind)
    if "members" in summary and paths.as_path(workdir).joinpath("validation_curves.png").exists():
        names.append("validation_curves.png")  # drawn by the pipeline: a sweep's members
    images = {}
    for name in names:
        images[name] = paths.as_path(workdir).joinpath(name).read_bytes()
    features = None
    if kind == "table":
        worst = [row["index"] for row in summary.get("worst_errors", [])]
        features = {"worst_errors": splits.test["x"][worst], "activations": splits.test["x"][review.examples]}
    page = render(summary, json.loads(config.to_json()), images, features=features,
                  sections=(why_page.why_section(summary, images), questions_section(summary, images)))
    paths.write_text_atomic(paths.join(workdir, "report.html"), page, encoding="utf-8")
    return [*names, "report.html"]

