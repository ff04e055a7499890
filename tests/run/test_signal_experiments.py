"""The signal variants of the CNN and RNN experiments from the command line: 1-D CNN and GRU on `signals`."""

from __future__ import annotations

import json
import os

import pytest
from conftest import run_cli

# variant -> (experiment, the layer whose activations are drawn as lines over the steps)
VARIANTS = {"cnn": ("experiments.cnn", "activations_conv_0_out.png"),
            "rnn": ("experiments.rnn", "activations_layer_0_out.png")}


@pytest.fixture(scope="module")
def signals_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.mark.slow
@pytest.mark.parametrize("family", list(VARIANTS))
def test_signal_variant_trains_from_the_command_line(family, signals_dir, tmp_path):
    module, activations = VARIANTS[family]
    done = run_cli(module, f"--config=configs/{family}.py:signals", "--config.train.epochs=3",
                   "--config.data.sequence_length=64", "--config.eval.baseline=false",
                   "--config.eval.questions=good_enough,data",  # the others: tests/evaluate/test_questions.py
                   f"--config.data.data_dir={signals_dir}", f"--workdir={tmp_path}", "--quiet=true")
    assert done.returncode == 0, done.stderr[-3000:]
    with open(tmp_path / "summary.json") as f:
        summary = json.load(f)
    assert summary["data"] == {"name": "signals", "train": 1800, "validation": 200, "test": 800, "pipeline": "memory"}
    assert summary["test"]["accuracy"] > 0.5  # 4 balanced classes: chance is 0.25
    for name in ("worst_errors.png", activations, "report.html"):
        assert name in summary["files"] and os.path.exists(tmp_path / name), name
