"""Activations through Flax's intermediates: what a model sows, or every submodule's output."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl.evaluate import activations as intermediates
from jaxdl.models.mlp import MLP
from jaxdl.train.losses import classification_metrics
from jaxdl.train.state import create_state


class TinyConv(nn.Module):
    """Sows nothing: its feature maps come from `capture_intermediates`."""

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        x = nn.relu(nn.Conv(4, (3, 3))(x))
        x = nn.max_pool(x, (2, 2), (2, 2))
        return nn.Dense(10)(x.reshape((x.shape[0], -1)))


class SowingConv(nn.Module):
    """Sows its post-ReLU feature maps twice: only those are reported, not every submodule."""

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        x = nn.relu(nn.Conv(3, (3, 3), name="conv")(x))
        self.sow("intermediates", "features", x)
        self.sow("intermediates", "features", x * 2)
        return nn.Dense(10)(x.reshape((x.shape[0], -1)))


def state_for(model):
    return create_state(model, optax.sgd(0.1), (8, 8, 1), 0, classification_metrics)


def test_mlp_activations_are_the_sown_hidden_layers():
    state = state_for(MLP(num_outputs=10, hidden_sizes=(16, 8), activation="relu"))
    x = np.random.default_rng(0).uniform(size=(5, 8, 8, 1)).astype(np.float32)
    activations = intermediates.capture(state, x)
    assert list(activations) == ["hidden_0_out", "hidden_1_out"]
    params = jax.device_get(state.params)
    first = np.maximum(x.reshape(5, -1) @ params["hidden_0"]["kernel"] + params["hidden_0"]["bias"], 0)
    np.testing.assert_allclose(activations["hidden_0_out"], first, rtol=1e-5, atol=1e-6)
    assert activations["hidden_1_out"].shape == (5, 8)


def test_a_bfloat16_models_activations_are_its_bfloat16_values_as_float32():
    state = state_for(MLP(num_outputs=10, hidden_sizes=(16,), dtype=jnp.bfloat16))
    x = np.random.default_rng(0).uniform(size=(5, 8, 8, 1)).astype(np.float32)
    hidden = intermediates.capture(state, x)["hidden_0_out"]
    assert hidden.dtype == np.float32
    params = jax.device_get(state.params)
    exact = np.maximum(x.reshape(5, -1) @ params["hidden_0"]["kernel"] + params["hidden_0"]["bias"][None, :], 0)
    np.testing.assert_allclose(hidden, exact, rtol=2e-2, atol=2e-2)  # bfloat16 keeps ~3 significant digits
    assert len(np.unique(hidden.view(np.uint32) & 0xFFFF)) == 1  # bfloat16 values: the low 16 bits are zero


def test_a_model_that_sows_nothing_gets_each_layer_captured():
    activations = intermediates.capture(state_for(TinyConv()), np.ones((3, 8, 8, 1), np.float32))
    assert {name: value.shape for name, value in activations.items()} == {"Conv_0": (3, 8, 8, 4), "Dense_0": (3, 10)}


def test_what_a_model_sows_is_all_that_is_reported():
    activations = intermediates.capture(state_for(SowingConv()), np.ones((2, 8, 8, 1), np.float32))
    assert list(activations) == ["features#0", "features#1"]
    np.testing.assert_allclose(activations["features#1"], 2 * activations["features#0"])
    assert activations["features#0"].shape == (2, 8, 8, 3)
    assert np.all(activations["features#0"] >= 0)  # after the ReLU, as sown


def test_representative_examples_are_the_first_of_each_class():
    labels = np.array([2, 0, 0, 1, 2, 1])
    assert intermediates.representative_examples(labels, 3).tolist() == [1, 3, 0]
    assert intermediates.representative_examples(labels, 4).tolist() == [1, 3, 0]  # class 3 has no example
    assert intermediates.representative_examples(np.zeros(20), 0).tolist() == list(range(10))


@pytest.mark.parametrize("model", [MLP(num_outputs=10, hidden_sizes=(4,)), TinyConv()])
def test_describe_counts_zeros(model):
    activations = intermediates.capture(state_for(model), np.zeros((2, 8, 8, 1), np.float32))
    described = intermediates.describe(activations)
    for name, value in activations.items():
        assert described[name]["shape"] == list(value.shape)
        assert described[name]["zero_fraction"] == pytest.approx(float(np.mean(value == 0)))
    assert jax.tree.leaves(described)
