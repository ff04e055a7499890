"""Exact resume through the real command line: a run stopped after any epoch - cleanly, by SIGTERM or
SIGINT, or by `kill -9` at random moments - and started again with the same workdir ends with the
uninterrupted run's params_sha256, and metrics.jsonl holds each epoch once, with the same numbers.

Runs that no signal stops (the reference, a same-seed run, shorter runs resumed with more epochs or
patience, the resumes of a damaged or killed run) run the command line in this process
(tests/train/cli_runs.py). Real `python -m experiments.mlp` processes: every run stopped by a signal
or killed (so new processes train the reference's bits too), the printed resume commands, and the
refused resumes (their exit code and all they print). They load the programs the reference compiled
from the suite's persistent XLA compilation cache (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest
from cli_runs import CHEAP, TINY, TINY_MLP, run_experiment
from conftest import REPO, run_cli

EPOCHS = 12
# Dropout makes the RNG stream matter; patience > 0 (tiny's 20) makes the final model the early-stopping copy.
ARGS = [*TINY_MLP, f"--config.train.epochs={EPOCHS}"]


def command(data_dir: str, workdir, *extra: str) -> list[str]:
    return [*ARGS, f"--config.data.data_dir={data_dir}", f"--workdir={workdir}", *extra]


def train_here(data_dir: str, workdir, *extra: str) -> subprocess.CompletedProcess:
    """A run of the same command line in this process."""
    result = run_experiment("experiments.mlp", *command(data_dir, workdir, *extra))
    assert result.returncode == 0, result.stderr
    return result


def start(data_dir: str, workdir, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "experiments.mlp", *command(data_dir, workdir, *extra)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def metrics(workdir) -> list[dict]:
    """metrics.jsonl without the wall-clock field."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        records = [json.loads(line) for line in f if line.endswith("\n")]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def summary(workdir) -> dict:
    with open(os.path.join(workdir, "summary.json")) as f:
        return json.load(f)


def checkpoint_epochs(workdir) -> list[int]:
    return sorted(int(name) for name in os.listdir(os.path.join(workdir, "checkpoints")) if name.isdigit())


def wait_for_epoch(process: subprocess.Popen, workdir, epoch: int) -> None:
    """Polls metrics.jsonl until it holds `epoch` (or the run ended)."""
    while process.poll() is None and not any(r["epoch"] >= epoch for r in metrics(workdir)):
        time.sleep(0.005)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_dir):
    """The reference run (in this process; it fills the compilation cache for the processes)."""
    workdir = tmp_path_factory.mktemp("resume") / "uninterrupted"
    train_here(data_dir, workdir)
    return {"workdir": workdir, "sha": summary(workdir)["params_sha256"], "metrics": metrics(workdir)}


def assert_same_as_uninterrupted(workdir, uninterrupted) -> None:
    assert summary(workdir)["params_sha256"] == uninterrupted["sha"]
    assert metrics(workdir) == uninterrupted["metrics"]  # each epoch once, with the same numbers
    assert [r["epoch"] for r in uninterrupted["metrics"]] == list(range(1, EPOCHS + 1))


@pytest.mark.slow
def test_same_seed_twice_gives_the_same_parameters(data_dir, tmp_path, uninterrupted):
    # In this process, as the reference; that new processes train the same bits (every epoch's record and
    # the final parameters): the signal and kill tests below, whose epochs processes train.
    train_here(data_dir, tmp_path / "again")
    assert_same_as_uninterrupted(tmp_path / "again", uninterrupted)
    assert summary(tmp_path / "again")["resumed_from"] == 0


@pytest.mark.slow
def test_clean_stop_then_resume_with_more_epochs(data_dir, tmp_path, uninterrupted):
    workdir = tmp_path / "clean"
    train_here(data_dir, workdir, "--config.train.epochs=4")
    assert checkpoint_epochs(workdir)[-1] == 4
    train_here(data_dir, workdir)
    assert summary(workdir)["resumed_from"] == 4
    assert_same_as_uninterrupted(workdir, uninterrupted)


