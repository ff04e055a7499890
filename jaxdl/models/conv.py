"""Convolutions whose gradients XLA:CPU runs as fast, and to the same bits, inside a loop as at top level.

XLA:CPU hands a convolution to its fast Eigen kernel only when the convolution is in canonical form
(input NHWC, kernel HWIO, output NHWC). The gradients JAX derives for a convolution are not (the
kernel's gradient treats the batch as features, the input's gradient swaps the kernel's in/out
features), and XLA rewrites them into canonical form only in the top-level computation of a
program, never inside a loop body (jax-ml/jax#12868). So the same training step, run inside a
`lax.scan`, computed its backward convolutions with a naive loop nest: about 10x slower for the
digits CNN, and with a different summation order, i.e. different bits from the step jitted alone.

`conv_general_dilated` is `lax.conv_general_dilated` with a custom gradient that is already in
canonical form (the transposes written out), so XLA has nothing to rewrite: a step computes the
same bits whether it runs at top level or in a scan of any length, as fast (measured in
docs/models.md). At top level the bits are also those of `lax.conv_general_dilated`'s own gradient
(XLA's rewrite there is the same transposes; tests/models/test_conv.py). Convolutions with
feature groups, input dilation or a layout other than channels-last fall back to the lax function.
Forward-mode differentiation (`jax.jvp`) of this function is not defined (a custom VJP).

`Conv` is `flax.linen.Conv` computing with it (its kernel initialised by `flat_random.lecun_normal`, Flax's
default to the same bits); every model family uses it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxdl.models.flat_random import lecun_normal


def channels_last(rank: int) -> lax.ConvDimensionNumbers:
    """(batch, *spatial, features) inputs and outputs, (*spatial, in, out) kernels, for `rank` spatial axes."""
    activations = (0, rank + 1, *range(1, rank + 1))
    return lax.ConvDimensionNumbers(lhs_spec=activations, rhs_spec=(rank + 1, rank, *range(rank)),
                                    out_spec=activations)


def canonical_conv(x: jax.Array, w: jax.Array, strides: Sequence[int], pads: Sequence[tuple[int, int]],
                   lhs_dilation: Sequence[int] | None = None, rhs_dilation: Sequence[int] | None = None) -> jax.Array:
    """A channels-last convolution, as XLA:CPU runs it with Eigen."""
    return lax.conv_general_dilated(x, w, tuple(strides), tuple(pads), lhs_dilation=lhs_dilation,
                                    rhs_dilation=rhs_dilation, dimension_numbers=channels_last(x.ndim - 2))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv_with_canonical_grads(x, w, strides, pads, dilation):
    return canonical_conv(x, w, strides, pads, rhs_dilation=dilation)


def _forward(x, w, strides, pads, dilation):
    return canonical_conv(x, w, strides, pads, rhs_dilation=dilation), (x, w)


def _backward(strides, pads, dilation, residuals, g):
    """The gradients JAX's own transpose rules compute, with the transposes written out."""
    x, w = residuals
    n = x.ndim - 2
    spatial = range(n)
    kernel = [(k - 1) * d + 1 for k, d in zip(w.shape[:n], dilation, strict=False)]  # the dilated window
    # The output, dilated by the strides.
    strided = [(o - 1) * s + 1 for o, s in zip(g.shape[1:-1], strides, strict=False)]
    # Input: the output's gradient, dilated by the strides, convolved with the reversed kernel (in/out swapped).
    flipped = jnp.swapaxes(jnp.flip(w, tuple(spatial)), n, n + 1)
    input_pads = [(k - lo - 1, size + lo - o)
                  for k, (lo, _), size, o in zip(kernel, pads, x.shape[1:-1], strided, strict=False)]
    dx = canonical_conv(g, flipped, (1,) * n, input_pads, lhs_dilation=strides, rhs_dilation=dilation)
    # Kernel: the input's features as the batch, its batch as the features; the output's gradient as the kernel.
    kernel_pads = [(lo, o - size + k - lo - 1)
                   for k, (lo, _), size, o in zip(kernel, pads, x.shape[1:-1], strided, strict=False)]
    dw = canonical_conv(jnp.moveaxis(x, (0, n + 1), (n + 1, 0)), jnp.moveaxis(g, 0, n), dilation, kernel_pads,
                        rhs_dilation=strides)  # (in, *window, out)
    return dx.astype(x.dtype), jnp.moveaxis(dw, 0, n).astype(w.dtype)


conv_with_canonical_grads.defvjp(_forward, _backward)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
                         preferred_element_type=None):
    """`lax.conv_general_dilated` (same arguments and result) with canonical-form gradients (module doc)."""
    n = lhs.ndim - 2
    dilation = tuple(rhs_dilation or (1,) * n)
    spec = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    if (spec != channels_last(n) or any(d != 1 for d in (lhs_dilation or ())) or feature_group_count != 1
            or batch_group_count != 1 or precision is not None or preferred_element_type is not None):
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                        dimension_numbers, feature_group_count, batch_group_count, precision,
                                        preferred_element_type)
    if isinstance(padding, str):
        window = [(k - 1) * d + 1 for k, d in zip(rhs.shape[:n], dilation, strict=False)]
        padding = lax.padtype_to_pads(lhs.shape[1:-1], window, window_strides, padding)
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    return conv_with_canonical_grads(lhs, rhs, tuple(window_strides), pads, dilation)


# Flax's default kernel initialiser, drawn over one flat axis: the same bits, compiled faster (flat_random).
Conv = functools.partial(nn.Conv, conv_general_dilated=conv_general_dilated, kernel_init=lecun_normal())
