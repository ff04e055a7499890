"""Losses and per-example metrics against hand computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.models.rnn import RNN
from jaxdl.train.losses import (
    PerStepRegressionMetrics,
    classification_metrics,
    cross_entropy,
    metrics_for_task,
    per_step_squared_error,
    regression_metrics,
    squared_error,
)


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


def test_per_step_error_is_a_mean_over_real_steps_only():
    predictions = jnp.zeros((2, 4, 1))
    targets = jnp.array([[1.0, 1.0, jnp.nan, jnp.inf], [2.0, 2.0, 2.0, 2.0]])
    steps = jnp.array([[True, True, False, False], [True, True, True, True]])
    # Padded steps count nowhere, whatever they hold, and the mean is over the 2 and 4 real steps.
    np.testing.assert_array_equal(per_step_squared_error(predictions, targets, steps), [1.0, 4.0])


@pytest.mark.slow
def test_per_step_loss_of_a_padded_sequence_is_that_of_the_sequence_alone():
    model = RNN(num_outputs=1, cell="gru", hidden_size=4, readout="per_step", mask_padding=True)
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 6, 2), minval=0.1, maxval=1.0)
    x = x.at[0, 4:].set(0.0)  # the first sequence has 4 real steps, 2 of padding
    y = jax.random.uniform(jax.random.PRNGKey(1), (2, 6)).at[0, 4:].set(100.0)  # padded targets: anything
    variables = model.init(jax.random.PRNGKey(2), x)
    metrics = metrics_for_task("regression", per_step=True, mask_padding=True)
    assert metrics == PerStepRegressionMetrics(mask_padding=True)
    padded = metrics(model.apply(variables, x), y, x)["loss"]
    alone = metrics(model.apply(variables, x[:1, :4]), y[:1, :4], x[:1, :4])["loss"]
    np.testing.assert_allclose(padded[0], alone[0], rtol=1e-6)
    # Averaged over every step (padding included), the figure is different.
    every_step = regression_metrics(model.apply(variables, x), y)["loss"]
    assert not np.isclose(every_step[0], alone[0])
