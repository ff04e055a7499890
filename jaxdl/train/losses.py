"""Losses and metrics per example, for classification and regression.

A metrics function maps (outputs, targets) to a dict of per-example values (batch,); the key
"loss" is the one that is differentiated. Training averages them over the batch, evaluation sums
them with a mask, so every example counts exactly once. A metrics function with `reads_inputs`
(per-step regression, whose padded steps are read off the inputs) also gets the inputs; call
every metrics function through `batch_metrics`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp
import optax

from jaxdl.models.rnn import sequence_lengths, step_mask

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


def per_step_squared_error(predictions: jax.Array, targets: jax.Array, steps: jax.Array) -> jax.Array:
    """Mean squared error over each sequence's real steps -> (batch,).

    predictions (batch, time, k), targets (batch, time, ...) of k values a step, steps (batch, time)
    bool, True for real steps. Padded steps count nowhere (a select, so whatever a padded step
    computes, NaN included, cannot leak in); a sequence without a real step scores 0.
    """
    batch, time = targets.shape[:2]
    predictions = predictions.reshape(batch, time, -1).astype(jnp.float32)
    targets = targets.reshape(batch, time, -1).astype(jnp.float32)
    error = jnp.mean(jnp.square(predictions - targets), axis=-1)
    total = jnp.sum(jnp.where(steps, error, 0.0), axis=1)
    return total / jnp.maximum(jnp.sum(steps, axis=1), 1).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class PerStepRegressionMetrics:
    """(predictions (batch, time, k), targets (batch, time, ...), inputs (batch, time, ...)) ->
    {"loss", "mse"} (batch,): each sequence's mean squared error over its real steps.

    With `mask_padding`, the steps after the last step with a nonzero input are padding, exactly as
    the RNN reads them (`jaxdl.models.rnn.sequence_lengths`); otherwise every step is real.
    """

    mask_padding: bool = False
    reads_inputs: ClassVar[bool] = True

    def __call__(self, predictions: jax.Array, targets: jax.Array, inputs: jax.Array) -> dict[str, jax.Array]:
        batch, time = targets.shape[:2]
        lengths = sequence_lengths(inputs) if self.mask_padding else None
        error = per_step_squared_error(predictions, targets, step_mask(lengths, batch, time))
        return {"loss": error, "mse": error}


def batch_metrics(metrics_fn: MetricsFn, outputs: jax.Array, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """`metrics_fn(outputs, batch["y"])`, with `batch["x"]` as a third argument if it `reads_inputs`."""
    if getattr(metrics_fn, "reads_inputs", False):
        return metrics_fn(outputs, batch["y"], batch["x"])
    return metrics_fn(outputs, batch["y"])


def metrics_for_task(task: str, *, per_step: bool = False, mask_padding: bool = False) -> MetricsFn:
    """The metrics function for "classification" or "regression"; `per_step` for a regression
    predicted at every step of a sequence (`PerStepRegressionMetrics`, padding masked if `mask_padding`)."""
    if per_step:
        return PerStepRegressionMetrics(mask_padding=mask_padding)
    return {"classification": classification_metrics, "regression": regression_metrics}[task]
