"""`adding`: the adding problem (Hochreiter & Schmidhuber, 1997), generated, as a TFDS builder.

An example is a sequence x of shape (length, 2): channel 0 holds random numbers drawn uniformly
from [0, 1), channel 1 is a marker that is 1.0 at exactly two steps (one in each half of the
sequence) and 0.0 elsewhere. The target is the sum of the two marked numbers: a regression
target in [0, 2). Always predicting the mean (1.0) scores a mean squared error of 1/6 ~ 0.167;
a model must carry the first marked number across at least length / 2 steps to do better.

`adding_per_step` is the same problem with a target at every step: the running sum of the marked
numbers so far, (length,) float32 (0 before the first marker, the first marked number until the
second, then their sum). A model must remember the first marked number from where it sees it to
the end, and add the second when it comes: sequence regression for the RNN's `per_step` readout.

Generation is deterministic: each split has its own seeded numpy generator, so every person who
prepares `adding/length_50` gets the same numbers.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from jaxdl.data.sequences import SequenceBuilder, length_config

SEED = 19970815  # the LSTM paper's publication month
SPLIT_SIZES = {"train": 10_000, "test": 2_000}


def adding_examples(length: int, count: int, seed: int | list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(x float32 (count, length, 2), target float32 (count,)) of the adding problem, from a numpy seed."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, size=(count, length)).astype(np.float32)
    half = length // 2
    first = rng.integers(0, half, size=count)
    second = rng.integers(half, length, size=count)
    markers = np.zeros((count, length), np.float32)
    rows = np.arange(count)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    target = values[rows, first] + values[rows, second]
    return np.stack([values, markers], axis=-1), target.astype(np.float32)


def running_sums(x: np.ndarray) -> np.ndarray:
    """(count, length, 2) adding inputs -> (count, length) float32: the sum of the marked numbers up to each step."""
    return np.cumsum(np.where(x[..., 1] > 0, x[..., 0], 0.0), axis=1, dtype=np.float32)


class Adding(SequenceBuilder):
    """The adding problem: x (length, 2) float32, target () float32; `length_<n>` configs."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Uniform [0, 1) values, one marker in each half."}
    BUILDER_CONFIGS = [length_config(n) for n in (50, 100, 200)]
    MIN_LENGTH = 2

    def target_shape(self) -> tuple[int, ...]:
        return ()

    def targets(self, x: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The targets of inputs `x` (count, length, 2), given the sums of their two marked numbers."""
        del x
        return target

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "x": tfds.features.Tensor(shape=(self.length, 2), dtype=np.float32),
                "target": tfds.features.Tensor(shape=self.target_shape(), dtype=np.float32),
            }),
            supervised_keys=("x", "target"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Generated: nothing to download.
        return {split: self._generate_examples(split) for split in SPLIT_SIZES}

    def _generate_examples(self, split: str):
        seed = [SEED, self.length, list(SPLIT_SIZES).index(split)]
        x, target = adding_examples(self.length, SPLIT_SIZES[split], seed)
        target = self.targets(x, target)
        for index in range(len(target)):
            yield index, {"x": x[index], "target": target[index]}


class AddingPerStep(Adding):
    """The adding problem with a target per step: x (length, 2) float32, target (length,) float32, the
    running sum of the marked numbers; `length_<n>` configs. The same inputs as `adding`."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "The adding problem's inputs; target: running sum of the marked numbers."}

    def target_shape(self) -> tuple[int, ...]:
        return (self.length,)

    def targets(self, x: np.ndarray, target: np.ndarray) -> np.ndarray:
        del target
        return running_sums(x)
