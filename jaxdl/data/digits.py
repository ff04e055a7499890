"""`digits`: the 8x8 handwritten digits that scikit-learn bundles, as a TFDS builder.

1,797 real images of 10 classes (Alpaydin & Kaynak, UCI), shipped inside scikit-learn, so
preparing it needs no download. Pixel intensities 0..16 are stored as uint8 0..255 so that every
image dataset in jaxdl is scaled the same way. The test split is a fixed, stratified 20% of the
images (seeded), so every run and every person sees the same test set.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

TEST_FRACTION = 0.2
SPLIT_SEED = 20240601


def stratified_test_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask (N,) that picks `fraction` of each class, chosen by a seeded permutation."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen = rng.permutation(members)[: int(round(fraction * len(members)))]
        mask[chosen] = True
    return mask


class Digits(tfds.core.GeneratorBasedBuilder):
    """8x8 grey handwritten digits: image (8, 8, 1) uint8, label 0..9."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.0.0": "scikit-learn's bundled copy of the UCI optical digits test set.",
                     "1.1.0": "Pixels stored as raw bytes (Encoding.BYTES), not int64 varints; the same values."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8,
                                              encoding=tfds.features.Encoding.BYTES),
                "label": tfds.features.ClassLabel(names=[str(d) for d in range(10)]),
            }),
            supervised_keys=("image", "label"),
            homepage="https://archive.ics.uci.edu/dataset/80",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download: scikit-learn ships the data.
        return {"train": self._generate_examples(False), "test": self._generate_examples(True)}

    def _generate_examples(self, test: bool):
        images, labels, indices = digit_images(test)
        for image, label, index in zip(images, labels, indices, strict=True):
            yield int(index), {"image": image, "label": int(label)}


def digit_images(test: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The images of one split: (uint8 (N, 8, 8, 1), int labels (N,), indices (N,) into scikit-learn's set)."""
    from sklearn.datasets import load_digits  # noqa: PLC0415 (only needed to prepare)

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    in_test = stratified_test_mask(digits.target, TEST_FRACTION, SPLIT_SEED)
    indices = np.flatnonzero(in_test == test)
    return images[indices], digits.target[indices], indices
