"""The softmax-regression baseline: trained in one program, under the run's budget, with a clean history;
a diverging baseline is reported as such and does not end the run."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import warnings

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO

from jaxdl import parallel
from jaxdl.evaluate.baseline import fit_baseline
from jaxdl.report.console import final_table
from jaxdl.run.config import load_config
from jaxdl.run.pipeline import train_and_evaluate


def test_baseline_trains_the_budget_and_warns_nothing(digits):
    config = load_config(os.path.join(REPO, "configs", "mlp.py:tiny"))
    config.train.epochs, config.train.patience = 4, 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. NaN cast to an integer history slot
        result = fit_baseline(config, digits, parallel.make_mesh())
    assert result["model"] == "softmax regression"
    assert result["num_params"] == 64 * 10 + 10
    assert result["epochs_run"] == 4 and [r["epoch"] for r in result["history"]] == [1, 2, 3, 4]
    losses = [r["val_loss"] for r in result["history"]]
    assert losses[-1] < losses[0] < 2.31  # from zeros: log(10) = 2.303 before any step
    assert 0.8 < result["test"]["accuracy"] <= 1 and result["test"]["count"] == 359


def with_nan_in_training(digits):
    x = digits.train["x"].copy()
    x[5, 3, 3, 0] = np.nan
    return dataclasses.replace(digits, train={**digits.train, "x": x})


def test_a_diverging_baseline_says_so_without_test_figures(digits, caplog):
    config = load_config(os.path.join(REPO, "configs", "mlp.py:tiny"))
    config.train.epochs = 4
    with caplog.at_level(logging.WARNING, logger="jaxdl"):
        result = fit_baseline(config, with_nan_in_training(digits), parallel.make_mesh())
    assert result["diverged"] is True and "test" not in result
    assert result["epoch"] == 1 and result["epochs_run"] == 1 and result["history"] == []  # stopped at once
    assert result["first_nonfinite_step"] >= 1 and "train.nan_policy=halt" in result["reason"]
    json.dumps(result, allow_nan=False)  # no NaN left in what goes to summary.json
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("the softmax regression baseline diverged in epoch 1")


def test_under_nan_policy_skip_the_baseline_skips_the_bad_steps(digits):
    config = load_config(os.path.join(REPO, "configs", "mlp.py:tiny"))
    config.train.epochs, config.train.patience, config.train.nan_policy = 3, 0, "skip"
    result = fit_baseline(config, with_nan_in_training(digits), parallel.make_mesh())
    assert "diverged" not in result and result["epochs_run"] == 3  # one bad step an epoch, none in a row
    assert 0.8 < result["test"]["accuracy"] <= 1 and np.isfinite(result["test"]["loss"])


class Squashed(nn.Module):
    """A linear classifier of tanh(x): finite on inputs far too large for the raw-input baseline."""

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        return nn.Dense(10)(jnp.tanh(x.reshape((x.shape[0], -1))))


@pytest.mark.slow
def test_a_run_whose_baseline_diverges_still_succeeds_and_reports_it(digits, tmp_path, caplog):
    config = load_config(os.path.join(REPO, "configs", "mlp.py:tiny"))
    config.train.epochs, config.eval.baseline, config.eval.report = 2, True, True
    config.optimizer.name = "sgd"  # Adam would stall instead: its second moment overflows, its steps become 0
    # Pixels near float32's largest value: tanh keeps the network finite; the baseline's logits, W x, overflow.
    huge = {name: {**split, "x": split["x"] * np.float32(3e38)} for name, split in
            (("train", digits.train), ("validation", digits.validation), ("test", digits.test))}
    splits = dataclasses.replace(digits, **huge)
    with caplog.at_level(logging.WARNING, logger="jaxdl"):
        summary = train_and_evaluate(config, str(tmp_path), splits=splits, model=Squashed(), progress=False)
    assert np.isfinite(summary["test"]["loss"]) and summary["epochs_run"] == 2
    baseline = summary["baseline"]
    assert baseline["diverged"] is True and baseline["epoch"] == 1 and "test" not in baseline
    assert any("softmax regression baseline diverged in epoch 1" in r.getMessage() for r in caplog.records)
    with open(tmp_path / "summary.json") as f:
        json.load(f, parse_constant=lambda name: pytest.fail(f"{name} in summary.json"))
    table = final_table(summary)
    assert "diverged in epoch 1  (softmax regression)" in table and "baseline test" not in table
    assert "softmax regression baseline: non-finite loss in epoch 1" in (tmp_path / "report.html").read_text()
