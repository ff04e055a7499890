"""experiments.transfer: budgets table, figures, reuse of a source, catalog sets, errors on the command line."""

import json
import os

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import REPO, run_cli

from experiments import transfer
from jaxdl.errors import InputError
from jaxdl.run.config import load_config
from jaxdl.run.pipeline import train_and_evaluate


def tiny_config(data_dir, variant="tiny", **data):
    """The tiny variant with an MLP (quick to compile) and one small budget."""
    config = load_config(os.path.join(REPO, "configs", f"transfer.py:{variant}"))
    with config.unlocked():
        config.model = ml_collections.ConfigDict({"name": "mlp", "hidden_sizes": (16,), "activation": "relu",
                                                  "dropout": 0.0})
    for section in (config.data, config.pretrain.data):
        section.data_dir = data_dir
        section.update(data)
    config.budgets = (2,)
    config.curves_budget = 2
    config.seeds = 2
    config.pretrain.train.epochs = 2
    config.train.epochs = 3
    config.transfer.head_epochs = 1
    config.transfer.skip = ()  # the MLP has no conv layers; fine-tuning loads all but the head
    # as the configs' tiny variants of the other experiments: simpler_methods (scikit-learn fits, 1.8 s of
    # the 12.5 s run, pretraining's and the headline's) and compute are tests/evaluate/test_questions.py's
    config.eval.questions = "good_enough,data"
    return config


@pytest.mark.slow
def test_budgets_figures_and_a_reused_source_give_the_same_numbers(data_dir, tmp_path):
    config = tiny_config(data_dir)
    summary = transfer.run(config, str(tmp_path / "first"), progress=False)
    [row] = summary["budgets"]
    assert row["labels_per_class"] == 2 and row["train_examples"] == 10 and row["seeds"] == 2
    for strategy in ("scratch", "head_only", "finetune"):
        # The row's figures are those of this strategy's runs, one per seed, recomputed here.
        accuracies = np.array([r["test"]["accuracy"] for r in summary["runs"] if r["strategy"] == strategy])
        assert len(accuracies) == 2
        assert row[f"{strategy}_accuracy"] == accuracies.mean() and row[f"{strategy}_std"] == accuracies.std(ddof=1)
        assert (row[f"{strategy}_min"], row[f"{strategy}_max"]) == (accuracies.min(), accuracies.max())
    assert row["finetune_minus_scratch"] == row["finetune_accuracy"] - row["scratch_accuracy"]
    assert len(summary["runs"]) == 6 and {r["test"]["count"] for r in summary["runs"]} == {summary["data"]["test"]}
    assert summary["data"]["classes"] == [5, 6, 7, 8, 9]
    # The headline model's epochs run through both phases: 1 head epoch, then 2 of everything.
    assert summary["epochs_run"] == 3 and 1 < summary["best_epoch"] <= 3
    curves = summary["curves"]
    assert set(curves) == {"labels_per_class", "scratch", "finetune"}
    assert curves["scratch"]["steps"] == curves["finetune"]["steps"] and len(curves["scratch"]["steps"]) == 3
    for name in ("budgets.png", "curves.png", "transfer.json", "summary.json", "pretrain/summary.json"):
        assert os.path.exists(tmp_path / "first" / name)
    with open(tmp_path / "first" / "transfer.json") as f:
        loaded = json.load(f)
    assert [e["path"] for e in loaded["skipped"]] == ["params/head/bias", "params/head/kernel"]
    assert [e["path"] for e in loaded["loaded"]] == ["params/hidden_0/bias", "params/hidden_0/kernel"]

    config.source = str(tmp_path / "first" / "pretrain")
    again = transfer.run(config, str(tmp_path / "second"), progress=False)
    assert not os.path.exists(tmp_path / "second" / "pretrain")
    assert again["budgets"] == summary["budgets"] and again["params_sha256"] == summary["params_sha256"]


@pytest.mark.slow
def test_catalog_source_and_target_under_mock_data(tmp_path):
    config = tiny_config(str(tmp_path / "tfds"), variant="fashion_mnist")
    config.budgets = (1,)
    config.curves_budget = 1
    config.seeds = 1
    config.pretrain.train.batch_size = config.train.batch_size = 16
    with tfds.testing.mock_data(num_examples=120):
        summary = transfer.run(config, str(tmp_path / "run"), progress=False)
    assert summary["data"]["name"] == "fashion_mnist" and summary["data"]["classes"] == []
    assert summary["source"]["data"] == "mnist"
    assert summary["budgets"][0]["train_examples"] == 10  # one label of each of the 10 classes


@pytest.mark.slow
def test_a_source_of_another_architecture_is_one_error_line(data_dir, tmp_path):
    mlp = load_config(os.path.join(REPO, "configs", "mlp.py:tiny"))
    mlp.data.data_dir = data_dir
    mlp.train.epochs = 1
    train_and_evaluate(mlp, str(tmp_path / "mlp"), progress=False)
    result = run_cli("experiments.transfer", "--config", "configs/transfer.py:tiny",
                     f"--config.source={tmp_path / 'mlp'}", f"--config.data.data_dir={data_dir}",
                     "--workdir", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith("error: config.transfer.source: no layer of the checkpoint matches this model")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("budgets", (1, -1), "config.budgets: out of range"),
    ("curves_budget", 7, "config.curves_budget: is not one of the budgets"),
    ("seeds", 0, "config.seeds: out of range"),
])
def test_bad_experiment_settings_are_input_errors(data_dir, tmp_path, key, value, message):
    config = tiny_config(data_dir)
    config[key] = value
    with pytest.raises(InputError, match=message):
        transfer.run(config, str(tmp_path), progress=False)


def test_too_large_a_budget_is_an_input_error(data_dir, tmp_path):
    config = tiny_config(data_dir)
    config.budgets = (500,)
    config.curves_budget = 500
    config.source = "unused"  # the budget is checked against the data before anything is trained
    with pytest.raises(InputError, match="config.budgets: class 0 has only"):
        transfer.run(config, str(tmp_path), progress=False)
