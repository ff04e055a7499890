"""No pickle anywhere in what loads checkpoints or data: a checkpoint or a dataset file can then not
run code when it is read.

Two checks: jaxdl's own source does not mention any unpickler, and a real save, restore and dataset
load succeed while every unpickling entry point of the standard library raises.
"""

from __future__ import annotations

import os
import pickle
import re

import ml_collections
import optax
import pytest
from conftest import REPO

from jaxdl.data import load
from jaxdl.models import MLP
from jaxdl.train.checkpoint import Checkpointer
from jaxdl.train.digest import params_sha256
from jaxdl.train.fit import init_fit_state
from jaxdl.train.losses import classification_metrics
from jaxdl.train.state import create_state

MODULES = r"(c?pickle|_pickle|cloudpickle|dill|joblib|shelve|marshal)"
UNPICKLERS = re.compile(rf"(import\s+{MODULES}\b|from\s+{MODULES}\s+import|\b{MODULES}\.\w|"
                        r"allow_pickle\s*=\s*True|torch\.load|__reduce__|__setstate__)")


def test_the_pattern_finds_unpicklers():
    for line in ("import pickle", "from dill import loads", "state = cloudpickle.loads(b)",
                 "np.load(path, allow_pickle=True)", "torch.load(f)", "import _pickle as p"):
        assert UNPICKLERS.search(line), line
    assert not UNPICKLERS.search("no pickle at training time")


def test_no_unpickler_is_used_in_the_library_source():
    offenders = []
    for folder, _, files in (*os.walk(os.path.join(REPO, "jaxdl")), *os.walk(os.path.join(REPO, "experiments"))):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path) as f:
                    offenders += [f"{os.path.relpath(path, REPO)}:{i}: {line.strip()}"
                                  for i, line in enumerate(f, 1) if UNPICKLERS.search(line)]
    assert offenders == []


@pytest.fixture
def unpickling_forbidden(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("something unpickled")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)


def test_checkpoints_and_data_load_with_unpickling_forbidden(unpickling_forbidden, tmp_path, data_dir):
    state = create_state(MLP(num_outputs=10, hidden_sizes=(8,)), optax.adam(1e-3), (8, 8, 1), 0,
                         classification_metrics)
    fit_state = init_fit_state(state)
    checkpointer = Checkpointer(str(tmp_path / "ckpt"), every_epochs=1)
    checkpointer.save(1, fit_state, {"config": {"seed": 0}})
    checkpointer.close()
    restored, meta = Checkpointer(str(tmp_path / "ckpt")).restore(fit_state)
    assert params_sha256(restored) == params_sha256(fit_state) and meta["config"] == {"seed": 0}

    splits = load(ml_collections.ConfigDict({"name": "digits", "data_dir": data_dir, "validation_fraction": 0.1,
                                             "split_seed": 0, "download": False}))
    assert sum(splits.sizes().values()) == 1797
