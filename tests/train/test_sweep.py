"""Sweeps: members from the config, one compiled program for all of them, and what they report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import ml_collections
import numpy as np
import pytest
from cli_runs import CHEAP, TINY, run_experiment
from conftest import REPO, devices_env, run_cli

from experiments import playground
from jaxdl.data import DataInfo
from jaxdl.errors import InputError
from jaxdl.evaluate.members import evaluate_members
from jaxdl.models import build_model
from jaxdl.run.config import apply_override, load_config
from jaxdl.run.pipeline import train_and_evaluate
from jaxdl.train import sweep
from jaxdl.train.losses import classification_metrics
from jaxdl.train.optimizer import build_optimizer

# A small sweep on the circle set: 2 learning rates x 4 seeds = 8 members, some of which stop early.
SWEEP_OVERRIDES = {
    "model.hidden_sizes": "(8,)", "train.epochs": "8", "train.patience": "2", "train.batch_size": "16",
    "sweep.seeds": "4", "sweep.learning_rate": "(0.003,0.3)", "plot.resolution": "16",
    "checkpoint.every_epochs": "1",
}


def playground_config(data_dir: str, overrides: dict[str, str]) -> ml_collections.ConfigDict:
    config = load_config(os.path.join(REPO, "configs", "playground.py"))
    for key, value in {"data.data_dir": data_dir, **overrides}.items():
        apply_override(config, key, value)
    # What no test here reads (the playground config leaves them to the pipeline's defaults): the report,
    # the softmax baseline, the questions' answers, and "auto" timing the step programs (same bits).
    with config.unlocked():
        config.eval.update({"report": False, "baseline": False, "questions": "none"})
        config.train.steps_per_call = "epoch"
    return config


def train_playground(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """The playground experiment's training and summary, without its images."""
    return train_and_evaluate(config, workdir, splits=playground.load_splits(config.data), progress=False)


@pytest.fixture(scope="module")
def playground_data(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("playground_tfds"))


@pytest.fixture(scope="module")
def swept(playground_data, tmp_path_factory):
    """The 8-member sweep, run once through the playground experiment: (config, summary, workdir)."""
    config = playground_config(playground_data, SWEEP_OVERRIDES)
    workdir = str(tmp_path_factory.mktemp("sweep"))
    return config, playground.run(config, workdir, progress=False), workdir


def test_members_are_the_product_of_values_and_seeds():
    config = load_config(os.path.join(REPO, "configs", "mlp.py"))
    assert sweep.members_of(config) == []  # the default section asks for no sweep
    for key, value in {"seed": "3", "sweep.seeds": "2", "sweep.learning_rate": "(0.1,0.01)",
                       "sweep.weight_decay": "(0.0,0.5)", "optimizer.weight_decay": "0.25"}.items():
        apply_override(config, key, value)
    members = sweep.members_of(config)
    assert [m.index for m in members] == list(range(8))
    assert [(m.hyperparameters["learning_rate"], m.hyperparameters["weight_decay"], m.seed) for m in members] == [
        (lr, wd, seed) for lr in (0.1, 0.01) for wd in (0.0, 0.5) for seed in (3, 4)]
    apply_override(config, "sweep.weight_decay", "()")  # empty: the optimizer's own value
    assert {m.hyperparameters["weight_decay"] for m in sweep.members_of(config)} == {0.25}
    assert sweep.member_labels(sweep.members_of(config))[:2] == ["lr=0.1 seed=3", "lr=0.1 seed=4"]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("sweep.seeds", "0", "config.sweep.seeds: out of range"),
    ("sweep.learning_rate", "(0.1,-1.0)", "config.sweep.learning_rate: out of range"),
    ("sweep.weight_decay", "(2.0,)", "config.sweep.weight_decay: out of range"),
])
def test_bad_sweep_values_are_input_errors(key, value, message):
    config = load_config(os.path.join(REPO, "configs", "mlp.py"))
    apply_override(config, key, value)
    with pytest.raises(InputError, match=message.replace(".", r"\.")):
        sweep.members_of(config)


