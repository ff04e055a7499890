"""In-memory datasets, their metadata, and seeded splits.

A dataset is a dict of numpy arrays with the same first dimension: `x` (N, *input_shape) float32
inputs and `y` (N,) int32 class labels or (N, *target_shape) float32 regression targets.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxdl.errors import InputError

Arrays = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What a model and a report need to know about a dataset.

    Attributes:
      name: the dataset name.
      task: "classification" or "regression".
      input_shape: shape of one input, e.g. (8, 8, 1).
      num_classes: number of classes (classification), 0 for regression.
      target_shape: shape of one regression target, () for class labels.
      class_names: a name per class (classification).
      preprocessing: how the loader turned the source's values into inputs, JSON-able (e.g. a
        table's per-column training mean and std and its one-hot vocabularies); {} when the values
        are used as they are. Not part of the hash (a dict is not hashable).
      stored: how the source stores one input, JSON-able, for prediction on new data: "kind"
        ("image": uint8 scaled by 1/255 on loading, "folder": images of `folder:PATH` with their
        "image_size" (height, width) and Pillow "mode" ("L" or "RGB"), "table": a `csv:PATH` row,
        "text": byte tokens, "array": used as stored) and "dtype" (e.g. "uint8", "float32");
        {} (data an experiment built itself): float32 inputs used as they are. Not hashed.
    """

    name: str
    task: str
    input_shape: tuple[int, ...]
    num_classes: int = 0
    target_shape: tuple[int, ...] = ()
    class_names: tuple[str, ...] = ()
    preprocessing: dict = dataclasses.field(default_factory=dict, hash=False)
    stored: dict = dataclasses.field(default_factory=dict, hash=False)

    @property
    def num_outputs(self) -> int:
        """Width of the model's output layer."""
        return self.num_classes if self.task == "classification" else int(np.prod(self.target_shape or (1,)))


@dataclasses.dataclass(frozen=True)
class Splits:
    """Train, validation and test sets plus their metadata. Test is for the final evaluation only."""

    train: Arrays
    validation: Arrays
    test: Arrays
    info: DataInfo

    def sizes(self) -> dict[str, int]:
        return {name: size(getattr(self, name)) for name in ("train", "validation", "test")}


def size(arrays: Arrays) -> int:
    """Number of examples N of a dataset (arrays, or a streamed split: `jaxdl.data.stream.StreamSplit`)."""
    if not isinstance(arrays, dict):
        return len(arrays)
    return len(next(iter(arrays.values())))


def take(arrays: Arrays, index: np.ndarray) -> Arrays:
    """The examples at `index`, every array alike."""
    return {key: value[index] for key, value in arrays.items()}


def carve(arrays: Arrays, fraction: float, seed: int) -> tuple[Arrays, Arrays]:
    """Splits off a seeded random `fraction` of the examples: returns (rest, carved).

    The carved part is stratified by class when `y` holds integer labels, so a small validation
    set still sees every class.
    """
    labels = arrays["y"]
    rng = np.random.default_rng(seed)
    if np.issubdtype(labels.dtype, np.integer) and labels.ndim == 1:
        carved = []
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            carved.append(members[: max(1, int(round(fraction * len(members))))] if len(members) > 1 else members[:0])
        carved = np.sort(np.concatenate(carved))
    else:
        carved = np.sort(rng.permutation(size(arrays))[: int(round(fraction * size(arrays)))])
    rest = np.setdiff1d(np.arange(size(arrays)), carved)
    return take(arrays, rest), take(arrays, carved)


def check_splits(splits: Splits) -> None:
    """Host-side checks of every split against `splits.info`; InputError naming the first problem.

    Each split must be non-empty, with `x` (N, *input_shape) finite numbers and `y` (N,) labels in
    0..num_classes-1 (classification) or (N, *target_shape) finite targets (regression).
    """
    for name in ("train", "validation", "test"):
        check_arrays(getattr(splits, name), splits.info, name)


def check_arrays(arrays: Arrays, info: DataInfo, split: str) -> None:
    where = f"data {info.name!r}, {split} split"
    x, y = arrays["x"], arrays["y"]
    if len(y) == 0:
        raise InputError(where, "split is empty", got="0 examples", expected="at least one example")
    if len(x) != len(y):
        raise InputError(where, "inputs and labels differ in number", got=f"{len(x)} and {len(y)}",
                         expected="one label per input")
    if tuple(x.shape[1:]) != tuple(info.input_shape):
        raise InputError(where, "input shape differs from the dataset's", got=tuple(x.shape[1:]),
                         expected=tuple(info.input_shape))
    if 0 in x.shape[1:]:
        raise InputError(where, "inputs hold no values", got=f"shape {x.shape}",
                         expected="at least one value per input")
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(where, "inputs are not numbers", got=str(x.dtype), expected="a numeric dtype")
    bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
    if bad.size:
        raise InputError(where, "input is NaN or infinite", got=f"example {int(bad[0])}", expected="finite inputs")
    if info.task == "classification":
        if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1:
            raise InputError(where, "class labels must be integers of shape (N,)", got=f"{y.dtype} {y.shape}",
                             expected=f"int (N,) in 0..{info.num_classes - 1}")
        out_of_range = np.flatnonzero((y < 0) | (y >= info.num_classes))
        if out_of_range.size:
            first = int(out_of_range[0])
            raise InputError(where, f"label of example {first} out of range", got=int(y[first]),
                             expected=f"0..{info.num_classes - 1}")
    elif not np.all(np.isfinite(y)):
        raise InputError(where, "target is NaN or infinite", expected="finite targets")
