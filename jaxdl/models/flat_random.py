"""Random draws over one flat axis: Flax's dropout and default kernel initialiser, to the same bits, compiled
in a fraction of the time on XLA:CPU.

With JAX's threefry keys the bits at each position of `jax.random.bits(key, shape)` are a function of the
key and the position's row-major index alone (partitionable or not), so drawing `(prod(shape),)` values
and reshaping gives the same array. XLA:CPU compiles the hash over one flat axis far faster than over a
multi-axis loop nest (jax 0.10.2, one core): `bernoulli` for (32, 8, 8, 8) 1.0 s -> 0.16 s, `lecun_normal`
for a (3, 3, 8, 16) kernel 1.2 s -> 0.2 s. Every training program with dropout pays it once per dropout
layer, every initialisation once per kernel: most of what a short run compiles (the digits CNN's step
2.3 s -> 1.0 s; docs/models.md). Keys of another implementation (`rbg`) take the shaped path, whose bits
may depend on the shape.

`Dropout` is `flax.linen.Dropout`, `Dense` is `flax.linen.Dense` and `lecun_normal` is Flax's default
kernel initialiser, each computing the same outputs bit for bit (tests/models/test_flat_random.py).
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

FLAT_IMPLS = ("threefry2x32",)
TRUNCATED_STD = 0.87962566103423978  # the standard deviation of a unit normal truncated to (-2, 2)


def flat_key(key: jax.Array) -> bool:
    """The key's bits depend on the row-major index alone (threefry)."""
    return str(jax.random.key_impl(key)) in FLAT_IMPLS


def bernoulli_mask(rng: jax.Array, keep: float, shape: tuple[int, ...]) -> jax.Array:
    """`jax.random.bernoulli(rng, keep, shape)`, bit for bit, drawn over one flat axis for threefry keys."""
    if flat_key(rng):
        return jax.random.bernoulli(rng, p=keep, shape=(math.prod(shape),)).reshape(shape)
    return jax.random.bernoulli(rng, p=keep, shape=shape)


def lecun_normal():
    """`jax.nn.initializers.lecun_normal()` (Flax's default kernel initialiser), bit for bit: a normal
    truncated to two standard deviations, variance 1 / fan_in (fan_in: the product of all axes but the
    last), drawn over one flat axis for threefry keys and floating dtypes."""
    shaped = jax.nn.initializers.lecun_normal()

    def init(key: jax.Array, shape, dtype=jnp.float32, out_sharding=None) -> jax.Array:
        shape = tuple(int(n) for n in shape)
        if (len(shape) < 2 or math.prod(shape) == 0 or dtype is None or out_sharding is not None
                or not jnp.issubdtype(dtype, jnp.floating) or not flat_key(key)):
            return shaped(key, shape, dtype, out_sharding=out_sharding)
        fan_in = shape[-2] * (math.prod(shape) / shape[-2] / shape[-1])  # as jax computes it, in floats
        stddev = jnp.sqrt(jnp.array(1.0 / fan_in, dtype=dtype)) / jnp.array(TRUNCATED_STD, dtype)
        return (jax.random.truncated_normal(key, -2, 2, (math.prod(shape),), dtype) * stddev).reshape(shape)

    return init


Dense = functools.partial(nn.Dense, kernel_init=lecun_normal())


class Dropout(nn.Dropout):
    """`flax.linen.Dropout` (same fields, same outputs bit for bit) with the mask of `bernoulli_mask`."""

    @nn.compact
    def __call__(self, inputs, deterministic: bool | None = None, rng: jax.Array | None = None):
        deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
        if self.rate == 0.0 or deterministic:
            return inputs
        if self.rate == 1.0:  # Flax's edge case: zeros, no NaN gradients
            return jnp.zeros_like(inputs)
        keep = 1.0 - self.rate
        if rng is None:
            rng = self.make_rng(self.rng_collection)
        shape = list(inputs.shape)
        for dim in self.broadcast_dims:
            shape[dim] = 1
        mask = jnp.broadcast_to(bernoulli_mask(rng, keep, tuple(shape)), inputs.shape)
        return lax.select(mask, inputs / keep, jnp.zeros_like(inputs))