def test_sweeping_a_term_the_optimizer_lacks_is_an_input_error():
    config = load_config(os.path.join(REPO, "configs", "mlp.py"))
    with config.unlocked():
        config.sweep.l1 = (0.01,)
    with pytest.raises(InputError, match=r"config\.sweep\.l1: the optimizer has no such term"):
        sweep.members_of(config)
    with config.unlocked():
        del config.sweep["l1"]
        config.sweep.momentum = (0.5,)
    with pytest.raises(InputError, match=r"config\.sweep\.momentum: not a hyperparameter a sweep can vary"):
        sweep.members_of(config)


@pytest.mark.slow
def test_a_member_trains_exactly_as_a_solo_run(swept, playground_data, tmp_path):
    config, summary, _ = swept
    member = summary["members"][5]  # learning rate 0.3, seed 1
    assert (member["seed"], member["hyperparameters"]["learning_rate"]) == (1, 0.3)
    solo_overrides = {**SWEEP_OVERRIDES, "sweep.seeds": "1", "sweep.learning_rate": "()",
                      "seed": "1", "optimizer.learning_rate": "0.3"}
    solo = train_playground(playground_config(playground_data, solo_overrides), str(tmp_path))
    assert "members" not in solo
    # Not bit for bit: vmap turns each member's matmuls into batched ones that XLA reduces in another
    # order, so the last bits of gradients differ and params_sha256 differs for all 8 members. Their
    # test losses agree with solo runs to 6e-6 relative; 1e-4 leaves room for other CPUs.
    assert solo["test"]["loss"] == pytest.approx(member["test"]["loss"], rel=1e-4)
    assert solo["test"]["accuracy"] == pytest.approx(member["test"]["accuracy"], abs=1e-6)
    assert (solo["epochs_run"], solo["best_epoch"]) == (member["epochs_run"], member["best_epoch"])


