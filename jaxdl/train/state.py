"""The train state: everything that changes during training, as one pytree, and how to run its model.

Nothing here is jitted where it is defined: the caller decides on `jax.jit`, donation and
shardings (see `jaxdl.train.fit`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from flax.training.dynamic_scale import DynamicScale

from jaxdl.models.train_argument import with_train_argument
from jaxdl.train import loss_scale as loss_scale_lib
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
      accumulate_steps: static: each step's batch is split into this many micro-batches whose
        gradients are averaged (`train.accumulate_steps`; 1: the batch at once).
      augment: static: None, or `(key, batch) -> batch` applied to each training batch in the
        compiled step (`jaxdl.models.augment.augmenter`, from `train.augment`).
      loss_scale: None: no loss scaling (float32 and bfloat16 models). A class attribute, not a
        field, so the state's pytree, and the checkpoints that hold it, are those of a run made
        before loss scaling existed. A float16 model's state is a `ScaledTrainState`.
    """

    step: jax.Array
    params: PyTree
    opt_state: PyTree
    rng: jax.Array
    batch_stats: PyTree
    apply_fn: Callable = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)
    metrics_fn: MetricsFn = struct.field(pytree_node=False)
    accumulate_steps: int = struct.field(pytree_node=False, default=1)
    augment: Callable | None = struct.field(pytree_node=False, default=None)
    loss_scale: ClassVar[DynamicScale | None] = None

    def variables(self, params: PyTree | None = None) -> dict:
        """The Flax variables dict for `apply_fn`."""
        variables = {"params": self.params if params is None else params}
        if self.batch_stats:
            variables["batch_stats"] = self.batch_stats
        return variables


class ScaledTrainState(TrainState):
    """A TrainState with a dynamic loss scale (`jaxdl.train.loss_scale`), for a model computing in
    float16: `loss_scale` is a field, so it is saved in every checkpoint and a resumed run goes on with it."""

    loss_scale: DynamicScale | None = None


def create_state(model: nn.Module, tx: optax.GradientTransformation, input_shape: tuple[int, ...],
                 rng: int | jax.Array, metrics_fn: MetricsFn) -> TrainState:
    """Initialises parameters and optimizer state for inputs of shape (batch, *input_shape).

    `rng` is a seed or a key; the same seed gives the same state, bit for bit. Works under
    `jax.vmap` over keys, to create a stack of states. A module whose `__call__` takes no `train`
    argument is called without one (`jaxdl.models.train_argument`). A model whose `dtype` is float16 gets a
    `ScaledTrainState`, with a dynamic loss scale (`jaxdl.train.loss_scale`).
    """
    model = with_train_argument(model)
    key = jax.random.PRNGKey(rng) if isinstance(rng, (int, np.integer)) else rng
    init_key, run_key = jax.random.split(key)
    dummy = jnp.zeros((1, *input_shape), jnp.float32)
    # Compiled: initialising op by op costs seconds of host time per process for a large model.
    # Traced (under vmap or an outer jit: a sweep's states) this is a nested jit, which takes no compiler options.
    options = None if isinstance(init_key, jax.core.Tracer) else run_once_options()
    variables = jax.jit(functools.partial(model.init, train=False), compiler_options=options)(
        {"params": init_key, "dropout": init_key}, dummy)
    params = variables["params"]
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                       rng=run_key, batch_stats=variables.get("batch_stats", {}),
                       apply_fn=model.apply, tx=tx, metrics_fn=metrics_fn)
    loss_scale = loss_scale_lib.for_dtype(getattr(model, "dtype", None))
    return state if loss_scale is None else with_loss_scale(state, loss_scale)


# XLA:CPU's LLVM optimisation level for a program that runs once (initialisation): level 1 compiles
# ResNet-18's init in 1.7 s instead of 4.4 (MLP 0.4 vs 0.9, ResNet-50 7 vs 12) and gives the same bits
# (tests/train/test_train.py compares every family's init with the default level's).
RUN_ONCE_CPU_OPTIONS = {"xla_backend_optimization_level": 1}


def run_once_options() -> dict | None:
    """Compiler options for a program that runs once: RUN_ONCE_CPU_OPTIONS on CPU, XLA's defaults elsewhere
    (an accelerator's compile is its own, and unmeasured here)."""
    return RUN_ONCE_CPU_OPTIONS if jax.default_backend() == "cpu" else None


def with_loss_scale(state: TrainState, loss_scale: DynamicScale) -> ScaledTrainState:
    """`state` with `loss_scale` (e.g. `jaxdl.train.loss_scale.for_dtype(jnp.float16, scale=2.0 ** 30)`)."""
    fields = {field.name: getattr(state, field.name) for field in dataclasses.fields(TrainState)}
    return ScaledTrainState(**fields, loss_scale=loss_scale)


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
