"""Loading a trained model's parameters into a new one: matching, skipping, reports, errors."""

import json
import os

import jax
import numpy as np
import optax
import pytest
from conftest import REPO

from jaxdl.errors import InputError
from jaxdl.models import MLP
from jaxdl.report.log import write_load_report
from jaxdl.run.config import load_config
from jaxdl.run.pipeline import train_and_evaluate
from jaxdl.train.digest import params_sha256
from jaxdl.train.losses import classification_metrics
from jaxdl.train.state import create_state
from jaxdl.transfer.pretrained import format_report, load_pretrained, match_variables, read_pretrained


def mlp_config(data_dir, *, hidden=(32,), epochs=3, patience=0):
    config = load_config(os.path.join(REPO, "configs", "mlp.py:tiny"))
    config.data.data_dir = data_dir
    config.model.hidden_sizes = hidden
    config.train.epochs = epochs
    config.train.patience = patience
    return config


@pytest.fixture(scope="module")
def source(data_dir, tmp_path_factory):
    """A finished MLP run on the 10 digits: (workdir, summary)."""
    workdir = str(tmp_path_factory.mktemp("source"))
    summary = train_and_evaluate(mlp_config(data_dir), workdir, progress=False)
    return workdir, summary


def fresh(num_outputs=5, hidden=(32,), seed=1):
    return create_state(MLP(num_outputs=num_outputs, hidden_sizes=hidden), optax.adam(1e-3), (8, 8, 1), seed,
                        classification_metrics)


@pytest.mark.slow
def test_matching_layers_are_copied_and_a_new_head_keeps_its_initialisation(source):
    workdir, _ = source
    pretrained = read_pretrained(workdir)
    saved = pretrained.variables["params"]
    assert pretrained.config["model"]["hidden_sizes"] == [32]  # the config the source was trained with
    initial = jax.device_get(fresh().params)
    state, report = load_pretrained(fresh(), workdir)
    np.testing.assert_array_equal(state.params["hidden_0"]["kernel"], saved["hidden_0"]["kernel"])
    np.testing.assert_array_equal(state.params["head"]["kernel"], initial["head"]["kernel"])  # 10 -> 5 classes
    assert [e["path"] for e in report["loaded"]] == ["params/hidden_0/bias", "params/hidden_0/kernel"]
    assert {e["path"]: e["reason"] for e in report["reinitialised"]} == {
        "params/head/bias": "checkpoint shape [10]", "params/head/kernel": "checkpoint shape [32, 10]"}
    assert report["counts"]["loaded"] == {"arrays": 2, "values": 64 * 32 + 32}
    assert report["epoch"] == 3 and report["model"] == "last"
    assert "reinitialised   2 arrays" in format_report(report)


def test_the_same_architecture_loads_the_final_model_bit_for_bit(source):
    workdir, summary = source
    state, report = load_pretrained(fresh(num_outputs=10), os.path.join(workdir, "checkpoints"))
    assert params_sha256(state.params) == summary["params_sha256"]
    assert not report["reinitialised"] and not report["skipped"] and not report["unused"]


def test_skip_patterns_keep_fresh_arrays_and_the_report_is_saved(source, tmp_path):
    workdir, _ = source
    initial = jax.device_get(fresh(num_outputs=10).params)
    state, report = load_pretrained(fresh(num_outputs=10), workdir, skip=("head",))
    np.testing.assert_array_equal(state.params["head"]["bias"], initial["head"]["bias"])
    assert [e["path"] for e in report["skipped"]] == ["params/head/bias", "params/head/kernel"]
    with open(write_load_report(report, str(tmp_path))) as f:
        assert json.load(f)["skip"] == ["head"]
    with pytest.raises(InputError, match="^skip: pattern matches no parameter"):
        load_pretrained(fresh(), workdir, skip=("haed",))


def test_a_layer_is_never_half_loaded():
    # Same number of classes but a wider input: the bias alone would fit, the kernel does not.
    target = {"params": {"head": {"kernel": np.zeros((8, 3)), "bias": np.zeros(3)},
                         "body": {"kernel": np.zeros((2, 8))}}}
    source = {"params": {"head": {"kernel": np.ones((4, 3)), "bias": np.ones(3)}, "body": {"kernel": np.ones((2, 8))},
                         "extra": {"kernel": np.ones(1)}}}
    variables, report = match_variables(target, source)
    assert not variables["params"]["head"]["bias"].any() and variables["params"]["body"]["kernel"].all()
    assert {e["path"]: e["reason"] for e in report["reinitialised"]} == {
        "params/head/bias": "its layer: params/head/kernel does not match",
        "params/head/kernel": "checkpoint shape [4, 3]"}
    assert [e["path"] for e in report["unused"]] == ["params/extra/kernel"]


def test_final_is_the_best_model_when_the_run_stopped_early(data_dir, tmp_path):
    workdir = str(tmp_path / "run")
    config = mlp_config(data_dir, epochs=12, patience=2)
    config.optimizer.learning_rate = 0.05  # overfits fast, so the best epoch is not the last
    summary = train_and_evaluate(config, workdir, progress=False)
    final = read_pretrained(workdir)
    last = read_pretrained(workdir, which="last")
    assert final.model == ("best" if summary["best_epoch"] else "last")
    assert params_sha256(final.variables["params"]) == summary["params_sha256"]
    assert (params_sha256(last.variables["params"]) != summary["params_sha256"]) == (
        summary["best_epoch"] != summary["epochs_run"])


def test_a_checkpoint_where_nothing_matches_is_a_clear_input_error(source):
    workdir, _ = source
    with pytest.raises(InputError) as error:
        load_pretrained(fresh(num_outputs=10, hidden=(16, 8)), workdir)
    message = str(error.value)
    assert message.startswith("source: no layer of the checkpoint matches this model")
    assert "params/head/kernel has checkpoint shape [32, 10], the model's is [8, 10]" in message


@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp: str(tmp / "missing"), "no such directory"),
    (str, "holds no jaxdl checkpoint"),
])
def test_a_source_that_is_not_a_checkpoint_is_an_input_error(tmp_path, make, message):
    with pytest.raises(InputError, match=message):
        read_pretrained(make(tmp_path))


def test_an_epoch_that_was_not_kept_is_an_input_error(source):
    with pytest.raises(InputError, match="has no checkpoint of epoch 1.*expected one of"):
        read_pretrained(source[0], epoch=1)
