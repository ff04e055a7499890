"""Pieces the model families share: a stack of dense layers, pooling by name, config checks.

`dense_layers` is a function, not a Module, so that the layers it creates belong to the calling
module and keep flat names (`dense_0`, `dense_1`, ...) in its parameters and intermediates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax

from jaxdl.errors import InputError, check_range
from jaxdl.models.flat_random import Dense, Dropout

POOLINGS = ("max", "avg", "none")


def frozen_within(frozen_norms: Sequence[str], name: str) -> tuple[str, ...]:
    """The entries of `frozen_norms` ("/"-joined layer paths) under the submodule `name`, relative to it."""
    return tuple(path[len(name) + 1:] for path in frozen_norms if path.startswith(name + "/"))


def dense_layers(module: nn.Module, x: jax.Array, *, sizes: Sequence[int],
                 activation: Callable[[jax.Array], jax.Array], dropout: float, train: bool,
                 dtype: Any = None) -> jax.Array:
    """(batch, d) -> (batch, sizes[-1]): Dense -> activation -> dropout per width in `sizes`, computed
    in `dtype` (None: the inputs' and parameters' dtype).

    Must be called from `module`'s compact method. Layer i is named `dense_<i>`; its output
    (after the activation) is sown into `intermediates` as `dense_<i>_out` (a sown name must
    differ from every submodule name; `<layer>_out` is the convention of every family).
    """
    for i, width in enumerate(sizes):
        x = activation(Dense(width, dtype=dtype, name=f"dense_{i}")(x))
        module.sow("intermediates", f"dense_{i}_out", x)
        if dropout > 0:
            x = Dropout(dropout, deterministic=not train)(x)
    return x


def pool(x: jax.Array, kind: str, size: int | Sequence[int]) -> jax.Array:
    """(batch, *spatial, c) -> (batch, *(n // size), c) by "max" or "avg" over VALID windows, for 1 to 3
    spatial axes; "none" or a window of ones is the identity.

    `size` is one int for every spatial axis, or one per axis.
    """
    window = per_axis(size, x.ndim - 2)
    if kind == "none" or all(s == 1 for s in window):
        return x
    reduce = nn.max_pool if kind == "max" else nn.avg_pool
    return reduce(x, window, strides=window, padding="VALID")


def per_axis(size: int | Sequence[int], rank: int) -> tuple[int, ...]:
    """A kernel, stride or pooling size for `rank` spatial axes: an int repeated, a sequence as it is."""
    return (size,) * rank if isinstance(size, int) else tuple(size)


def spatial_rank(input_shape: tuple[int, ...]) -> int:
    """Spatial axes of an example for a convolution: (length,) and (length, channels) have 1,
    (height, width, channels) 2, (depth, height, width, channels) 3."""
    return max(len(input_shape) - 1, 1)


def check_per_axis(where: str, size, rank: int, meaning: str) -> tuple[int, ...]:
    """A positive int, or a tuple of `rank` positive ints (one per spatial axis), or an InputError."""
    if isinstance(size, (tuple, list)):
        if len(size) != rank:
            raise InputError(where, f"one entry per spatial axis of the {meaning}", got=tuple(size),
                             expected=f"an int or a tuple of {rank} ints")
        for s in size:
            check_range(where, s, low=1, integer=True)
        return tuple(size)
    check_range(where, size, low=1, integer=True)
    return (size,) * rank


def check_sizes(where: str, sizes: Any, *, allow_empty: bool = True) -> tuple[int, ...]:
    """A tuple of positive integers (layer widths, channel counts), or an InputError."""
    if not isinstance(sizes, (tuple, list)):
        raise InputError(where, "wrong type", got=sizes, expected="a tuple of positive integers such as (32, 64)")
    if not sizes and not allow_empty:
        raise InputError(where, "needs at least one entry", got=sizes, expected="a tuple such as (32, 64)")
    for width in sizes:
        check_range(where, width, low=1, integer=True)
    return tuple(sizes)


def check_input_rank(where: str, family: str, input_shape: tuple[int, ...], rank: int, meaning: str, *,
                     hint: str | None = None) -> None:
    """The data's examples must have `rank` dimensions for this family."""
    if len(input_shape) != rank:
        raise InputError(where, f"the {family} model needs examples of shape {meaning}", got=input_shape,
                         expected=f"{rank} dimensions", hint=hint)
