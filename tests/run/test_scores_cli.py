"""`eval.metrics` and `train.monitor` from the command line: the scores in the table, metrics.jsonl,
summary.json, report.html and TensorBoard; bad names are one `error:` line; a sweep section in every config."""

from __future__ import annotations

import json
import os
import sys

import pytest
from conftest import REPO, CliDriver, run_cli

from jaxdl.run import config as config_lib
from jaxdl.train.sweep import members_of

sys.path.insert(0, os.path.join(REPO, "tests", "report"))
from test_report import read_scalars  # noqa: E402


@pytest.fixture(scope="module")
def driver():
    started = CliDriver()
    yield started
    started.close()


@pytest.fixture(scope="module")
def scored(driver, tmp_path_factory, data_dir):
    workdir = str(tmp_path_factory.mktemp("scored") / "run")
    result = driver.run(["--config", "mlp:tiny", "--workdir", workdir, f"--config.data.data_dir={data_dir}",
                         "--config.eval.metrics=f1_macro,roc_auc", "--config.train.monitor=val_f1_macro",
                         "--config.train.patience=3", "--config.train.epochs=4"])
    assert result["code"] == 0, result
    return workdir, result


@pytest.mark.slow
def test_the_scores_reach_every_place_a_run_reports(scored):
    workdir, result = scored
    summary = json.load(open(os.path.join(workdir, "summary.json")))
    assert {"f1_macro", "roc_auc"} <= set(summary["test"]) and 0.3 < summary["test"]["f1_macro"] <= 1
    assert "test f1_macro" in result["stdout"] and "test roc_auc" in result["stdout"]
    lines = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    f1 = [line["val_f1_macro"] for line in lines]
    assert len(f1) == summary["epochs_run"] and all("val_roc_auc" in line for line in lines)
    assert summary["best_epoch"] == f1.index(max(f1)) + 1  # the best epoch is the monitored one's
    tags = read_scalars(workdir)
    assert len(tags["val/f1_macro"]) == len(f1) and "test/roc_auc" in tags
    page = open(os.path.join(workdir, "report.html"), encoding="utf-8").read()
    assert "test f1_macro (eval.metrics)" in page
    assert json.load(open(os.path.join(workdir, "config.json")))["train"]["monitor"] == "val_f1_macro"


@pytest.mark.parametrize("flag, words", [
    ("--config.eval.metrics=f1_macr", "error: config.eval.metrics: unknown name (got 'f1_macr'"),
    ("--config.eval.metrics=r2", "error: config.eval.metrics: not a score of classification (got 'r2'"),
    ("--config.train.monitor=val_f1_macr", "did you mean 'val_f1_macro'?"),
    ("--config.train.monitor=val_mse", "error: config.train.monitor: not a validation value to monitor (got 'val_mse'"),
    ("--config.train.monitor_mode=mx", "error: config.train.monitor_mode: unknown name (got 'mx'"),
])
def test_a_bad_score_or_monitor_is_one_error_line_and_leaves_nothing(driver, tmp_path, flag, words):
    result = driver.run(["--config", "mlp:tiny", "--workdir", str(tmp_path / "run"), flag])
    lines = result["stderr"].strip().splitlines()
    assert result["code"] == 2 and len(lines) == 1 and words in lines[0], result
    assert "did you mean" in lines[0] or "not a score" in lines[0] or "val_mse" in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", sorted(config_lib.packaged_configs()))
def test_every_experiment_config_has_a_sweep_section(name):
    config = config_lib.load_config(name)
    config_lib.apply_override(config, "sweep.learning_rate", "(0.001,0.01)")
    assert [member.hyperparameters["learning_rate"] for member in members_of(config)] == [0.001, 0.01]


@pytest.mark.slow
def test_the_transfer_experiment_refuses_a_sweep_in_one_line(tmp_path):
    result = run_cli("experiments.transfer", "--config", "transfer:tiny", "--workdir", str(tmp_path / "run"),
                     "--config.sweep.learning_rate=(0.001,0.01)")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: config.sweep: the transfer experiment cannot sweep")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # a vmapped CNN compiles for half a minute on 2 shared cores
def test_a_cnn_sweep_runs_and_names_each_members_setting(driver, tmp_path, data_dir):
    workdir = str(tmp_path / "run")
    result = driver.run(["--config", "cnn:tiny", "--workdir", workdir, f"--config.data.data_dir={data_dir}",
                         "--config.sweep.learning_rate=(0.001,0.01)", "--config.train.epochs=1"])
    assert result["code"] == 0, result
    summary = json.load(open(os.path.join(workdir, "summary.json")))
    assert [m["label"] for m in summary["members"]] == ["lr=0.001", "lr=0.01"]
    assert "member 1" in result["stdout"] and "lr=0.01 wd=0 seed=0" in result["stdout"]
    page = open(os.path.join(workdir, "report.html"), encoding="utf-8").read()
    assert "Sweep: 2 members" in page and "validation curves of every member" in page
