"""Losses and metrics per example, for classification and regression.

A metrics function maps (outputs, targets) to a dict of per-example values (batch,); the key
"loss" is the one that is differentiated. Training averages them over the batch, evaluation sums
them with a mask, so every example counts exactly once.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

MetricsFn = Callable[[jax.Array, jax.Array], dict[str, jax.Array]]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Softmax cross-entropy: logits (batch, classes), int labels (batch,) -> (batch,)."""
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)


def squared_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean squared error per example: (batch, ...) and targets of the same size -> (batch,)."""
    predictions = predictions.reshape(predictions.shape[0], -1).astype(jnp.float32)
    targets = targets.reshape(targets.shape[0], -1).astype(jnp.float32)
    return jnp.mean(jnp.square(predictions - targets), axis=-1)


def classification_metrics(logits: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    """{"loss": cross-entropy, "accuracy": 1.0 where argmax is right}, each (batch,)."""
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    return {"loss": cross_entropy(logits, labels), "accuracy": correct}


def regression_metrics(predictions: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
    """{"loss": squared error, "mse": the same}, each (batch,)."""
    error = squared_error(predictions, targets)
    return {"loss": error, "mse": error}


def metrics_for_task(task: str) -> MetricsFn:
    """The metrics function for "classification" or "regression"."""
    return {"classification": classification_metrics, "regression": regression_metrics}[task]
