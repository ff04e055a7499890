"""`digit_sequences`: sequences of handwritten digit images labelled with the sum of their digits.

The data of the hybrid CNN + RNN experiment, like a short video: each example is `length` frames
(default 4) of 8x8 digits drawn at random from the `digits` set, and its label is the sum of the
digits (0 .. 9 * length). Each split draws its frames from its own images: test sequences from the
digits test split, train and validation sequences from disjoint parts of the digits train split
(90% / 10%, stratified). So validation measures what test measures, sums of digit images never
seen in training, rather than new combinations of seen images. Generation is seeded: everyone
gets the same sequences.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from jaxdl.data.digits import digit_images, stratified_test_mask
from jaxdl.data.sequences import SequenceBuilder, length_config

SEED = 20240602
SPLIT_SIZES = {"train": 10_000, "validation": 1_000, "test": 2_000}
VALIDATION_FRACTION = 0.1  # of the digits train images, held out for validation sequences


def split_images(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 8, 8, 1) uint8, labels (N,)) that the sequences of `split` draw their frames from."""
    images, labels, _ = digit_images(test=split == "test")
    if split == "test":
        return images, labels
    held_out = stratified_test_mask(labels, VALIDATION_FRACTION, SEED)
    keep = held_out if split == "validation" else ~held_out
    return images[keep], labels[keep]


def draw_sequences(labels: np.ndarray, length: int, count: int, seed: list[int]) -> np.ndarray:
    """(count, length) indices into `labels`, drawn uniformly with replacement."""
    return np.random.default_rng(seed).integers(0, len(labels), size=(count, length))


class DigitSequences(SequenceBuilder):
    """frames (length, 8, 8, 1) uint8, label = sum of the digits (9 * length + 1 classes)."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.0.0": "Frames drawn with replacement from disjoint image pools per split.",
                     "1.1.0": "Pixels stored as raw bytes (Encoding.BYTES), not int64 varints; the same values."}
    BUILDER_CONFIGS = [length_config(n) for n in (4, 2, 8)]

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "frames": tfds.features.Tensor(shape=(self.length, 8, 8, 1), dtype=np.uint8,
                                               encoding=tfds.features.Encoding.BYTES),
                "label": tfds.features.ClassLabel(num_classes=9 * self.length + 1),
            }),
            supervised_keys=("frames", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Built from scikit-learn's bundled digits: nothing to download.
        return {split: self._generate_examples(split) for split in SPLIT_SIZES}

    def _generate_examples(self, split: str):
        images, labels = split_images(split)
        seed = [SEED, self.length, list(SPLIT_SIZES).index(split)]
        for index, picks in enumerate(draw_sequences(labels, self.length, SPLIT_SIZES[split], seed)):
            yield index, {"frames": images[picks], "label": int(labels[picks].sum())}
