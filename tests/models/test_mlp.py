"""The MLP: shapes for any depth and input shape, activations by name, dropout only in training."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxdl.data import DataInfo
from jaxdl.errors import InputError
from jaxdl.models import ACTIVATIONS, MLP, build_model

INFO = DataInfo("toy", "classification", (8, 8, 1), num_classes=10)


@pytest.mark.parametrize("hidden_sizes", [(), (16,), (32, 16, 8)])
def test_output_shape_for_any_depth(hidden_sizes):
    model = MLP(num_outputs=10, hidden_sizes=hidden_sizes)
    x = jnp.ones((5, 8, 8, 1))
    params = model.init(jax.random.PRNGKey(0), x)["params"]
    assert model.apply({"params": params}, x).shape == (5, 10)
    expected = [f"hidden_{i}" for i in range(len(hidden_sizes))] + ["head"]
    assert sorted(params) == sorted(expected)


def test_zero_hidden_layers_is_softmax_regression():
    model = MLP(num_outputs=3, hidden_sizes=())
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 6))
    params = model.init(jax.random.PRNGKey(0), x)["params"]
    expected = x @ params["head"]["kernel"] + params["head"]["bias"][None, :]
    np.testing.assert_allclose(model.apply({"params": params}, x), expected, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_by_name_is_applied(name):
    model = MLP(num_outputs=2, hidden_sizes=(4,), activation=name)
    x = jnp.linspace(-2, 2, 12).reshape(2, 6)
    variables = model.init(jax.random.PRNGKey(0), x)
    _, state = model.apply(variables, x, mutable=["intermediates"])
    hidden = state["intermediates"]["hidden_0_out"][0]
    pre = x @ variables["params"]["hidden_0"]["kernel"] + variables["params"]["hidden_0"]["bias"][None, :]
    np.testing.assert_allclose(hidden, ACTIVATIONS[name](pre), rtol=1e-6)


def test_dropout_only_in_training():
    model = MLP(num_outputs=2, hidden_sizes=(64,), dropout=0.5)
    x = jnp.ones((3, 5))
    variables = model.init(jax.random.PRNGKey(0), x)
    evals = [model.apply(variables, x, train=False) for _ in range(2)]
    np.testing.assert_array_equal(evals[0], evals[1])
    a = model.apply(variables, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    b = model.apply(variables, x, train=True, rngs={"dropout": jax.random.PRNGKey(2)})
    assert not np.allclose(a, b)


@pytest.mark.parametrize("field, value, message", [
    ("name", "mpl", "did you mean 'mlp'"),
    ("activation", "rleu", "did you mean 'relu'"),
    ("hidden_sizes", (16, 0), "config.model.hidden_sizes: out of range"),
    ("dropout", 1.0, "config.model.dropout: out of range"),
])
def test_bad_model_config(field, value, message):
    config = ml_collections.ConfigDict(dict(name="mlp", hidden_sizes=(16,), activation="relu", dropout=0.0))
    config[field] = value
    with pytest.raises(InputError, match=message):
        build_model(config, INFO)
