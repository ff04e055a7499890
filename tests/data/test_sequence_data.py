"""The project's generated sequence sets: the adding problem and sequences of digits, through TFDS."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest

from jaxdl import InputError
from jaxdl.data import PROJECT_BUILDERS, load
from jaxdl.data.adding import SPLIT_SIZES, adding_examples
from jaxdl.data.digits import digit_images


def data_config(data_dir: str, name: str, sequence_length: int = 0) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"name": name, "data_dir": data_dir, "validation_fraction": 0.1, "split_seed": 0,
                                      "download": False, "sequence_length": sequence_length})


@pytest.fixture(scope="module")
def adding(data_dir):
    return load(data_config(data_dir, "adding", 10))


def test_builders_are_registered():
    assert {"digits", "adding", "adding_per_step", "digit_sequences"} <= set(PROJECT_BUILDERS)


def test_adding_problem_shapes_and_task(adding):
    assert adding.info.task == "regression"
    assert adding.info.input_shape == (10, 2) and adding.info.num_outputs == 1
    assert adding.sizes() == {"train": 9000, "validation": 1000, "test": SPLIT_SIZES["test"]}
    assert adding.train["x"].dtype == np.float32 and adding.train["y"].shape == (9000,)


def test_adding_problem_marks_two_numbers_and_sums_them(adding):
    x, y = adding.test["x"], adding.test["y"]
    values, markers = x[..., 0], x[..., 1]
    assert set(np.unique(markers)) == {0.0, 1.0}
    np.testing.assert_array_equal(markers.sum(axis=1), 2.0)
    np.testing.assert_array_equal(markers[:, :5].sum(axis=1), 1.0)  # one mark in each half
    np.testing.assert_allclose(y, (values * markers).sum(axis=1), rtol=1e-6)
    assert values.min() >= 0.0 and values.max() < 1.0
    # Predicting the mean scores ~1/6: the reference figure a model must beat.
    assert abs(np.mean((y - y.mean()) ** 2) - 1 / 6) < 0.02


def test_adding_problem_is_generated_deterministically(adding):
    x, y = adding_examples(10, SPLIT_SIZES["test"], [19970815, 10, 1])
    # TFDS stores examples in its own (deterministic) order: compare as sets, sorted by target.
    stored = np.argsort(adding.test["y"], kind="stable")
    generated = np.argsort(y, kind="stable")
    np.testing.assert_array_equal(adding.test["x"][stored], x[generated])
    np.testing.assert_array_equal(adding.test["y"][stored], y[generated])
    again_x, _ = adding_examples(10, 3, [1, 2, 3])
    np.testing.assert_array_equal(again_x, adding_examples(10, 3, [1, 2, 3])[0])


def test_adding_per_step_targets_are_running_sums_of_the_same_inputs(data_dir, adding):
    per_step = load(data_config(data_dir, "adding_per_step", 10))
    assert per_step.info.task == "regression" and per_step.info.target_shape == (10,)
    x, y = per_step.test["x"], per_step.test["y"]
    np.testing.assert_array_equal(np.sort(x.reshape(len(x), -1), axis=0),
                                  np.sort(adding.test["x"].reshape(len(x), -1), axis=0))
    values, markers = x[..., 0], x[..., 1]
    for step in range(10):
        np.testing.assert_allclose(y[:, step], (values * markers)[:, : step + 1].sum(axis=1), rtol=1e-6)
    np.testing.assert_allclose(np.sort(y[:, -1]), np.sort(adding.test["y"]), rtol=1e-6)  # the last step: the sum


def test_sequence_length_in_the_name_or_as_an_option_is_the_same_set(data_dir, adding):
    named = load(data_config(data_dir, "adding/length_10"))
    np.testing.assert_array_equal(named.test["x"], adding.test["x"])


@pytest.mark.parametrize(("name", "length", "message"), [
    ("adding", 1, "out of range"),
    ("adding/length_10", 20, "conflicts"),
    ("digits", 8, "fixed size"),
    ("adding/lenght_10", 0, "unknown dataset config"),
])
def test_bad_sequence_options_are_input_errors(data_dir, name, length, message):
    with pytest.raises(InputError, match=message):
        load(data_config(data_dir, name, length))


def test_digit_sequences_sum_digits_drawn_from_disjoint_image_pools(data_dir):
    splits = load(data_config(data_dir, "digit_sequences", 2))
    assert splits.info.input_shape == (2, 8, 8, 1) and splits.info.num_classes == 19
    assert splits.sizes() == {"train": 10_000, "validation": 1_000, "test": 2_000}  # its own validation split
    label_of = {}  # image bytes -> {digits split ("train"/"test"): label}
    for test in (False, True):
        images, labels, _ = digit_images(test)
        for image, label in zip(images, labels, strict=True):
            label_of.setdefault(image.tobytes(), {})["test" if test else "train"] = int(label)

    pools = {}
    for name, digits_split in (("train", "train"), ("validation", "train"), ("test", "test")):
        arrays = getattr(splits, name)
        frames = np.round(arrays["x"] * 255).astype(np.uint8)
        pools[name] = {frame.tobytes() for sequence in frames for frame in sequence}
        for sequence, total in zip(frames[:300], arrays["y"][:300], strict=True):
            assert sum(label_of[frame.tobytes()][digits_split] for frame in sequence) == total
        assert all(digits_split in label_of[image] for image in pools[name]), f"{name} frames from the wrong split"
    assert not pools["train"] & pools["validation"], "validation frames must be images training never sees"
    assert not pools["train"] & pools["test"]
