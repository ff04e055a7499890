"""Dynamic loss scaling, for models that compute in float16 (`model.dtype = "float16"`).

float16 keeps 5 exponent bits: a gradient below ~6e-8 flushes to zero in the backward pass and a
value above 65504 becomes infinite. So the loss is multiplied by a scale before it is
differentiated (small gradients survive the float16 backward pass) and the float32 gradients are
divided by it again. A step whose gradients come out non-finite overflowed: it is skipped
(parameters, optimizer state and batch-norm statistics stay as they were; the step counter still
advances, so the data order is that of an uninterrupted run) and the scale is halved; after
`GROWTH_INTERVAL` finite steps in a row the scale is doubled. Scales are powers of two, so scaling
and unscaling are exact.

The state is Flax's `DynamicScale` (`flax.training.dynamic_scale`): the algorithm above, in a
library jaxdl already depends on and that is kept with Flax. (DeepMind's `jmp` has the same, but
its last release is from 2023, and it would be one more dependency for ~30 lines.) It is a pytree
held in `TrainState.loss_scale` (scale () float32, finite steps in a row () int32), so every
checkpoint holds it and a resumed run goes on with the same scale. float32 and bfloat16 (whose
exponent range is float32's) need no scaling: their `loss_scale` is None, and their state,
checkpoints and numbers are exactly those of a run without this module.

An overflow is not divergence: it is counted (`overflow_steps` of the epoch, `train_overflow_steps`
in metrics.jsonl), never judged by `train.nan_policy`. A non-finite *loss* still is divergence
(`jaxdl.train.nonfinite`); so are gradients that are not finite at the smallest scale,
`MINIMUM_SCALE` = 1, where no lower scale can help. Neither changes the scale.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax.training.dynamic_scale import DynamicScale

PyTree = Any

INITIAL_SCALE = 2.0 ** 15
GROWTH_INTERVAL = 2000
MINIMUM_SCALE = 1.0


def for_dtype(dtype: Any, *, scale: float = INITIAL_SCALE,
              growth_interval: int = GROWTH_INTERVAL) -> DynamicScale | None:
    """A fresh loss scale for a model computing in `dtype`: a DynamicScale for float16, else None."""
    if dtype is None or jnp.dtype(dtype) != jnp.float16:
        return None
    return DynamicScale(growth_interval=growth_interval, fin_steps=jnp.zeros((), jnp.int32),
                        scale=jnp.asarray(scale, jnp.float32), minimum_scale=MINIMUM_SCALE)


class ScaledGradients(NamedTuple):
    """What `value_and_grad` returns.

    loss_scale: the scale for the next step. value, aux: the loss (unscaled) and `loss_fn`'s aux.
    grads: float32 gradients, unscaled. overflow: () bool, the step must be skipped and is not
    divergence. finite: () bool, False when the loss, or the gradients at the smallest scale, are
    not finite (divergence, for `train.nan_policy`).
    """

    loss_scale: DynamicScale
    value: jax.Array
    aux: Any
    grads: PyTree
    overflow: jax.Array
    finite: jax.Array


def value_and_grad(loss_scale: DynamicScale, loss_fn: Callable[[PyTree], tuple[jax.Array, Any]],
                   params: PyTree) -> ScaledGradients:
    """`jax.value_and_grad(loss_fn, has_aux=True)(params)` with `loss_fn`'s value multiplied by the
    scale, the gradients divided by it, and the scale updated (module doc)."""
    updated, grads_finite, (loss, aux), grads = loss_scale.value_and_grad(loss_fn, has_aux=True)(params)
    loss_finite = jnp.isfinite(loss)
    overflow = loss_finite & ~grads_finite & (loss_scale.scale > MINIMUM_SCALE)
    finite = loss_finite & (grads_finite | overflow)
    # A non-finite loss is not an overflow: the scale stays.
    updated = jax.tree.map(lambda new, old: jnp.where(loss_finite, new, old), updated, loss_scale)
    return ScaledGradients(updated, loss, aux, grads, overflow, finite)
