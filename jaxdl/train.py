"""The train state and the pure functions that advance and evaluate it.

Everything here is a pure function of pytrees. Nothing is jitted where it is defined: the caller
decides on `jax.jit`, donation and shardings (see `jaxdl.fit`).

Shapes: a training dataset is {"x": (N, *input_shape), "y": (N, ...)}; a batch is the same with
N = batch size; evaluation batches carry a "mask" (B,) of 1.0 for real and 0.0 for padding rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxdl import nonfinite
from jaxdl.losses import MetricsFn

PyTree = Any


class TrainState(struct.PyTreeNode):
    """Everything that changes during training, as one pytree.

    Attributes:
      step: () int32, optimizer steps taken.
      params: the model's parameters.
      opt_state: the optimizer's state.
      rng: (2,) uint32 key of this run; dropout and data order derive from it and the step.
      batch_stats: batch-norm statistics ({} for models without batch norm).
      apply_fn, tx, metrics_fn: the model's apply, the optimizer and the metrics function
        (static: not arrays, not saved).
    """

    step: jax.Array
    params: PyTree
    opt_state: PyTree
    rng: jax.Array
    batch_stats: PyTree
    apply_fn: Callable = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)
    metrics_fn: MetricsFn = struct.field(pytree_node=False)

    def variables(self, params: PyTree | None = None) -> dict:
        """The Flax variables dict for `apply_fn`."""
        variables = {"params": self.params if params is None else params}
        if self.batch_stats:
            variables["batch_stats"] = self.batch_stats
        return variables


def create_state(model: nn.Module, tx: optax.GradientTransformation, input_shape: tuple[int, ...],
                 rng: int | jax.Array, metrics_fn: MetricsFn) -> TrainState:
    """Initialises parameters and optimizer state for inputs of shape (batch, *input_shape).

    `rng` is a seed or a key; the same seed gives the same state, bit for bit. Works under
    `jax.vmap` over keys, to create a stack of states.
    """
    key = jax.random.PRNGKey(rng) if isinstance(rng, (int, np.integer)) else rng
    init_key, run_key = jax.random.split(key)
    dummy = jnp.zeros((1, *input_shape), jnp.float32)
    # Compiled: initialising op by op costs seconds of host time per process for a large model.
    variables = jax.jit(functools.partial(model.init, train=False))({"params": init_key, "dropout": init_key}, dummy)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      rng=run_key, batch_stats=variables.get("batch_stats", {}),
                      apply_fn=model.apply, tx=tx, metrics_fn=metrics_fn)


def stream_keys(state: TrainState) -> tuple[jax.Array, jax.Array]:
    """Two independent key streams of the run: (dropout, data order)."""
    dropout_root, order_root = jax.random.split(state.rng)
    return dropout_root, order_root


def apply_model(state: TrainState, params: PyTree, x: jax.Array, *, train: bool,
                dropout_key: jax.Array | None = None) -> tuple[jax.Array, PyTree]:
    """Runs the model: returns (outputs, batch_stats after the call)."""
    rngs = {"dropout": dropout_key} if dropout_key is not None else {}
    if state.batch_stats and train:
        outputs, updates = state.apply_fn(state.variables(params), x, train=True, rngs=rngs,
                                          mutable=["batch_stats"])
        return outputs, updates["batch_stats"]
    return state.apply_fn(state.variables(params), x, train=train, rngs=rngs), state.batch_stats


def train_step(state: TrainState, batch: dict[str, jax.Array], *,
               skip_nonfinite: bool = False) -> tuple[TrainState, dict[str, jax.Array]]:
    """One gradient step on `batch` -> (new state, batch-mean metrics incl. "loss").

    The metrics also hold "nonfinite": () bool, the loss or a gradient was NaN or infinite. With
    `skip_nonfinite`, such a step changes nothing but the step counter (see jaxdl.nonfinite).
    """
    dropout_key = jax.random.fold_in(stream_keys(state)[0], state.step)

    def loss_fn(params):
        outputs, batch_stats = apply_model(state, params, batch["x"], train=True, dropout_key=dropout_key)
        metrics = state.metrics_fn(outputs, batch["y"])
        return jnp.mean(metrics["loss"]), (metrics, batch_stats)

    (loss, (metrics, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    finite = nonfinite.all_finite((loss, grads))

    def apply(_):
        updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state, batch_stats=batch_stats)

    if skip_nonfinite:  # a cond, not a select over the whole state: measured as fast as no guard on CPU
        new_state = jax.lax.cond(finite, apply, lambda _: state.replace(step=state.step + 1), None)
    else:
        new_state = apply(None)
    return new_state, {**{name: jnp.mean(value) for name, value in metrics.items()}, "nonfinite": ~finite}


def eval_step(state: TrainState, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Metric sums over the real (mask = 1) rows of `batch`, plus "count"."""
    outputs, _ = apply_model(state, state.params, batch["x"], train=False)
    metrics = state.metrics_fn(outputs, batch["y"])
    sums = {name: jnp.sum(value * batch["mask"]) for name, value in metrics.items()}
    sums["count"] = jnp.sum(batch["mask"])
    return sums


