"""The generated `signals` set (four shapes of 1-D signal), through TFDS and `load`."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest

from jaxdl import InputError
from jaxdl.data import PROJECT_BUILDERS, load
from jaxdl.data.signals import CLASSES, SEED, SPLIT_SIZES, signal_examples

LENGTH = 64  # shorter than the default 128, to prepare quickly


def data_config(data_dir: str, sequence_length: int = LENGTH, name: str = "signals") -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"name": name, "data_dir": data_dir, "validation_fraction": 0.1, "split_seed": 0,
                                      "download": False, "sequence_length": sequence_length})


@pytest.fixture(scope="module")
def signals(tmp_path_factory):
    return load(data_config(str(tmp_path_factory.mktemp("tfds"))))


def test_signals_is_a_project_builder():
    assert "signals" in PROJECT_BUILDERS


def test_signals_are_one_dimensional_with_four_balanced_classes(signals):
    info = signals.info
    assert info.task == "classification" and info.input_shape == (LENGTH,)
    assert info.class_names == CLASSES == ("sine", "square", "sawtooth", "noise_burst")
    assert signals.sizes() == {"train": 1800, "validation": 200, "test": SPLIT_SIZES["test"]}
    assert signals.train["x"].dtype == np.float32 and signals.train["x"].shape == (1800, LENGTH)
    np.testing.assert_array_equal(np.bincount(signals.test["y"]), [SPLIT_SIZES["test"] // 4] * 4)
    np.testing.assert_array_equal(np.bincount(signals.validation["y"]), [50] * 4)  # the stratified carve


def test_the_test_split_is_fixed_by_its_seed(signals):
    expected, labels = signal_examples(LENGTH, SPLIT_SIZES["test"], [SEED, LENGTH, 1])
    by_row = lambda x, y: sorted(zip((row.tobytes() for row in x), y.tolist(), strict=True))  # noqa: E731 (TFDS reorders)
    assert by_row(signals.test["x"], signals.test["y"]) == by_row(expected, labels)
    train = {row.tobytes() for row in signals.train["x"]}
    assert not train & {row.tobytes() for row in signals.test["x"]}


def test_each_class_has_its_shape():
    """Through the noise, the classes are what they claim: jumps (square, sawtooth), a smooth sine, a burst."""
    x, y = signal_examples(256, 400, 0)
    assert np.all(np.isfinite(x))
    steps = np.abs(np.diff(x, axis=1))
    # The square's jumps are the largest single steps relative to its typical step; the sine's are smallest.
    jumpiness = np.max(steps, axis=1) / np.median(steps, axis=1)
    means = [float(np.median(jumpiness[y == k])) for k in range(4)]
    assert means[1] > means[0] and means[2] > means[0]
    # A noise burst is quiet (only the added noise) in most of its steps, unlike the periodic shapes.
    spread = np.percentile(np.abs(x - np.median(x, axis=1, keepdims=True)), 25, axis=1)
    assert np.median(spread[y == 3]) < min(np.median(spread[y == k]) for k in range(3))


def test_signals_are_deterministic_and_lengths_are_checked(tmp_path):
    np.testing.assert_array_equal(signal_examples(50, 8, [1, 2])[0], signal_examples(50, 8, [1, 2])[0])
    with pytest.raises(InputError) as error:
        load(data_config(str(tmp_path), sequence_length=20))
    assert error.value.where == "config.data.sequence_length"
    assert not list(tmp_path.iterdir())  # refused before anything was prepared
