"""Losses and per-example metrics against hand computations."""

import jax.numpy as jnp
import numpy as np

from jaxdl.train.losses import classification_metrics, cross_entropy, regression_metrics, squared_error


def test_cross_entropy_matches_log_softmax():
    logits = jnp.array([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0]])
    labels = jnp.array([0, 2])
    expected = -np.log(np.exp([2.0, 0.0]) / np.exp(np.asarray(logits)).sum(-1))
    np.testing.assert_allclose(cross_entropy(logits, labels), expected, rtol=1e-6)


def test_accuracy_per_example():
    metrics = classification_metrics(jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 3.0]]), jnp.array([0, 1, 1]))
    np.testing.assert_array_equal(metrics["accuracy"], [1.0, 0.0, 1.0])


def test_squared_error_is_mean_over_trailing_dims():
    predictions = jnp.array([[1.0, 2.0], [0.0, 0.0]])
    targets = jnp.array([[0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(squared_error(predictions, targets), [2.5, 1.0])
    # A (batch, 1) prediction against (batch,) targets compares element by element.
    np.testing.assert_allclose(regression_metrics(jnp.array([[3.0], [1.0]]), jnp.array([1.0, 1.0]))["mse"], [4.0, 0.0])
