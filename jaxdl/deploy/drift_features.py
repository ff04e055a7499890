"""What drift is measured on, and the reference a finished run keeps of it (drift_reference.json).

Inputs are summarised in the form the data source stores them (uint8 pixels, raw table values,
float32 sequences: see `jaxdl.deploy.run_loader`), as features, one number per example each:

  - a `csv:` table: every column of the prepared row (a numeric column's raw value, a missing
    one counted as the training mean, as training saw it; each one-hot category 0/1);
  - anything else, (N, *axes, channels) (a 1-D input is one channel): block means on a coarse
    grid (at most 8 x 8 blocks per channel for images, 256 steps for a 1-D input; an 8 x 8 image
    keeps every pixel), which see where the content is (a shift, a rotation), and per channel the
    example's mean (brightness), standard deviation (contrast) and roughness (mean absolute
    difference of neighbours: noise, blur), plus each channel's pooled value histogram over all
    positions (16 fixed bins for uint8 pixels, 5% quantiles of the training values otherwise).

Each feature is binned at its training quantiles (0, 10, ..., 100%), raised by RESOLUTION of its
scale: 12 bins, the outer two for values beyond the training range. Predictions are summarised
as the predicted class mix and the confidence (the largest probability, binned at its deciles),
or for regression each output (at most MAX_OUTPUTS) binned at its deciles.

The reference is built from a sample of the training examples (seeded, without replacement; at
most SAMPLE = 2,000, and at most SAMPLE_VALUES stored values: 425 images of 224x224x3) and from
the predictions on the validation split, so the confidence is that of unseen data. For a 32x32x3
image set it is about 38 KB of JSON, built in about 0.6 s.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from jaxdl import paths
from jaxdl.data import DataInfo, Splits, StreamSplit
from jaxdl.data import size as data_size
from jaxdl.data import table as table_lib
from jaxdl.errors import InputError
from jaxdl.evaluate.passes import predict_split
from jaxdl.report import run_schema
from jaxdl.train.state import TrainState

FILE = "drift_reference.json"
VERSION = 1
SAMPLE = 2000  # training examples summarised: quantiles from 2,000 values are good to ~1% of the mass
SAMPLE_VALUES = 64_000_000  # ... and at most this many stored values (425 images of 224x224x3): seconds, not minutes
SAMPLE_SEED = 0
QUANTILES = np.linspace(0.0, 1.0, 11)  # deciles plus the training minimum and maximum
POOLED_QUANTILES = np.linspace(0.0, 1.0, 21)
PIXEL_EDGES = np.arange(15, 255, 16, dtype=np.float64)  # 16 bins of 16 uint8 values: (-inf, 15], (15, 31], ...
MAX_BLOCKS = 512  # block-mean features per input at most (all channels)
MAX_POOLED_VALUES = 1_000_000  # values per channel the pooled quantiles are taken from
MAX_OUTPUTS = 16  # regression outputs summarised (more are averaged in groups)
CHUNK = 256  # examples summarised at a time
# Bin edges sit this fraction of a feature's scale (255 for pixels, else its training standard
# deviation) above the training quantiles: a change smaller than 5 of 255 pixel levels (rounding,
# compression, another camera's black level) leaves every value in its bin. Without it, a
# feature that is always 0 in training (a digit image's border) would flag pixels of 1.
RESOLUTION = 0.02


@dataclasses.dataclass(frozen=True)
class Layout:
    """How stored inputs (N, *input_shape) become features: `kind` "table" (every column) or
    "blocks" (block means over `grid` of the leading axes, channels last, plus per-channel
    statistics when `with_globals`); `pixels`: uint8 values (fixed pooled bins)."""

    kind: str
    input_shape: tuple[int, ...]
    grid: tuple[int, ...] = ()
    channels: int = 1
    with_globals: bool = False
    pixels: bool = False
    column_means: tuple = ()  # table: (input index, training mean) of the numeric columns


def layout_for(info: DataInfo) -> Layout:
    shape = tuple(info.input_shape)
    pixels = info.stored.get("dtype") == "uint8"
    if info.stored.get("kind") == "table":
        columns = info.preprocessing["columns"]
        means = tuple((c["inputs"][0], float(c["mean"])) for c in columns if c["kind"] == "numeric")
        return Layout("table", shape, column_means=means)
    axes, channels = (shape, 1) if len(shape) == 1 else (shape[:-1], shape[-1])
    cap = {1: 256, 2: 8}.get(len(axes), 4)
    grid = [min(n, cap) for n in axes]
    while np.prod(grid) * channels > MAX_BLOCKS and max(grid) > 1:
        grid[int(np.argmax(grid))] //= 2
    return Layout("blocks", shape, tuple(grid), channels, with_globals=int(np.prod(axes)) >= 8, pixels=pixels)


def layout_record(layout: Layout) -> dict:
    return {**dataclasses.asdict(layout), "column_means": [list(m) for m in layout.column_means]}


def layout_from_record(record: dict) -> Layout:
    return Layout(record["kind"], tuple(record["input_shape"]), tuple(record["grid"]), record["channels"],
                  record["with_globals"], record["pixels"], tuple(tuple(m) for m in record["column_means"]))


def channel_names(layout: Layout) -> list[str]:
    return ["gray"] if layout.pixels and layout.channels == 1 else (
        ["red", "green", "blue"] if layout.pixels and layout.channels == 3 else
        [f"channel {k}" for k in range(layout.channels)])


def feature_names(layout: Layout, info: DataInfo) -> list[str]:
    """One name per feature, in the order `features` gives them."""
    if layout.kind == "table":
        names = []
        for column in info.preprocessing["columns"]:
            names += ([column["name"]] if column["kind"] == "numeric"
                      else [f"{column['name']}={c}" for c in column["categories"]])
        return names
    axes = layout.input_shape if len(layout.input_shape) == 1 else layout.input_shape[:-1]
    spans = [block_bounds(n, g) for n, g in zip(axes, layout.grid, strict=True)]
    names = []
    for index in np.ndindex(*layout.grid):
        parts = [f"{b[i]}" if b[i + 1] - b[i] == 1 else f"{b[i]}:{b[i + 1]}" for b, i in zip(spans, index, strict=True)]
        for k in range(layout.channels if len(layout.input_shape) > 1 else 1):
            names.append(f"x[{', '.join(parts + ([str(k)] if len(layout.input_shape) > 1 else []))}]")
    if layout.with_globals:
        for statistic in ("mean", "std", "roughness"):
            names += [f"{statistic} of {c}" for c in channel_names(layout)]
    return names


def block_bounds(n: int, blocks: int) -> np.ndarray:
    """(blocks + 1,) boundaries splitting n positions into `blocks` nearly equal runs."""
    return np.round(np.linspace(0, n, blocks + 1)).astype(int)


def as_channels(x: np.ndarray, layout: Layout) -> np.ndarray:
    """(N, *axes, C) view of stored inputs (a 1-D input is one channel)."""
    x = np.asarray(x)
    return x[..., None] if len(layout.input_shape) == 1 else x


def features(x: np.ndarray, layout: Layout) -> np.ndarray:
    """Stored inputs (N, *input_shape) -> (N, D) float64 features (see the module docstring)."""
    if layout.kind == "table":
        x = np.array(x, np.float64)
        for index, mean in layout.column_means:
            column = x[:, int(index)]
            column[~np.isfinite(column)] = mean  # as training standardised a missing value: to the mean
        return x
    # In chunks of CHUNK examples, in float32: a sample of large images stays within memory.
    parts = [block_features(as_channels(x[i:i + CHUNK], layout).astype(np.float32), layout)
             for i in range(0, len(x), CHUNK)]
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def block_features(values: np.ndarray, layout: Layout) -> np.ndarray:
    """(n, *axes, C) float32 -> (n, D) float64: block means, then per channel mean, std, roughness."""
    n, axes = len(values), values.shape[1:-1]
    blocks = values
    for axis, (length, grid) in enumerate(zip(axes, layout.grid, strict=True), start=1):
        bounds = block_bounds(length, grid)
        sums = np.add.reduceat(blocks, bounds[:-1], axis=axis)
        shape = [1] * blocks.ndim
        shape[axis] = grid
        blocks = sums / np.diff(bounds).reshape(shape).astype(np.float32)
    parts = [blocks.reshape(n, -1)]
    if layout.with_globals:
        flat = values.reshape(n, -1, values.shape[-1])
        rough = [np.abs(np.diff(values, axis=a)).reshape(n, -1, values.shape[-1]).mean(axis=1)
                 for a in range(1, values.ndim - 1) if values.shape[a] > 1]
        parts += [flat.mean(axis=1), flat.std(axis=1), np.mean(rough, axis=0)]
    return np.concatenate(parts, axis=1).astype(np.float64)


def quantile_edges(values: np.ndarray, quantiles: np.ndarray = QUANTILES, tolerance: float = 0.0) -> list[float]:
    """Distinct quantiles of `values` (M,), each raised by `tolerance`: bins are (-inf, e0], (e0, e1],
    ..., (e_last, inf)."""
    values = values[np.isfinite(values)]
    return [float(v) + tolerance for v in np.unique(np.quantile(values, quantiles))] if values.size else [0.0]


def bin_index(values: np.ndarray, edges: list[np.ndarray]) -> np.ndarray:
    """(N, D) values, D edge lists -> (N, D) int16 bin indices (bin j: edges[j-1] < v <= edges[j])."""
    out = np.empty(values.shape, np.int16)
    for d, e in enumerate(edges):
        out[:, d] = np.searchsorted(e, values[:, d], side="left")
    return out


def counts_of(bins: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """(N, D) bin indices -> D arrays of counts, feature d with sizes[d] bins."""
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    total = np.bincount((bins.astype(np.int64) + offsets[:-1][None]).ravel(), minlength=int(offsets[-1]))
    return [total[offsets[d]:offsets[d + 1]] for d in range(len(sizes))]


def pooled_counts(x: np.ndarray, layout: Layout, edges: list[list[float]]) -> np.ndarray:
    """(N, C, B) per-example counts of each channel's values in the pooled bins (B = len(edges[c]) + 1)."""
    values = as_channels(x, layout)
    n, channels = len(values), values.shape[-1]
    flat = values.reshape(n, -1, channels)
    size = max(len(e) for e in edges) + 1
    out = np.zeros((n, channels, size), np.int32)
    rows = (size * np.arange(n))[:, None]
    for c in range(channels):
        if layout.pixels and edges[c] == PIXEL_EDGES.tolist() and flat.dtype == np.uint8:
            index = flat[:, :, c] // 16  # the bin of PIXEL_EDGES, without a search
        else:
            index = np.searchsorted(np.asarray(edges[c]), flat[:, :, c], side="left")
        out[:, c] = np.bincount((index + rows).ravel(), minlength=n * size).reshape(n, size)
    return out


