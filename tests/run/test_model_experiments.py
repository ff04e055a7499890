"""The CNN, ResNet, RNN and hybrid experiments end to end, through the command line.

For the ResNet, RNN and hybrid, with a tiny config, a real subprocess on 1 device (exit code, workdir
files, report, final table). For the RNN and the hybrid also the same run on 8 simulated devices (the
same per-epoch losses; for batch norm that means statistics over the whole global batch), and for the
hybrid the same run again in a new process (bit-identical parameters: same seed, same numbers, programs
read from the cache). The hybrid (a CNN per frame, an RNN over frames) has the CNN's convolutions, pooling,
batch norm and dropout, so its 8-device run covers the CNN's; the CNN's own runs from the command line
are in tests/data/test_folder.py, tests/run/test_catalog_experiments.py, tests/run/test_signal_experiments.py
and tests/deploy (on 1 device) and tests/run/test_multiprocess.py (on 8, and on 2 processes x 4). The
subprocesses share the suite's persistent compilation cache (tests/conftest.py), so the repeated
run does not compile again.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import devices_env, run_cli

# family -> (experiment module, config, overrides): tiny runs, with batch norm and dropout where the family has them.
FAMILIES = {
    "resnet": ("experiments.cnn", "configs/cnn.py:tiny",
               {"model.name": "resnet", "model.channels": "(4,8)", "model.blocks_per_stage": "1",
                "model.dense_sizes": "()", "model.dropout": "0.0", "train.epochs": "2"}),
    "rnn": ("experiments.rnn", "configs/rnn.py:adding",
            {"data.sequence_length": "10", "model.hidden_size": "8", "model.bidirectional": "true",
             "train.epochs": "2", "train.batch_size": "128",
             # the adding variant asks every question (tests/evaluate/test_questions.py tests them); here,
             # the tiny variants' two: the compute question's own step compile and the simpler methods'
             # fits were 2.5 s of the 13.7 s run
             "eval.questions": "good_enough,data"}),
    "hybrid": ("experiments.hybrid", "configs/hybrid.py:tiny", {"train.epochs": "1", "train.batch_size": "128"}),
}
RELATIVE_TOLERANCE = 1e-4
EIGHT_DEVICES = devices_env(8)


def run_family(family: str, data_dir: str, workdir: str, env: dict[str, str], *, report: bool = True) -> dict:
    """Runs the family's tiny config from the command line; returns its summary.json.

    With `report`, also the baseline and report.html (their figures differ per family: feature
    maps, per-step and per-frame activations); without, just the training being compared.
    """
    module, spec, overrides = FAMILIES[family]
    extra = () if report else ("--config.eval.report=false", "--config.eval.baseline=false")
    done = run_cli(module, f"--config={spec}", *(f"--config.{key}={value}" for key, value in overrides.items()),
                   f"--config.data.data_dir={data_dir}", f"--workdir={workdir}", "--quiet=true", *extra, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test " in done.stdout and "parameters" in done.stdout  # the final table
    files = ("config.json", "metrics.jsonl", "summary.json", "checkpoints") + (("report.html",) if report else ())
    for name in files:
        assert os.path.exists(os.path.join(workdir, name)), name
    with open(os.path.join(workdir, "summary.json")) as f:
        return json.load(f)


def losses(workdir: str) -> list[tuple[float, float]]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [(record["train_loss"], record["val_loss"]) for record in map(json.loads, f)]


@pytest.mark.slow
def test_resnet_runs_from_the_command_line(data_dir, tmp_path):
    summary = run_family("resnet", data_dir, str(tmp_path), {})
    assert summary["model"] == "resnet" and summary["devices"]["count"] == 1
    assert summary["epochs_run"] == 2
    # The test accuracy is the confusion matrix's trace over the count, exactly as float32 divides.
    confusion = np.array(summary["confusion_matrix"])
    assert confusion.sum() == summary["test"]["count"] == summary["data"]["test"]
    assert np.float32(np.trace(confusion)) / np.float32(confusion.sum()) == np.float32(summary["test"]["accuracy"])


@pytest.mark.slow
@pytest.mark.parametrize("family", ["rnn", "hybrid"])
def test_family_runs_the_same_on_8_devices_and_repeats_bit_for_bit(family, data_dir, tmp_path):
    one = run_family(family, data_dir, str(tmp_path / "one"), {})
    assert one["devices"]["count"] == 1
    assert one["model"] == FAMILIES[family][2].get("model.name", family)
    assert ("mse" if family == "rnn" else "accuracy") in one["test"]

    if family == "hybrid":  # its convolutions, recurrence, batch norm and dropout cover the other two families'
        again = run_family(family, data_dir, str(tmp_path / "again"), {}, report=False)
        assert again["params_sha256"] == one["params_sha256"]

    eight = run_family(family, data_dir, str(tmp_path / "eight"), EIGHT_DEVICES, report=False)
    assert eight["devices"]["count"] == 8
    single, multi = losses(str(tmp_path / "one")), losses(str(tmp_path / "eight"))
    assert len(single) == len(multi) == one["epochs_run"]
    for epoch, (a, b) in enumerate(zip(single, multi, strict=True), start=1):
        for name, x, y in (("train_loss", a[0], b[0]), ("val_loss", a[1], b[1])):
            assert abs(x - y) <= RELATIVE_TOLERANCE * abs(x), f"epoch {epoch} {name}: 1 device {x}, 8 devices {y}"


def test_bad_model_option_is_one_error_line(data_dir, tmp_path):
    done = run_cli("experiments.rnn", "--config.model.cell=lstn", f"--config.data.data_dir={data_dir}",
                   f"--workdir={tmp_path}")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: config.model.cell") and "did you mean 'lstm'" in lines[-1]
    assert "Traceback" not in done.stderr
