"""ImageNet-style ResNet-18, -34 and -50 whose parameters map one to one onto torchvision's and timm's.

The layout of He et al. (2016) as torchvision builds it ("v1.5": a bottleneck strides on its 3x3
convolution): a 7x7 stride-2 stem convolution, batch norm, ReLU and a 3x3 stride-2 max pool, four
stages of 64, 128, 256 and 512 channels (x4 out of a bottleneck), a 1x1 projection (+ norm) on
the shortcut of a stage's first block when the shape changes, global average pooling, a dense head.
`jaxdl.transfer.imported` reads torchvision and timm weight files into it.

Names, Flax path <- PyTorch state-dict name (`*` is `weight`/`bias`):
  conv1/kernel                       <- conv1.weight (OIHW -> HWIO)
  bn1/{scale,bias}, batch_stats bn1/{mean,var} <- bn1.{weight,bias,running_mean,running_var}
  layer{s}_{b}/conv{k}, bn{k}        <- layer{s}.{b}.conv{k}, .bn{k} (k = 1, 2; 3 in a bottleneck)
  layer{s}_{b}/downsample_conv, downsample_bn <- layer{s}.{b}.downsample.0, .downsample.1
  head/{kernel,bias}                 <- fc.{weight,bias} (weight transposed)

PyTorch pads symmetrically (7x7 stride 2 by 3, 3x3 by 1, the max pool by 1 with -inf); Flax's
"SAME" pads a stride-2 layer on an even input by one less before than after, which shifts every
window by a pixel. So every padding here is explicit and symmetric, as PyTorch's. Batch norm:
epsilon 1e-5 and Flax momentum 0.9 (PyTorch's momentum=0.1); PyTorch updates its running variance
with the unbiased batch variance and Flax with the biased one, a difference of n/(n-1) in training only.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxdl.data import DataInfo
from jaxdl.errors import InputError, check_choice
from jaxdl.models.conv import Conv
from jaxdl.models.dtypes import compute_dtype
from jaxdl.models.flat_random import Dense
from jaxdl.models.layers import check_input_rank, frozen_within

# name -> (block kind, blocks per stage)
ARCHITECTURES = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet34": ("basic", (3, 4, 6, 3)),
                 "resnet50": ("bottleneck", (3, 4, 6, 3))}
STAGE_CHANNELS = (64, 128, 256, 512)
EXPANSION = {"basic": 1, "bottleneck": 4}
# Flax keeps `momentum` of the running average; PyTorch's momentum=0.1 is the share of the new batch.
MOMENTUM = 0.9
EPSILON = 1e-5
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZATIONS = ("imagenet", "none")
# torchvision's initialisation of convolutions (kaiming_normal_, fan_out, relu).
CONV_INIT = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def padded_conv(features: int, size: int, strides: int, name: str, dtype: Any = jnp.float32) -> nn.Module:
    """A bias-free convolution padded by size // 2 on every side, as PyTorch's, computing in `dtype`."""
    pad = size // 2
    return Conv(features, (size, size), strides=(strides, strides), padding=((pad, pad), (pad, pad)),
                   use_bias=False, kernel_init=CONV_INIT, dtype=dtype, name=name)


class Block(nn.Module):
    """(batch, h, w, c) -> (batch, h / strides, w / strides, channels * expansion): relu(x + F(x)).

    basic: F = conv1 3x3(strides) -> bn1 -> relu -> conv2 3x3 -> bn2. bottleneck: F = conv1 1x1
    -> bn1 -> relu -> conv2 3x3(strides) -> bn2 -> relu -> conv3 1x1 (4 x channels) -> bn3. The
    shortcut is `downsample_conv` 1x1(strides) -> `downsample_bn` when the shape changes. The last
    norm's scale starts at zero (each block starts as the identity, as timm does). The norms named in
    `frozen_norms` run in inference mode in training too. Computed in `dtype`.
    """

    channels: int
    strides: int = 1
    kind: str = "basic"
    frozen_norms: tuple[str, ...] = ()
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        def norm(name, **kwargs):
            return nn.BatchNorm(use_running_average=not train or name in self.frozen_norms, momentum=MOMENTUM,
                                epsilon=EPSILON, dtype=self.dtype, name=name, **kwargs)

        out = self.channels * EXPANSION[self.kind]
        if self.kind == "basic":
            convs = [(self.channels, 3, self.strides), (out, 3, 1)]
        else:
            convs = [(self.channels, 1, 1), (self.channels, 3, self.strides), (out, 1, 1)]
        y = x
        for k, (features, size, strides) in enumerate(convs, 1):
            y = padded_conv(features, size, strides, f"conv{k}", self.dtype)(y)
            last = k == len(convs)
            y = norm(f"bn{k}", **({"scale_init": nn.initializers.zeros} if last else {}))(y)
            if not last:
                y = nn.relu(y)
        shortcut = x
        if x.shape[-1] != out or self.strides != 1:
            shortcut = norm("downsample_bn")(padded_conv(out, 1, self.strides, "downsample_conv", self.dtype)(x))
        return nn.relu(y + shortcut)


