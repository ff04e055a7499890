"""One order, two pipelines: `data.pipeline=stream` trains to the same bits as `memory` (in `fit` and
through the command line), resumes exactly after `kill -9`, and refuses what it cannot stream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import ml_collections
import numpy as np
import optax
import pytest
from cli_runs import CHEAP, TINY_MLP, run_experiment
from conftest import REPO, run_cli

from jaxdl.data import load_for_pipeline
from jaxdl.models import build_model
from jaxdl.run.config import load_config
from jaxdl.train.checkpoint import CheckpointReader
from jaxdl.train.digest import params_sha256
from jaxdl.train.feed import order_key_of
from jaxdl.train.fit import fit
from jaxdl.train.losses import classification_metrics
from jaxdl.train.state import create_state
from jaxdl.train.step import epoch_order, host_epoch_order


def metrics(workdir) -> list[dict]:
    """metrics.jsonl without the wall-clock field."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in f if line.endswith("\n")]


def summary(workdir) -> dict:
    with open(os.path.join(workdir, "summary.json")) as f:
        return json.load(f)


def test_the_host_draws_the_devices_order(digits):
    model = build_model(load_config("configs/mlp.py:tiny").model, digits.info)
    state = create_state(model, optax.adam(1e-3), (8, 8, 1), 3, classification_metrics)
    n, batch = len(digits.train["y"]), 32
    for epoch in (0, 1, 7):
        on_device = epoch_order(state.replace(step=state.step + epoch * (n // batch)), n, batch)
        np.testing.assert_array_equal(host_epoch_order(order_key_of(state), epoch, n, batch),
                                      np.asarray(on_device).reshape(-1))


@pytest.mark.slow
@pytest.mark.parametrize("trained_steps", [0, 50])
def test_fit_streams_to_the_memory_pipelines_bits(data_dir, trained_steps):
    """Dropout (the step's key), early stopping, 2 epochs of 20 steps in chunks of 7, 7 and 6 steps. The
    CNN with batch norm: the command-line test below and benchmarks/stream.py. A state that arrives
    having trained 50 steps (a second phase) goes on with the permutation of its step's epoch (2)."""
    config = load_config("configs/mlp.py:tiny")
    with config.unlocked():
        config.model.dropout = 0.1
    runs = {}
    for pipeline in ("memory", "stream"):
        splits, fed = load_for_pipeline(ml_collections.ConfigDict({
            "name": "digits", "data_dir": data_dir, "validation_fraction": 0.1, "split_seed": 0, "download": False,
            "pipeline": pipeline}))
        assert fed == pipeline
        state = create_state(build_model(config.model, splits.info), optax.adam(1e-3), (8, 8, 1), 0,
                             classification_metrics)
        state = state.replace(step=state.step + trained_steps)
        result = fit(state, splits.train, splits.validation, epochs=2, batch_size=64, patience=1, chunk_steps=7)
        assert result.pipeline == pipeline
        runs[pipeline] = ([{k: v for k, v in r.items() if k != "seconds"} for r in result.history],
                          params_sha256(result.state.params), params_sha256(result.fit_state.train.params))
    assert runs["stream"] == runs["memory"]
    assert runs["memory"][0][-1]["train_loss"] < runs["memory"][0][0]["train_loss"]


# CHEAP: what no test here reads (auto streamed: the test above).
CNN = ["--config", os.path.join(REPO, "configs", "cnn.py") + ":tiny", *CHEAP, "--config.data.chunk_steps=7", "--quiet"]


@pytest.mark.slow
def test_the_command_line_gives_the_same_losses_and_parameters_with_both_pipelines(data_dir, tmp_path):
    for pipeline in ("memory", "stream"):  # the command line's code, in this process
        result = run_experiment("experiments.cnn", *CNN, f"--config.data.data_dir={data_dir}",
                                f"--config.data.pipeline={pipeline}", f"--workdir={tmp_path / pipeline}")
        assert result.returncode == 0, result.stderr
        assert summary(tmp_path / pipeline)["data"]["pipeline"] == pipeline
    assert len(metrics(tmp_path / "memory")) == 3
    assert metrics(tmp_path / "stream") == metrics(tmp_path / "memory")  # train and validation, every epoch
    memory, stream = summary(tmp_path / "memory"), summary(tmp_path / "stream")
    assert stream["params_sha256"] == memory["params_sha256"]
    assert stream["test"] == memory["test"]
    assert stream["data"]["wait_seconds"] >= 0 and "wait_seconds" not in memory["data"]
    # The drift reference samples the same training rows, read from the files in their stored form.
    assert (tmp_path / "stream" / "drift_reference.json").read_text() == (
        tmp_path / "memory" / "drift_reference.json").read_text()


EPOCHS = 8
MLP = [*TINY_MLP, f"--config.train.epochs={EPOCHS}", "--config.data.chunk_steps=7"]


@pytest.mark.slow
def test_a_streamed_run_killed_mid_way_resumes_to_the_uninterrupted_bits(data_dir, tmp_path):
    reference = tmp_path / "memory"
    result = run_experiment("experiments.mlp", *MLP, f"--config.data.data_dir={data_dir}",
                            "--config.data.pipeline=memory", f"--workdir={reference}")
    assert result.returncode == 0, result.stderr
    workdir = tmp_path / "stream"
    args = [*MLP, f"--config.data.data_dir={data_dir}", "--config.data.pipeline=stream", f"--workdir={workdir}"]
    process = subprocess.Popen([sys.executable, "-m", "experiments.mlp", *args], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # a real process, to kill
    while process.poll() is None and not any(r["epoch"] >= 3 for r in metrics(workdir)):
        time.sleep(0.005)
    time.sleep(0.02)  # somewhere in the next epoch's chunks, its save, or its metrics line
    process.kill()
    process.wait()
    # A reader: a Checkpointer would remove the killed save's folder in the background, racing the resume's own.
    reader = CheckpointReader(str(workdir / "checkpoints"))
    assert reader.epochs() and reader.epochs()[-1] < EPOCHS  # saves are asynchronous: the newest finished one
    epoch = reader.epochs()[-1]
    meta = reader.read_meta(epoch)
    steps = summary(reference)["data"]["train"] // 32
    assert meta["input"] == {"epoch": epoch, "step": epoch * steps, "examples": epoch * steps * 32}

    finished = run_experiment("experiments.mlp", *args)  # the same command, resumed (in this process)
    assert finished.returncode == 0, finished.stderr
    assert summary(workdir)["resumed_from"] >= epoch and summary(workdir)["data"]["pipeline"] == "stream"
    assert summary(workdir)["params_sha256"] == summary(reference)["params_sha256"]
    assert metrics(workdir) == metrics(reference)  # each epoch once, with the memory pipeline's numbers
    assert [r["epoch"] for r in metrics(reference)] == list(range(1, EPOCHS + 1))


def test_stream_is_refused_for_splits_built_in_memory(tmp_path):
    workdir = tmp_path / "run"
    result = run_cli("experiments.playground", "--config.data.pipeline=stream", "--config.train.epochs=1",
                     f"--workdir={workdir}")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: config.data.pipeline: the playground experiment builds its splits in memory")
    assert not workdir.exists()