def resume_command_from(stderr: str) -> list[str]:
    marker = "The run can be resumed from there: "
    line = next(line for line in stderr.splitlines() if marker in line)
    return shlex.split(line.split(marker, 1)[1])


@pytest.mark.slow
def test_sigterm_and_sigint_stop_after_a_checkpoint_and_print_the_resume_command(data_dir, tmp_path, uninterrupted):
    workdir = tmp_path / "signals"
    process = start(data_dir, workdir)
    wait_for_epoch(process, workdir, 2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    stopped_at = checkpoint_epochs(workdir)[-1]
    assert f"stopped by SIGTERM after epoch {stopped_at}; its checkpoint is in {workdir}" in stderr
    assert 2 <= stopped_at < EPOCHS and metrics(workdir)[-1]["epoch"] == stopped_at
    assert not (workdir / "summary.json").exists()

    resume = resume_command_from(stderr)
    assert resume[:3] == [sys.executable, "-m", "experiments.mlp"] and f"--workdir={workdir}" in resume
    elsewhere = tmp_path / "elsewhere"  # absolute paths: the command works from any folder
    elsewhere.mkdir()
    process = subprocess.Popen(resume, cwd=elsewhere, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_epoch(process, workdir, stopped_at + 2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "stopped by SIGINT" in stderr

    finished = subprocess.run(resume_command_from(stderr), cwd=elsewhere, capture_output=True, text=True, timeout=300,
                              check=False)
    assert finished.returncode == 0, finished.stderr
    assert_same_as_uninterrupted(workdir, uninterrupted)


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume(data_dir, tmp_path, uninterrupted):
    # Fixed, so a failure replays: seed 4 kills just after epochs 4 and 7. Set it to try other moments.
    seed = int(os.environ.get("JAXDL_KILL_SEED", "4"))
    print(f"JAXDL_KILL_SEED={seed}")  # shown by pytest when the test fails, to replay the same kills
    rng = random.Random(seed)
    workdir = tmp_path / "killed"
    for _ in range(2):
        process = start(data_dir, workdir)
        wait_for_epoch(process, workdir, rng.randint(1, EPOCHS - 2))
        time.sleep(rng.uniform(0, 0.05))  # somewhere in the next epoch, its save, or its metrics line
        process.kill()
        process.wait()
    train_here(data_dir, workdir)  # the killed processes' workdir, resumed
    assert not [name for name in os.listdir(workdir / "checkpoints") if "tmp" in name]
    assert_same_as_uninterrupted(workdir, uninterrupted)


@pytest.mark.slow
def test_a_damaged_latest_checkpoint_resumes_from_the_one_before(data_dir, tmp_path, uninterrupted):
    workdir = tmp_path / "damaged"
    shutil.copytree(uninterrupted["workdir"], workdir)
    last = checkpoint_epochs(workdir)[-1]
    for root, _, files in os.walk(workdir / "checkpoints" / str(last) / "state"):
        for name in files:
            if os.path.basename(root) == "d":
                os.truncate(os.path.join(root, name), 0)
    result = train_here(data_dir, workdir)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and f"checkpoints/{last} is corrupted" in warnings[0], result.stderr
    assert f"resumed from epoch {last - 1}" in warnings[0]
    assert summary(workdir)["resumed_from"] == last - 1
    assert_same_as_uninterrupted(workdir, uninterrupted)


@pytest.mark.slow
def test_resuming_with_another_model_is_refused_with_one_line(data_dir, tmp_path, uninterrupted):
    workdir = tmp_path / "other"
    shutil.copytree(uninterrupted["workdir"], workdir)
    result = run_cli("experiments.mlp", *command(data_dir, workdir, "--config.model.hidden_sizes=(64,)",
                                                 "--config.optimizer.learning_rate=0.01"))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: --workdir: its checkpoint {workdir}/checkpoints/{EPOCHS} was saved with a "
                               "different config: model.hidden_sizes (saved [32], now [64]); "
                               "optimizer.learning_rate (saved 0.001, now 0.01)"), lines[0]
    assert metrics(workdir) == uninterrupted["metrics"]  # nothing touched


SHORT = [*TINY_MLP, "--config.train.epochs=3"]


def workdir_files(workdir) -> dict[str, bytes]:
    """Every file under `workdir` with its bytes and modification time."""
    files = {}
    for root, _, names in os.walk(workdir):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, workdir)] = (f.read(), os.stat(path).st_mtime_ns)
    return files


