"""The TFDS door: the digits builder, seeded splits, catalog sets under mock data, clear errors."""

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxdl.data import carve, get_builder, load
from jaxdl.errors import InputError


def data_config(name="digits", data_dir="", **overrides):
    config = ml_collections.ConfigDict(dict(name=name, data_dir=data_dir, validation_fraction=0.1, split_seed=0,
                                            download=False))
    config.update(overrides)
    return config


@pytest.mark.slow
def test_digits_is_the_real_1797_images(digits, data_dir):
    sizes = digits.sizes()
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == 359 and sizes["validation"] == 143
    assert digits.info.task == "classification" and digits.info.num_classes == 10
    assert digits.info.input_shape == (8, 8, 1)
    assert digits.train["x"].dtype == np.float32 and digits.train["y"].dtype == np.int32
    assert digits.train["x"].min() == 0.0 and digits.train["x"].max() == 1.0
    # The same images scikit-learn bundles, in the builder's test split.
    from sklearn.datasets import load_digits

    reference = load_digits().images * (255.0 / 16.0)
    rounded = np.round(reference).reshape(1797, -1) / 255.0
    test_images = digits.test["x"].reshape(len(digits.test["x"]), -1)
    matches = (np.abs(test_images[:, None, :] - rounded[None, :, :]).max(-1) < 1e-6).any(1)
    assert matches.all()


def test_validation_is_seeded_stratified_and_disjoint(digits, data_dir):
    again = load(data_config(data_dir=data_dir))
    np.testing.assert_array_equal(again.validation["x"], digits.validation["x"])
    other = load(data_config(data_dir=data_dir, split_seed=1))
    assert not np.array_equal(other.validation["x"], digits.validation["x"])
    counts = np.bincount(digits.validation["y"], minlength=10)
    assert counts.min() >= 12  # every class is represented (about 10% of ~130 each)
    assert len(digits.train["y"]) + len(digits.validation["y"]) == 1438


def test_test_split_does_not_depend_on_the_validation_carve(digits, data_dir):
    other = load(data_config(data_dir=data_dir, split_seed=5, validation_fraction=0.3))
    np.testing.assert_array_equal(other.test["x"], digits.test["x"])


def test_carve_regression_targets():
    arrays = {"x": np.arange(100, dtype=np.float32)[:, None], "y": np.arange(100, dtype=np.float32)}
    rest, carved = carve(arrays, 0.25, seed=3)
    assert len(carved["y"]) == 25 and len(rest["y"]) == 75
    assert set(rest["y"]).isdisjoint(carved["y"])


def test_catalog_mnist_end_to_end_under_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=40):
        splits = load(data_config("mnist", str(tmp_path)))
    assert splits.info.input_shape == (28, 28, 1) and splits.info.num_classes == 10
    assert splits.sizes()["test"] == 40 and splits.sizes()["train"] + splits.sizes()["validation"] == 40
    assert 0.0 <= splits.train["x"].min() and splits.train["x"].max() <= 1.0


def test_unprepared_catalog_dataset_says_how_to_prepare(tmp_path):
    with pytest.raises(InputError) as error:
        load(data_config("mnist", str(tmp_path)))
    message = str(error.value)
    assert message.startswith("config.data.name: catalog dataset 'mnist' is not prepared")
    assert "python -m jaxdl.data.prepare mnist" in message


def test_misspelled_dataset_suggests():
    with pytest.raises(InputError, match="did you mean 'digits'"):
        get_builder("digts")
    with pytest.raises(InputError, match="did you mean 'mnist'"):
        get_builder("mnsit")
