"""The command line, in real subprocesses: files in the workdir, resume, one-line errors."""

import json
import os

import pytest
from conftest import run_cli

TINY = ["--config", "configs/mlp.py:tiny", "--quiet"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_dir):
    workdir = str(tmp_path_factory.mktemp("run") / "mlp")
    result = run_cli("experiments.mlp", *TINY, f"--config.data.data_dir={data_dir}", f"--workdir={workdir}",
                     "--config.checkpoint.every_epochs=1")
    assert result.returncode == 0, result.stderr
    return workdir, result


@pytest.mark.slow
def test_run_writes_the_workdir_contract(tiny_run):
    workdir, result = tiny_run
    listing = set(os.listdir(workdir))
    report = {f for f in listing if f.endswith(".png") or f.startswith("events.out.tfevents.") or f == "report.html"}
    assert sorted(listing - report) == ["checkpoints", "config.json", "data_info.json", "drift_reference.json",
                                        "metrics.jsonl", "summary.json"]
    info = json.load(open(os.path.join(workdir, "data_info.json")))  # what jaxdl.load_run needs later
    assert (info["task"], info["input_shape"], info["num_classes"]) == ("classification", [8, 8, 1], 10)
    assert "report.html" in report  # the figures and TensorBoard events: tests/test_report.py
    config = json.load(open(os.path.join(workdir, "config.json")))
    assert config["model"]["hidden_sizes"] == [32] and config["train"]["epochs"] == 3
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    for record in records:
        assert {"epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy", "seconds"} <= set(record)
    summary = json.load(open(os.path.join(workdir, "summary.json")))
    assert {"loss", "accuracy"} <= set(summary["test"]) and summary["test"]["count"] == 359
    assert summary["epochs_run"] == 3 and 1 <= summary["best_epoch"] <= 3
    assert len(summary["params_sha256"]) == 64 and summary["devices"]["count"] >= 1
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints")))[-1] == "3"
    assert "test accuracy" in result.stdout and "devices" in result.stdout


@pytest.mark.slow
def test_second_run_in_the_same_workdir_resumes(tiny_run, data_dir):
    workdir, _ = tiny_run
    before = json.load(open(os.path.join(workdir, "summary.json")))
    result = run_cli("experiments.mlp", *TINY, f"--config.data.data_dir={data_dir}", f"--workdir={workdir}",
                     "--config.train.epochs=5", "--config.checkpoint.every_epochs=1")
    assert result.returncode == 0, result.stderr
    after = json.load(open(os.path.join(workdir, "summary.json")))
    assert after["resumed_from"] == 3 and after["epochs_run"] == 5
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5]
    assert after["params_sha256"] != before["params_sha256"]


# Bad input on the command line (one error line, exit code 2, --debug's traceback): tests/run/test_bad_input.py,
# which runs the same misspelled key, activation, optimizer, dataset, batch size and config file and more.


CACHE_PROBE = """
import os, sys
import jax, jax.numpy as jnp
from jaxdl.run import cli
cli.use_compilation_cache()
folder = jax.config.jax_compilation_cache_dir
def long(x):  # a program that takes more than the cache's 0.1 s to compile
    for i in range(100):
        x = jnp.sin(x) @ x.T + i
    return x
jax.jit(long)(jnp.ones((64, 64))).block_until_ready()
print(folder or "-", len(os.listdir(folder)) if folder and os.path.isdir(folder) else 0)
"""


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["default", "off"])
def test_a_command_caches_its_programs_in_its_own_folder_unless_told_otherwise(tmp_path, setting):
    """By default the cache lives in a folder of the command's own under the temp folder, holds what
    it compiled and is gone at exit; "off" is none."""
    import subprocess
    import sys

    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("JAX_COMPILATION_CACHE")}
    env["TMPDIR"] = str(temp)
    env["JAXDL_COMPILATION_CACHE"] = {"default": "", "off": "off"}[setting]
    result = subprocess.run([sys.executable, "-c", CACHE_PROBE], env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    folder, entries = result.stdout.split()
    if setting == "default":
        assert os.path.dirname(folder) == str(temp) and int(entries) >= 1
        assert os.listdir(temp) == []  # removed at exit
    else:
        assert (folder, entries) == ("-", "0")
