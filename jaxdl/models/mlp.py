"""Multi-layer perceptron: flatten, any number of dense hidden layers, a dense head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxdl.data import DataInfo
from jaxdl.errors import InputError, check_range
from jaxdl.models.activations import get_activation
from jaxdl.models.dtypes import compute_dtype
from jaxdl.models.flat_random import Dense, Dropout


class MLP(nn.Module):
    """(batch, *input_shape) -> (batch, num_outputs).

    With `hidden_sizes=()` this is softmax (or linear) regression. Each hidden layer's output is
    sown into the `intermediates` collection as `hidden_<i>_out`, so activations can be inspected
    without a second model. The layers compute in `dtype` (parameters stay float32); the outputs
    are float32 (see `jaxdl.models.dtypes`).
    """

    num_outputs: int
    hidden_sizes: Sequence[int] = (512, 512)
    activation: str = "relu"
    dropout: float = 0.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        act = get_activation(self.activation)
        x = x.reshape((x.shape[0], -1))
        for i, width in enumerate(self.hidden_sizes):
            x = act(Dense(width, dtype=self.dtype, name=f"hidden_{i}")(x))
            self.sow("intermediates", f"hidden_{i}_out", x)
            if self.dropout > 0:
                x = Dropout(self.dropout, deterministic=not train)(x)
        return Dense(self.num_outputs, dtype=self.dtype, name="head")(x).astype(jnp.float32)


def from_config(config: ml_collections.ConfigDict, info: DataInfo) -> MLP:
    """MLP from `model.hidden_sizes`, `model.activation`, `model.dropout` and `model.dtype`."""
    sizes = config.hidden_sizes
    if not isinstance(sizes, (tuple, list)):
        raise InputError("config.model.hidden_sizes", "wrong type", got=sizes, expected="a tuple of widths")
    for width in sizes:
        check_range("config.model.hidden_sizes", width, low=1, integer=True)
    get_activation(config.activation)
    check_range("config.model.dropout", config.get("dropout", 0.0), low=0, high=1, high_inclusive=False)
    return MLP(num_outputs=info.num_outputs, hidden_sizes=tuple(sizes), activation=config.activation,
               dropout=config.get("dropout", 0.0), dtype=compute_dtype(config))
