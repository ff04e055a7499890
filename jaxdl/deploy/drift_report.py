"""Has the data moved since training? New inputs against a finished run's drift reference.

    python -m jaxdl.drift --workdir RUN NEW_DATA... [--output DIR] [--debug]

NEW_DATA: .npy / .npz arrays, image files or folders of images, or a CSV table with the run's
columns, read as `jaxdl.predict` reads them (see `jaxdl.deploy.inputs`); at least 30 inputs.
Compares them and the model's predictions on them with the reference the run wrote at the end of
training (drift_reference.json; see `jaxdl.deploy.drift` for the measure and its thresholds).
Writes DIR/drift.json (the whole record) and DIR/drift.html, a page with its figures
(drift_features.png: the most shifted features, reference vs new; drift_predictions.png: the
class mix and the confidence, or the regression outputs; drift_channels.png: each channel's value
histogram; drift_map.png: the PSI of each block or step), DIR = RUN/drift by default, and prints
the verdict.

Exit codes: 0 no drift, 1 drift, 2 bad input (one `error:` line), 130 interrupted.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from matplotlib.figure import Figure

from jaxdl import paths as path_lib
from jaxdl.deploy.command import parse_flags, run_command
from jaxdl.deploy.drift import check_drift
from jaxdl.deploy.drift_features import channel_names, layout_from_record, read_reference
from jaxdl.deploy.inputs import read_inputs
from jaxdl.deploy.run_loader import load_run
from jaxdl.errors import InputError
from jaxdl.paths import check_storage
from jaxdl.report.figures import margins, save
from jaxdl.report.page import STYLE, esc, table

USAGE = "usage: python -m jaxdl.drift --workdir RUN NEW_DATA... [--output DIR] [--debug]"
REFERENCE, NEW = "#1f77b4", "#d62728"
SHOWN_FEATURES = 6


def short(value: float) -> str:
    return f"{value:.3g}"


def bin_labels(edges: list[float]) -> list[str]:
    """Labels of the bins (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    return [f"<={short(edges[0])}", *(f"<={short(b)}" for b in edges[1:]), f">{short(edges[-1])}"]


def fractions(counts: list[int]) -> np.ndarray:
    counts = np.asarray(counts, np.float64)
    return counts / max(counts.sum(), 1.0)


def paired_bars(ax, reference: list[int], new: list[int], labels: list[str], title: str) -> None:
    """Reference and new fractions side by side, one pair per bin or class."""
    positions = np.arange(len(reference))
    ax.bar(positions - 0.2, fractions(reference), 0.4, color=REFERENCE, label="reference")
    ax.bar(positions + 0.2, fractions(new), 0.4, color=NEW, label="new")
    ax.set_xticks(positions)
    ax.set_xticklabels(labels, rotation=60, fontsize=7, ha="right")
    ax.set_title(title, fontsize=9)
    ax.set_ylabel("fraction", fontsize=8)


def component_title(row: dict) -> str:
    return f"{row['name']}: PSI {row['psi']:.2f} (threshold {row['threshold']:.2f})"


def feature_figure(record: dict, path: str) -> str:
    rows = record["inputs"]["most_shifted"][:SHOWN_FEATURES]
    columns = min(3, len(rows))
    lines = -(-len(rows) // columns)
    fig = Figure(figsize=(4.2 * columns, 3.0 * lines))
    margins(fig, 0.6, 0.2, 0.9, 0.4, hspace=0.9, wspace=0.3)
    for i, row in enumerate(rows):
        ax = fig.add_subplot(lines, columns, i + 1)
        paired_bars(ax, row["reference"], row["new"], bin_labels(row["edges"]), component_title(row))
        if i == 0:
            ax.legend(fontsize=8)
    return save(fig, path)


def prediction_figure(record: dict, path: str) -> str:
    predictions = record["predictions"]
    parts = ([predictions["class_mix"], predictions["confidence"]] if "class_mix" in predictions
             else predictions["outputs"][:4])
    fig = Figure(figsize=(5.0 * len(parts), 3.4))
    margins(fig, 0.6, 0.2, 0.9, 0.4, wspace=0.3)
    for i, part in enumerate(parts):
        ax = fig.add_subplot(1, len(parts), i + 1)
        labels = [str(name) for name in part["class_names"]] if "class_names" in part else bin_labels(part["edges"])
        paired_bars(ax, part["reference"], part["new"], labels, component_title(part))
        if i == 0:
            ax.legend(fontsize=8)
    return save(fig, path)


def channel_figure(record: dict, path: str) -> str:
    channels = record["pooled"]
    fig = Figure(figsize=(5.0 * len(channels), 3.2))
    margins(fig, 0.6, 0.2, 0.9, 0.4, wspace=0.3)
    for i, channel in enumerate(channels):
        ax = fig.add_subplot(1, len(channels), i + 1)
        paired_bars(ax, channel["reference"], channel["new"], bin_labels(channel["edges"]),
                    f"values of {component_title(channel)}")
        if i == 0:
            ax.legend(fontsize=8)
    return save(fig, path)


def map_figure(record: dict, layout, path: str) -> str | None:
    """The PSI of each block feature on its grid: where in the image or sequence inputs moved."""
    if layout.kind != "blocks" or len(layout.grid) > 2:
        return None
    channels = layout.channels if len(layout.input_shape) > 1 else 1
    blocks = int(np.prod(layout.grid)) * channels
    values = np.asarray(record["inputs"]["psi"][:blocks]).reshape(*layout.grid, channels)
    if len(layout.grid) == 1:
        fig = Figure(figsize=(7, 3))
        margins(fig, 0.7, 0.2, 0.6, 0.4)
        ax = fig.add_subplot(1, 1, 1)
        for c in range(channels):
            ax.plot(values[:, c], label=f"channel {c}")
        ax.set_xlabel("block of steps")
        ax.set_ylabel("PSI")
        ax.set_title("PSI of each block", fontsize=9)
        return save(fig, path)
    fig = Figure(figsize=(3.4 * channels, 3.2))
    margins(fig, 0.3, 0.8, 0.3, 0.4, wspace=0.3)
    top = max(float(values.max()), 0.5)
    for c in range(channels):
        ax = fig.add_subplot(1, channels, c + 1)
        shown = ax.imshow(values[:, :, c], cmap="magma", vmin=0, vmax=top)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"PSI of each block: {channel_names(layout)[c]}", fontsize=9)
    fig.colorbar(shown, ax=fig.axes, fraction=0.04)
    return save(fig, path)


FIGURES = {
    "drift_features.png": "The most shifted input features: the fraction of inputs in each of the reference's bins.",
    "drift_predictions.png": "The predictions: the predicted class mix and the confidence (largest probability), "
                             "or the regression outputs, reference vs new.",
    "drift_channels.png": "Each channel's values over all positions, reference vs new.",
    "drift_map.png": "The PSI of each block feature, laid out as the input: where the inputs moved.",
}


def write_page(record: dict, figures: list[str], path: str) -> str:
    drifted = record["drifted"]
    reasons = "".join(f"<li>{esc(r)}</li>" for r in record["reasons"]) or "<li>no component shifted</li>"
    rows = [[r["name"], f"{r['psi']:.3f}", f"{r['ks']:.3f}", f"{r['threshold']:.3f}", "yes" if r["shifted"] else "",
             short(r.get("reference_mean", float("nan"))), short(r.get("new_mean", float("nan")))]
            for r in record["inputs"]["most_shifted"]]
    limits = record["thresholds"]
    images = "".join(f'<h3>{esc(name)}</h3><p class="note">{esc(FIGURES[name])}</p>'
                     f'<img src="{esc(name)}" alt="{esc(name)}">' for name in figures)
    reference = record["reference"]
    header = ["feature", "PSI", "KS", "threshold", "shifted", "reference mean", "new mean"]
    verdict = (f'<div class="card {"bad" if drifted else "good"}"><b>{esc(record["verdict"])}</b>'
               "<span>verdict</span></div>")
    body = f"""<h1>Drift check: {esc(record['verdict'])}</h1>
<div class="sub">{esc(record['workdir'])}: {record['examples']} new inputs against
{reference['train']['sampled']} training inputs and the predictions on {reference['held_out_examples']}
{esc(reference['predictions'])} examples</div>
<div class="cards">{verdict}
<div class="card neutral"><b>{record['score']:.2f}</b><span>score (above 1 is drift)</span></div>
<div class="card neutral"><b>{record['inputs']['features_shifted']} of {record['inputs']['features']}</b>
<span>input features shifted</span></div></div>
<h2>Why</h2><ul>{reasons}</ul>
<p class="note">A component (a feature, a channel's values, the class mix, the confidence) has shifted when its
population stability index exceeds the larger of {limits['psi_shifted']} and what sampling noise alone reaches with
probability {limits['alpha']} for these sample sizes.</p>
<h2>Most shifted features</h2>{table(header, rows)}
<h2>Figures</h2>{images}"""
    path_lib.as_path(path).write_text(f'<!doctype html><html><head><meta charset="utf-8"><title>Drift check</title>'
                                      f"<style>{STYLE}</style></head><body>{body}</body></html>\n")
    return path


def write_outputs(record: dict, reference: dict, output: str) -> list[str]:
    """drift.json, the figures and drift.html in `output`; returns the figure file names."""
    try:
        folder = path_lib.as_path(output)  # a local folder, or in a bucket workdir (gs://...)
        folder.mkdir(parents=True, exist_ok=True)
        folder.joinpath("drift.json").write_text(json.dumps(record, indent=1) + "\n")
    except OSError as error:
        raise InputError("--output", f"cannot write there ({error.strerror})", got=output) from error
    figures = [feature_figure(record, path_lib.join(output, "drift_features.png")),
               prediction_figure(record, path_lib.join(output, "drift_predictions.png"))]
    if "pooled" in record:
        figures.append(channel_figure(record, path_lib.join(output, "drift_channels.png")))
    figures.append(map_figure(record, layout_from_record(reference["layout"]), path_lib.join(output, "drift_map.png")))
    names = [path_lib.as_path(p).name for p in figures if p]
    write_page(record, names, path_lib.join(output, "drift.html"))
    return names


def drift_command(argv: list[str]) -> int:
    flags, paths = parse_flags(argv, valued=("workdir", "output"), switches=(), usage=USAGE)
    if not flags.get("workdir"):
        raise InputError("--workdir", "missing", expected="the workdir of a finished run")
    check_storage(flags["workdir"])
    predictor = load_run(flags["workdir"])
    reference = read_reference(predictor.workdir)
    inputs = read_inputs(paths, predictor.info)
    record = check_drift(predictor, inputs.x, reference=reference)
    output = flags.get("output") or os.path.join(predictor.workdir, "drift")
    write_outputs(record, reference, output)
    print(f"{record['verdict']}: score {record['score']:.2f} (above 1 is drift) over {record['examples']} inputs; "
          f"{record['inputs']['features_shifted']} of {record['inputs']['features']} input features shifted")
    for reason in record["reasons"]:
        print(f"  {reason}")
    print(f"wrote {os.path.join(output, 'drift.json')} and {os.path.join(output, 'drift.html')}")
    return 1 if record["drifted"] else 0


def main(argv: list[str] | None = None) -> int:
    return run_command(drift_command, argv, USAGE, __doc__)


if __name__ == "__main__":
    sys.exit(main())
