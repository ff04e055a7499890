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
    assert any(line.startswith("steps_per_call") for line in lines)
    rows = {tuple(line.split()[:3]): line.split() for line in lines if line.split()[:1] in (["mlp"], ["cnn"],
                                                                                         ["resnet18"])}
    assert set(rows) == {("mlp", "512-512", "(digits)"), ("cnn", "default", "(digits)"),
                         ("resnet18", "32x32", "bfloat16"), ("resnet18", "32x32", "float32")}
    for row in rows.values():
        gflops = float(row[-5])
        assert gflops > 0  # XLA counted the step's FLOPs
        assert row[-3] == "n/a"  # a CPU has no peak in the table


def test_accelerator_refuses_a_negative_peak():
    result = subprocess.run([sys.executable, os.path.join("benchmarks", "accelerator.py"), "--peak_tflops", "-1"],
                            cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
