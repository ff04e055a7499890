"""jaxdl's dropout and kernel initialiser draw over one flat axis: the same values as Flax's, bit for bit."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxdl.models.flat_random import Dropout, bernoulli_mask, lecun_normal


@st.composite
def cases(draw):
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=1, max_size=5)))
    broadcast = tuple(d for d in range(len(shape)) if draw(st.booleans()) and draw(st.booleans()))
    rate = draw(st.sampled_from([0.1, 0.25, 0.5, 0.9]))
    return shape, broadcast, rate, draw(st.integers(0, 2**31 - 1))


@pytest.mark.slow
@settings(max_examples=5, deadline=None)
@given(cases())
def test_outputs_are_flaxs_bit_for_bit(case):
    shape, broadcast, rate, seed = case
    x = np.random.default_rng(seed).uniform(0.5, 2.0, shape).astype(np.float32)  # no zeros
    rngs = {"dropout": jax.random.key(seed)}

    def outputs(module):
        return module.apply({}, x, deterministic=False, rngs=rngs)

    ours = outputs(Dropout(rate, broadcast_dims=broadcast))
    flax = outputs(nn.Dropout(rate, broadcast_dims=broadcast))
    np.testing.assert_array_equal(ours, flax)  # x has no zeros: the same masks (and so the same gradients)


def test_the_mask_is_jaxs_bernoulli_for_raw_typed_and_rbg_keys():
    shape = (4, 3, 5, 2)
    for key in (jax.random.PRNGKey(3), jax.random.key(3), jax.random.key(3, impl="rbg")):
        np.testing.assert_array_equal(bernoulli_mask(key, 0.7, shape), jax.random.bernoulli(key, 0.7, shape))


def test_deterministic_rate_zero_and_rate_one():
    x = jnp.arange(6.0).reshape(2, 3)
    rngs = {"dropout": jax.random.key(0)}
    np.testing.assert_array_equal(Dropout(0.5).apply({}, x, deterministic=True, rngs=rngs), x)
    np.testing.assert_array_equal(Dropout(0.0).apply({}, x, deterministic=False, rngs=rngs), x)
    np.testing.assert_array_equal(Dropout(1.0).apply({}, x, deterministic=False, rngs=rngs), jnp.zeros_like(x))


@pytest.mark.slow
@settings(max_examples=4, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=2, max_size=4).map(tuple), seed=st.integers(0, 2**31 - 1),
       dtype=st.sampled_from(["float32", "bfloat16"]))
def test_kernels_are_flaxs_default_initialisers_bit_for_bit(shape, seed, dtype):
    key = jax.random.key(seed)
    ours = lecun_normal()(key, shape, jnp.dtype(dtype))
    flax = nn.initializers.lecun_normal()(key, shape, jnp.dtype(dtype))
    assert ours.dtype == flax.dtype and ours.shape == flax.shape == shape
    np.testing.assert_array_equal(np.asarray(ours, np.float32), np.asarray(flax, np.float32))


def test_models_initialise_to_flaxs_bits():
    from jaxdl.models import Conv, Dense  # what a module of one's own imports
    x = jnp.ones((2, 6, 6, 3))
    for ours, flax in ((Conv(4, (3, 3)), nn.Conv(4, (3, 3))), (Dense(5), nn.Dense(5))):
        a, b = ours.init(jax.random.key(7), x), flax.init(jax.random.key(7), x)
        jax.tree.map(np.testing.assert_array_equal, a, b)
