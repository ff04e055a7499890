"""Sequence regression with a target at every step, from the command line: the adding problem per step."""

from __future__ import annotations

import json
import os

import ml_collections
import numpy as np
import pytest
from conftest import run_cli

from jaxdl.data import load

LENGTH = 10


@pytest.mark.slow
def test_adding_per_step_runs_from_the_command_line_and_beats_the_mean(data_dir, tmp_path):
    workdir = str(tmp_path / "run")
    done = run_cli("experiments.rnn", "--config=configs/rnn.py:adding_per_step",
                   f"--config.data.sequence_length={LENGTH}", "--config.model.hidden_size=16",
                   "--config.train.epochs=2", "--config.eval.report=false", "--config.eval.baseline=false",
                   f"--config.data.data_dir={data_dir}", f"--workdir={workdir}", "--quiet=true")
    assert done.returncode == 0, done.stderr[-2000:]
    with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
    mse = summary["test"]["mse"]
    assert np.isfinite(mse) and summary["test"]["count"] == 2000
    # Predicting the training set's mean target at every step, and the stronger guess of each step's own mean.
    splits = load(ml_collections.ConfigDict({"name": "adding_per_step", "data_dir": data_dir, "split_seed": 0,
                                             "validation_fraction": 0.1, "download": False,
                                             "sequence_length": LENGTH}))
    train, test = splits.train["y"], splits.test["y"]
    assert test.shape == (2000, LENGTH)
    mean_baseline = float(np.mean((test - train.mean()) ** 2))
    step_mean_baseline = float(np.mean((test - train.mean(axis=0)) ** 2))
    assert mse < step_mean_baseline < mean_baseline, (mse, step_mean_baseline, mean_baseline)
