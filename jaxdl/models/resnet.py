"""ResNet-style network: a stem convolution, stages of residual blocks, global pooling, a dense head.

The CIFAR-style ResNet of He et al. (2016): 3x3 convolutions throughout, each stage after the
first halves the feature map with a stride-2 block and a 1x1 projection on its shortcut. Meant
for images larger than digits (cifar10), where the plain CNN stops improving with depth.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxdl.data import DataInfo
from jaxdl.errors import check_range
from jaxdl.models import augment
from jaxdl.models.activations import get_activation
from jaxdl.models.cnn import BATCH_NORM_MOMENTUM
from jaxdl.models.conv import Conv
from jaxdl.models.dtypes import compute_dtype
from jaxdl.models.flat_random import Dense, Dropout
from jaxdl.models.layers import check_input_rank, check_sizes, dense_layers, frozen_within


class ResidualBlock(nn.Module):
    """(batch, h, w, c) -> (batch, h / strides, w / strides, channels): act(x + F(x)).

    F is conv3x3(strides) -> norm -> act -> conv3x3 -> norm; the last norm's scale starts at zero,
    so every block starts as the identity. The shortcut is a strided 1x1 convolution (+ norm)
    when the shape changes. The norms named in `frozen_norms` (`norm_0`, `norm_1`,
    `projection_norm`) run in inference mode in training too. Computed in `dtype`.
    """

    channels: int
    strides: int = 1
    batch_norm: bool = True
    activation: str = "relu"
    frozen_norms: tuple[str, ...] = ()
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        act = get_activation(self.activation)
        conv = functools.partial(Conv, self.channels, use_bias=not self.batch_norm, padding="SAME",
                                 dtype=self.dtype)

        def norm(name, **kwargs):
            return nn.BatchNorm(use_running_average=not train or name in self.frozen_norms,
                                momentum=BATCH_NORM_MOMENTUM, dtype=self.dtype, name=name, **kwargs)

        y = conv((3, 3), strides=(self.strides, self.strides), name="conv_0")(x)
        y = act(norm(name="norm_0")(y) if self.batch_norm else y)
        y = conv((3, 3), name="conv_1")(y)
        if self.batch_norm:
            y = norm(name="norm_1", scale_init=nn.initializers.zeros)(y)
        shortcut = x
        if x.shape[-1] != self.channels or self.strides != 1:
            shortcut = conv((1, 1), strides=(self.strides, self.strides), name="projection")(x)
            if self.batch_norm:
                shortcut = norm(name="projection_norm")(shortcut)
        return act(y + shortcut)


class ResNet(nn.Module):
    """(batch, height, width, channels) -> (batch, num_outputs).

    Stage s has `blocks_per_stage` residual blocks of `channels[s]` channels; stages after the
    first start with a stride-2 block. Sown into `intermediates`: the feature maps `stem_out`
    and `block_<s>_<b>_out`, `pooled` (batch, channels[-1]) after global average pooling, and
    `dense_<i>_out`. `random_shift` > 0 moves each training image by up to that many pixels.
    `num_outputs=0` returns the pooled features with no head. The batch norms named in
    `frozen_norms` by path (`stem_norm`, `block_1_0/norm_0`, ...) run in inference mode in training
    too (fine-tuning with frozen layers, `jaxdl.transfer.phases`). The layers compute in `dtype`;
    parameters and batch-norm statistics stay float32, and the head's outputs are float32.
    """

    num_outputs: int
    channels: Sequence[int] = (16, 32, 64)
    blocks_per_stage: int = 2
    batch_norm: bool = True
    dropout: float = 0.0
    dense_sizes: Sequence[int] = ()
    activation: str = "relu"
    random_shift: int = 0
    frozen_norms: tuple[str, ...] = ()
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        act = get_activation(self.activation)
        if train and self.random_shift:
            x = augment.random_shift(x, self.random_shift, self.make_rng("dropout"))
        x = Conv(self.channels[0], (3, 3), padding="SAME", use_bias=not self.batch_norm, dtype=self.dtype,
                    name="stem")(x)
        if self.batch_norm:
            x = nn.BatchNorm(use_running_average=not train or "stem_norm" in self.frozen_norms,
                             momentum=BATCH_NORM_MOMENTUM, dtype=self.dtype, name="stem_norm")(x)
        x = act(x)
        self.sow("intermediates", "stem_out", x)
        for stage, width in enumerate(self.channels):
            for block in range(self.blocks_per_stage):
                strides = 2 if stage > 0 and block == 0 else 1
                name = f"block_{stage}_{block}"
                x = ResidualBlock(width, strides, self.batch_norm, self.activation,
                                  frozen_within(self.frozen_norms, name), dtype=self.dtype, name=name)(x, train=train)
                self.sow("intermediates", f"block_{stage}_{block}_out", x)
        x = jnp.mean(x, axis=(1, 2))
        self.sow("intermediates", "pooled", x)
        if self.dropout > 0:
            x = Dropout(self.dropout, deterministic=not train)(x)
        x = dense_layers(self, x, sizes=self.dense_sizes, activation=act, dropout=self.dropout, train=train,
                         dtype=self.dtype)
        if self.num_outputs == 0:
            return x
        return Dense(self.num_outputs, dtype=self.dtype, name="head")(x).astype(jnp.float32)


def from_config(config: ml_collections.ConfigDict, info: DataInfo) -> ResNet:
    """A ResNet from `model.channels` (per stage), `model.blocks_per_stage`, `model.batch_norm`,
    `model.dropout`, `model.dense_sizes`, `model.activation`, `model.random_shift`, `model.dtype`."""
    check_input_rank("config.data.name", "resnet", info.input_shape, 3, "(height, width, channels)",
                     hint="the resnet is for images only; config.model.name=cnn also takes 1-D signals and 3-D volumes")
    shift = config.get("random_shift", 0)
    check_range("config.model.random_shift", shift, low=0, high=min(info.input_shape[:2]) - 1, integer=True)
    blocks = config.get("blocks_per_stage", 2)
    check_range("config.model.blocks_per_stage", blocks, low=1, integer=True)
    check_range("config.model.dropout", config.dropout, low=0, high=1, high_inclusive=False)
    get_activation(config.activation)
    return ResNet(num_outputs=info.num_outputs,
                  channels=check_sizes("config.model.channels", config.channels, allow_empty=False),
                  blocks_per_stage=blocks, batch_norm=bool(config.batch_norm), dropout=config.dropout,
                  dense_sizes=check_sizes("config.model.dense_sizes", config.dense_sizes),
                  activation=config.activation, random_shift=shift, dtype=compute_dtype(config))
