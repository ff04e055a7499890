"""The playground experiment: input features, the network, L1, and the command line."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from conftest import run_cli

from experiments import playground
from jaxdl.data import DataInfo
from jaxdl.errors import InputError
from jaxdl.models import build_model
from jaxdl.models.features import FEATURES, check_features, compute_features
from jaxdl.report import plane
from jaxdl.run import cli
from jaxdl.train.losses import classification_metrics
from jaxdl.train.optimizer import add_l1_subgradient, build_optimizer
from jaxdl.train.state import create_state

INFO = DataInfo(name="circle", task="classification", input_shape=(2,), num_classes=2)


def model_config(**changes) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict({"name": "playground", "features": ("x1", "x2"), "hidden_sizes": (4, 3),
                                        "activation": "tanh", "dropout": 0.0})
    config.update(changes)
    return config


def test_feature_transforms():
    points = jnp.array([[1.5, -2.0], [0.0, 3.0]])
    values = compute_features(points, tuple(FEATURES))
    x1, x2 = np.array([1.5, 0.0]), np.array([-2.0, 3.0])
    expected = np.stack([x1, x2, x1**2, x2**2, x1 * x2, np.sin(x1), np.sin(x2)], axis=1)
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    np.testing.assert_allclose(compute_features(points, ("sin_x2", "x1")), expected[:, [6, 0]], rtol=1e-6)


@pytest.mark.parametrize(("names", "message"), [
    (("x1", "sinx1"), "did you mean 'sin_x1'"),
    (("x1", "x1"), "listed twice"),
    ((), "non-empty tuple"),
    ("x1", "non-empty tuple"),
])
def test_bad_features_are_input_errors(names, message):
    with pytest.raises(InputError, match=message):
        check_features(names)


def test_the_network_uses_the_chosen_features():
    # Features even in x1 make the output even in x1, whatever the weights.
    model = build_model(model_config(features=("x1_squared", "x2")), INFO)
    points = jnp.array([[1.0, 2.0], [-3.0, 0.5]])
    params = model.init(jax.random.PRNGKey(0), points)
    out = model.apply(params, points)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(model.apply(params, points * jnp.array([[-1.0, 1.0]])), out, rtol=1e-6)
    assert not np.allclose(model.apply(params, points * jnp.array([[1.0, -1.0]])), out)


def test_zero_to_six_hidden_layers():
    points = jnp.zeros((3, 2))
    for sizes in ((), (2,) * 6):
        model = build_model(model_config(hidden_sizes=sizes), INFO)
        assert model.apply(model.init(jax.random.PRNGKey(0), points), points).shape == (3, 2)
    with pytest.raises(InputError, match="too many hidden layers"):
        build_model(model_config(hidden_sizes=(2,) * 7), INFO)
    with pytest.raises(InputError, match="takes 2-D points"):
        build_model(model_config(), DataInfo(name="digits", task="classification", input_shape=(8, 8, 1),
                                             num_classes=10))


def test_every_hidden_unit_is_seen_over_the_plane():
    model = build_model(model_config(hidden_sizes=(4, 3)), INFO)
    tx = build_optimizer(ml_collections.ConfigDict({"name": "sgd", "learning_rate": 0.1, "schedule": "constant"}),
                         steps_per_epoch=1, epochs=1)
    state = create_state(model, tx, (2,), 0, classification_metrics)
    points = jnp.asarray(plane.plane_grid(6.0, 5))
    layers = plane.hidden_outputs(state, points)
    assert {name: value.shape for name, value in layers.items()} == {"hidden_0": (25, 4), "hidden_1": (25, 3)}
    assert np.all(np.abs(layers["hidden_1"]) <= 1.0)  # tanh


def test_l1_adds_the_sign_of_the_weights():
    params = {"w": jnp.array([2.0, -0.5, 0.0])}
    grads = {"w": jnp.array([0.1, 0.1, 0.1])}
    updates, _ = add_l1_subgradient(0.5).update(grads, optax.EmptyState(), params)
    np.testing.assert_allclose(updates["w"], [0.6, -0.4, 0.1])
    # From the config: sgd with l1 only moves each weight towards 0 by learning_rate * l1.
    config = ml_collections.ConfigDict({"name": "sgd", "learning_rate": 0.1, "schedule": "constant", "l1": 0.5})
    tx = build_optimizer(config, steps_per_epoch=1, epochs=1)
    state = tx.init(params)
    assert float(state.hyperparams["l1"]) == 0.5
    updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
    np.testing.assert_allclose(optax.apply_updates(params, updates)["w"], [1.95, -0.45, 0.0])


@pytest.mark.slow
def test_playground_command_line(tmp_path):
    workdir = str(tmp_path / "run")
    result = run_cli("experiments.playground", "--config", "configs/playground.py:xor,tiny",
                     f"--config.data.data_dir={tmp_path / 'tfds'}", "--config.data.noise=0.1",
                     "--config.model.features=('x1','x2','x1_times_x2')", "--config.optimizer.l1=0.001",
                     f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test accuracy" in result.stdout
    with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
    assert summary["data"]["name"] == "xor" and summary["epochs_run"] == 3
    assert summary["images"] == {"boundary": "boundary.png", "neurons": "neurons.png", "curves": "curves.png"}
    for image in summary["images"].values():
        with open(os.path.join(workdir, image), "rb") as f:
            assert f.read(4) == b"\x89PNG"
    assert os.path.isdir(os.path.join(tmp_path, "tfds", "xor", "noise0.1-train0.5-n500-seed0"))


@pytest.mark.parametrize(("override", "message"), [
    ("--config.model.features=('x1','sinx1')", "error: config.model.features: unknown name"),
    ("--config.model.hidden_sizes=(2,2,2,2,2,2,2)", "error: config.model.hidden_sizes: too many hidden layers"),
    ("--config.data.name=spirals", "error: config.data.name: unknown name"),
    ("--config.data.noise=0.9", "error: config.data.noise: out of range"),
    ("--config.sweep.l1=(-1.0,)", "error: config.sweep.l1: out of range"),
])
def test_bad_playground_configs_exit_2(override, message, tmp_path, capsys):
    code = cli.main(playground.run, playground.DEFAULT_CONFIG,
                    [override, f"--config.data.data_dir={tmp_path}", f"--workdir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith(message), err