def constrain(batch: PyTree, sharding: jax.sharding.Sharding | None) -> PyTree:
    """Pins the batch dimension of every array in `batch` to `sharding` (None: leave it to XLA)."""
    if sharding is None:
        return batch
    return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, sharding), batch)


def epoch_order(state: TrainState, num_examples: int, batch_size: int) -> jax.Array:
    """(steps, batch_size) example indices for the state's current epoch; the tail is dropped.

    The permutation's key is the run's data-order key folded with the epoch number, which is
    derived from the step, so a resumed run sees the same order as an uninterrupted one.
    """
    steps = num_examples // batch_size
    epoch = state.step // steps
    key = jax.random.fold_in(stream_keys(state)[1], epoch)
    return jax.random.permutation(key, num_examples)[: steps * batch_size].reshape(steps, batch_size)


def train_epoch(state: TrainState, data: dict[str, jax.Array], batch_size: int,
                batch_sharding: jax.sharding.Sharding | None = None, *,
                skip_nonfinite: bool = False) -> tuple[TrainState, dict[str, jax.Array]]:
    """One pass over `data` (on device) as a single `lax.scan` -> (state, epoch metrics).

    The epoch metrics are means over the steps whose loss and gradients were finite (NaN if none
    was), plus "nonfinite": (steps,) bool, which steps were not (see `train_step`).
    """
    order = epoch_order(state, data["x"].shape[0], batch_size)

    def body(state, index):
        batch = constrain(jax.tree.map(lambda a: a[index], data), batch_sharding)
        return train_step(state, batch, skip_nonfinite=skip_nonfinite)

    state, metrics = jax.lax.scan(body, state, order)
    bad = metrics.pop("nonfinite")
    finite_steps = jnp.sum(~bad)
    means = {name: jnp.sum(jnp.where(bad, 0.0, value)) / finite_steps for name, value in metrics.items()}
    return state, {**means, "nonfinite": bad}


def evaluate(state: TrainState, batches: dict[str, jax.Array],
             batch_sharding: jax.sharding.Sharding | None = None) -> dict[str, jax.Array]:
    """Mean metrics over every real example of `batches` (from `eval_batches`), plus "count"."""

    def body(carry, batch):
        return carry, eval_step(state, constrain(batch, batch_sharding))

    _, sums = jax.lax.scan(body, None, batches)
    totals = jax.tree.map(lambda s: jnp.sum(s, axis=0), sums)
    count = totals.pop("count")
    return {**{name: total / jnp.maximum(count, 1) for name, total in totals.items()}, "count": count}


def eval_batches(arrays: dict[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    """Host-side: pads `arrays` to whole batches and adds a mask.

    Returns {"x": (num_batches, batch_size, ...), "y": ..., "mask": (num_batches, batch_size)}.
    """
    n = len(arrays["y"])
    num_batches = max(1, -(-n // batch_size))
    pad = num_batches * batch_size - n

    def padded(a):
        whole = np.concatenate([a, np.zeros((pad, *a.shape[1:]), a.dtype)])
        return whole.reshape(num_batches, batch_size, *a.shape[1:])

    batches = {key: padded(value) for key, value in arrays.items()}
    batches["mask"] = padded(np.ones((n,), np.float32))
    return batches
