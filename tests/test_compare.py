"""`python -m jaxdl.compare`: the differing config keys and the test figures of several runs."""

from __future__ import annotations

import os

import pytest
from conftest import REPO, run_cli
from PIL import Image

from jaxdl.compare import main
from jaxdl.config import load_config
from jaxdl.pipeline import train_and_evaluate


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, data_dir):
    """Two tiny digits runs that differ in learning rate and width (no baseline, no report: fast)."""
    root = tmp_path_factory.mktemp("compare")
    summaries = {}
    for name, lr, sizes in (("slow", 1e-3, (32,)), ("fast", 1e-2, (16,))):
        config = load_config(os.path.join(REPO, "configs", "mlp.py:tiny"))
        with config.unlocked():
            config.data.data_dir = data_dir
            config.optimizer.learning_rate = lr
            config.model.hidden_sizes = sizes
            config.eval.baseline = False
            config.eval.report = False
        summaries[name] = train_and_evaluate(config, str(root / name), progress=False)
    return root, summaries


def test_runs_without_a_report_still_have_their_findings(two_runs):
    root, summaries = two_runs
    assert not (root / "slow" / "report.html").exists() and "report" not in summaries["slow"]
    assert "confusion_matrix" in summaries["slow"] and summaries["slow"]["baseline"]["skipped"]


def test_compare_prints_differing_keys_and_test_figures_and_plots_curves(two_runs, tmp_path):
    root, summaries = two_runs
    plot = tmp_path / "curves.png"
    result = run_cli("jaxdl.compare", str(root / "slow"), str(root / "fast"), "--out", str(plot))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = lines[0].split()
    assert header[:3] == ["run", "model.hidden_sizes", "optimizer.learning_rate"]
    assert "data.data_dir" not in header and "train.epochs" not in header  # equal in both runs
    slow = next(line for line in lines if line.startswith("slow"))
    assert "[32]" in slow and "0.001" in slow and f"{summaries['slow']['test']['accuracy']:.4f}" in slow
    fast = next(line for line in lines if line.startswith("fast"))
    assert f"{summaries['fast']['test']['accuracy']:.4f}" in fast
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.width > 300


def test_a_missing_run_folder_is_one_error_line():
    result = run_cli("jaxdl.compare", "does/not/exist")
    assert result.returncode == 2
    assert result.stderr == "error: does/not/exist: no such run folder (expected a workdir written by an experiment)\n"


@pytest.mark.parametrize(("args", "message"), [
    ([REPO], "not a run folder"),
    ([], "no run folders given"),
    (["--out"], "missing value"),
    (["x", "--out=plot.pdf"], "the plot is a PNG"),
    (["--colour=red", "x"], "unknown flag"),
])
def test_bad_input_is_one_error_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
