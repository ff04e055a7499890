"""Catalog datasets through the CNN and RNN experiments, under `tfds.testing.mock_data` (no download)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments import cnn, rnn
from jaxdl import apply_override, build_model, load_config, load_data


def config_with(spec: str, data_dir: str, **overrides: str):
    """The config of `spec` with `overrides`; no baseline or report (the CLI tests cover those)."""
    config = load_config(spec)
    apply_override(config, "data.data_dir", data_dir)
    apply_override(config, "eval.baseline", "false")
    apply_override(config, "eval.report", "false")
    for key, value in overrides.items():
        apply_override(config, key, value)
    return config


def assert_accuracy_is_the_confusion_diagonal(test: dict, confusion: list[list[int]]) -> None:
    """The test accuracy is the confusion matrix's trace over the count, exactly as float32 divides."""
    confusion = np.array(confusion)
    assert confusion.sum() == test["count"]
    assert np.float32(np.trace(confusion)) / np.float32(test["count"]) == np.float32(test["accuracy"])


@pytest.mark.slow
def test_cnn_trains_on_mock_mnist(tmp_path):
    config = config_with("configs/cnn.py:mnist", str(tmp_path / "tfds"), **{
        "model.channels": "(4,)", "model.dense_sizes": "(8,)", "train.epochs": "1", "train.batch_size": "32"})
    with tfds.testing.mock_data(num_examples=96):
        summary = cnn.run(config, str(tmp_path / "run"), progress=False)
    assert summary["data"]["name"] == "mnist" and summary["data"]["test"] == 96
    assert summary["epochs_run"] == 1 and summary["test"]["count"] == 96
    assert_accuracy_is_the_confusion_diagonal(summary["test"], summary["confusion_matrix"])


def test_cifar10_config_builds_a_resnet_for_mock_cifar10(tmp_path):
    config = config_with("configs/cnn.py:cifar10", str(tmp_path / "tfds"))
    with tfds.testing.mock_data(num_examples=24):
        splits = load_data(config.data)
    assert splits.info.input_shape == (32, 32, 3) and splits.info.num_classes == 10
    assert 0.0 <= splits.train["x"].min() and splits.train["x"].max() <= 1.0
    model = build_model(config.model, splits.info)
    x = jnp.asarray(splits.test["x"][:4])
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
    assert jax.eval_shape(lambda v: model.apply(v, x, train=False), variables).shape == (4, 10)
    assert len([name for name in variables["params"] if name.startswith("block_")]) == 9  # ResNet-20: 3 x 3 blocks


@pytest.mark.slow
def test_rnn_reads_mock_imdb_reviews_as_bytes(tmp_path):
    config = config_with("configs/rnn.py:imdb", str(tmp_path / "tfds"), **{
        "data.sequence_length": "32", "model.hidden_size": "8", "model.embed_size": "4",
        "train.epochs": "1", "train.batch_size": "16"})
    with tfds.testing.mock_data(num_examples=48):
        summary = rnn.run(config, str(tmp_path / "run"), progress=False)
    assert summary["data"]["name"] == "imdb_reviews" and summary["model"] == "rnn"
    assert summary["test"]["count"] == 48 and np.shape(summary["confusion_matrix"]) == (2, 2)
    assert_accuracy_is_the_confusion_diagonal(summary["test"], summary["confusion_matrix"])
