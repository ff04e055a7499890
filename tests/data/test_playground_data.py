"""The playground's 2-D sets as TFDS builders: deterministic, balanced, shaped like the playground's."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest

from jaxdl.data import PROJECT_BUILDERS, load
from jaxdl.data.playground import (
    DEFAULT_CONFIG,
    PLAYGROUND_NAMES,
    dataset_name,
    generate,
    make_config,
    parse_config,
)
from jaxdl.errors import InputError


def load_set(name: str, data_dir: str):
    return load(ml_collections.ConfigDict({"name": name, "data_dir": data_dir, "validation_fraction": 0.1,
                                           "split_seed": 0, "download": False}))


def test_the_four_sets_are_project_builders():
    assert set(PLAYGROUND_NAMES) <= set(PROJECT_BUILDERS)


@pytest.mark.parametrize("name", PLAYGROUND_NAMES)
def test_sets_are_deterministic_and_balanced(name, tmp_path_factory):
    first = load_set(name, str(tmp_path_factory.mktemp("a")))
    second = load_set(name, str(tmp_path_factory.mktemp("b")))  # prepared again, from scratch
    for split in ("train", "validation", "test"):
        for key in ("x", "y"):
            np.testing.assert_array_equal(getattr(first, split)[key], getattr(second, split)[key])
    assert first.info.input_shape == (2,) and first.info.num_classes == 2
    assert first.sizes()["train"] + first.sizes()["validation"] == 250 and first.sizes()["test"] == 250
    for split in ("train", "validation", "test"):
        labels = getattr(first, split)["y"]
        counts = np.bincount(labels, minlength=2)
        if name == "xor":  # labels come from the quadrant of uniform points: balanced on average
            assert 0.4 < counts[1] / counts.sum() < 0.6, (split, counts)
        else:  # half of the points per class, and a stratified split
            assert abs(int(counts[1]) - int(counts[0])) <= 1, (split, counts)


def test_generators_follow_the_playground():
    config = make_config(num_examples=2000, noise=0.0, train_fraction=0.5, seed=0)
    points, labels, _ = generate("circle", config)
    radius = np.linalg.norm(points, axis=1)
    assert np.all(radius[labels == 1] <= 2.5) and np.all((radius[labels == 0] >= 3.5) & (radius[labels == 0] <= 5))

    points, labels, _ = generate("xor", config)
    assert np.all(np.abs(points) >= 0.3) and np.all(np.abs(points) <= 5.3)
    np.testing.assert_array_equal(labels, points[:, 0] * points[:, 1] >= 0)

    points, labels, _ = generate("gaussian", config)
    np.testing.assert_allclose(points[labels == 1].mean(0), [2, 2], atol=0.1)
    np.testing.assert_allclose(points[labels == 0].mean(0), [-2, -2], atol=0.1)
    np.testing.assert_allclose(points.std(0) ** 2, 0.5 + 4, rtol=0.1)  # variance 0.5 per blob, means +-2
    noisy, _, _ = generate("gaussian", make_config(num_examples=2000, noise=0.5, train_fraction=0.5, seed=0))
    np.testing.assert_allclose(noisy[:1000].var(0), 4.0, rtol=0.15)  # noise 50%: variance 4

    points, labels, _ = generate("spiral", config)
    assert np.max(np.linalg.norm(points, axis=1)) <= 5.0
    np.testing.assert_allclose(points[labels == 0], -points[labels == 1], atol=1e-5)  # the arms are half a turn apart


def test_noise_flips_labels_near_the_boundary_and_seeds_change_the_points():
    noisy = make_config(num_examples=1000, noise=0.3, train_fraction=0.5, seed=0)
    points, labels, _ = generate("circle", noisy)
    inside = np.linalg.norm(points, axis=1) < 2.5
    assert 0 < np.mean(inside != labels.astype(bool)) < 0.3
    other, _, _ = generate("circle", make_config(num_examples=1000, noise=0.3, train_fraction=0.5, seed=1))
    assert not np.allclose(points, other)
    again, _, _ = generate("circle", noisy)
    np.testing.assert_array_equal(points, again)


def test_builder_configs_set_noise_ratio_and_size(tmp_path):
    config = parse_config("train0.8-noise0.25-n200")
    assert (config.num_examples, config.noise, config.train_fraction, config.seed) == (200, 0.25, 0.8, 0)
    assert config.name == "noise0.25-train0.8-n200-seed0"
    assert parse_config("") is DEFAULT_CONFIG
    splits = load_set("spiral/train0.8-n200", str(tmp_path))
    assert splits.sizes()["train"] + splits.sizes()["validation"] == 160 and splits.sizes()["test"] == 40
    data = ml_collections.ConfigDict({"name": "xor", "noise": 0.1, "train_fraction": 0.3, "num_examples": 100,
                                      "data_seed": 2})
    assert dataset_name(data) == "xor/noise0.1-train0.3-n100-seed2"


@pytest.mark.parametrize(("text", "message"), [
    ("noise0.6", "out of range"),
    ("n7", "must be even"),
    ("train1", "out of range"),
    ("volume3", "unknown playground data option"),
])
def test_bad_builder_configs_are_input_errors(text, message):
    with pytest.raises(InputError, match=message):
        parse_config(text)
