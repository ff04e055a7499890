"""`signals`: 1-D signals of four shapes to tell apart, generated, as a TFDS builder.

An example is a signal (length,) float32 (128 steps by default) of one of four classes:

  sine         A sin(2 pi f t + phase)
  square       A sign(sin(2 pi f t + phase))
  sawtooth     A (2 frac(f t + phase / 2 pi) - 1)
  noise_burst  Gaussian noise of scale A inside one window of 12 to 40 steps, zero elsewhere

with a random frequency f of 2 to 8 cycles per signal, a random phase, an amplitude A in
[0.5, 1.5], a random offset in [-0.3, 0.3], and Gaussian noise of standard deviation 0.1 to 0.4
added to every step. Telling the periodic shapes apart needs their waveform (sharp edges or a
ramp) rather than their level or frequency: a 1-D CNN reads the local shape, a recurrent network
the sequence.

Generation is deterministic: each split has its own seeded numpy generator, so every person who
prepares `signals/length_128` gets the same signals, and the test split is fixed. Classes are
balanced (the labels cycle through the four classes; examples are not sorted by class).
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from jaxdl.data.sequences import SequenceBuilder, length_config

CLASSES = ("sine", "square", "sawtooth", "noise_burst")
SEED = 20261129
SPLIT_SIZES = {"train": 2_000, "test": 800}


def signal_examples(length: int, count: int, seed: int | list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(signals float32 (count, length), labels int64 (count,)) from a numpy seed; classes balanced."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(CLASSES)
    rng.shuffle(labels)
    t = np.arange(length) / length
    frequency = rng.uniform(2.0, 8.0, size=(count, 1))
    phase = rng.uniform(0.0, 2 * np.pi, size=(count, 1))
    amplitude = rng.uniform(0.5, 1.5, size=(count, 1))
    offset = rng.uniform(-0.3, 0.3, size=(count, 1))
    noise_scale = rng.uniform(0.1, 0.4, size=(count, 1))
    angle = 2 * np.pi * frequency * t[None, :] + phase
    sawtooth = 2 * np.mod(angle / (2 * np.pi), 1.0) - 1
    width = rng.integers(12, 41, size=count)
    start = rng.integers(0, length - width + 1)
    steps = np.arange(length)[None, :]
    burst = np.where((steps >= start[:, None]) & (steps < (start + width)[:, None]),
                     rng.standard_normal((count, length)), 0.0)
    shapes = np.stack([np.sin(angle), np.sign(np.sin(angle)), sawtooth, burst], axis=1)  # (count, 4, length)
    clean = shapes[np.arange(count), labels]
    signals = amplitude * clean + offset + noise_scale * rng.standard_normal((count, length))
    return signals.astype(np.float32), labels.astype(np.int64)


class Signals(SequenceBuilder):
    """Four shapes of 1-D signal: signal (length,) float32, label 0..3; `length_<n>` configs."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Sine, square, sawtooth and noise bursts with random frequency, phase, amplitude, "
                              "offset and noise."}
    BUILDER_CONFIGS = [length_config(n) for n in (128, 256)]
    MIN_LENGTH = 48  # room for the longest noise burst and a few periods

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "signal": tfds.features.Tensor(shape=(self.length,), dtype=np.float32),
                "label": tfds.features.ClassLabel(names=list(CLASSES)),
            }),
            supervised_keys=("signal", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Generated: nothing to download.
        return {split: self._generate_examples(split) for split in SPLIT_SIZES}

    def _generate_examples(self, split: str):
        seed = [SEED, self.length, list(SPLIT_SIZES).index(split)]
        signals, labels = signal_examples(self.length, SPLIT_SIZES[split], seed)
        for index in range(len(labels)):
            yield index, {"signal": signals[index], "label": int(labels[index])}
