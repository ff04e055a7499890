"""No pickle anywhere in what loads checkpoints or data: a checkpoint or a dataset file can then not
run code when it is read.

Two checks: jaxdl's own source does not mention any unpickler, and a real save, restore and dataset
load succeed while any unpickling raises: the pickle and _pickle entry points are patched, and an
audit hook on "pickle.find_class" (which every unpickler, C or Python, fires for each global it
resolves, and without a global a pickle cannot call anything) catches the rest, including a `loads`
bound before the patch and `numpy.load(allow_pickle=True)`.

The one exception is `torch.load(..., weights_only=True)` in jaxdl.transfer.imported, for PyTorch
`.pth` files (opt-in; `.safetensors` needs no unpickler): PyTorch's weights-only unpickler rebuilds
tensors and plain containers only and refuses every other global, so the file cannot run code.
"""

from __future__ import annotations

import _pickle
import os
import pickle
import re
import sys

import ml_collections
import numpy as np
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
                        r"allow_pickle\s*=\s*True|torch\.load\((?!.*weights_only=True)|__reduce__|__setstate__)")


def test_the_pattern_finds_unpicklers():
    for line in ("import pickle", "from dill import loads", "state = cloudpickle.loads(b)",
                 "np.load(path, allow_pickle=True)", "torch.load(f)", "import _pickle as p"):
        assert UNPICKLERS.search(line), line
    assert not UNPICKLERS.search("no pickle at training time")
    assert UNPICKLERS.search('torch.load(path, map_location="cpu", weights_only=False)')
    assert not UNPICKLERS.search('torch.load(path, map_location="cpu", weights_only=True)')


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


# Bound at import, as `from pickle import loads` in some library would be: patching pickle misses it.
EARLY_LOADS = pickle.loads
# What the guard saw while on (None: off). An audit hook cannot be removed, so it is added once per
# process and acts only while a test has the guard on.
GUARD: dict[str, list | None] = {"seen": None}


def audit(event: str, args: tuple) -> None:
    if event == "pickle.find_class" and GUARD["seen"] is not None:
        GUARD["seen"].append(f"{args[0]}.{args[1]}")
        raise AssertionError(f"something unpickled a global: {args[0]}.{args[1]}")


@pytest.fixture
def unpickling_forbidden(monkeypatch):
    """Turns the guard on; yields the list of what was unpickled, to be asserted empty (the code under
    test might catch the AssertionError and carry on)."""
    if not getattr(sys, "_jaxdl_pickle_audit", False):
        sys.addaudithook(audit)
        sys._jaxdl_pickle_audit = True
    seen = []

    def forbidden(*args, **kwargs):
        seen.append("pickle entry point")
        raise AssertionError("something unpickled")

    for module in (pickle, _pickle):
        for name in ("load", "loads", "Unpickler"):
            monkeypatch.setattr(module, name, forbidden)
    monkeypatch.setattr(pickle, "_Unpickler", forbidden)  # the pure-Python unpickler behind pickle._load(s)
    GUARD["seen"] = seen
    try:
        yield seen
    finally:
        GUARD["seen"] = None


def test_the_guard_sees_any_unpickling(unpickling_forbidden, tmp_path):
    array = pickle.dumps(np.arange(3))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    loaders = {"pickle.loads": lambda: pickle.loads(array), "_pickle.loads": lambda: _pickle.loads(array),
               "loads bound before the patch": lambda: EARLY_LOADS(array),
               "pickle._loads (pure Python)": lambda: pickle._loads(array),
               "numpy.load(allow_pickle=True)": lambda: np.load(tmp_path / "objects.npy", allow_pickle=True)}
    for name, load_it in loaders.items():
        before = len(unpickling_forbidden)
        with pytest.raises(AssertionError, match="something unpickled"):
            load_it()
        assert len(unpickling_forbidden) > before, name
    # The hook alone, with no patch at all, sees a global being resolved.
    del unpickling_forbidden[:]
    with pytest.raises(AssertionError, match="numpy"):
        EARLY_LOADS(array)
    assert unpickling_forbidden and all(name.startswith("numpy") for name in unpickling_forbidden)


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
    assert unpickling_forbidden == []
