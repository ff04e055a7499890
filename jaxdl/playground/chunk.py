"""Training in compiled chunks: one call trains K epochs and draws every surface the page shows.

`train_chunk` is jitted once (with `jax.vmap` over members: one member for play, up to 8 for
"compare") and serves every architecture and setting (see `jaxdl.playground.network`): the
number of epochs, the batch size and the number of training points are traced values, so the
epoch and batch loops are `lax.fori_loop`s with traced bounds. An epoch is the playground's: one
pass over the training points in a fresh seeded order, in batches of `batch_size`, each batch
one SGD (or Adam) update. The order of epoch e depends on the seed and e alone, so how the
epochs are cut into chunks does not change the numbers.

Surfaces come back as uint8: values in [-1, 1] (clipped) scaled to 0..255, output (G, G) and
tiles (W + L * W, T, T) for the features and every neuron, row 0 at the top (x2 = +EXTENT).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.playground import network
from jaxdl.playground.network import MAX_LAYERS, MAX_WIDTH, Arch

MAX_BATCH = 30  # the playground's batch-size slider goes to 30
EXTENT = 6.0  # the plane shown: [-EXTENT, EXTENT]^2, as the playground's
OUTPUT_GRID = 50  # output surface: OUTPUT_GRID x OUTPUT_GRID points
TILE_GRID = 20  # each feature's and neuron's tile
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8


class Hyper(NamedTuple):
    """One member's setting, all arrays: the architecture, activation index, rates, batch size, optimizer."""

    arch: Arch
    activation: jax.Array  # () int32, index of network.ACTIVATION_NAMES
    learning_rate: jax.Array  # () float32
    l1: jax.Array  # () float32, L1 rate (0: off)
    l2: jax.Array  # () float32, L2 rate (0: off)
    batch_size: jax.Array  # () int32, 1..MAX_BATCH
    adam: jax.Array  # () bool: Adam, else plain SGD (the playground's)


class State(NamedTuple):
    """One member's training state: params, Adam's moments (zeros for SGD), counters, the seed's key."""

    params: dict
    mu: dict
    nu: dict
    steps: jax.Array  # () int32, updates done
    epoch: jax.Array  # () int32, epochs done
    key: jax.Array  # the seed's PRNG key (uint32 (2,))


class Data(NamedTuple):
    """The points, padded to a fixed N: x (N, 2) float32, y (N,) float32 (class 0 / 1 or target),
    train (N,) and test (N,) float32 masks, regression () bool."""

    x: jax.Array
    y: jax.Array
    train: jax.Array
    test: jax.Array
    regression: jax.Array


def init_state(seed: jax.Array, hyper: Hyper) -> State:
    """A fresh state for `hyper`'s architecture from `seed` (() int32)."""
    key = jax.random.PRNGKey(seed)
    params = network.init_params(jax.random.fold_in(key, 0), hyper.arch)
    zeros = jax.tree.map(jnp.zeros_like, params)
    return State(params, zeros, zeros, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), key)


def mean_loss(params: dict, hyper: Hyper, data: Data, x: jax.Array, y: jax.Array, weights: jax.Array) -> jax.Array:
    outputs, _ = network.forward(params, hyper.arch, hyper.activation, x)
    losses = network.example_losses(outputs, y, data.regression)
    return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def update(state: State, hyper: Hyper, data: Data, index: jax.Array, weights: jax.Array) -> State:
    """One SGD / Adam step on the points `index` (MAX_BATCH,) weighted by `weights` (1 / 0)."""
    grads = jax.grad(mean_loss)(state.params, hyper, data, data.x[index], data.y[index], weights)
    masks = network.param_masks(hyper.arch)
    kernels = {"hidden_kernel", "out_kernel"}  # regularised, as the playground does; biases are not
    grads = {name: g + (hyper.l1 * jnp.sign(state.params[name]) + hyper.l2 * state.params[name]
                        if name in kernels else 0.0) for name, g in grads.items()}
    steps = state.steps + 1
    mu = jax.tree.map(lambda m, g: ADAM_B1 * m + (1 - ADAM_B1) * g, state.mu, grads)
    nu = jax.tree.map(lambda v, g: ADAM_B2 * v + (1 - ADAM_B2) * g * g, state.nu, grads)
    t = steps.astype(jnp.float32)

    def step(name):
        adam = (mu[name] / (1 - ADAM_B1 ** t)) / (jnp.sqrt(nu[name] / (1 - ADAM_B2 ** t)) + ADAM_EPS)
        return hyper.learning_rate * jnp.where(hyper.adam, adam, grads[name]) * masks[name]

    params = {name: value - step(name) for name, value in state.params.items()}
    return state._replace(params=params, mu=mu, nu=nu, steps=steps)


