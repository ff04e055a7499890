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

POOLINGS = ("max", "avg", "none")


def frozen_within(frozen_norms: Sequence[str], name: str) -> tuple[str, ...]:
    """The entries of `frozen_norms` ("/"-joined layer paths) under the submodule `name`, relative to it."""
    return tuple(path[len(name) + 1:] for path in frozen_norms if path.startswith(name + "/"))


def dense_layers(module: nn.Module, x: jax.Array, *, sizes: Sequence[int],
                 activation: Callable[[jax.Array], jax.Array], dropout: float, train: bool) -> jax.Array:
    """(batch, d) -> (batch, sizes[-1]): Dense -> activation -> dropout per width in `sizes`.

    Must be called from `module`'s compact method. Layer i is named `dense_<i>`; its output
    (after the activation) is sown into `intermediates` as `dense_<i>_out` (a sown name must
    differ from every submodule name; `<layer>_out` is the convention of every family).
    """
    for i, width in enumerate(sizes):
        x = activation(nn.Dense(width, name=f"dense_{i}")(x))
        module.sow("intermediates", f"dense_{i}_out", x)
        if dropout > 0:
            x = nn.Dropout(dropout, deterministic=not train)(x)
    return x


def pool(x: jax.Array, kind: str, size: int) -> jax.Array:
    """(batch, h, w, c) -> (batch, h // size, w // size, c) by "max" or "avg"; "none" or size 1 is the identity."""
    if kind == "none" or size == 1:
        return x
    reduce = nn.max_pool if kind == "max" else nn.avg_pool
    return reduce(x, (size, size), strides=(size, size), padding="VALID")


def check_sizes(where: str, sizes: Any, *, allow_empty: bool = True) -> tuple[int, ...]:
    """A tuple of positive integers (layer widths, channel counts), or an InputError."""
    if not isinstance(sizes, (tuple, list)):
        raise InputError(where, "wrong type", got=sizes, expected="a tuple of positive integers such as (32, 64)")
    if not sizes and not allow_empty:
        raise InputError(where, "needs at least one entry", got=sizes, expected="a tuple such as (32, 64)")
    for width in sizes:
        check_range(where, width, low=1, integer=True)
    return tuple(sizes)


def check_input_rank(where: str, family: str, input_shape: tuple[int, ...], rank: int, meaning: str) -> None:
    """The data's examples must have `rank` dimensions for this family."""
    if len(input_shape) != rank:
        raise InputError(where, f"the {family} model needs examples of shape {meaning}", got=input_shape,
                         expected=f"{rank} dimensions")
