"""`digit_sequences`: sequences of handwritten digit images labelled with the sum of their digits.

The data of the hybrid CNN + RNN experiment, like a short video: each example is `length` frames
(default 4) of 8x8 digits drawn at random from the `digits` set, and its label is the sum of the
digits (0 .. 9 * length). Train sequences are drawn only from the digits train split and test
sequences only from the digits test split, so no test image is ever seen in training. Generation
is seeded: everyone gets the same sequences.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from jaxdl.data.digits import digit_images
from jaxdl.data.sequences import SequenceBuilder, length_config

SEED = 20240602
SPLIT_SIZES = {"train": 10_000, "test": 2_000}


def draw_sequences(labels: np.ndarray, length: int, count: int, seed: list[int]) -> np.ndarray:
    """(count, length) indices into `labels`, drawn uniformly with replacement."""
    return np.random.default_rng(seed).integers(0, len(labels), size=(count, length))


class DigitSequences(SequenceBuilder):
    """frames (length, 8, 8, 1) uint8, label = sum of the digits (9 * length + 1 classes)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Frames drawn with replacement from the matching digits split."}
    BUILDER_CONFIGS = [length_config(n) for n in (4, 2, 8)]

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "frames": tfds.features.Tensor(shape=(self.length, 8, 8, 1), dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=9 * self.length + 1),
            }),
            supervised_keys=("frames", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Built from scikit-learn's bundled digits: nothing to download.
        return {split: self._generate_examples(split) for split in SPLIT_SIZES}

    def _generate_examples(self, split: str):
        images, labels, _ = digit_images(test=split == "test")
        seed = [SEED, self.length, list(SPLIT_SIZES).index(split)]
        for index, picks in enumerate(draw_sequences(labels, self.length, SPLIT_SIZES[split], seed)):
            yield index, {"frames": images[picks], "label": int(labels[picks].sum())}
