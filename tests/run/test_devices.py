"""One code path for 1 and 8 devices: the same losses (same seed, same bits: tests/test_resume.py)."""

import json
import os

import numpy as np
import pytest
from conftest import devices_env, run_cli

# One compiled call per epoch: `auto` would time candidates that all train the same bits
# (tests/train/test_steps_per_call.py), and compile the one-step program as well.
ARGS = ["--config", "configs/mlp.py:tiny", "--quiet", "--config.eval.report=false",
        "--config.model.hidden_sizes=(64,64)", "--config.train.batch_size=64", "--config.train.epochs=4",
        "--config.model.dropout=0.1", "--config.train.steps_per_call=epoch"]


def run_on(devices: int, workdir: str, data_dir: str) -> tuple[list[dict], dict]:
    env = devices_env(devices)
    result = run_cli("experiments.mlp", *ARGS, f"--config.data.data_dir={data_dir}", f"--workdir={workdir}", env=env)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    return records, json.load(open(os.path.join(workdir, "summary.json")))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("devices")
    return {name: run_on(devices, str(root / name), data_dir)
            for name, devices in [("one", 1), ("eight", 8)]}


@pytest.mark.slow
def test_eight_devices_give_the_losses_of_one(runs):
    one, eight = runs["one"], runs["eight"]
    assert one[1]["devices"]["count"] == 1 and eight[1]["devices"]["count"] == 8
    for key in ("train_loss", "val_loss"):
        a = np.array([r[key] for r in one[0]])
        b = np.array([r[key] for r in eight[0]])
        np.testing.assert_allclose(b, a, rtol=1e-4)
    np.testing.assert_allclose(eight[1]["test"]["loss"], one[1]["test"]["loss"], rtol=1e-4)


def test_batch_size_must_divide_by_the_device_count(data_dir, tmp_path):
    env = devices_env(8)
    result = run_cli("experiments.mlp", *ARGS, "--config.train.batch_size=60", f"--config.data.data_dir={data_dir}",
                     f"--workdir={tmp_path}", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: config.train.batch_size: batch size must be divisible by the device "
                                     "count (8) (got 60, expected a multiple of 8)")
