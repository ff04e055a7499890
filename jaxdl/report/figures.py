"""The report's PNG figures, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Importing this module imports matplotlib (~0.7 s), so callers import it only when they draw.
Each function writes one PNG to `path` and returns `path`.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from jaxdl import paths

TRAIN, VAL, BASELINE, BEST, STOP = "#1f77b4", "#ff7f0e", "#7f7f7f", "#2ca02c", "#d62728"
DPI = 100


def save(fig: Figure, path: str) -> str:
    FigureCanvasAgg(fig)
    paths.save_figure(fig, path, dpi=DPI)
    return path


def margins(fig: Figure, left: float, right: float, bottom: float, top: float, **grid) -> None:
    """Fixed margins in inches (room for labels) for the subplots created after this call.

    Fixed margins instead of a layout engine: constrained layout about doubles the time to draw.
    """
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        **grid)


def is_image(shape: tuple[int, ...]) -> bool:
    """True for inputs shaped (H, W) or (H, W, C) with 1, 3 or 4 channels."""
    return len(shape) == 2 or (len(shape) == 3 and shape[-1] in (1, 3, 4))


def show_image(ax, image: np.ndarray, vmin: float, vmax: float, aspect: str = "equal") -> None:
    """One input image: grey (ink dark on light) for one channel, colour for three or four."""
    image = np.asarray(image, np.float64)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        ax.imshow(image, cmap="gray_r", vmin=vmin, vmax=vmax, interpolation="nearest", aspect=aspect)
    else:
        ax.imshow(np.clip((image - vmin) / max(vmax - vmin, 1e-12), 0, 1), interpolation="nearest", aspect=aspect)
    ax.set_xticks([])
    ax.set_yticks([])


def image_column(images: np.ndarray) -> np.ndarray:
    """(n, H, W[, C]) images -> one (n*(H+1), W[, C]) image, a blank row under each example."""
    images = np.asarray(images, np.float64)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    blank = images.min() if images.ndim == 3 else images.max()  # light in grey (gray_r) and in colour
    padded = np.pad(images, [(0, 0), (0, 1)] + [(0, 0)] * (images.ndim - 2), constant_values=blank)
    return padded.reshape(-1, *padded.shape[2:])


def learning_curves(history: list[dict], path: str, *, task: str, best_epoch: int, stopped_epoch: int | None,
                    baseline_history: list[dict] | None = None) -> str:
    """Train and validation loss (left) and accuracy or MSE (right) per epoch.

    The best epoch (lowest validation loss) gets a green line, an early stop a red one; the
    baseline's validation curve, when given, is drawn dashed in grey.
    """
    metric = "accuracy" if task == "classification" else "mse"
    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(11, 4))
    margins(fig, 0.75, 0.15, 0.55, 0.15, wspace=0.22)
    for ax, name in zip(fig.subplots(1, 2), ("loss", metric), strict=True):
        for split, colour in (("train", TRAIN), ("val", VAL)):
            key = f"{split}_{name}"
            if history and key in history[0]:
                ax.plot(epochs, [r[key] for r in history], color=colour, label=f"{split} {name}", linewidth=1.5)
        if baseline_history and f"val_{name}" in baseline_history[0]:
            # Clipped to the network's epochs, so a long baseline run does not squeeze the curves that matter.
            shown = [r for r in baseline_history if r["epoch"] <= max(epochs, default=0)]
            ax.plot([r["epoch"] for r in shown], [r[f"val_{name}"] for r in shown], color=BASELINE, linestyle="--",
                    linewidth=1.2, label=f"baseline val {name} (ran {len(baseline_history)} epochs)")
        if best_epoch:
            ax.axvline(best_epoch, color=BEST, linestyle=":", linewidth=1.5, label=f"best epoch {best_epoch}")
        if stopped_epoch:
            ax.axvline(stopped_epoch, color=STOP, linestyle="--", linewidth=1.2, label=f"early stop {stopped_epoch}")
        values = [r[k] for r in history for k in (f"train_{name}", f"val_{name}") if k in r]
        if name != "accuracy" and values and min(values) > 0 and max(values) / min(values) > 20:
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save(fig, path)


def confusion_matrix(confusion: np.ndarray, class_names: tuple[str, ...], path: str) -> str:
    """Counts, coloured by the share of each true class (row); rows = true, columns = predicted."""
    confusion = np.asarray(confusion)
    k = len(confusion)
    side = min(max(4.0, 0.4 * k + 1.5), 14)
    names = class_names or tuple(str(i) for i in range(k))
    rotate = k <= 30 and max(map(len, names)) > 3
    fig = Figure(figsize=(side + 1, side + (0.07 * max(map(len, names)) if rotate else 0)))
    margins(fig, 0.75 + (0.07 * max(map(len, names)) if k <= 30 else 0), 0.1,
            0.6 + (0.07 * max(map(len, names)) if rotate else 0), 0.4)
    ax = fig.subplots()
    shares = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="share of the true class", shrink=0.8)
    if k <= 30:
        ax.set_xticks(range(k), names, rotation=90 if rotate else 0)
        ax.set_yticks(range(k), names)
        for t in range(k):
            for p in range(k):
                if confusion[t, p]:
                    ax.text(p, t, str(confusion[t, p]), ha="center", va="center", fontsize=8,
                            color="white" if shares[t, p] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"test confusion matrix ({int(confusion.sum())} examples)")
    return save(fig, path)


def worst_errors(images: np.ndarray, rows: list[dict], path: str, columns: int = 8) -> str:
    """The highest-loss examples as a grid, each titled with true, predicted and probability.

    Drawn as one mosaic image in one axes (a subplot per example would cost ~50 ms each).
    """
    images = np.asarray(images, np.float64)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    count, h, w = len(rows), images.shape[1], images.shape[2]
    grid_rows = max(1, -(-count // columns))
    band, gap = max(2.0, 0.45 * h), max(1, w // 8)  # text band above each tile, gap between tiles (pixels)
    cell_h, cell_w = int(np.ceil(band)) + h + gap, w + gap
    low, high = float(images.min()), float(images.max())
    scaled = (images - low) / max(high - low, 1e-12)
    blank = 0.0 if images.ndim == 3 else 1.0  # light in grey (gray_r) and in colour
    mosaic = np.full((grid_rows * cell_h, columns * cell_w, *images.shape[3:]), blank)
    for k in range(count):
        top, left = (k // columns) * cell_h + cell_h - h - gap, (k % columns) * cell_w
        mosaic[top: top + h, left: left + w] = scaled[k]
    fig = Figure(figsize=(1.5 * columns, 1.5 * columns * mosaic.shape[0] / mosaic.shape[1]))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(mosaic, cmap="gray_r" if images.ndim == 3 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    for k, row in enumerate(rows):
        ax.text((k % columns) * cell_w + w / 2 - 0.5, (k // columns) * cell_h + cell_h - h - gap - 0.7,
                f"true {row['true']}\npred {row['predicted']} ({row['probability']:.2f})", ha="center",
                va="bottom", fontsize=8, color="black" if row["true"] == row["predicted"] else STOP)
    return save(fig, path)


def as_signals(values: np.ndarray) -> np.ndarray:
    """(n, length) or (n, length, channels) -> float64 (n, length, channels)."""
    values = np.asarray(values, np.float64)
    return values[..., None] if values.ndim == 2 else values


def scaled(values: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    """`values` scaled to [0, 1] over `axis` (a constant becomes 0.5)."""
    low, high = values.min(axis=axis, keepdims=True), values.max(axis=axis, keepdims=True)
    return np.where(high > low, (values - low) / np.maximum(high - low, 1e-12), 0.5)


def draw_signal(ax, signal: np.ndarray, left: float, bottom: float, height: float) -> list:
    """One (length, channels) signal, already scaled to [0, 1], as a line per channel in the box that
    starts at (left, bottom) with one x unit per step; returns the Line2D objects."""
    steps = left + np.arange(signal.shape[0])
    colours = [TRAIN] if signal.shape[1] == 1 else [f"C{c % 10}" for c in range(signal.shape[1])]
    return [ax.plot(steps, bottom + height * signal[:, c], color=colours[c], linewidth=1.0)[0]
            for c in range(signal.shape[1])]


def worst_errors_signals(signals: np.ndarray, rows: list[dict], path: str, columns: int = 4) -> str:
    """The highest-loss examples of 1-D signals, (n, length) or (n, length, channels), as a grid of line
    plots, each titled with true, predicted and probability; each signal is scaled on its own.

    Drawn in one axes (a subplot per example would cost ~50 ms each).
    """
    signals = scaled(as_signals(signals), axis=(1, 2))
    count, length = len(rows), signals.shape[1]
    grid_rows = max(1, -(-count // columns))
    gap, band = 0.08 * length, 0.45  # between tiles (steps); title band above each tile (in tile heights)
    fig = Figure(figsize=(3.0 * columns, 1.6 * grid_rows))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.98))
    for k, row in enumerate(rows):
        left, top = (k % columns) * (length + gap), -(k // columns) * (1 + band)
        draw_signal(ax, signals[k], left, top - 1, 0.95)
        ax.text(left + length / 2, top + 0.02, f"true {row['true']}\npred {row['predicted']} "
                f"({row['probability']:.2f})", ha="center", va="bottom", fontsize=8,
                color="black" if row["true"] == row["predicted"] else STOP)
    ax.set_xlim(-gap / 2, columns * (length + gap) - gap / 2)
    ax.set_ylim(-grid_rows * (1 + band), band)
    ax.axis("off")
    return save(fig, path)


def most_active_channels(values: np.ndarray, channels: int) -> np.ndarray:
    """(n, length, c) -> (n, length, k): the `channels` channels of largest mean |value|, each scaled to
    [0, 1] on its own over every example and step."""
    order = np.argsort(-np.abs(values).mean(axis=(0, 1)), kind="stable")[:channels]
    return scaled(values[..., order].astype(np.float64), axis=(0, 1))


def signal_bands(ax, signals: np.ndarray, row_labels: list[str]) -> list:
    """Scaled signals (n, length, channels), one horizontal band per example, the first on top; returns the lines."""
    n = len(signals)
    lines = [line for i in range(n) for line in draw_signal(ax, signals[i], 0, n - 1 - i + 0.075, 0.85)]
    ax.set_xlim(-0.5, signals.shape[1] - 0.5)
    ax.set_ylim(0, n)
    ax.set_yticks([n - 1 - i + 0.5 for i in range(n)], row_labels, fontsize=8)
    for i in range(1, n):
        ax.axhline(i, color="#dddddd", linewidth=0.8)
    return lines


def feature_mosaic(maps: np.ndarray, channels: int = 8) -> np.ndarray:
    """Feature maps as one image: a row of tiles per example, each tile one channel scaled to [0, 1].

    maps: (n, H, W, C), or (n, F, H, W, C) for F frames per example. Shows the `channels` most
    active channels ((channels // F) per frame, at least 2, the same channels in every frame),
    frame by frame -> (n*(H+1), tiles*(W+1)), with NaN gaps between tiles.
    """
    if maps.ndim == 4:
        maps = maps[:, None]
    n, frames, h, w, c = maps.shape
    per_frame = channels if frames == 1 else max(2, channels // frames)
    order = np.argsort(-np.abs(maps).mean(axis=(0, 1, 2, 3)), kind="stable")[:per_frame]
    chosen = maps[..., order].astype(np.float64)
    low, high = chosen.min(axis=(0, 1, 2, 3)), chosen.max(axis=(0, 1, 2, 3))
    chosen = (chosen - low) / np.maximum(high - low, 1e-12)
    tiles = [(f, j) for f in range(frames) for j in range(len(order))]
    mosaic = np.full((n * (h + 1), len(tiles) * (w + 1)), np.nan)
    for i in range(n):
        for t, (f, j) in enumerate(tiles):
            mosaic[i * (h + 1): i * (h + 1) + h, t * (w + 1): t * (w + 1) + w] = chosen[i, f, :, :, j]
    return mosaic


def activations(name: str, values: np.ndarray, path: str, *, row_labels: list[str],
                inputs: np.ndarray | None = None, signal: bool = False) -> str:
    """One layer on a few examples (rows): the input beside per-unit activations or feature maps.

    values: (n, units) per-unit activations, (n, H, W, C) feature maps (the 8 most active
    channels, each scaled on its own), (n, frames, H, W, C) feature maps of every frame, or any
    other (n, ...) shape, shown flattened. `row_labels` has one label per example (n).
    With `signal` (the inputs are 1-D signals (n, length[, channels])), the inputs are drawn as
    line plots, and so are the values of a layer that keeps the time axis, (n, steps, C): the 4
    most active channels, each scaled on its own.
    """
    n = len(values)
    if len(row_labels) != n:
        raise ValueError(f"{name}: {n} rows of activations but {len(row_labels)} row labels")
    lines = signal and values.ndim == 3
    feature_maps = not lines and values.ndim in (4, 5)
    shown = feature_mosaic(values) if feature_maps else values.reshape(n, -1).astype(np.float64)
    with_inputs = inputs is not None and (signal or is_image(inputs.shape[1:]))
    # Feature maps keep roughly square tiles; unit heatmaps get a wide, short row per example.
    # Axes are placed in inches: [input column] [row labels] [activations] [colour bar].
    row_height = 1.1 if feature_maps else 0.6
    body_width = 1.1 * shown.shape[1] / (values.shape[-2] + 1) if feature_maps else 8.0
    if not with_inputs:
        input_width = 0.0
    else:
        input_width = 2.5 if signal else row_height * inputs.shape[2] / (inputs.shape[1] + 1)
    left = 0.15 + input_width + (1.45 if signal else 1.15)  # room for the row labels
    bar = 0.0 if feature_maps or lines else 0.9
    width, height = left + body_width + bar + 0.2, row_height * n + 1.0
    fig = Figure(figsize=(width, height))
    bottom, body_height = 0.6 / height, row_height * n / height
    if with_inputs:
        in_ax = fig.add_axes((0.15 / width, bottom, input_width / width, body_height))
        if signal:
            signal_bands(in_ax, scaled(as_signals(inputs), axis=(1, 2)), [""] * n)
            in_ax.set_xticks([])
            in_ax.set_yticks([])
        else:
            show_image(in_ax, image_column(inputs), float(np.min(inputs)), float(np.max(inputs)), aspect="auto")
        in_ax.set_title("input", fontsize=9)
    ax = fig.add_axes((left / width, bottom, body_width / width, body_height))
    if lines:
        chosen = most_active_channels(values, 4)
        signal_bands(ax, chosen, row_labels)
        which = "all" if chosen.shape[-1] == values.shape[-1] else f"the {chosen.shape[-1]} most active of"
        ax.set_xlabel(f"step (of {values.shape[1]}); {which} {values.shape[-1]} channels, each scaled on its own")
        ax.set_title(f"{name}  {tuple(values.shape[1:])}", fontsize=10)
        return save(fig, path)
    image = ax.imshow(shown, aspect="auto", cmap="viridis", interpolation="nearest")
    rows = shown.shape[0] // n
    ax.set_yticks([rows * i + (rows - 1) / 2 for i in range(n)], row_labels, fontsize=8)
    if feature_maps:
        ax.set_xticks([])
        tiles = shown.shape[1] // (values.shape[-2] + 1)
        frames = values.shape[1] if values.ndim == 5 else 1
        per_frame = tiles // frames
        shown_channels = "all" if per_frame == values.shape[-1] else f"the {per_frame} most active of"
        size = f"{values.shape[-3]}x{values.shape[-2]} each"
        where = f", frame by frame ({frames} frames)" if frames > 1 else ""
        ax.set_xlabel(f"{shown_channels} {values.shape[-1]} channels, {size}{where}")
    else:
        ax.set_xlabel(f"unit (of {shown.shape[1]})")
        fig.colorbar(image, cax=fig.add_axes(((left + body_width + 0.2) / width, bottom, 0.15 / width, body_height)))
    ax.set_title(f"{name}  {tuple(values.shape[1:])}", fontsize=10)
    return save(fig, path)


def predicted_vs_true(predicted: np.ndarray, true: np.ndarray, path: str) -> str:
    """Regression: each test output against its target, with the y = x line."""
    predicted, true = np.asarray(predicted).reshape(-1), np.asarray(true).reshape(-1)
    fig = Figure(figsize=(5, 5))
    margins(fig, 0.75, 0.15, 0.6, 0.4)
    ax = fig.subplots()
    ax.scatter(true, predicted, s=8, alpha=0.6, color=TRAIN)
    low, high = float(min(true.min(), predicted.min())), float(max(true.max(), predicted.max()))
    ax.plot([low, high], [low, high], color=STOP, linewidth=1, label="y = x")
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    ax.set_title("test: predicted against true")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, path)


def residuals(predicted: np.ndarray, true: np.ndarray, path: str) -> str:
    """Regression: the histogram of residuals (predicted - true) and residuals against predictions."""
    predicted, true = np.asarray(predicted).reshape(-1), np.asarray(true).reshape(-1)
    error = predicted - true
    fig = Figure(figsize=(10, 4))
    margins(fig, 0.75, 0.15, 0.6, 0.15, wspace=0.25)
    left, right = fig.subplots(1, 2)
    left.hist(error, bins=40, color=TRAIN)
    left.axvline(0, color=STOP, linewidth=1)
    left.set_xlabel("residual (predicted - true)")
    left.set_ylabel("examples")
    right.scatter(predicted, error, s=8, alpha=0.6, color=TRAIN)
    right.axhline(0, color=STOP, linewidth=1)
    right.set_xlabel("predicted")
    right.set_ylabel("residual")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return save(fig, path)
