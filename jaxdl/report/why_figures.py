"""Attribution maps: where an input pushed the model's answer up (red) or down (blue).

Images get a heat map over the input (`heat_overlay`: the input in grey, ink dark on light, tinted
by the attribution of each pixel, summed over its channels); signals and sequences get a strip of
per-step attributions under their curve. Colours are scaled per example by its largest |attribution|.
`overlay_png` writes one overlay with Pillow alone (for `python -m jaxdl.explain`);
`attribution_figure` draws the report's figure with matplotlib (`jaxdl.report.figures`), imported
only when it is called.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from jaxdl import paths

UP, DOWN = np.array([0.84, 0.15, 0.16]), np.array([0.12, 0.47, 0.71])  # red: towards the answer; blue: against
STRENGTH = 0.85  # the opacity of the largest |attribution|


def per_position(attribution: np.ndarray, image: bool) -> np.ndarray:
    """(H, W[, C]) -> (H, W) summed over channels for images; (T[, F...]) -> (T,) summed per step otherwise."""
    a = np.asarray(attribution, np.float64)
    if image:
        return a.sum(axis=-1) if a.ndim == 3 else a
    return a.reshape(len(a), -1).sum(axis=1)


def signed_rgb(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(colour (..., 3), opacity (...)) of signed values scaled by their largest |value|."""
    values = np.asarray(values, np.float64)
    top = max(float(np.abs(values).max(initial=0.0)), 1e-12)
    colour = np.where(values[..., None] >= 0, UP, DOWN)
    return colour, STRENGTH * np.abs(values) / top


def heat_overlay(image: np.ndarray, attribution: np.ndarray) -> np.ndarray:
    """(H, W, 3) float RGB in [0, 1]: `image` (H, W[, C]) in [0, 1] (the model's input) shown light, tinted
    by the attribution (H, W[, C]) of each pixel."""
    image = np.clip(np.asarray(image, np.float64), 0, 1)
    if image.ndim == 2 or image.shape[-1] == 1:
        grey = image.reshape(image.shape[:2])
        base = np.repeat((1 - 0.55 * grey)[..., None], 3, axis=-1)  # ink dark on light, as the report shows digits
    else:
        base = 0.35 + 0.65 * image[..., :3]
    colour, opacity = signed_rgb(per_position(attribution, image=True))
    return base * (1 - opacity[..., None]) + colour * opacity[..., None]


def overlay_png(image: np.ndarray, attribution: np.ndarray, path: str, size: int = 160) -> str:
    """Writes `heat_overlay` as a PNG at least `size` pixels on its shorter side (nearest-neighbour)."""
    rgb = np.round(255 * heat_overlay(image, attribution)).astype(np.uint8)
    scale = max(1, -(-size // min(rgb.shape[:2])))
    picture = Image.fromarray(rgb).resize((rgb.shape[1] * scale, rgb.shape[0] * scale), Image.NEAREST)
    with paths.as_path(path).open("wb") as f:
        picture.save(f, format="PNG")
    return path


def title_of(row: dict) -> str:
    if isinstance(row.get("probability"), float):
        return f"{row['role']}: true {row['true']}\npred {row['predicted']} ({row['probability']:.2f})"
    predicted = row["predicted"][0] if isinstance(row["predicted"], list) else row["predicted"]
    true = row["true"][0] if isinstance(row["true"], list) else row["true"]
    return f"{row['role']}: true {true:.3g}\npred {predicted:.3g}"


def attribution_figure(inputs: np.ndarray, attributions: np.ndarray, rows: list[dict], path: str, *,
                       image: bool) -> str:
    """The report's figure: per explained example (`rows`: summary.json's `questions.why.examples`), the
    model input and its attributions, (n, *S) each; images side by side with their overlay, other
    inputs as a curve over a strip of per-step attributions."""
    from matplotlib.figure import Figure  # noqa: PLC0415 (matplotlib: only when a report is drawn)

    from jaxdl.report import figures  # noqa: PLC0415

    count, columns = len(rows), 4
    grid = max(1, -(-count // columns))
    fig = Figure(figsize=(3.2 * columns, (2.3 if image else 1.9) * grid))
    for k, row in enumerate(rows):
        left, bottom = (k % columns) / columns, 1 - (k // columns + 1) / grid
        width, height = 1 / columns, 1 / grid
        colour = "black" if row.get("true") == row.get("predicted") else "#d62728"
        if image:
            x = np.asarray(inputs[k], np.float64)
            for j, picture in enumerate((heat_overlay(x, np.zeros_like(x)), heat_overlay(x, attributions[k]))):
                ax = fig.add_axes((left + (0.04 + 0.47 * j) * width, bottom + 0.04 * height, 0.44 * width,
                                   0.62 * height))
                ax.imshow(picture, interpolation="nearest")
                ax.axis("off")
        else:
            signal = np.asarray(inputs[k], np.float64).reshape(len(inputs[k]), -1)
            curve = fig.add_axes((left + 0.06 * width, bottom + 0.3 * height, 0.88 * width, 0.36 * height))
            curve.plot(signal, linewidth=1.0)
            curve.set_xlim(-0.5, len(signal) - 0.5)
            curve.axis("off")
            strip = fig.add_axes((left + 0.06 * width, bottom + 0.12 * height, 0.88 * width, 0.14 * height))
            colour_map, opacity = signed_rgb(per_position(attributions[k], image=False))
            strip.imshow(((1 - opacity[:, None]) + colour_map * opacity[:, None])[None], aspect="auto",
                         interpolation="nearest", extent=(-0.5, len(signal) - 0.5, 0, 1))
            strip.set_yticks([])
            strip.tick_params(labelsize=7)
        fig.text(left + 0.5 * width, bottom + 0.7 * height, title_of(row), ha="center", va="bottom", fontsize=8,
                 color=colour)
    return figures.save(fig, path)