@pytest.mark.slow
def test_more_epochs_on_resume_are_refused_under_a_decaying_schedule(data_dir, tmp_path):
    workdir = tmp_path / "cosine"
    base = [*SHORT, f"--config.data.data_dir={data_dir}", f"--workdir={workdir}", "--config.optimizer.schedule=cosine"]
    first = run_experiment("experiments.mlp", *base)
    assert first.returncode == 0, first.stderr
    before = workdir_files(workdir)
    assert "metrics.jsonl" in before and any(name.startswith("checkpoints") for name in before)
    result = run_cli("experiments.mlp", *base, "--config.train.epochs=6")  # a process: its exit code, all it prints
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: --config.train.epochs: changing the number of epochs on resume would change "
                               "the optimizer.schedule 'cosine' (saved with train.epochs=3) (got 6, expected 3, "
                               "or a new --workdir)"), lines[0]
    assert workdir_files(workdir) == before  # nothing written, not even config.json


@pytest.mark.slow
def test_more_epochs_on_resume_continue_a_constant_schedule(data_dir, tmp_path):
    workdir = tmp_path / "constant"
    base = [*SHORT, f"--config.data.data_dir={data_dir}", f"--workdir={workdir}",
            "--config.optimizer.schedule=constant"]
    assert run_experiment("experiments.mlp", *base).returncode == 0
    first = metrics(workdir)
    result = run_experiment("experiments.mlp", *base, "--config.train.epochs=6")
    assert result.returncode == 0, result.stderr
    assert summary(workdir)["resumed_from"] == 3 and summary(workdir)["epochs_run"] == 6
    assert metrics(workdir)[:3] == first and [r["epoch"] for r in metrics(workdir)] == list(range(1, 7))
    # That it continues bit for bit: test_clean_stop_then_resume_with_more_epochs.


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine", "warmup_cosine"])
def test_which_schedules_refuse_other_epochs_on_resume(schedule):
    import ml_collections

    from jaxdl.errors import InputError
    from jaxdl.run.config import add_optimizer_section, add_training_sections
    from jaxdl.run.pipeline import check_epochs_keep_schedule

    config = add_optimizer_section(add_training_sections(ml_collections.ConfigDict(), epochs=6, batch_size=8),
                                   learning_rate=0.1, schedule=schedule)
    check_epochs_keep_schedule(6, config)  # the same length: always fine
    check_epochs_keep_schedule(None, config)  # a checkpoint without a saved config
    if schedule == "constant":
        check_epochs_keep_schedule(3, config)
    else:
        for saved in (3, 9):  # longer or shorter
            with pytest.raises(InputError, match=f"optimizer.schedule '{schedule}'"):
                check_epochs_keep_schedule(saved, config)


@pytest.mark.slow
def test_more_patience_on_resume_trains_on_after_an_early_stop(data_dir, tmp_path):
    """train.patience may change on resume: a run that stopped early goes on when given more patience."""
    workdir = tmp_path / "patience"
    args = ["--config", TINY, "--config.optimizer.learning_rate=0.03", "--config.train.epochs=30",
            "--config.train.patience=1", *CHEAP, "--quiet", f"--config.data.data_dir={data_dir}",
            f"--workdir={workdir}"]
    first = run_experiment("experiments.mlp", *args)
    assert first.returncode == 0, first.stderr
    stopped = summary(workdir)
    assert stopped["stopped_early"] and stopped["epochs_run"] < 30
    more = run_experiment("experiments.mlp", *args, "--config.train.patience=50", "--config.train.epochs=40")
    assert more.returncode == 0, more.stderr
    resumed = summary(workdir)
    assert resumed["resumed_from"] == stopped["epochs_run"]
    assert resumed["epochs_run"] == 40 and not resumed["stopped_early"]
    assert [r["epoch"] for r in metrics(workdir)] == list(range(1, 41))
