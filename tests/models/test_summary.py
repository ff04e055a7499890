"""The model summary (`jaxdl.models.summary`) and own modules without a `train` argument."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import pytest
from conftest import CliDriver

import jaxdl
from jaxdl.models.summary import format_layers, layers


class NoTrain(nn.Module):
    """An own module without a `train` argument."""

    @nn.compact
    def __call__(self, x):
        return nn.Dense(10)(nn.relu(nn.Dense(16)(x.reshape(x.shape[0], -1))))


def test_each_layer_has_its_output_shape_and_parameter_count():
    model = jaxdl.models.CNN(num_outputs=10, channels=(4,), dense_sizes=(8,))
    rows = layers(model, (8, 8, 1))
    params = jaxdl.create_state(model, optax.sgd(0.1), (8, 8, 1), 0, jaxdl.metrics_for_task("classification")).params
    assert rows[0]["layer"] == "(model)" and rows[0]["params"] == jaxdl.count_params(params)
    by_name = {row["layer"]: row for row in rows}
    assert by_name["head"]["output"] == [1, 10] and by_name["head"]["params"] == 8 * 10 + 10
    assert by_name["conv_0"]["module"] == "Conv" and by_name["conv_0"]["output"][-1] == 4
    assert sum(row["params"] for row in rows[1:] if "/" not in row["layer"]) == rows[0]["params"]
    assert format_layers(rows).endswith(f"total parameters: {rows[0]['params']:,}")


def test_an_own_module_without_train_trains_and_keeps_its_parameter_paths(digits):
    state = jaxdl.create_state(NoTrain(), optax.adam(1e-2), digits.info.input_shape, 0,
                               jaxdl.metrics_for_task("classification"))
    own = NoTrain().init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))["params"]
    assert jax.tree.structure(state.params) == jax.tree.structure(own)
    batch = {"x": digits.train["x"][:32], "y": digits.train["y"][:32]}
    new, metrics = jax.jit(jaxdl.train_step)(state, batch)
    assert int(new.step) == 1 and jnp.isfinite(metrics["loss"])
    assert [row["module"] for row in layers(NoTrain(), (8, 8, 1))] == ["NoTrain", "Dense", "Dense"]


@pytest.fixture(scope="module")
def driver():
    started = CliDriver()
    yield started
    started.close()


def test_summary_only_prints_the_layers_and_trains_nothing(driver, tmp_path, data_dir):
    result = driver.run(["--config", "cnn:tiny", "--workdir", str(tmp_path / "run"),
                         f"--config.data.data_dir={data_dir}", "--config.model.summary_only=true"])
    assert result["code"] == 0, result
    lines = result["stdout"].strip().splitlines()
    assert lines[0].split() == ["layer", "module", "output", "shape", "parameters"]
    assert lines[1].split()[:3] == ["(model)", "CNN", "(1,"] and lines[-1].startswith("total parameters: ")
    assert not (tmp_path / "run").exists()
