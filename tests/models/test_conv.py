"""`jaxdl.models.conv`: the same values and gradients as `lax.conv_general_dilated` at top level, and the
same bits inside a loop as at top level (which the lax gradients do not give on CPU)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxdl.models.conv import conv_general_dilated

SPECS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}


def normal(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """float32 normal values from NumPy (jax.random.normal compiles for ~1 s per new shape on CPU)."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def loss(conv, strides, padding, dilation, spec):
    return lambda x, w: jnp.sum(jnp.sin(conv(x, w, strides, padding, rhs_dilation=dilation, dimension_numbers=spec)))


@pytest.mark.slow
@settings(max_examples=20, deadline=None)
@given(rank=st.sampled_from([1, 2]), stride=st.integers(1, 3), kernel=st.integers(1, 3), dilation=st.integers(1, 2),
       padding=st.sampled_from(["SAME", "VALID", "pairs"]), size=st.integers(5, 8))
def test_values_and_gradients_are_laxs_bit_for_bit(rank, stride, kernel, dilation, padding, size):
    x, w = normal(0, (2, *([size] * rank), 3)), normal(1, (*([kernel] * rank), 3, 4))
    args = ((stride,) * rank, [(1, 2)] * rank if padding == "pairs" else padding, (dilation,) * rank, SPECS[rank])
    # One program computing both (one compile per example, not two); each side is at its top level.
    both = [jax.value_and_grad(loss(conv, *args), (0, 1)) for conv in (conv_general_dilated,
                                                                        jax.lax.conv_general_dilated)]
    ours, theirs = jax.jit(lambda x, w: tuple(f(x, w) for f in both))(x, w)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=False):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_gradients_in_a_loop_are_the_top_levels_bits():
    x, w = normal(0, (16, 8, 8, 8)), normal(1, (3, 3, 8, 16))
    grads = jax.grad(loss(conv_general_dilated, (1, 1), "SAME", (1, 1), SPECS[2]), (0, 1))
    top = jax.jit(grads)(x, w)
    looped = jax.jit(lambda x, w, n: jax.lax.fori_loop(0, n, lambda _, carry: grads(x, w), top))(x, w, 1)
    for a, b in zip(top, looped, strict=False):
        np.testing.assert_array_equal(a, b)