@pytest.mark.slow
def test_sweep_summary_metrics_and_images(swept):
    config, summary, workdir = swept
    members = summary["members"]
    assert len(members) == 8
    assert {m["seed"] for m in members} == {0, 1, 2, 3}
    assert any(m["stopped_early"] for m in members)  # early stopping is per member
    assert len({m["epochs_run"] for m in members}) > 1
    # The best member is the one whose kept model has the lowest validation loss; the top-level
    # figures are its own.
    best = summary["best_member"]
    assert best == int(np.argmin([m["validation"]["loss"] for m in members]))
    assert summary["test"] == members[best]["test"]
    assert summary["params_sha256"] == members[best]["params_sha256"]
    assert len({m["params_sha256"] for m in members}) == 8
    assert summary["ensemble"]["members"] == 8
    ensemble = summary["ensemble"]["test"]
    assert ensemble["count"] == members[0]["test"]["count"]  # every test example, once
    hits = ensemble["accuracy"] * ensemble["count"]
    assert hits == pytest.approx(round(hits), abs=1e-3)  # a whole number of hits: no padding counted
    # Averaged probabilities of 8 trained members do not fall below the weakest of them.
    assert ensemble["accuracy"] >= min(m["test"]["accuracy"] for m in members)
    # metrics.jsonl: one line per member and epoch it trained.
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    for m in members:
        own = [line for line in lines if line["member"] == m["member"]]
        assert [line["epoch"] for line in own] == list(range(1, m["epochs_run"] + 1))
        assert min(line["val_loss"] for line in own) == pytest.approx(
            min(line["val_loss"] for line in own if line["epoch"] == m["best_epoch"]))
    for image in ("validation_curves.png", "members.png", "boundary.png", "neurons.png", "curves.png"):
        with open(os.path.join(workdir, image), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", image


@pytest.mark.slow
def test_an_interrupted_sweep_resumes_to_the_same_members(swept, tmp_path):
    config, reference, workdir = swept
    copy = str(tmp_path / "run")
    shutil.copytree(workdir, copy)
    saved = sorted(int(name) for name in os.listdir(os.path.join(copy, "checkpoints")) if name.isdigit())
    assert len(saved) == 2  # keep = 2
    shutil.rmtree(os.path.join(copy, "checkpoints", str(saved[-1])))  # as if killed before the last save
    resumed = train_playground(config, copy)
    assert resumed["resumed_from"] == saved[0]
    for ours, theirs in zip(resumed["members"], reference["members"], strict=True):
        assert (ours["epochs_run"], ours["best_epoch"]) == (theirs["epochs_run"], theirs["best_epoch"])
        assert ours["params_sha256"] == theirs["params_sha256"]
    with open(os.path.join(copy, "metrics.jsonl")) as ours, open(os.path.join(workdir, "metrics.jsonl")) as theirs:
        assert len(ours.readlines()) == len(theirs.readlines())


def test_members_get_their_hyperparameters_and_the_ensemble_averages_their_probabilities():
    info = playground_info()
    config = playground_config("", {"model.hidden_sizes": "(5,)", "sweep.seeds": "3", "sweep.l1": "(0.01,)"})
    members = sweep.members_of(config)
    model = build_model(config.model, info)
    tx = build_optimizer(config.optimizer, steps_per_epoch=1, epochs=1)
    states = sweep.create_states(model, tx, info.input_shape, members, classification_metrics)
    assert states.opt_state.hyperparams["l1"].tolist() == pytest.approx([0.01] * 3)
    assert states.opt_state.hyperparams["learning_rate"].tolist() == pytest.approx([config.optimizer.learning_rate] * 3)

    rng = np.random.default_rng(0)
    arrays = {"x": rng.normal(0, 3, (37, 2)).astype(np.float32), "y": rng.integers(0, 2, 37).astype(np.int32)}
    per_member, ensemble = evaluate_members(states, arrays, task="classification", batch_size=16,
                                                  include=np.array([True, False, True]))
    logits = np.stack([np.asarray(model.apply({"params": sweep.take_member(states.params, i)}, arrays["x"]))
                       for i in range(3)])
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    for i in range(3):
        own = np.mean(-np.log(probabilities[i, np.arange(37), arrays["y"]]))
        assert per_member[i]["loss"] == pytest.approx(own, rel=1e-5)
    mean = probabilities[[0, 2]].mean(0)
    assert ensemble["loss"] == pytest.approx(np.mean(-np.log(mean[np.arange(37), arrays["y"]])), rel=1e-5)
    assert ensemble["accuracy"] == pytest.approx(np.mean(mean.argmax(-1) == arrays["y"]))
    assert ensemble["count"] == 37


def playground_info() -> DataInfo:
    return DataInfo(name="circle", task="classification", input_shape=(2,), num_classes=2)


# Trains the playground configs of argv[1] ({"data_dir", "runs": {workdir: overrides}}) one after the other,
# in one process with the devices XLA_FLAGS gives it.
ON_DEVICES = """
import json, os, sys
sys.path[:0] = [os.path.join(os.getcwd(), "tests"), os.path.join(os.getcwd(), "tests", "train")]
import jax
from test_sweep import playground_config, train_playground

request = json.loads(sys.argv[1])
print("devices", jax.device_count())
for workdir, overrides in request["runs"].items():
    train_playground(playground_config(request["data_dir"], overrides), workdir)
"""
LEARNING_RATES = {"8-members-split": "(0.003,0.3)", "4-replicated": "(0.003,)"}


@pytest.fixture(scope="module")
def on_8_devices(playground_data, tmp_path_factory) -> dict[str, str]:
    """The workdirs of the sweeps of LEARNING_RATES trained on 8 simulated devices (one process for both)."""
    root = tmp_path_factory.mktemp("on_8_devices")
    runs = {str(root / name): {**SWEEP_OVERRIDES, "sweep.learning_rate": rates}
            for name, rates in LEARNING_RATES.items()}
    result = subprocess.run([sys.executable, "-c", ON_DEVICES, json.dumps({"data_dir": playground_data, "runs": runs})],
                            cwd=REPO, env={**os.environ, **devices_env(8), "JAX_PLATFORMS": "cpu"},
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["devices", "8"]
    return {name: str(root / name) for name in LEARNING_RATES}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LEARNING_RATES))
