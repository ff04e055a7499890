"""Checkpointer: the schedule, what a checkpoint holds, and what happens to unfinished or damaged ones.

Damage is done to real Orbax files: truncated array files, a flipped byte in them, a cut JSON.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import threading

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl.errors import InputError
from jaxdl.models import MLP
from jaxdl.run.config import config_differences
from jaxdl.train import checkpoint
from jaxdl.train.checkpoint import Checkpointer
from jaxdl.train.digest import params_sha256
from jaxdl.train.fit import init_fit_state
from jaxdl.train.losses import classification_metrics
from jaxdl.train.state import create_state


def fit_state(hidden: int = 16, epoch: int = 0):
    """A real FitState (MLP + Adam) whose parameters and epoch differ by `epoch`."""
    state = create_state(MLP(num_outputs=10, hidden_sizes=(hidden,)), optax.adam(1e-3), (8, 8, 1), 0,
                         classification_metrics)
    state = state.replace(params=jax.tree.map(lambda p: p + epoch, state.params), step=jnp.int32(10 * epoch))
    return init_fit_state(state).replace(epoch=jnp.int32(epoch))


def save_epochs(directory: str, epochs, keep: int = 3) -> None:
    checkpointer = Checkpointer(directory, every_epochs=1, keep=keep)
    for epoch in epochs:
        checkpointer.save(epoch, fit_state(epoch=epoch), {"config": {"model": {"hidden_sizes": [16]}}})
    checkpointer.close()


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_schedule_by_time_by_count_and_at_the_end(tmp_path):
    clock = Clock()
    by_time = Checkpointer(str(tmp_path / "a"), every_seconds=30, clock=clock)
    assert not by_time.due(1)
    clock.now += 29.9
    assert not by_time.due(2)
    assert by_time.due(2, final=True)
    clock.now += 0.1
    assert by_time.due(3)
    by_time.save(3, fit_state(epoch=3), {})
    assert not by_time.due(4)  # counted again from the save
    clock.now += 30
    assert by_time.due(5)
    by_time.close()

    by_count = Checkpointer(str(tmp_path / "b"), every_epochs=3, every_seconds=0, clock=clock)
    clock.now += 1e6
    assert [e for e in range(1, 10) if by_count.due(e)] == [3, 6, 9]
    only_last = Checkpointer(str(tmp_path / "c"), every_epochs=0, every_seconds=0, clock=clock)
    assert not any(only_last.due(e) for e in range(1, 10)) and only_last.due(10, final=True)
    by_count.close()
    only_last.close()


def test_keeps_the_last_k_with_config_versions_and_digest(tmp_path):
    directory = str(tmp_path / "ckpt")
    save_epochs(directory, range(1, 6), keep=2)
    checkpointer = Checkpointer(directory)
    assert checkpointer.epochs() == [4, 5]
    state, meta = checkpointer.restore(fit_state())
    assert int(state.epoch) == 5 and int(state.train.step) == 50
    assert params_sha256(state) == params_sha256(fit_state(epoch=5))
    assert meta["config"] == {"model": {"hidden_sizes": [16]}} and meta["epoch"] == 5
    assert meta["versions"]["jax"] == jax.__version__ and "orbax-checkpoint" in meta["versions"]
    assert meta["state_sha256"] == params_sha256(fit_state(epoch=5))
    assert meta["state_leaves"][".train.params['hidden_0']['kernel']"] == "float32[64, 16]"
    assert ".early.best_params['head']['bias']" in meta["state_leaves"]
    assert ".nonfinite_streak" in meta["state_leaves"] and ".train.rng" in meta["state_leaves"]
    older, _ = checkpointer.restore(fit_state(), epoch=4)
    assert int(older.epoch) == 4
    checkpointer.close()


def test_unfinished_checkpoints_are_ignored_and_removed(tmp_path):
    directory = str(tmp_path / "ckpt")
    save_epochs(directory, [1, 2])
    # What `kill -9` during Orbax's save of epoch 3 leaves: a half-written temporary folder.
    unfinished = os.path.join(directory, "3.orbax-checkpoint-tmp-1700000000000000")
    shutil.copytree(os.path.join(directory, "2"), unfinished)
    for path in glob.glob(os.path.join(unfinished, "state", "ocdbt.process_0", "d", "*")):
        os.truncate(path, 0)
    checkpointer = Checkpointer(directory)
    assert checkpointer.epochs() == [1, 2]
    state, _ = checkpointer.restore(fit_state())
    assert int(state.epoch) == 2
    checkpointer.close()
    assert not os.path.exists(unfinished)


def damage(checkpoint: str, how: str) -> None:
    """Damages the real files of an Orbax checkpoint folder."""
    if how == "meta_cut":
        path = os.path.join(checkpoint, "meta", "metadata")
        os.truncate(path, os.path.getsize(path) // 2)
        return
    files = glob.glob(os.path.join(checkpoint, "state", "ocdbt.process_0", "d", "*"))
    assert files
    for path in files:
        if how == "arrays_truncated":
            os.truncate(path, os.path.getsize(path) // 2)
        elif how == "arrays_deleted":
            os.remove(path)
        elif how == "byte_flipped":  # read back without error by Orbax: only the digest notices
            data = bytearray(open(path, "rb").read())
            data[len(data) // 2] ^= 0xFF
            open(path, "wb").write(bytes(data))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["arrays_truncated", "arrays_deleted", "byte_flipped", "meta_cut"])
def test_a_damaged_latest_checkpoint_is_set_aside_for_the_previous_one(tmp_path, caplog, how):
    directory = str(tmp_path / "ckpt")
    save_epochs(directory, [1, 2, 3])
    damage(os.path.join(directory, "3"), how)
    checkpointer = Checkpointer(directory, keep=3)
    with caplog.at_level(logging.WARNING, logger="jaxdl"):
        state, meta = checkpointer.restore(fit_state())
    assert int(state.epoch) == 2 and meta["epoch"] == 2
    assert params_sha256(state) == params_sha256(fit_state(epoch=2))
    warning = " ".join(record.getMessage() for record in caplog.records)
    assert f"checkpoint {directory}/3 is corrupted" in warning and "resumed from epoch 2" in warning
    assert checkpointer.epochs() == [1, 2]
    assert len(os.listdir(f"{directory}.corrupt")) == 1
    checkpointer.save(3, fit_state(epoch=3), {})  # the epoch can be saved again
    checkpointer.close()
    assert Checkpointer(directory).epochs() == [1, 2, 3]


def test_no_good_checkpoint_is_refused_naming_it(tmp_path):
    directory = str(tmp_path / "ckpt")
    save_epochs(directory, [1, 2])
    damage(os.path.join(directory, "2"), "arrays_truncated")
    damage(os.path.join(directory, "1"), "byte_flipped")
    with pytest.raises(InputError) as caught:
        Checkpointer(directory).restore(fit_state())
    message = str(caught.value)
    assert message.startswith(f"{directory}/2: checkpoint is corrupted (and 1 older ones)")
    assert "unreadable arrays" in message and "start the run over" in message
    assert Checkpointer(directory).epochs() == [1, 2]  # nothing moved: the person decides


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    directory = str(tmp_path / "ckpt")
    save_epochs(directory, [1])
    with pytest.raises(InputError) as caught:
        Checkpointer(directory).restore(fit_state(hidden=32))
    message = str(caught.value)
    assert "checkpoint holds a different model or optimizer state" in message
    assert "['hidden_0']['kernel'] saved float32[64, 16], now float32[64, 32]" in message


def test_config_differences_allow_only_resumable_keys():
    saved = {"seed": 0, "model": {"hidden_sizes": [32], "name": "mlp"},
             "train": {"epochs": 10, "batch_size": 32, "nan_policy": "halt"},
             "checkpoint": {"every_epochs": 1}, "data": {"name": "digits", "data_dir": "/a"}}
    resumed = {"seed": 0, "model": {"hidden_sizes": [32], "name": "mlp"},
               "train": {"epochs": 20, "batch_size": 32, "nan_policy": "skip"},
               "checkpoint": {"every_epochs": 5}, "data": {"name": "digits", "data_dir": "/b"}}
    assert config_differences(saved, resumed) == []
    other = {**resumed, "seed": 1, "model": {"hidden_sizes": [64], "name": "mlp"}, "extra": True}
    assert config_differences(saved, other) == ["extra (saved '<absent>', now True)",
                                                "model.hidden_sizes (saved [32], now [64])",
                                                "seed (saved 0, now 1)"]


def test_restored_arrays_keep_the_target_sharding(tmp_path):
    directory = str(tmp_path / "ckpt")
    save_epochs(directory, [1])
    like = jax.device_put(fit_state(), jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    state, _ = Checkpointer(directory).restore(like)
    leaf = jax.tree.leaves(state)[0]
    assert isinstance(leaf, jax.Array) and leaf.sharding == jax.tree.leaves(like)[0].sharding
    assert np.array_equal(jax.device_get(state.train.rng), jax.device_get(fit_state(epoch=1).train.rng))


def test_save_returns_before_the_hash_and_the_worker_keeps_saves_in_order(tmp_path, monkeypatch):
    started, release, threads, hashed = threading.Event(), threading.Event(), [], []

    def slow_sha256(tree):  # the real digest, after the test lets it go
        threads.append(threading.current_thread())
        started.set()
        release.wait(timeout=20)
        hashed.append(params_sha256(tree))
        return hashed[-1]

    monkeypatch.setattr(checkpoint, "params_sha256", slow_sha256)
    directory = str(tmp_path / "ckpt")
    checkpointer = Checkpointer(directory, every_epochs=1)
    checkpointer.save(1, fit_state(epoch=1), {})
    assert started.wait(timeout=20) and not hashed  # returned while the hash still runs
    assert threads == [threads[0]] and threads[0] is not threading.main_thread()
    assert checkpointer.latest_epoch() == 1  # a save in progress counts, as in Orbax
    threading.Timer(0.2, release.set).start()
    checkpointer.save(2, fit_state(epoch=2), {})  # waits until save 1 is completely written
    assert os.path.isdir(os.path.join(directory, "1", "state"))
    checkpointer.close()
    assert len(hashed) == 2 and threading.main_thread() not in threads
    assert checkpointer.latest_epoch() == 2 and checkpointer.epochs() == [1, 2]
    monkeypatch.undo()
    state, meta = Checkpointer(directory).restore(fit_state())
    assert int(state.epoch) == 2 and meta["state_sha256"] == params_sha256(fit_state(epoch=2)) == hashed[1]


def test_the_host_copy_owns_its_memory():
    # A view of the device buffer would change under a donating training step (or stop the donation).
    assert all(leaf.flags.owndata for leaf in jax.tree.leaves(checkpoint.host_copy(fit_state(epoch=1))))


def test_an_error_in_a_background_save_is_raised_by_the_next_save_or_close(tmp_path, monkeypatch):
    def broken_sha256(tree):
        raise OSError("disk full while hashing")

    monkeypatch.setattr(checkpoint, "params_sha256", broken_sha256)
    checkpointer = Checkpointer(str(tmp_path / "a"))
    checkpointer.save(1, fit_state(epoch=1), {})
    with pytest.raises(OSError, match="disk full while hashing"):
        checkpointer.close()

    checkpointer = Checkpointer(str(tmp_path / "b"))
    checkpointer.save(1, fit_state(epoch=1), {})
    with pytest.raises(OSError, match="disk full while hashing"):
        checkpointer.save(2, fit_state(epoch=2), {})
    checkpointer.close()  # the error was raised once; nothing else pending
    assert checkpointer.epochs() == []
