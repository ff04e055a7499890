"""The playground's network as one padded, masked shape: every architecture runs in ONE compiled program.

A person adds and removes layers and neurons, switches features and activations many times a
minute. Compiling a program per shape would stall the page for a second at every click, so the
network always has the largest shape the page allows, `MAX_LAYERS` hidden layers of `MAX_WIDTH`
neurons over `MAX_WIDTH` input slots (the 7 features and one always-off slot), and the chosen
architecture is data: masks that switch features, neurons and layers off. A switched-off neuron
outputs 0, a layer beyond `depth` passes its input through, and every parameter outside the
masks gets no update, so it stays 0 and the outputs are those of the unpadded network (the
tests compare them with Flax's `PlaygroundNet`). The activation, learning rate, regularisation
and batch size are arguments too, so one program serves every setting of the page.

Shapes (one member; `jax.vmap` stacks members for "compare"):
  params: hidden_kernel (L, W, W), hidden_bias (L, W), out_kernel (W, 2), out_bias (2,)
  Arch: feature_mask (W,), neuron_mask (L, W), depth (), output_mask (2,)
with L = MAX_LAYERS, W = MAX_WIDTH. Classification uses both outputs as logits (negative,
positive); regression uses output 0 alone.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.models.features import FEATURES

MAX_LAYERS = 6
MAX_WIDTH = 8
FEATURE_NAMES = tuple(FEATURES)  # x1, x2, x1_squared, x2_squared, x1_times_x2, sin_x1, sin_x2
ACTIVATION_NAMES = ("relu", "tanh", "sigmoid", "linear")
OUTPUTS = 2


class Arch(NamedTuple):
    """The architecture as masks (float32 1 / 0) and a depth; see the module docstring for shapes."""

    feature_mask: jax.Array
    neuron_mask: jax.Array
    depth: jax.Array
    output_mask: jax.Array


def make_arch(features: tuple[str, ...], hidden: tuple[int, ...], regression: bool) -> Arch:
    """Masks of the network with input `features` (names of FEATURE_NAMES) and `hidden` widths (numpy)."""
    feature_mask = np.zeros(MAX_WIDTH, np.float32)
    feature_mask[[FEATURE_NAMES.index(name) for name in features]] = 1.0
    neuron_mask = np.zeros((MAX_LAYERS, MAX_WIDTH), np.float32)
    for layer, width in enumerate(hidden):
        neuron_mask[layer, :width] = 1.0
    output_mask = np.array([1.0, 0.0] if regression else [1.0, 1.0], np.float32)
    return Arch(feature_mask, neuron_mask, np.int32(len(hidden)), output_mask)


def features_of(points: jax.Array) -> jax.Array:
    """(B, 2) points -> (B, W) all features, the last slot 0."""
    x1, x2 = points[:, 0], points[:, 1]
    values = [FEATURES[name](x1, x2) for name in FEATURE_NAMES]
    return jnp.stack(values + [jnp.zeros_like(x1)] * (MAX_WIDTH - len(values)), axis=-1)


def activate(z: jax.Array, activation: jax.Array) -> jax.Array:
    """z through activation number `activation` (an index of ACTIVATION_NAMES, traced)."""
    weight = jax.nn.one_hot(activation, len(ACTIVATION_NAMES), dtype=z.dtype)  # a blend, not a gather: quick to compile
    return weight[0] * jax.nn.relu(z) + weight[1] * jnp.tanh(z) + weight[2] * jax.nn.sigmoid(z) + weight[3] * z


def param_masks(arch: Arch) -> dict[str, jax.Array]:
    """1 where a parameter exists in the chosen architecture, 0 elsewhere (shapes of the params)."""
    inputs = jnp.concatenate([arch.feature_mask[None], arch.neuron_mask[:-1]])  # (L, W): what layer l reads
    hidden_kernel = inputs[:, :, None] * arch.neuron_mask[:, None, :]
    last = jnp.where(arch.depth > 0, arch.neuron_mask[jnp.maximum(arch.depth - 1, 0)], arch.feature_mask)
    return {"hidden_kernel": hidden_kernel, "hidden_bias": arch.neuron_mask,
            "out_kernel": last[:, None] * arch.output_mask[None], "out_bias": arch.output_mask}


def init_params(key: jax.Array, arch: Arch) -> dict[str, jax.Array]:
    """Kernels ~ N(0, 1 / fan_in) over the neurons that exist (LeCun normal, Flax's default), biases 0."""
    masks = param_masks(arch)
    keys = jax.random.split(key, 2)
    hidden_in = jnp.maximum(masks["hidden_kernel"].sum(axis=1, keepdims=True), 1.0)  # (L, 1, W)
    out_in = jnp.maximum(masks["out_kernel"].sum(axis=0, keepdims=True), 1.0)
    hidden = jax.random.normal(keys[0], (MAX_LAYERS, MAX_WIDTH, MAX_WIDTH)) / jnp.sqrt(hidden_in)
    out = jax.random.normal(keys[1], (MAX_WIDTH, OUTPUTS)) / jnp.sqrt(out_in)
    return {"hidden_kernel": hidden * masks["hidden_kernel"], "hidden_bias": jnp.zeros((MAX_LAYERS, MAX_WIDTH)),
            "out_kernel": out * masks["out_kernel"], "out_bias": jnp.zeros(OUTPUTS)}


def forward(params: dict, arch: Arch, activation: jax.Array, points: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(B, 2) points -> (outputs (B, 2), hidden (B, L, W): each neuron's output, 0 where switched off)."""
    def layer(h, inputs):
        kernel, bias, mask, index = inputs
        a = activate(h @ kernel + bias[None], activation) * mask[None]
        return jnp.where(index < arch.depth, a, h), a

    layers = (params["hidden_kernel"], params["hidden_bias"], arch.neuron_mask, jnp.arange(MAX_LAYERS))
    h, hidden = jax.lax.scan(layer, features_of(points) * arch.feature_mask[None], layers)
    hidden = jnp.moveaxis(hidden, 0, 1)
    return h @ params["out_kernel"] + params["out_bias"][None], hidden


def output_value(outputs: jax.Array, regression: jax.Array) -> jax.Array:
    """(B, 2) outputs -> (B,) the value the page shows: P(positive) - P(negative) in [-1, 1], or the
    regression output."""
    return jnp.where(regression, outputs[:, 0], jnp.tanh((outputs[:, 1] - outputs[:, 0]) / 2))


def example_losses(outputs: jax.Array, targets: jax.Array, regression: jax.Array) -> jax.Array:
    """(B,) cross-entropy of the class (targets 0 / 1), or squared error (targets in [-1, 1])."""
    labels = targets.astype(jnp.int32)
    cross_entropy = jax.nn.logsumexp(outputs, axis=-1) - jnp.take_along_axis(outputs, labels[:, None], axis=-1)[:, 0]
    return jnp.where(regression, jnp.square(outputs[:, 0] - targets), cross_entropy)


def flax_params(params: dict, features: tuple[str, ...], hidden: tuple[int, ...], regression: bool) -> dict:
    """The padded params cut to the `PlaygroundNet` of `jaxdl.models.playground` with these features and
    hidden widths: {"mlp": {"hidden_<i>": {kernel, bias}, "head": {kernel, bias}}} (numpy float32)."""
    params = jax.tree.map(np.asarray, params)
    rows = [FEATURE_NAMES.index(name) for name in features]
    layers, previous = {}, rows
    for i, width in enumerate(hidden):
        layers[f"hidden_{i}"] = {"kernel": params["hidden_kernel"][i][np.ix_(previous, range(width))],
                                 "bias": params["hidden_bias"][i][:width]}
        previous = list(range(width))
    outputs = [0] if regression else [0, 1]
    layers["head"] = {"kernel": params["out_kernel"][np.ix_(previous, outputs)], "bias": params["out_bias"][outputs]}
    return {"mlp": layers}
