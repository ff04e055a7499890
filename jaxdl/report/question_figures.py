"""The figures of report.html's questions section, drawn from summary.json's `questions` alone.

Like `jaxdl.report.figures` it imports matplotlib, so `jaxdl.report.build` imports it only when it
draws. `draw(workdir, questions)` writes the PNGs whose answers ran and returns their file names:
simpler_methods.png (scores with 95% intervals), good_enough.png (reliability diagram; accuracy
against coverage), data.png (class counts per split; the learning curve when it ran), compute.png
(each epoch's time against the projection).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from jaxdl import paths
from jaxdl.report.figures import BASELINE, BEST, STOP, TRAIN, VAL, margins, save

FILES = {"simpler_methods": "simpler_methods.png", "good_enough": "good_enough.png", "data": "data.png",
         "compute": "compute.png"}


def simpler_methods(answer: dict, path: str, model_name: str = "deep model") -> str:
    """One bar per method and the deep model (first), its 95% interval as an error bar."""
    rows = [(f"{model_name} (this run)", answer["deep"])] + [(m["name"], m["test"]) for m in answer["methods"]]
    fig = Figure(figsize=(8, 0.5 * len(rows) + 1.2))
    margins(fig, 2.6, 0.3, 0.55, 0.2)
    ax = fig.subplots()
    values = np.array([score["value"] for _, score in rows])
    errors = np.array([[score["value"] - score["low"], score["high"] - score["value"]] for _, score in rows]).T
    colours = [VAL] + [BASELINE if m["vs_deep"] == "worse" else TRAIN for m in answer["methods"]]
    ax.barh(range(len(rows)), values, xerr=errors, color=colours, capsize=4)
    ax.set_yticks(range(len(rows)), [name for name, _ in rows])
    ax.invert_yaxis()
    metric = answer["deep"]["metric"]
    low = min(score["low"] for _, score in rows)
    if metric == "accuracy":
        ax.set_xlim(max(0.0, low - 0.05), 1.0)
    ax.set_xlabel(f"test {metric} on {answer['deep']['count']} examples (95% interval)")
    ax.grid(axis="x", alpha=0.3)
    return save(fig, path)


def good_enough(answer: dict, path: str) -> str:
    """Left: accuracy against confidence per bin (the diagonal is perfect calibration), bin sizes as
    a faint histogram. Right: accuracy and coverage when answering only above each threshold."""
    fig = Figure(figsize=(11, 4))
    margins(fig, 0.75, 0.2, 0.55, 0.35, wspace=0.3)
    left, right = fig.subplots(1, 2)
    bins = answer["reliability"]
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    width = bins[0]["high"] - bins[0]["low"] if bins else 0.1
    left.bar(centres, [b["accuracy"] for b in bins], width=width * 0.9, color=TRAIN, label="accuracy in bin")
    left.plot([0, 1], [0, 1], color=BASELINE, linestyle="--", label="perfect calibration")
    total = sum(b["count"] for b in bins) or 1
    left.bar(centres, [b["count"] / total for b in bins], width=width * 0.9, fill=False, edgecolor=VAL,
             linewidth=1.5, label="share of examples")
    left.set_xlim(0, 1)
    left.set_ylim(0, 1)
    left.set_xlabel("confidence (probability of the answer)")
    left.set_ylabel("accuracy")
    left.set_title(f"reliability: expected calibration error {answer['ece']:.3f}", fontsize=10)
    left.legend(fontsize=8, loc="upper left")
    rows = [r for r in answer["coverage"]]
    thresholds = [r["threshold"] for r in rows]
    right.plot(thresholds, [r["coverage"] for r in rows], marker="o", color=VAL, label="coverage (share answered)")
    answered = [r for r in rows if r["accuracy"] is not None]
    right.plot([r["threshold"] for r in answered], [r["accuracy"] for r in answered], marker="o", color=BEST,
               label="accuracy of those answered")
    right.fill_between([r["threshold"] for r in answered], [r["low"] for r in answered],
                       [r["high"] for r in answered], color=BEST, alpha=0.15)
    right.set_ylim(0, 1.02)
    right.set_xlabel("answer only when confidence >= threshold")
    right.grid(alpha=0.3)
    right.legend(fontsize=8, loc="lower left")
    return save(fig, path)


def data(answer: dict, path: str, class_names: list | None = None) -> str:
    """Class counts per split as shares (left, classification), the learning curve (right, when it ran)."""
    curve = answer.get("learning_curve") or {}
    panels = int("balance" in answer) + int(bool(curve.get("points")))
    fig = Figure(figsize=(5.5 * max(panels, 1), 4))
    margins(fig, 0.75, 0.2, 0.55, 0.35, wspace=0.3)
    axes = list(np.atleast_1d(fig.subplots(1, max(panels, 1))))
    if "balance" in answer:
        ax = axes.pop(0)
        counts = answer["balance"]["counts"]
        k = len(next(iter(counts.values())))
        width = 0.8 / len(counts)
        for i, (split, values) in enumerate(counts.items()):
            shares = np.asarray(values, np.float64) / max(sum(values), 1)
            ax.bar(np.arange(k) + i * width - 0.4 + width / 2, shares, width=width, label=split,
                   color=(TRAIN, VAL, STOP)[i % 3])
        names = class_names or [str(i) for i in range(k)]
        if k <= 30:
            ax.set_xticks(range(k), names, rotation=90 if max(map(len, map(str, names))) > 3 else 0)
        ax.set_ylabel("share of the split")
        ax.set_title("class balance", fontsize=10)
        ax.legend(fontsize=8)
    if curve.get("points"):
        ax = axes.pop(0)
        points = curve["points"]
        sizes = [p["train_examples"] for p in points]
        ax.errorbar(sizes, [p["mean"] for p in points], yerr=[p["std"] for p in points], marker="o", color=TRAIN,
                    capsize=4)
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.minorticks_off()
        ax.set_xlabel("training examples (log scale)")
        ax.set_ylabel(f"validation {curve['metric']}")
        ax.set_title("learning curve (mean and spread over seeds)", fontsize=10)
        ax.grid(alpha=0.3)
    return save(fig, path)


def compute(answer: dict, history: list[dict], path: str) -> str:
    """Each epoch's measured seconds against the projected epoch time."""
    by_epoch = {r["epoch"]: r["seconds"] for r in history if "seconds" in r}
    fig = Figure(figsize=(7, 3.5))
    margins(fig, 0.75, 0.2, 0.55, 0.2)
    ax = fig.subplots()
    epochs = sorted(by_epoch)
    ax.plot(epochs, [by_epoch[e] for e in epochs], marker=".", color=TRAIN, label="measured epoch (the first compiles)")
    ax.axhline(answer["projected_epoch_seconds"], color=VAL, linestyle="--", label="projected before training")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("seconds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)


def draw(workdir: str, questions: dict, *, history: list[dict], model_name: str = "deep model",
         class_names: list | None = None) -> list[str]:
    """Writes the figures of the questions that ran; returns their file names."""
    written = []
    for name, draw_one in (("simpler_methods", lambda a, p: simpler_methods(a, p, model_name)),
                           ("good_enough", good_enough), ("data", lambda a, p: data(a, p, class_names)),
                           ("compute", lambda a, p: compute(a, history, p))):
        answer = questions.get(name) or {}
        if not answer.get("run") or not drawable(name, answer, history):
            continue
        written.append(draw_one(answer, paths.join(workdir, FILES[name])))
    return [paths.as_path(path).name for path in written]


def drawable(name: str, answer: dict, history: list[dict]) -> bool:
    if name == "simpler_methods":
        return "deep" in answer
    if name == "good_enough":
        return bool(answer.get("reliability"))
    if name == "data":
        return "balance" in answer or bool((answer.get("learning_curve") or {}).get("points"))
    return bool(history) and answer.get("projected_epoch_seconds", 0) > 0