def pooled_edges(x: np.ndarray, layout: Layout) -> list[list[float]]:
    if layout.pixels:
        return [PIXEL_EDGES.tolist()] * layout.channels
    values = as_channels(x, layout)
    flat = values.reshape(-1, values.shape[-1])
    step = max(1, len(flat) // MAX_POOLED_VALUES)
    return [quantile_edges(flat[::step, c], POOLED_QUANTILES) for c in range(values.shape[-1])]


def output_columns(outputs: np.ndarray) -> np.ndarray:
    """Regression outputs (N, ...) -> (N, <= MAX_OUTPUTS): each output, or means of groups of them."""
    flat = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
    if flat.shape[1] <= MAX_OUTPUTS:
        return flat
    bounds = block_bounds(flat.shape[1], MAX_OUTPUTS)
    return np.add.reduceat(flat, bounds[:-1], axis=1) / np.diff(bounds)[None]


def histogram(values: np.ndarray, quantiles: np.ndarray = QUANTILES) -> dict:
    """{"edges", "counts"} of (N,) values binned at their own quantiles."""
    edges = quantile_edges(values, quantiles)
    counts = counts_of(bin_index(values[:, None], [np.asarray(edges)]), [len(edges) + 1])[0]
    return {"edges": edges, "counts": counts.tolist()}


def prediction_reference(outputs: np.ndarray, info: DataInfo) -> dict:
    """The reference of predictions on held-out data: outputs are probabilities (N, K) or regression outputs."""
    if info.task == "classification":
        probabilities = np.asarray(outputs, np.float64)
        confidence = probabilities.max(axis=1)
        return {"task": "classification", "examples": len(outputs),
                "class_counts": np.bincount(probabilities.argmax(axis=1), minlength=info.num_classes).tolist(),
                "confidence": {**histogram(confidence), "mean": float(confidence.mean())}}
    columns = output_columns(outputs)
    return {"task": "regression", "examples": len(outputs),
            "outputs": [{"name": f"output {j}", **histogram(columns[:, j]), "mean": float(columns[:, j].mean())}
                        for j in range(columns.shape[1])]}


def build_reference(train_x: np.ndarray, held_out_outputs: np.ndarray, info: DataInfo, *,
                    train_examples: int | None = None, held_out: str = "validation") -> dict:
    """drift_reference.json's record.

    Args:
      train_x: training inputs (M, *input_shape) in the stored form (a sample is enough: SAMPLE).
      held_out_outputs: the model's probabilities (N, K), or regression outputs (N, ...), on held-out data.
      info: the run's DataInfo.
      train_examples: the size of the whole training split (recorded), default len(train_x).
      held_out: which split the outputs are of (recorded).
    """
    layout = layout_for(info)
    values = features(train_x, layout)
    scales = np.full(values.shape[1], 255.0) if layout.pixels else values.std(axis=0)
    edges = [quantile_edges(values[:, d], tolerance=RESOLUTION * float(scales[d])) for d in range(values.shape[1])]
    counts = counts_of(bin_index(values, [np.asarray(e) for e in edges]), [len(e) + 1 for e in edges])
    record = {
        "version": VERSION, "task": info.task, "input_shape": list(info.input_shape), "stored": info.stored,
        "class_names": list(info.class_names), "layout": layout_record(layout),
        "train": {"examples": train_examples or len(train_x), "sampled": len(train_x), "seed": SAMPLE_SEED},
        "features": {"names": feature_names(layout, info), "edges": edges, "counts": [c.tolist() for c in counts],
                     "mean": [float(v) for v in values.mean(axis=0)]},
        "predictions": {"split": held_out, **prediction_reference(held_out_outputs, info)},
    }
    if layout.kind == "blocks":
        pooled = pooled_edges(train_x, layout)
        totals = pooled_counts(train_x, layout, pooled).sum(axis=0)
        record["pooled"] = {"channels": channel_names(layout), "edges": pooled,
                            "counts": [totals[c, :len(e) + 1].tolist() for c, e in enumerate(pooled)]}
    return record


def reference_of_run(splits: Splits, state: TrainState, *, mesh=None, batch_size: int = 1024) -> dict:
    """The reference of a trained model (`state`, one model, not a stack): SAMPLE of its training
    inputs, and its outputs on the validation split (probabilities, as `jaxdl.load_run` gives them)."""
    info = splits.info
    per_example = int(np.prod(info.input_shape))
    rows = sample_rows(data_size(splits.train), min(SAMPLE, max(SAMPLE_VALUES // per_example, 1)))
    if isinstance(splits.train, StreamSplit):  # streamed: read from its files, already in the stored form
        train_x = splits.train.read(rows)["x"]
    else:
        train_x = stored_form(splits.train["x"][rows], info)
    held_out, n = splits.validation, data_size(splits.validation)
    test_size = data_size(splits.test)
    if n < test_size:  # padded to the test split's shapes, the pass reuses the test pass's compiled program
        held_out = {key: np.concatenate([value, np.zeros((test_size - n, *value.shape[1:]), value.dtype)])
                    for key, value in held_out.items()}
    outputs = predict_split(state, held_out, num_classes=info.num_classes, mesh=mesh,
                            batch_size=batch_size).outputs[:n]
    if info.task == "classification":  # logits -> probabilities (numpy: eager jax would compile each op)
        logits = np.asarray(outputs, np.float64)
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
        outputs = exp / exp.sum(axis=-1, keepdims=True)
    return build_reference(train_x, outputs, info, train_examples=data_size(splits.train))


def stored_form(x: np.ndarray, info: DataInfo) -> np.ndarray:
    """Loaded inputs (what `jaxdl.data.load` gives, the model's inputs) back in the stored form:
    uint8 pixels for images; raw values for a table's numeric columns (x * std + mean: a missing
    value, standardised to 0, comes back as the training mean)."""
    if info.stored.get("dtype") == "uint8":
        return np.clip(np.rint(np.asarray(x) * 255.0), 0, 255).astype(np.uint8)
    if info.stored.get("kind") == "table":
        raw = np.array(x, np.float32)
        for column in info.preprocessing["columns"]:
            if column["kind"] == "numeric":
                start = column["inputs"][0]
                raw[:, start] = raw[:, start] / table_lib.inverse_std(column["std"]) + np.float32(column["mean"])
        return raw
    return np.asarray(x)


def sample_rows(n: int, limit: int = SAMPLE, seed: int = SAMPLE_SEED) -> np.ndarray:
    """Sorted indices of at most `limit` of n rows, seeded."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def write_reference(workdir: str, record: dict) -> str:
    path = paths.join(workdir, FILE)
    paths.write_text_atomic(path, json.dumps(record, separators=(",", ":")) + "\n")
    return path


def read_reference(workdir: str) -> dict:
    """The drift reference of the finished run in `workdir`; InputError when it has none."""
    path = paths.join(workdir, FILE)
    if not paths.as_path(path).exists():
        raise InputError("--workdir", f"the run has no {FILE}", got=workdir,
                         expected="a run trained by this version of jaxdl",
                         hint="train the run again (the pipeline writes it at the end of training)")
    return run_schema.read_workdir_json(workdir, FILE, run_schema.drift_reference(VERSION))
