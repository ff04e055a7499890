"""Convolutional network: a stack of convolution blocks, dense layers and a dense head.

The number of spatial axes comes from the input: 1-D signals (batch, length, channels) (a plain
(batch, length) is read as one channel), 2-D images (batch, height, width, channels) and 3-D
volumes (batch, depth, height, width, channels). Kernel, stride and pooling sizes follow: an int
k means (k,), (k, k) or (k, k, k); a tuple gives one size per spatial axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxdl.data import DataInfo
from jaxdl.errors import InputError, check_choice, check_range
from jaxdl.models import augment
from jaxdl.models.activations import get_activation
from jaxdl.models.conv import Conv
from jaxdl.models.dtypes import compute_dtype
from jaxdl.models.flat_random import Dense, Dropout
from jaxdl.models.layers import POOLINGS, check_per_axis, check_sizes, dense_layers, per_axis, pool, spatial_rank

# Running averages of batch-norm statistics: 0.9 rather than Flax's 0.99 because the small
# offline sets give only a few dozen steps per epoch.
BATCH_NORM_MOMENTUM = 0.9


class CNN(nn.Module):
    """(batch, *spatial, channels) -> (batch, num_outputs), for 1 to 3 spatial axes (see the module doc);
    (batch, length) is read as (batch, length, 1).

    Block i: Conv(channels[i], kernel_size, strides, SAME padding) -> BatchNorm (if `batch_norm`)
    -> activation -> pooling (`pooling` over `pool_size` windows) -> dropout. The feature map after
    the activation, (batch, *spatial_i, channels[i]) (for images (batch, h_i, w_i, channels[i])), is
    sown into `intermediates` as `conv_<i>_out`. The last map is flattened and goes through dense
    layers `dense_<i>` (their outputs sown as `dense_<i>_out`) and the dense `head`. With
    `random_shift` > 0, training moves each example by up to that many steps (pixels) along every
    spatial axis (augmentation; evaluation sees the examples as they are).
    The batch norms named in `frozen_norms` (e.g. `("norm_0",)`) run in inference mode in
    training too: they normalise with their stored statistics and leave them unchanged, while
    gradients still flow through them (fine-tuning with frozen layers, `jaxdl.transfer.phases`).
    With `num_outputs=0` there is no head and the module returns the features (batch, d): that is
    how the hybrid model uses it as a frame encoder (in `dtype`). The layers compute in `dtype`;
    parameters and batch-norm statistics stay float32, and the head's outputs are float32.
    """

    num_outputs: int
    channels: Sequence[int] = (32, 64)
    kernel_size: int | tuple[int, ...] = 3
    strides: int | tuple[int, ...] = 1
    pooling: str = "max"
    pool_size: int | tuple[int, ...] = 2
    batch_norm: bool = False
    dropout: float = 0.0
    dense_sizes: Sequence[int] = (128,)
    activation: str = "relu"
    random_shift: int = 0
    frozen_norms: tuple[str, ...] = ()
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        act = get_activation(self.activation)
        if x.ndim == 2:
            x = x[..., None]
        rank = x.ndim - 2
        if train and self.random_shift:
            x = augment.random_shift(x, self.random_shift, self.make_rng("dropout"))
        for i, width in enumerate(self.channels):
            x = Conv(width, per_axis(self.kernel_size, rank), strides=per_axis(self.strides, rank),
                        padding="SAME", use_bias=not self.batch_norm, dtype=self.dtype, name=f"conv_{i}")(x)
            if self.batch_norm:
                name = f"norm_{i}"
                x = nn.BatchNorm(use_running_average=not train or name in self.frozen_norms,
                                 momentum=BATCH_NORM_MOMENTUM, dtype=self.dtype, name=name)(x)
            x = act(x)
            self.sow("intermediates", f"conv_{i}_out", x)
            x = pool(x, self.pooling, self.pool_size)
            if self.dropout > 0:
                x = Dropout(self.dropout, deterministic=not train)(x)
        x = x.reshape((x.shape[0], -1))
        x = dense_layers(self, x, sizes=self.dense_sizes, activation=act, dropout=self.dropout, train=train,
                         dtype=self.dtype)
        if self.num_outputs == 0:
            return x
        return Dense(self.num_outputs, dtype=self.dtype, name="head")(x).astype(jnp.float32)


def feature_map_shape(input_shape: tuple[int, ...], num_blocks: int, strides: int | tuple[int, ...],
                      pool_size: int | tuple[int, ...], pooling: str) -> tuple[int, ...]:
    """The spatial sizes after `num_blocks` blocks, e.g. (height, width): SAME convolutions round up,
    VALID pooling rounds down. `input_shape` is one example's, with or without its channel axis for
    a 1-D signal."""
    rank = spatial_rank(input_shape)
    sizes = tuple(input_shape[:rank])
    for _ in range(num_blocks):
        sizes = tuple(-(-n // s) for n, s in zip(sizes, per_axis(strides, rank), strict=True))
        if pooling != "none":
            sizes = tuple(n // p for n, p in zip(sizes, per_axis(pool_size, rank), strict=True))
    return sizes


SHAPES = "(length,), (length, channels), (height, width, channels) or (depth, height, width, channels)"
KINDS = {1: "signal", 2: "image", 3: "volume"}


def options(config: ml_collections.ConfigDict, input_shape: tuple[int, ...], where: str = "config.model") -> dict:
    """The CNN's constructor arguments (all but `num_outputs`) from a config section, checked on the host.

    Keys: `channels`, `kernel_size`, `strides`, `pooling` (max | avg | none), `pool_size`,
    `batch_norm`, `dropout`, `dense_sizes`, `activation`, and optionally `random_shift` (steps
    of random translation in training along each spatial axis; 0 = off). `kernel_size`, `strides`
    and `pool_size` are an int, or a tuple with one entry per spatial axis of `input_shape`.
    """
    if not 1 <= len(input_shape) <= 4:
        raise InputError("config.data.name", f"the cnn model needs examples of shape {SHAPES}", got=input_shape,
                         expected="1 to 4 dimensions")
    rank = spatial_rank(input_shape)
    kind = f"{rank}-D {KINDS[rank]}"
    channels = check_sizes(f"{where}.channels", config.channels, allow_empty=False)
    kernel_size = checked_size(f"{where}.kernel_size", config.kernel_size, rank, kind)
    strides = checked_size(f"{where}.strides", config.strides, rank, kind)
    check_choice(f"{where}.pooling", config.pooling, POOLINGS)
    pool_size = checked_size(f"{where}.pool_size", config.pool_size, rank, kind)
    check_range(f"{where}.dropout", config.dropout, low=0, high=1, high_inclusive=False)
    get_activation(config.activation, f"{where}.activation")
    shift = config.get("random_shift", 0)
    check_range(f"{where}.random_shift", shift, low=0, high=min(input_shape[:rank]) - 1, integer=True)
    final = feature_map_shape(input_shape, len(channels), strides, pool_size, config.pooling)
    if min(final) < 1:
        size = f"signals of length {input_shape[0]}" if rank == 1 else \
            "x".join(map(str, input_shape[:rank])) + f" {KINDS[rank]}s"
        raise InputError(f"{where}.channels", f"{len(channels)} blocks shrink {size} to nothing",
                         got=channels, expected=f"fewer blocks, or a smaller {where}.pool_size or {where}.strides")
    return {"channels": channels, "kernel_size": kernel_size, "strides": strides,
            "pooling": config.pooling, "pool_size": pool_size, "batch_norm": bool(config.batch_norm),
            "dropout": config.dropout, "dense_sizes": check_sizes(f"{where}.dense_sizes", config.dense_sizes),
            "activation": config.activation, "random_shift": shift}


def checked_size(where: str, size, rank: int, kind: str) -> int | tuple[int, ...]:
    """A size as the config gives it (an int stays an int, so 2-D models keep their exact fields),
    checked against the data's `rank` spatial axes."""
    check_per_axis(where, size, rank, kind)
    return size if isinstance(size, int) else tuple(size)


def from_config(config: ml_collections.ConfigDict, info: DataInfo) -> CNN:
    """A CNN for signals, images or volumes of `info.input_shape` with `info.num_outputs` outputs,
    computing in `model.dtype`."""
    return CNN(num_outputs=info.num_outputs, **options(config, info.input_shape), dtype=compute_dtype(config))
