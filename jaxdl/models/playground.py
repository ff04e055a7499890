"""The Neural Network Playground's network: chosen features of a 2-D point, then an MLP.

The input is the point itself, (batch, 2); the features (`jaxdl.models.features`) are computed
inside the model, so a plot over the plane only has to feed it points. The MLP has 0 to 6 hidden
layers of any width (`MAX_HIDDEN_LAYERS`, as in the playground); L1 and L2 regularisation are the
optimizer's `l1` and `weight_decay`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import ml_collections

from jaxdl.data import DataInfo
from jaxdl.errors import InputError
from jaxdl.models import mlp
from jaxdl.models.features import check_features, compute_features

MAX_HIDDEN_LAYERS = 6


class PlaygroundNet(nn.Module):
    """(batch, 2) points -> (batch, num_outputs).

    Hidden-layer outputs are sown into `intermediates` as `mlp/hidden_<i>_out` (see `jaxdl.models.mlp`).
    The features are computed in float32, the MLP in its own `dtype`.
    """

    features: tuple[str, ...]
    mlp: mlp.MLP

    @property
    def dtype(self):
        """The compute dtype (the MLP's)."""
        return self.mlp.dtype

    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        return self.mlp(compute_features(x, self.features), train=train)


def from_config(config: ml_collections.ConfigDict, info: DataInfo) -> PlaygroundNet:
    """From `model.features`, `model.hidden_sizes`, `model.activation` (and `model.dropout`, `model.dtype`)."""
    if tuple(info.input_shape) != (2,):
        raise InputError("config.model.name", "the playground network takes 2-D points", got=info.input_shape,
                         expected="a dataset with inputs of shape (2,), e.g. circle, xor, gaussian, spiral")
    features = check_features(config.features)
    if isinstance(config.hidden_sizes, (tuple, list)) and len(config.hidden_sizes) > MAX_HIDDEN_LAYERS:
        raise InputError("config.model.hidden_sizes", "too many hidden layers", got=tuple(config.hidden_sizes),
                         expected=f"at most {MAX_HIDDEN_LAYERS}")
    return PlaygroundNet(features=features, mlp=mlp.from_config(config, info))
