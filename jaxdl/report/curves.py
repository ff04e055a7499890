"""Learning curves from `metrics.jsonl` records, as a PNG.

matplotlib is imported only when a plot is drawn, and only its object API is used (a `Figure`
rendered by Agg), so plotting never changes the pyplot backend of the calling program.
"""

from __future__ import annotations

from collections import defaultdict

from jaxdl import paths

MAX_LEGEND_ENTRIES = 12


def plot_curves(records: list[dict], path: str, *, labels: dict[int, str] | None = None, title: str = "") -> str:
    """Draws loss (and accuracy, when recorded) per epoch and writes a PNG to `path`.

    Args:
      records: metrics.jsonl records. Without a "member" field: one run, its train (dashed) and
        validation (solid) curves. With "member": a sweep, the validation curve of every member.
      path: the PNG to write.
      labels: member index -> legend text (default "member i").
      title: the figure's title.
    Returns:
      `path`.
    """
    from matplotlib.figure import Figure  # noqa: PLC0415 (optional at import time)

    metrics = ["loss"] + [name for name in ("accuracy", "mse") if any(f"val_{name}" in r for r in records)]
    runs: dict[int | None, list[dict]] = defaultdict(list)
    for record in records:
        runs[record.get("member")].append(record)
    sweep = None not in runs
    figure = Figure(figsize=(5.5 * len(metrics), 4), layout="constrained")
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        for member, unordered in sorted(runs.items(), key=lambda item: -1 if item[0] is None else item[0]):
            lines = sorted(unordered, key=lambda r: r["epoch"])
            epochs = [r["epoch"] for r in lines]
            if sweep:
                label = (labels or {}).get(member, f"member {member}")
                ax.plot(epochs, [r.get(f"val_{metric}") for r in lines], linewidth=1.2, label=label)
            else:
                for split, style in (("train", "--"), ("val", "-")):
                    if f"{split}_{metric}" in lines[0]:
                        ax.plot(epochs, [r[f"{split}_{metric}"] for r in lines], style, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(("validation " if sweep else "") + metric)
        if metric == "loss" and all(r.get("val_loss", 1.0) > 0 for r in records):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if len(runs) <= MAX_LEGEND_ENTRIES:
            ax.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    paths.save_figure(figure, path, dpi=110)
    return path
