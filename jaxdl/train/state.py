"""The train state: everything that changes during training, as one pytree, and how to run its model.

Nothing here is jitted where it is defined: the caller decides on `jax.jit`, donation and
shardings (see `jaxdl.train.fit`).
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

from jaxdl.train.losses import MetricsFn

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
