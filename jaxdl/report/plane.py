"""A classifier of 2-D points seen over the plane: decision boundaries and the playground's neuron tiles.

The model is evaluated on a square grid of points; each picture is an image of those values, in
the playground's colours (orange for the negative class, blue for the positive one). matplotlib
is imported only when a picture is drawn, and only its object API is used (`Figure` rendered by
Agg), so the calling program's pyplot backend is left alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import paths
from jaxdl.data import Splits
from jaxdl.models.features import DISPLAY_NAMES, compute_features
from jaxdl.train.state import TrainState, apply_model

NEGATIVE, NEUTRAL, POSITIVE = "#f59322", "#e8eaeb", "#0877bd"  # the playground's colours
MIN_EXTENT = 6.0  # the playground shows [-6, 6] on both axes


def plane_extent(splits: Splits) -> float:
    """Half-width of the square to draw: the playground's 6, or more if points lie further out."""
    reach = max(float(np.max(np.abs(arrays["x"]))) for arrays in (splits.train, splits.validation, splits.test))
    return max(MIN_EXTENT, math.ceil(reach * 1.05))


def plane_grid(extent: float, resolution: int) -> np.ndarray:
    """(resolution², 2) float32 points covering [-extent, extent]², row by row from the top (x2 high)."""
    axis = np.linspace(-extent, extent, resolution, dtype=np.float32)
    x1, x2 = np.meshgrid(axis, axis[::-1])
    return np.stack([x1.ravel(), x2.ravel()], axis=1)


def positive_probability(state: TrainState, points: jax.Array) -> jax.Array:
    """(n, 2) points -> (n,) probability of the positive class (class 1)."""
    logits, _ = apply_model(state, state.params, points, train=False)
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)[:, 1]


def hidden_outputs(state: TrainState, points: jax.Array) -> dict[str, jax.Array]:
    """(n, 2) points -> {"hidden_<i>": (n, width) outputs of its units}, from the sown `intermediates`
    (`hidden_<i>_out`, see `jaxdl.models.mlp`), in layer order."""
    _, variables = state.apply_fn(state.variables(), points, train=False, mutable=["intermediates"])
    layers = {}
    for path, value in jax.tree_util.tree_flatten_with_path(variables["intermediates"])[0]:
        name = next(str(key.key) for key in reversed(path) if isinstance(key, jax.tree_util.DictKey))
        layers[name.removesuffix("_out")] = value
    return dict(sorted(layers.items(), key=lambda item: int(item[0].rsplit("_", 1)[-1])))


probability_compiled = jax.jit(positive_probability)
stacked_probability_compiled = jax.jit(jax.vmap(positive_probability, in_axes=(0, None)))
hidden_outputs_compiled = jax.jit(hidden_outputs)


def probability_images(states: TrainState, extent: float, resolution: int, *, stacked: bool) -> np.ndarray:
    """P(positive) over the grid: (resolution, resolution), or (M, resolution, resolution) for a stack."""
    points = jnp.asarray(plane_grid(extent, resolution))
    run = stacked_probability_compiled if stacked else probability_compiled
    return np.asarray(run(states, points)).reshape(*([-1] if stacked else []), resolution, resolution)


def colormaps():
    """(class colours for probabilities in [0, 1], diverging colours for unit outputs in [-1, 1])."""
    from matplotlib.colors import LinearSegmentedColormap  # noqa: PLC0415

    colors = [NEGATIVE, NEUTRAL, POSITIVE]
    return LinearSegmentedColormap.from_list("playground", colors), LinearSegmentedColormap.from_list("units", colors)


def draw_boundary(ax, probability: np.ndarray, splits: Splits | None, extent: float, title: str = "") -> None:
    """One panel: P(positive) as colour, the 0.5 contour, train points (white edge), test points (dark edge)."""
    classes, _ = colormaps()
    box = (-extent, extent, -extent, extent)
    ax.imshow(probability, extent=box, cmap=classes, vmin=0.0, vmax=1.0, interpolation="bilinear")
    axis = np.linspace(-extent, extent, probability.shape[0])
    ax.contour(axis, axis[::-1], probability, levels=[0.5], colors="#333333", linewidths=0.8)
    if splits is not None:
        for arrays, edge in ((splits.train, "white"), (splits.test, "#222222")):
            colors = np.where(arrays["y"] == 1, POSITIVE, NEGATIVE)
            ax.scatter(arrays["x"][:, 0], arrays["x"][:, 1], c=colors, s=9, edgecolors=edge, linewidths=0.5)
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize="small")


def plot_boundary(state: TrainState, splits: Splits, path: str, *, resolution: int = 120, title: str = "") -> str:
    """The decision boundary with train (white edge) and test (dark edge) points, as a PNG."""
    from matplotlib.figure import Figure  # noqa: PLC0415

    extent = plane_extent(splits)
    figure = Figure(figsize=(5.2, 5.2), layout="constrained")
    draw_boundary(figure.subplots(), probability_images(state, extent, resolution, stacked=False), splits, extent,
                  title)
    paths.save_figure(figure, path, dpi=110)
    return path


def plot_neurons(state: TrainState, features: Sequence[str], path: str, *, extent: float = MIN_EXTENT,
                 resolution: int = 60) -> str:
    """The playground's neuron tiles as a PNG: one row per layer (the input features, then each
    hidden layer), one tile per unit showing its output over the plane (scaled to its largest |value|)."""
    from matplotlib.figure import Figure  # noqa: PLC0415

    points = jnp.asarray(plane_grid(extent, resolution))
    rows = [("features", compute_features(points, features), [DISPLAY_NAMES[name] for name in features])]
    for name, outputs in hidden_outputs_compiled(state, points).items():
        rows.append((name, outputs, [f"unit {unit}" for unit in range(outputs.shape[-1])]))
    columns = max(outputs.shape[-1] for _, outputs, _ in rows)
    figure = Figure(figsize=(1.3 * columns + 0.8, 1.4 * len(rows)), layout="constrained")
    grid = figure.subplots(len(rows), columns, squeeze=False)
    _, units = colormaps()
    for row, (name, outputs, titles) in zip(grid, rows, strict=True):
        values = np.asarray(outputs).reshape(resolution, resolution, -1)
        row[0].set_ylabel(name, fontsize="small")
        for column, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            if column >= values.shape[-1]:
                ax.set_axis_off()
                continue
            tile = values[..., column]
            scale = max(float(np.max(np.abs(tile))), 1e-6)
            ax.imshow(tile, cmap=units, vmin=-scale, vmax=scale, extent=(-extent, extent, -extent, extent))
            ax.set_title(titles[column], fontsize="x-small")
    paths.save_figure(figure, path, dpi=100)
    return path


def plot_members(states: TrainState, titles: Sequence[str], splits: Splits, path: str, *,
                 resolution: int = 80) -> str:
    """A grid of the decision boundaries of a stack of models (one panel per member), as a PNG."""
    from matplotlib.figure import Figure  # noqa: PLC0415

    extent = plane_extent(splits)
    images = probability_images(states, extent, resolution, stacked=True)
    columns = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    figure = Figure(figsize=(2.8 * columns, 2.9 * rows), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, image, title in zip(grid, images, titles, strict=False):
        draw_boundary(ax, image, splits, extent, title)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in grid[len(images):]:
        ax.set_axis_off()
    paths.save_figure(figure, path, dpi=90)
    return path