def test_sweep_on_8_devices_equals_1_device(swept, on_8_devices, name):
    """8 members are split over 8 simulated devices (whole members per device); 4 members are
    replicated with each batch split over the devices. Either way, each member matches 1 device."""
    _, reference, _ = swept
    with open(os.path.join(on_8_devices[name], "summary.json")) as f:
        summary = json.load(f)
    assert summary["devices"]["count"] == 8
    assert len(summary["members"]) == {"8-members-split": 8, "4-replicated": 4}[name]
    for ours in summary["members"]:
        theirs = reference["members"][ours["member"]]
        assert (ours["seed"], ours["hyperparameters"]) == (theirs["seed"], theirs["hyperparameters"])
        assert (ours["epochs_run"], ours["best_epoch"]) == (theirs["epochs_run"], theirs["best_epoch"])
        assert ours["test"]["loss"] == pytest.approx(theirs["test"]["loss"], rel=1e-4)


# The digits MLP of configs/mlp.py:tiny made linear and trained by SGD: learning rate 10 turns the
# loss NaN within the first epoch, 0.01 trains.
DIVERGING = ["--config", TINY, "--config.optimizer.name=sgd", "--config.model.activation=linear",
             "--config.model.hidden_sizes=(32,32)", *CHEAP, "--quiet"]


@pytest.fixture(scope="module")
def sane_solo(data_dir, tmp_path_factory) -> dict:
    """A solo run with the sane learning rate of the diverging sweeps."""
    workdir = tmp_path_factory.mktemp("sane_solo")
    result = run_experiment("experiments.mlp", *DIVERGING, "--config.optimizer.learning_rate=0.01",
                            f"--config.data.data_dir={data_dir}", f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr
    with open(os.path.join(workdir, "summary.json")) as f:
        return json.load(f)


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["halt", "skip"])
def test_a_diverged_member_stops_alone_and_is_left_out(data_dir, tmp_path, sane_solo, policy):
    result = run_experiment("experiments.mlp", *DIVERGING, "--config.sweep.learning_rate=(0.01,10.0)",
                            f"--config.train.nan_policy={policy}", "--config.train.max_consecutive_nonfinite=5",
                            f"--config.data.data_dir={data_dir}", f"--workdir={tmp_path}")
    assert result.returncode == 0, result.stderr
    with open(os.path.join(tmp_path, "summary.json")) as f:
        summary = json.load(f)
    sane, wild = summary["members"]
    assert (sane["diverged"], wild["diverged"]) == (False, True)
    # The sane member trains exactly as alone: all its epochs, the same parameters.
    assert sane["epochs_run"] == sane_solo["epochs_run"] == 3
    assert sane["params_sha256"] == sane_solo["params_sha256"]
    assert sane["test"]["accuracy"] == sane_solo["test"]["accuracy"]
    assert summary["best_member"] == 0 and summary["params_sha256"] == sane_solo["params_sha256"]
    assert summary["ensemble"]["members"] == 1
    assert summary["ensemble"]["test"]["accuracy"] == pytest.approx(sane_solo["test"]["accuracy"], abs=1e-6)
    # The diverged member keeps finite parameters from before the epoch it diverged in, its last record.
    assert wild["epochs_run"] < 3 and np.isfinite(wild["test"]["loss"])
    with open(os.path.join(tmp_path, "metrics.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    assert [line["epoch"] for line in lines if line["member"] == 0] == [1, 2, 3]
    wild_lines = [line for line in lines if line["member"] == 1]
    assert [line["epoch"] for line in wild_lines] == list(range(1, wild["epochs_run"] + 1))
    assert wild_lines[-1]["nonfinite_steps"] > 0


@pytest.mark.slow
def test_a_sweep_whose_members_all_diverge_fails_with_one_line(data_dir, tmp_path):
    # A process: its exit code, and all it prints.
    result = run_cli("experiments.mlp", *DIVERGING, "--config.optimizer.learning_rate=10", "--config.sweep.seeds=2",
                     f"--config.data.data_dir={data_dir}", f"--workdir={tmp_path}")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: epoch 1: loss or gradient is NaN or infinite"), lines
    assert "all 2 members diverged" in lines[0]
    assert not os.path.exists(os.path.join(tmp_path, "summary.json"))
