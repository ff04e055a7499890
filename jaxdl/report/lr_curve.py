"""The learning-rate finder's figure (`train.lr_find`, `jaxdl.train.lr_find`): lr_find.png.

Left: each step's loss and the smoothed loss against the rate (log scale), the suggestion and the
rate trained at marked. Right: the confirming sweep's validation loss per rate.
"""

from __future__ import annotations

import math

from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from jaxdl.report.figures import BEST, STOP, TRAIN, VAL, margins, save

FILE = "lr_find.png"


def lr_find_curve(record: dict, path: str) -> str:
    """Draws the `lr_find` record of summary.json into `path`."""
    confirm = record.get("confirm")
    fig = Figure(figsize=(11 if confirm else 6, 4))
    margins(fig, 0.75, 0.15, 0.55, 0.35, wspace=0.25)
    axes = fig.subplots(1, 2 if confirm else 1, squeeze=False)[0]
    ax = axes[0]
    ax.plot(record["rates"], record["losses"], color=TRAIN, alpha=0.35, linewidth=1, label="loss per step")
    ax.plot(record["rates"], record["smoothed"], color=TRAIN, linewidth=1.8, label="smoothed loss")
    ax.axvline(record["suggestion"], color=BEST, linestyle=":", linewidth=1.5,
               label=f"suggested {record['suggestion']:.3g}")
    if record["rate"] != record["suggestion"]:
        ax.axvline(record["rate"], color=VAL, linestyle="--", linewidth=1.5, label=f"trained at {record['rate']:.3g}")
    if record.get("diverged_at"):
        ax.axvline(record["diverged_at"], color=STOP, linestyle="--", linewidth=1,
                   label=f"diverged at {record['diverged_at']:.3g}")
    finite = [v for v in record["smoothed"] if math.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) * 0.9, min(max(finite), 4 * min(finite)) * 1.1)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("range test: " + record["rule"], fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if confirm:
        ax = axes[1]
        losses = [v if math.isfinite(v) else float("nan") for v in confirm["val_loss"]]
        ax.plot(confirm["rates"], losses, "o-", color=VAL)
        ax.axvline(confirm["chosen"], color=BEST, linestyle=":", linewidth=1.5, label=f"chosen {confirm['chosen']:.3g}")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("learning rate")
        ax.set_ylabel(f"validation loss after {confirm['epochs']} epoch(s)")
        ax.set_title("confirming sweep (one vmapped program)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save(fig, path)
