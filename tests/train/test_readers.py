"""Reading a run never harms it: `CheckpointReader` (and so `jaxdl.load_run`, `python -m jaxdl.predict`)
creates, cleans, moves and deletes nothing, lists only complete checkpoints, and says in one line
when the run is still training.

The slow tests run a real training process (a tiny MLP saving every epoch) while readers loop on
its workdir, and `kill -9` one in the middle of a save.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time

import jax
import ml_collections
import numpy as np
import pytest
from conftest import REPO, run_cli

import jaxdl
from jaxdl.errors import InputError
from jaxdl.train.checkpoint import CheckpointReader, CorruptCheckpoint, NoCompleteCheckpoint
from jaxdl.train.digest import params_sha256

from test_checkpoint import fit_state, save_epochs  # noqa: I001 (a sibling test module)

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
    before, threads = tree(tmp_path), threading.active_count()
    reader = CheckpointReader(directory)
    assert reader.epochs() == [1, 2] and reader.unfinished() == [os.path.basename(planted)]
    state, meta, epoch = reader.read_newest(fit_state())
    assert epoch == meta["epoch"] == 2 and int(state.epoch) == 2
    assert params_sha256(state.train.params) == params_sha256(fit_state(epoch=2).train.params)
    assert tree(tmp_path) == before  # nothing created, cleaned, moved or touched
    assert threading.active_count() == threads  # no thread left behind

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
    os.utime(run / "summary.json", ns=(1, 1))  # written before checkpoint 3
    with pytest.raises(InputError) as error:
        jaxdl.load_run(str(run))
    match = TRAINING.match(str(error.value))
    assert match and match.group(2) == "3", str(error.value)
    predictor = jaxdl.load_run(str(run), allow_training=True)
    three = jaxdl.load_run(runs["three"])
    assert predictor.epoch == 3 and params_sha256(predictor.variables) == params_sha256(three.variables)
    # The same checkpoint written before summary.json: the files were changed, it is not training.
    os.utime(run / "summary.json")
    with pytest.raises(InputError, match="the restored model differs from the one summary.json describes"):
        jaxdl.load_run(str(run))


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
