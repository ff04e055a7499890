"""In-memory datasets, their metadata, and seeded splits.

A dataset is a dict of numpy arrays with the same first dimension: `x` (N, *input_shape) float32
inputs and `y` (N,) int32 class labels or (N, *target_shape) float32 regression targets.
"""

from __future__ import annotations

import dataclasses

import numpy as np

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
    """

    name: str
    task: str
    input_shape: tuple[int, ...]
    num_classes: int = 0
    target_shape: tuple[int, ...] = ()
    class_names: tuple[str, ...] = ()

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
    """Number of examples N of a dataset."""
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