def train_epoch(state: State, hyper: Hyper, data: Data) -> State:
    """One pass over the training points in the order of (seed, epoch), batch by batch."""
    n = data.x.shape[0]
    order_key = jax.random.fold_in(state.key, state.epoch + 1)
    scores = jax.random.uniform(order_key, (n,)) + 2.0 * (1.0 - data.train)  # test points sort last
    order = jnp.concatenate([jnp.argsort(scores), jnp.zeros(MAX_BATCH, jnp.int32)])
    n_train = jnp.sum(data.train).astype(jnp.int32)
    batch = jnp.clip(hyper.batch_size, 1, MAX_BATCH)
    slots = jnp.arange(MAX_BATCH)

    def one_batch(i, state):
        start = i * batch
        index = jax.lax.dynamic_slice(order, (start,), (MAX_BATCH,))
        weights = ((slots < batch) & (start + slots < n_train)).astype(jnp.float32)
        return update(state, hyper, data, index, weights)

    state = jax.lax.fori_loop(0, (n_train + batch - 1) // batch, one_batch, state)
    return state._replace(epoch=state.epoch + 1)


def grid(size: int) -> jax.Array:
    """(size * size, 2) points of the plane, row by row from the top (x2 = +EXTENT) down."""
    values = jnp.linspace(-EXTENT, EXTENT, size)
    x1, x2 = jnp.meshgrid(values, values[::-1])
    return jnp.stack([x1.ravel(), x2.ravel()], axis=-1)


def as_uint8(values: jax.Array) -> jax.Array:
    """Values in [-1, 1] (clipped) -> 0..255."""
    return jnp.round((jnp.clip(values, -1.0, 1.0) + 1.0) * 127.5).astype(jnp.uint8)


def surfaces(params: dict, hyper: Hyper, data: Data) -> tuple[jax.Array, jax.Array]:
    """(output (G, G) uint8, tiles (W + L * W, T, T) uint8): the features (slot order) then the
    neurons layer by layer."""
    outputs, _ = network.forward(params, hyper.arch, hyper.activation, grid(OUTPUT_GRID))
    output = network.output_value(outputs, data.regression).reshape(OUTPUT_GRID, OUTPUT_GRID)
    points = grid(TILE_GRID)
    _, hidden = network.forward(params, hyper.arch, hyper.activation, points)
    features = network.features_of(points) * hyper.arch.feature_mask[None]
    tiles = jnp.concatenate([features, hidden.reshape(-1, MAX_LAYERS * MAX_WIDTH)], axis=1)
    tiles = tiles.T.reshape(-1, TILE_GRID, TILE_GRID)
    # Features span more than [-1, 1] (x1 up to 6, x1² up to 36): shown scaled by their largest value.
    scale = jnp.concatenate([jnp.maximum(jnp.max(jnp.abs(tiles[:MAX_WIDTH]), axis=(1, 2)), 1e-6),
                             jnp.ones(MAX_LAYERS * MAX_WIDTH)])
    return as_uint8(output), as_uint8(tiles / scale[:, None, None])


def losses(params: dict, hyper: Hyper, data: Data) -> tuple[jax.Array, jax.Array]:
    """(train loss, test loss): mean cross-entropy (classification) or squared error (regression)."""
    outputs, _ = network.forward(params, hyper.arch, hyper.activation, data.x)
    each = network.example_losses(outputs, data.y, data.regression)
    mean = lambda mask: jnp.sum(each * mask) / jnp.maximum(jnp.sum(mask), 1.0)
    return mean(data.train), mean(data.test)


def chunk(state: State, hyper: Hyper, data: Data, epochs: jax.Array) -> tuple[State, dict]:
    """`epochs` epochs, then what the page shows: losses, surfaces and the params."""
    state = jax.lax.fori_loop(0, epochs, lambda _, s: train_epoch(s, hyper, data), state)
    train_loss, test_loss = losses(state.params, hyper, data)
    output, tiles = surfaces(state.params, hyper, data)
    return state, {"train_loss": train_loss, "test_loss": test_loss, "output": output, "tiles": tiles}


# Members stacked along axis 0 of the state and hyper; the data and the epoch count are shared.
# The state is donated: the stack is updated in place.
train_chunk = jax.jit(jax.vmap(chunk, in_axes=(0, 0, None, None)), donate_argnums=0)
init_states = jax.jit(jax.vmap(init_state))


def stack(items: list) -> NamedTuple:
    """A list of pytrees (numpy leaves) -> one pytree of stacked leaves (members on axis 0)."""
    return jax.tree.map(lambda *leaves: np.stack(leaves), *items)
