"""Activation functions by name, so configs can say `model.activation = "gelu"`."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax

from jaxdl.errors import check_choice

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "tanh": nn.tanh,
    "sigmoid": nn.sigmoid,
    "gelu": nn.gelu,
    "elu": nn.elu,
    "selu": nn.selu,
    "silu": nn.silu,
    "softplus": nn.softplus,
    "leaky_relu": nn.leaky_relu,
    "linear": lambda x: x,
}


def get_activation(name: str, where: str = "config.model.activation") -> Callable[[jax.Array], jax.Array]:
    """The activation called `name`; an InputError with a suggestion for an unknown name."""
    return ACTIVATIONS[check_choice(where, name, ACTIVATIONS)]
