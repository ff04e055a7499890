"""Figures of the transfer experiment: accuracy against labels per class, and learning curves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the headless backend)

from jaxdl import paths  # noqa: E402

STYLES = {"scratch": ("from scratch", "tab:gray", "o"), "head_only": ("head only (body frozen)", "tab:blue", "s"),
          "finetune": ("fine-tuned (two phases)", "tab:red", "^")}


def plot_budgets(rows: list[dict], path: str, *, title: str) -> None:
    """Test accuracy (mean, with the seeds' min-max as a band) against labels per class, log scale."""
    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    x = [row["labels_per_class"] for row in rows]
    for strategy, (label, color, marker) in STYLES.items():
        if f"{strategy}_accuracy" not in rows[0]:  # a strategy the run left out
            continue
        mean = [100 * row[f"{strategy}_accuracy"] for row in rows]
        low = [100 * row[f"{strategy}_min"] for row in rows]
        high = [100 * row[f"{strategy}_max"] for row in rows]
        axes.plot(x, mean, marker=marker, color=color, label=label)
        axes.fill_between(x, low, high, color=color, alpha=0.15, linewidth=0)
    axes.set_xscale("log")
    axes.set_xticks(x)
    axes.set_xticklabels([f"all\n({v:g})" if row["all_labels"] else f"{v:g}" for v, row in zip(x, rows, strict=True)])
    axes.minorticks_off()
    axes.set_xlabel("labelled examples per class (target task)")
    axes.set_ylabel("test accuracy (%)")
    finish(figure, axes, path, f"{title}\nmean of {rows[0]['seeds']} seeds, band: min to max")


def plot_curves(curves: dict[str, dict], path: str, *, budget: int, head_epochs: int) -> None:
    """Validation accuracy of the target task against optimizer steps (mean over seeds, ± 1 std)."""
    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for strategy, curve in curves.items():
        label, color, _ = STYLES[strategy]
        mean, std = [100 * v for v in curve["accuracy"]], [100 * v for v in curve["std"]]
        axes.plot(curve["steps"], mean, color=color, label=label)
        low = [m - s for m, s in zip(mean, std, strict=True)]
        high = [m + s for m, s in zip(mean, std, strict=True)]
        axes.fill_between(curve["steps"], low, high, color=color, alpha=0.15, linewidth=0)
    if "finetune" in curves and head_epochs:
        boundary = curves["finetune"]["steps"][head_epochs - 1]
        axes.axvline(boundary, color="tab:red", linestyle=":", linewidth=1)
        axes.annotate(" body unfrozen", (boundary, 0.02), xycoords=("data", "axes fraction"), color="tab:red",
                      fontsize=8)
    axes.set_xlabel("optimizer steps")
    axes.set_ylabel("validation accuracy (%)")
    finish(figure, axes, path, f"learning curves, {budget or 'all'} labels per class (mean ± 1 std over seeds)")


def finish(figure, axes, path: str, title: str) -> None:
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=9)
    figure.tight_layout()
    paths.save_figure(figure, path)  # the workdir may be a bucket
    plt.close(figure)
