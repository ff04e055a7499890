"""Convolutional network: a stack of convolution blocks, dense layers and a dense head."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import ml_collections

from jaxdl.data import DataInfo
from jaxdl.errors import InputError, check_choice, check_range
from jaxdl.models import augment
from jaxdl.models.activations import get_activation
from jaxdl.models.layers import POOLINGS, check_input_rank, check_sizes, dense_layers, pool

# Running averages of batch-norm statistics: 0.9 rather than Flax's 0.99 because the small
# offline sets give only a few dozen steps per epoch.
BATCH_NORM_MOMENTUM = 0.9


class CNN(nn.Module):
    """(batch, height, width, channels) -> (batch, num_outputs).

    Block i: Conv(channels[i], kernel_size, strides, SAME padding) -> BatchNorm (if `batch_norm`)
    -> activation -> pooling (`pooling` over `pool_size` windows) -> dropout. The feature map after
    the activation, (batch, h_i, w_i, channels[i]), is sown into `intermediates` as
    `conv_<i>_out`. The last map is flattened and goes through dense layers `dense_<i>` (their
    outputs sown as `dense_<i>_out`) and the dense `head`. With `random_shift` > 0, training moves
    each image by up to that many pixels (augmentation; evaluation sees the images as they are).
    The batch norms named in `frozen_norms` (e.g. `("norm_0",)`) run in inference mode in
    training too: they normalise with their stored statistics and leave them unchanged, while
    gradients still flow through them (fine-tuning with frozen layers, `jaxdl.transfer.phases`).
    With `num_outputs=0` there is no head and the module returns the features (batch, d): that is
    how the hybrid model uses it as a frame encoder.
    """

    num_outputs: int
    channels: Sequence[int] = (32, 64)
    kernel_size: int = 3
    strides: int = 1
    pooling: str = "max"
    pool_size: int = 2
    batch_norm: bool = False
    dropout: float = 0.0
    dense_sizes: Sequence[int] = (128,)
    activation: str = "relu"
    random_shift: int = 0
    frozen_norms: tuple[str, ...] = ()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        act = get_activation(self.activation)
        if train and self.random_shift:
            x = augment.random_shift(x, self.random_shift, self.make_rng("dropout"))
        for i, width in enumerate(self.channels):
            x = nn.Conv(width, (self.kernel_size, self.kernel_size), strides=(self.strides, self.strides),
                        padding="SAME", use_bias=not self.batch_norm, name=f"conv_{i}")(x)
            if self.batch_norm:
                name = f"norm_{i}"
                x = nn.BatchNorm(use_running_average=not train or name in self.frozen_norms,
                                 momentum=BATCH_NORM_MOMENTUM, name=name)(x)
            x = act(x)
            self.sow("intermediates", f"conv_{i}_out", x)
            x = pool(x, self.pooling, self.pool_size)
            if self.dropout > 0:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = x.reshape((x.shape[0], -1))
        x = dense_layers(self, x, sizes=self.dense_sizes, activation=act, dropout=self.dropout, train=train)
        if self.num_outputs == 0:
            return x
        return nn.Dense(self.num_outputs, name="head")(x)


def feature_map_shape(image_shape: tuple[int, ...], num_blocks: int, strides: int, pool_size: int,
                      pooling: str) -> tuple[int, int]:
    """(height, width) after `num_blocks` blocks: SAME convolutions round up, VALID pooling rounds down."""
    height, width = image_shape[:2]
    for _ in range(num_blocks):
        height, width = -(-height // strides), -(-width // strides)
        if pooling != "none":
            height, width = height // pool_size, width // pool_size
    return height, width


def options(config: ml_collections.ConfigDict, image_shape: tuple[int, ...], where: str = "config.model") -> dict:
    """The CNN's constructor arguments (all but `num_outputs`) from a config section, checked on the host.

    Keys: `channels`, `kernel_size`, `strides`, `pooling` (max | avg | none), `pool_size`,
    `batch_norm`, `dropout`, `dense_sizes`, `activation`, and optionally `random_shift` (pixels
    of random translation in training; 0 = off).
    """
    check_input_rank("config.data.name", "cnn", image_shape, 3, "(height, width, channels)")
    channels = check_sizes(f"{where}.channels", config.channels, allow_empty=False)
    check_range(f"{where}.kernel_size", config.kernel_size, low=1, integer=True)
    check_range(f"{where}.strides", config.strides, low=1, integer=True)
    check_choice(f"{where}.pooling", config.pooling, POOLINGS)
    check_range(f"{where}.pool_size", config.pool_size, low=1, integer=True)
    check_range(f"{where}.dropout", config.dropout, low=0, high=1, high_inclusive=False)
    get_activation(config.activation, f"{where}.activation")
    shift = config.get("random_shift", 0)
    check_range(f"{where}.random_shift", shift, low=0, high=min(image_shape[:2]) - 1, integer=True)
    final = feature_map_shape(image_shape, len(channels), config.strides, config.pool_size, config.pooling)
    if min(final) < 1:
        raise InputError(f"{where}.channels", f"{len(channels)} blocks shrink {image_shape[0]}x{image_shape[1]} "
                         "images to nothing", got=channels,
                         expected=f"fewer blocks, or a smaller {where}.pool_size or {where}.strides")
    return {"channels": channels, "kernel_size": config.kernel_size, "strides": config.strides,
            "pooling": config.pooling, "pool_size": config.pool_size, "batch_norm": bool(config.batch_norm),
            "dropout": config.dropout, "dense_sizes": check_sizes(f"{where}.dense_sizes", config.dense_sizes),
            "activation": config.activation, "random_shift": shift}


def from_config(config: ml_collections.ConfigDict, info: DataInfo) -> CNN:
    """A CNN for images of `info.input_shape` with `info.num_outputs` outputs."""
    return CNN(num_outputs=info.num_outputs, **options(config, info.input_shape))
