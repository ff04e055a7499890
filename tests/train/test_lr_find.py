"""The learning-rate finder: the range test (one compiled program, stopped at divergence), its suggestion,
the confirming sweep, and `train.lr_find=true` in a run (config, summary.json, report, resume)."""

import json
import os

import ml_collections
import numpy as np
import optax
import pytest

from jaxdl import lr_find
from jaxdl.errors import InputError
from jaxdl.models import MLP
from jaxdl.run.config import apply_override, load_config
from jaxdl.run.pipeline import train_and_evaluate
from jaxdl.train.losses import classification_metrics
from jaxdl.train.lr_find import DIVERGENCE, range_test_program
from jaxdl.train.optimizer import build_optimizer
from jaxdl.train.state import create_state


def state(tx=None):
    if tx is None:
        config = ml_collections.ConfigDict(dict(name="adam", learning_rate=1e-3, schedule="constant",
                                                momentum=0.9, weight_decay=0.0))
        tx = build_optimizer(config, steps_per_epoch=10, epochs=1)
    return create_state(MLP(num_outputs=10, hidden_sizes=(32,)), tx, (8, 8, 1), 0, classification_metrics)


@pytest.fixture(scope="module")
def start_state():
    return state()


@pytest.fixture(scope="module")
def found(digits, start_state):
    train = {key: value[:512] for key, value in digits.train.items()}
    return lr_find(start_state, train, digits.validation, batch_size=32, steps=60, start=1e-5, end=10.0,
                   confirm_factors=(0.5, 1.0, 2.0))


@pytest.mark.slow
def test_rates_rise_exponentially_and_the_curve_follows_them(found):
    rates = np.array(found.rates)
    assert np.all(np.diff(rates) > 0) and rates[0] == pytest.approx(1e-5)
    np.testing.assert_allclose(rates[1:] / rates[:-1], rates[1] / rates[0], rtol=1e-4)
    assert len(found.losses) == len(found.smoothed) == len(rates)


def test_the_test_stops_at_divergence(found):
    assert found.diverged_at is not None and found.diverged_at > found.rates[-1]
    smoothed = np.array(found.smoothed)
    assert np.all(np.isfinite(smoothed))
    assert np.all(smoothed <= DIVERGENCE * np.minimum.accumulate(smoothed))


def test_the_suggestion_lies_inside_the_range_below_divergence(found):
    assert found.rates[0] <= found.suggestion <= found.min_rate <= found.rates[-1] < found.diverged_at
    assert found.confirm["rates"] == pytest.approx([found.suggestion * f for f in (0.5, 1.0, 2.0)])
    assert found.rate == found.confirm["chosen"] in found.confirm["rates"]
    best = int(np.argmin(found.confirm["val_loss"]))
    assert found.rate == found.confirm["rates"][best]


def test_one_compile_whatever_the_rates(found, digits, start_state):
    compiled = range_test_program._cache_size()
    train = {key: value[:512] for key, value in digits.train.items()}
    lr_find(start_state, train, batch_size=32, steps=60, start=1e-4, end=1.0)
    assert range_test_program._cache_size() == compiled


def test_an_optimizer_without_an_injected_rate_is_refused(digits):
    with pytest.raises(InputError, match="injected learning_rate"):
        lr_find(state(optax.adam(1e-3)), digits.train, batch_size=32)


@pytest.mark.slow
def test_a_run_with_lr_find_trains_at_the_found_rate_and_reports_it(data_dir, tmp_path, capsys):
    config = load_config("configs/mlp.py:tiny")
    for key, value in {"data.data_dir": data_dir, "train.lr_find": "true", "train.epochs": "1",
                       "checkpoint.every_epochs": "1"}.items():
        apply_override(config, key, value)
    workdir = str(tmp_path / "run")
    summary = train_and_evaluate(config, workdir, progress=True)
    record = summary["lr_find"]
    assert {"rates", "losses", "smoothed", "suggestion", "rule", "confirm", "rate"} <= set(record)
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["optimizer"]["learning_rate"] == pytest.approx(record["rate"])
    assert f"training at learning_rate={record['rate']:.3g}" in capsys.readouterr().err
    with open(os.path.join(workdir, "report.html")) as f:
        assert "Learning-rate finder" in f.read()
    assert os.path.exists(os.path.join(workdir, "lr_find.png"))

    again = load_config("configs/mlp.py:tiny")  # resumed: no second search, the same rate
    for key, value in {"data.data_dir": data_dir, "train.lr_find": "true", "train.epochs": "2",
                       "checkpoint.every_epochs": "1"}.items():
        apply_override(again, key, value)
    resumed = train_and_evaluate(again, workdir, progress=True)
    assert resumed["resumed_from"] == 1 and resumed["lr_find"] == record
    assert "lr_find: range test" not in capsys.readouterr().err
