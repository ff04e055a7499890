"""The prepared benchmark scripts run to the end and print what they promise (tiny sizes, CPU)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow
def test_accelerator_quick_prints_the_device_and_every_models_step(data_dir):
    result = subprocess.run([sys.executable, os.path.join("benchmarks", "accelerator.py"), "--quick"], cwd=REPO,
                            env={**os.environ, "TFDS_DATA_DIR": data_dir}, capture_output=True, text=True,
                            timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("device: ") and "cpu" in lines[0]
    chosen = [line for line in lines if line.startswith("steps_per_call")]
    assert len(chosen) == 2 and all("auto: " in line and "(chose " in line and "ms/step)" in line for line in chosen)
    rows = {tuple(line.split()[:3]): line.split() for line in lines if line.split()[:1] in (["mlp"], ["cnn"],
                                                                                         ["resnet18"])}
    assert set(rows) == {("mlp", "512-512", "(digits)"), ("cnn", "tiny", "(digits)"),
                         ("resnet18", "32x32", "bfloat16"), ("resnet18", "32x32", "float32")}
    for row in rows.values():
        gflops = float(row[-5])
        assert gflops > 0  # XLA counted the step's FLOPs
        assert row[-3] == "n/a"  # a CPU has no peak in the table


def test_accelerator_refuses_a_negative_peak():
    result = subprocess.run([sys.executable, os.path.join("benchmarks", "accelerator.py"), "--peak_tflops", "-1"],
                            cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1


def test_vs_keras_refuses_an_unknown_model():
    result = subprocess.run([sys.executable, os.path.join("benchmarks", "vs_keras.py"), "--models", "mlp,gpt"],
                            cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith("error: --models: ") and "gpt" in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.slow
def test_vs_keras_times_jaxdl_alone_when_asked(data_dir):
    result = subprocess.run([sys.executable, os.path.join("benchmarks", "vs_keras.py"), "--models", "mlp",
                             "--frameworks", "jaxdl", "--epochs", "2", "--repeats", "1"], cwd=REPO,
                            env={**os.environ, "TFDS_DATA_DIR": data_dir}, capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("mlp ")]
    assert len(rows) == 1 and rows[0][1] == "jaxdl" and float(rows[0][2]) > 0 and 0 <= float(rows[0][-1]) <= 1


def test_lr_find_refuses_an_unknown_model():
    result = subprocess.run([sys.executable, os.path.join("benchmarks", "lr_find.py"), "--models", "mlp,gpt"],
                            cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2 and result.stderr.startswith("error: --models")
    assert len(result.stderr.splitlines()) == 1


def test_compile_time_refuses_no_repeats():
    result = subprocess.run([sys.executable, os.path.join("benchmarks", "compile_time.py"), "--repeats", "0"],
                            cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2 and result.stderr == "error: --repeats: must be >= 1 (got 0)\n"
