"""Reading a run never harms it: `CheckpointReader` (and so `jaxdl.load_run`, `python -m jaxdl.predict`)
creates, cleans, moves and deletes nothing, lists only complete checkpoints, and says in one line
when the run is still training.

The slow tests run a real training process (a tiny MLP saving every epoch) while readers loop on
its workdir, and `kill -9` one in the middle of a save (frozen there by SIGSTOP first, so that the kill
lands in a save whatever the machine's speed).
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import ml_collections
import numpy as np
import pytest
from cli_runs import TINY_MLP, run_experiment
from conftest import REPO, run_cli
from test_checkpoint import fit_state, save_epochs  # noqa: I001 (a sibling test module)

import jaxdl
from jaxdl.errors import InputError
from jaxdl.train.checkpoint import CheckpointReader, CorruptCheckpoint, NoCompleteCheckpoint
from jaxdl.train.digest import params_sha256

TMP = ".orbax-checkpoint-tmp"
TRAINING = re.compile(r"--workdir: the run is training \(or was stopped before it finished\): "
                      r"(its newest complete checkpoint is epoch (\d+)|no checkpoint is complete yet) ")


def tree(folder) -> dict[str, int]:
    """Every file and folder under `folder` (relative path -> modification time)."""
    found = {}
    for root, names, files in os.walk(folder):
        for name in names + files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = os.stat(path).st_mtime_ns
    return found


def plant_unfinished_save(directory, epoch: int) -> str:
    """A folder as Orbax leaves a save it has not finished (kill -9 while writing, or still writing)."""
    folder = os.path.join(directory, f"{epoch}{TMP}-123")
    os.makedirs(os.path.join(folder, "state"))
    with open(os.path.join(folder, "state", "_METADATA"), "w") as f:
        f.write("{")
    return folder


def test_a_reader_lists_complete_checkpoints_only_and_changes_nothing(tmp_path):
    directory = str(tmp_path / "ck")
    save_epochs(directory, [1, 2])
    planted = plant_unfinished_save(directory, 3)
    # the threads there now: one that another test left ends on its own time, so a count could drop
    before, threads = tree(tmp_path), set(threading.enumerate())
    reader = CheckpointReader(directory)
    assert reader.epochs() == [1, 2] and reader.unfinished() == [os.path.basename(planted)]
    state, meta, epoch = reader.read_newest(fit_state())
    assert epoch == meta["epoch"] == 2 and int(state.epoch) == 2
    assert params_sha256(state.train.params) == params_sha256(fit_state(epoch=2).train.params)
    assert tree(tmp_path) == before  # nothing created, cleaned, moved or touched
    assert set(threading.enumerate()) <= threads  # no thread left behind

    missing = tmp_path / "nothing" / "checkpoints"
    with pytest.raises(NoCompleteCheckpoint, match="the run has no checkpoint"):
        CheckpointReader(str(missing)).read_newest(fit_state())
    assert not (tmp_path / "nothing").exists()  # not created
    plant_unfinished_save(tmp_path / "first", 1)
    with pytest.raises(NoCompleteCheckpoint, match=f"no checkpoint is complete yet .got '1{TMP}-123'"):
        CheckpointReader(str(tmp_path / "first")).read_newest(fit_state())

    # What a reader must not be: the writer's Checkpointer removes the unfinished save (in the background
    # once opened; done at the latest when it saves).
    save_epochs(directory, [4])
    assert not os.path.exists(planted)


class ListedBeforeASave(CheckpointReader):
    """A reader whose first listing is from just before the writer saved `epoch` + 1 and, keeping
    `keep` checkpoints, deleted `epoch` while the reader was about to read it."""

    def __init__(self, directory: str, epoch: int):
        super().__init__(directory)
        self.stale = epoch

    def epochs(self) -> list[int]:
        listing = super().epochs()
        if self.stale is not None:
            listing = [epoch for epoch in listing if epoch <= self.stale]
            shutil.rmtree(self.path(self.stale))
            self.stale = None
        return listing


def test_a_checkpoint_deleted_while_it_is_read_gives_way_to_the_newest(tmp_path):
    directory = str(tmp_path / "ck")
    save_epochs(directory, [1, 2, 3, 4], keep=4)
    _, meta, epoch = ListedBeforeASave(directory, 3).read_newest(fit_state())
    assert epoch == meta["epoch"] == 4


def test_a_damaged_newest_checkpoint_is_reported_and_left_where_it_is(tmp_path):
    directory = str(tmp_path / "ck")
    save_epochs(directory, [1, 2])
    for root, _, files in os.walk(os.path.join(directory, "2", "state")):
        for name in files:
            if os.path.basename(root) == "d":
                os.truncate(os.path.join(root, name), 0)
    before = tree(tmp_path)
    with pytest.raises(CorruptCheckpoint, match="/2: unreadable arrays"):
        CheckpointReader(directory).read_newest(fit_state())
    assert tree(tmp_path) == before  # not moved aside (the writer decides that when it resumes)


def tiny_config(data_dir: str, epochs: int) -> ml_collections.ConfigDict:
    from configs.mlp import get_config

    config = get_config("tiny")
    config.train.epochs, config.eval.report, config.data.data_dir = epochs, False, data_dir
    # As TINY_MLP: what no test here reads left out, and its dropout (the programs of the runs below).
    config.eval.questions, config.train.steps_per_call, config.model.dropout = "none", "epoch", 0.1
    return config


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir) -> dict[str, str]:
    """A finished 2-epoch tiny MLP run, and a copy of it resumed to 3 epochs (trained in this process)."""
    root = tmp_path_factory.mktemp("finished")
    jaxdl.train_and_evaluate(tiny_config(data_dir, 2), str(root / "two"), progress=False)
    shutil.copytree(root / "two", root / "three")
    jaxdl.train_and_evaluate(tiny_config(data_dir, 3), str(root / "three"), progress=False)
    return {"two": str(root / "two"), "three": str(root / "three")}


def test_load_run_neither_deletes_an_unfinished_save_nor_creates_checkpoints(runs, tmp_path):
    run = shutil.copytree(runs["two"], tmp_path / "run")
    planted = plant_unfinished_save(run / "checkpoints", 3)  # as when the run is resumed and saving epoch 3
    before = tree(run)
    predictor = jaxdl.load_run(str(run))
    assert predictor.epoch == 2 and os.path.isdir(planted) and tree(run) == before
    shutil.rmtree(run / "checkpoints")
    with pytest.raises(InputError, match="the run has no checkpoint"):
        jaxdl.load_run(str(run))
    assert not (run / "checkpoints").exists()


def test_a_checkpoint_newer_than_summary_json_means_the_run_trains_again(runs, tmp_path):
    """The finished 2-epoch run resumed with more epochs, as readers find it once epoch 3 is saved."""
    run = shutil.copytree(runs["two"], tmp_path / "run")
    shutil.copytree(os.path.join(runs["three"], "checkpoints", "3"), run / "checkpoints" / "3")
    with pytest.raises(InputError) as error:
        jaxdl.load_run(str(run))
    match = TRAINING.match(str(error.value))
    assert match and match.group(2) == "3", str(error.value)
    predictor = jaxdl.load_run(str(run), allow_training=True)
    three = jaxdl.load_run(runs["three"])
    assert predictor.epoch == 3 and params_sha256(predictor.variables) == params_sha256(three.variables)
    # Other parameters in checkpoint 2 itself (the one summary.json describes): the files were changed.
    shutil.rmtree(run / "checkpoints" / "2")
    shutil.move(run / "checkpoints" / "3", run / "checkpoints" / "2")
    with pytest.raises(InputError, match="the restored model differs from the one summary.json describes"):
        jaxdl.load_run(str(run))


@pytest.mark.slow
def test_a_run_without_summary_json_is_training_or_stopped(runs, tmp_path):
    run = shutil.copytree(runs["two"], tmp_path / "run")
    os.remove(run / "summary.json")
    starting = shutil.copytree(run, tmp_path / "starting")  # its first save still being written
    shutil.rmtree(starting / "checkpoints")
    plant_unfinished_save(starting / "checkpoints", 1)
    for allow_training in (False, True):
        with pytest.raises(InputError) as error:
            jaxdl.load_run(str(starting), allow_training=allow_training)
        match = TRAINING.match(str(error.value))
        assert match and match.group(1) == "no checkpoint is complete yet", str(error.value)
    np.save(tmp_path / "x.npy", np.zeros((2, 8, 8, 1), np.uint8))
    result = run_cli("jaxdl.predict", "--workdir", str(run), str(tmp_path / "x.npy"))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert TRAINING.match(lines[0][len("error: "):]).group(2) == "2", lines[0]
    predictor = jaxdl.load_run(str(run), allow_training=True)
    assert predictor.epoch == 2 and predictor.summary == {}


# A run long enough for readers to meet it training (~0.1 s an epoch here, with a save every epoch, and
# ~0.4 s with the readers taking the other core); resumed to more epochs, a constant schedule continues
# bit for bit (tests/train/test_resume.py).
EPOCHS = 30
ARGS = [*TINY_MLP, "--config.optimizer.schedule=constant"]


def arguments(data_dir: str, workdir, epochs: int) -> list[str]:
    return [*ARGS, f"--config.train.epochs={epochs}", f"--config.data.data_dir={data_dir}", f"--workdir={workdir}"]


def start(data_dir: str, workdir, epochs: int) -> subprocess.Popen:
    """The run in a real process (readers or `kill -9` meet it while it trains)."""
    return subprocess.Popen([sys.executable, "-m", "experiments.mlp", *arguments(data_dir, workdir, epochs)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> None:
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0 and "Traceback" not in stderr, stderr[-3000:]


def train_here(data_dir: str, workdir, epochs: int) -> None:
    """The same command line in this process."""
    result = run_experiment("experiments.mlp", *arguments(data_dir, workdir, epochs))
    assert result.returncode == 0, result.stderr[-3000:]


def sha(workdir) -> str:
    with open(os.path.join(workdir, "summary.json")) as f:
        return json.load(f)["params_sha256"]


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory, data_dir) -> str:
    """params_sha256 of the run of EPOCHS epochs that nothing reads while it trains (in this process; the
    processes of the tests load the programs it compiled from the suite's compilation cache)."""
    workdir = tmp_path_factory.mktemp("undisturbed") / "run"
    train_here(data_dir, workdir, EPOCHS)
    return sha(workdir)


class Readers:
    """Reads a workdir again and again, as `load_run` (plain and with allow_training) and as `python -m
    jaxdl.predict`, checking that every answer is one of the two allowed: the model of a complete
    checkpoint, or the one-line "training" error."""

    def __init__(self, workdir, inputs: str):
        self.workdir, self.inputs = str(workdir), inputs
        self.seen: list[str] = []
        self.command: subprocess.Popen | None = None

    def load(self, allow_training: bool) -> None:
        try:
            predictor = jaxdl.load_run(self.workdir, allow_training=allow_training)
        except InputError as error:
            assert TRAINING.match(str(error)) and "\n" not in str(error), str(error)
            self.seen.append("training")
            return
        assert np.isfinite(predictor(np.load(self.inputs))).all()
        self.seen.append(f"epoch {predictor.epoch}" + (" (allow_training)" if allow_training else ""))

    def check_command(self) -> None:
        """Waits for the `python -m jaxdl.predict` that runs and checks its answer."""
        stdout, stderr = self.command.communicate(timeout=300)
        lines = stderr.strip().splitlines()
        if self.command.returncode == 0:
            self.seen.append("predict answered")
        else:
            assert self.command.returncode == 2 and len(lines) == 1, stderr
            assert TRAINING.match(lines[0].removeprefix("error: ")), lines[0]
            self.seen.append("predict: training")
        self.command = None

    def poll_command(self) -> None:
        """Starts `python -m jaxdl.predict` when none runs; checks the one that finished."""
        if self.command is not None and self.command.poll() is None:
            return
        if self.command is not None:
            self.check_command()
        self.command = subprocess.Popen([sys.executable, "-m", "jaxdl.predict", "--workdir", self.workdir, self.inputs],
                                        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def during(self, process: subprocess.Popen) -> None:
        """Reads until `process` ends, starting once the run's config.json is written."""
        while process.poll() is None and not os.path.exists(os.path.join(self.workdir, "config.json")):
            time.sleep(0.01)
        while process.poll() is None:
            self.poll_command()
            self.load(allow_training=False)
            self.load(allow_training=True)
            time.sleep(0.02)  # a loop, not a busy one: the two cores are the trainer's too
        finish(process)
        if self.command is not None:
            self.check_command()  # the last one, started while the run trained


@pytest.mark.slow
def test_readers_in_a_loop_do_not_disturb_a_run_that_saves_every_epoch(data_dir, tmp_path, undisturbed):
    workdir = tmp_path / "run"
    np.save(tmp_path / "x.npy", np.zeros((3, 8, 8, 1), np.uint8))
    readers = Readers(workdir, str(tmp_path / "x.npy"))
    readers.during(start(data_dir, workdir, EPOCHS // 2))  # a new run
    readers.during(start(data_dir, workdir, EPOCHS))  # resumed with more epochs, summary.json there
    readers.poll_command()  # and the finished run
    readers.check_command()
    print(collections.Counter(readers.seen))  # shown when the test fails (or with -s)
    assert readers.seen[-1] == "predict answered"
    assert sha(workdir) == undisturbed
    assert "training" in readers.seen  # at least the first reads: no summary.json yet
    assert jaxdl.load_run(str(workdir)).epoch == EPOCHS
    assert not [name for name in os.listdir(workdir / "checkpoints") if TMP in name]


def stopped(pid: int) -> bool:
    """Whether every thread of process `pid` is stopped (by SIGSTOP), from /proc."""
    states = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return all(state in ("T", "t") for state in states)


def kill_in_a_save(process: subprocess.Popen, checkpoints) -> None:
    """`kill -9` while a save is unfinished, once two checkpoints are complete: when an unfinished save
    shows, the process is stopped (SIGSTOP) and, if the save is still unfinished once every thread
    stands still, killed there; if it finished meanwhile, the process goes on (SIGCONT) to its next one."""
    while process.poll() is None:
        names = os.listdir(checkpoints) if checkpoints.is_dir() else []
        if any(TMP in name for name in names) and sum(name.isdigit() for name in names) >= 2:
            process.send_signal(signal.SIGSTOP)
            while process.poll() is None and not stopped(process.pid):
                time.sleep(0.001)
            if any(TMP in name for name in os.listdir(checkpoints)):
                process.kill()
                break
            process.send_signal(signal.SIGCONT)
        time.sleep(0.001)
    process.wait()


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_save_leaves_a_run_readers_and_a_resume_handle(data_dir, tmp_path, undisturbed):
    workdir = tmp_path / "run"
    checkpoints = workdir / "checkpoints"
    kill_in_a_save(start(data_dir, workdir, EPOCHS), checkpoints)  # one of its ~28 saves after the first two
    unfinished = [name for name in os.listdir(checkpoints) if TMP in name]
    assert unfinished, os.listdir(checkpoints)
    before = tree(workdir)
    newest = CheckpointReader(str(checkpoints)).epochs()[-1]

    with pytest.raises(InputError) as error:
        jaxdl.load_run(str(workdir))
    assert TRAINING.match(str(error.value)).group(2) == str(newest), str(error.value)
    assert jaxdl.load_run(str(workdir), allow_training=True).epoch == newest
    np.save(tmp_path / "x.npy", np.zeros((3, 8, 8, 1), np.uint8))
    result = run_cli("jaxdl.predict", "--workdir", str(workdir), str(tmp_path / "x.npy"))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert TRAINING.match(lines[0].removeprefix("error: ")).group(2) == str(newest), lines[0]
    assert tree(workdir) == before  # the unfinished save is still there: readers delete nothing

    train_here(data_dir, workdir, EPOCHS)  # the same command resumes
    assert sha(workdir) == undisturbed
    assert not [name for name in os.listdir(checkpoints) if TMP in name]
