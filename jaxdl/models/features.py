"""Input features of a 2-D point, as in the Neural Network Playground: x1, x2, x1², x2², x1·x2, sin x1, sin x2."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from jaxdl.errors import InputError, check_choice

# name -> (x1, x2) -> feature, each (batch,)
FEATURES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "x1": lambda x1, x2: x1,
    "x2": lambda x1, x2: x2,
    "x1_squared": lambda x1, x2: jnp.square(x1),
    "x2_squared": lambda x1, x2: jnp.square(x2),
    "x1_times_x2": lambda x1, x2: x1 * x2,
    "sin_x1": lambda x1, x2: jnp.sin(x1),
    "sin_x2": lambda x1, x2: jnp.sin(x2),
}

# How the playground writes them, for plot titles.
DISPLAY_NAMES = {"x1": "x₁", "x2": "x₂", "x1_squared": "x₁²", "x2_squared": "x₂²", "x1_times_x2": "x₁·x₂",
                 "sin_x1": "sin x₁", "sin_x2": "sin x₂"}


def check_features(names: Sequence[str], where: str = "config.model.features") -> tuple[str, ...]:
    """The names, checked: a non-empty tuple of distinct known features."""
    if isinstance(names, str) or not isinstance(names, (tuple, list)) or not names:
        raise InputError(where, "wrong type", got=names, expected="a non-empty tuple such as ('x1','x2')")
    for name in names:
        check_choice(where, name, FEATURES)
    if len(set(names)) != len(names):
        raise InputError(where, "a feature is listed twice", got=tuple(names))
    return tuple(names)


def compute_features(points: jax.Array, names: Sequence[str]) -> jax.Array:
    """(batch, 2) points -> (batch, len(names)) features, in the order of `names`."""
    x1, x2 = points[:, 0], points[:, 1]
    return jnp.stack([FEATURES[name](x1, x2) for name in names], axis=-1)
