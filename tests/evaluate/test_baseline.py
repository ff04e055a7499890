"""The softmax-regression baseline: trained in one program, under the run's budget, with a clean history."""

from __future__ import annotations

import os
import warnings

from conftest import REPO

from jaxdl import parallel
from jaxdl.evaluate.baseline import fit_baseline
from jaxdl.run.config import load_config


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