class ResNetImageNet(nn.Module):
    """(batch, height, width, channels) images in [0, 1] -> (batch, num_outputs).

    `architecture` is resnet18, resnet34 or resnet50 (module doc: layout and parameter names).
    `input_normalization="imagenet"` maps the inputs to (x - mean) / std with ImageNet's mean and
    std per channel, as torchvision's and timm's weights expect (a 1-channel input is repeated to 3
    channels first), so the model takes the loader's [0, 1] images as they are; "none" passes them
    on unchanged. Sown into `intermediates`: `stem_out` (after the stem's ReLU, before the pool),
    `layer<s>_out` after stage s = 1..4, and `pooled` (batch, 512 or 2048). `num_outputs=0`
    returns the pooled features with no head. The batch norms named in `frozen_norms` by path
    (`bn1`, `layer1_0/bn2`, `layer2_0/downsample_bn`, ...) run in inference mode in training too
    (fine-tuning with frozen layers, `jaxdl.transfer.phases`). The layers compute in `dtype`;
    parameters and batch-norm statistics stay float32, and the head's outputs are float32.
    """

    num_outputs: int
    architecture: str = "resnet18"
    input_normalization: str = "none"
    frozen_norms: tuple[str, ...] = ()
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        kind, blocks = ARCHITECTURES[self.architecture]
        if self.input_normalization == "imagenet":
            if x.shape[-1] == 1:
                x = jnp.repeat(x, 3, axis=-1)
            per_channel = (1,) * (x.ndim - 1) + (3,)  # explicit broadcasting (rank promotion may be off)
            x = (x - jnp.reshape(jnp.asarray(IMAGENET_MEAN, x.dtype), per_channel)) \
                / jnp.reshape(jnp.asarray(IMAGENET_STD, x.dtype), per_channel)
        x = padded_conv(64, 7, 2, "conv1", self.dtype)(x)
        x = nn.BatchNorm(use_running_average=not train or "bn1" in self.frozen_norms, momentum=MOMENTUM,
                         epsilon=EPSILON, dtype=self.dtype, name="bn1")(x)
        x = nn.relu(x)
        self.sow("intermediates", "stem_out", x)
        # Flax's max_pool pads with -inf (reduce_window's initial value), as PyTorch's MaxPool2d does.
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        for stage, (channels, count) in enumerate(zip(STAGE_CHANNELS, blocks, strict=True), 1):
            for block in range(count):
                name = f"layer{stage}_{block}"
                strides = 2 if stage > 1 and block == 0 else 1
                x = Block(channels, strides, kind, frozen_within(self.frozen_norms, name), self.dtype,
                          name=name)(x, train=train)
            self.sow("intermediates", f"layer{stage}_out", x)
        x = jnp.mean(x, axis=(1, 2))
        self.sow("intermediates", "pooled", x)
        if self.num_outputs == 0:
            return x
        return Dense(self.num_outputs, dtype=self.dtype, name="head")(x).astype(jnp.float32)


def from_config(config: ml_collections.ConfigDict, info: DataInfo) -> ResNetImageNet:
    """A ResNetImageNet from `model.name` (resnet18 | resnet34 | resnet50) and
    `model.input_normalization` ("imagenet", the default, or "none"), computing in `model.dtype`."""
    check_input_rank("config.data.name", config.name, info.input_shape, 3, "(height, width, channels)",
                     hint="the ImageNet-style resnets are for images only")
    normalization = check_choice("config.model.input_normalization", config.get("input_normalization", "imagenet"),
                                 NORMALIZATIONS)
    if normalization == "imagenet" and info.input_shape[-1] not in (1, 3):
        raise InputError("config.model.input_normalization", "ImageNet normalisation needs RGB or grayscale images",
                         got=f"images of {info.input_shape[-1]} channels", expected="1 or 3 channels",
                         hint="set config.model.input_normalization=none")
    return ResNetImageNet(num_outputs=info.num_outputs, architecture=check_choice("config.model.name", config.name,
                                                                                  ARCHITECTURES),
                          input_normalization=normalization, dtype=compute_dtype(config))

