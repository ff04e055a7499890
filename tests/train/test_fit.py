"""fit: early stopping keeps the best model, resume from a checkpoint equals an uninterrupted run,
the caller's state is left alone."""

import contextlib
import io
import os
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest
from conftest import REPO, devices_env

from jaxdl.errors import InputError
from jaxdl.evaluate.passes import evaluate_split
from jaxdl.models import MLP
from jaxdl.train.checkpoint import Checkpointer
from jaxdl.train.digest import params_sha256
from jaxdl.train.fit import fit
from jaxdl.train.losses import classification_metrics
from jaxdl.train.state import create_state


def state(lr=1e-2, seed=0):
    return create_state(MLP(num_outputs=10, hidden_sizes=(64,)), optax.adam(lr), (8, 8, 1), seed,
                        classification_metrics)


def test_early_stopping_returns_the_best_model(digits):
    # A large learning rate on a small validation set overfits quickly.
    result = fit(state(lr=3e-2), digits.train, digits.validation, epochs=60, batch_size=32, patience=3)
    losses = [record["val_loss"] for record in result.history]
    assert result.stopped_early and result.epochs_run < 60
    assert result.best_epoch == int(np.argmin(losses)) + 1
    assert result.epochs_run == result.best_epoch + 3
    kept = evaluate_split(result.state, digits.validation)
    np.testing.assert_allclose(kept["loss"], min(losses), rtol=1e-5)


def test_patience_zero_runs_every_epoch_and_keeps_the_last(digits):
    result = fit(state(), digits.train, digits.validation, epochs=4, batch_size=64, patience=0)
    assert result.epochs_run == 4 and not result.stopped_early and len(result.history) == 4
    assert params_sha256(result.state.params) == params_sha256(result.fit_state.train.params)


def test_resume_from_checkpoint_matches_an_uninterrupted_run(digits, tmp_path):
    straight = fit(state(), digits.train, digits.validation, epochs=5, batch_size=64, patience=2)

    checkpointer = Checkpointer(str(tmp_path / "ck"), every_epochs=1, every_seconds=0)
    first = fit(state(), digits.train, digits.validation, epochs=3, batch_size=64, patience=2,
                checkpointer=checkpointer)
    checkpointer.close()
    assert first.epochs_run == 3

    checkpointer = Checkpointer(str(tmp_path / "ck"), every_epochs=1, every_seconds=0)
    resumed = fit(state(seed=99), digits.train, digits.validation, epochs=5, batch_size=64, patience=2,
                  checkpointer=checkpointer)  # the seed of the fresh state is ignored: the checkpoint wins
    checkpointer.close()
    assert resumed.resumed_from == 3 and [r["epoch"] for r in resumed.history] == [4, 5]
    assert params_sha256(resumed.state.params) == params_sha256(straight.state.params)
    np.testing.assert_array_equal([r["val_loss"] for r in first.history + resumed.history],
                                  [r["val_loss"] for r in straight.history])


# Trains a state and a stack of two on random data, then reads every leaf of the caller's params.
CALLER_STATE_SURVIVES = """
import jax, numpy as np, optax
from jaxdl.models import MLP
from jaxdl.train.fit import fit
from jaxdl.train.losses import classification_metrics
from jaxdl.train.state import create_state

rng = np.random.default_rng(0)
data = {"x": rng.normal(size=(64, 4)).astype(np.float32), "y": rng.integers(0, 3, 64).astype(np.int32)}
model, tx = MLP(num_outputs=3, hidden_sizes=(8,)), optax.sgd(0.1)
make = lambda seed: create_state(model, tx, (4,), seed, classification_metrics)
solo = make(0)
stack = jax.vmap(make)(jax.numpy.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(1)]))
for state, members in ((solo, 0), (stack, 2)):
    before = [np.array(leaf) for leaf in jax.tree.leaves(state.params)]
    fit(state, data, data, epochs=2, batch_size=16, members=members)
    after = [np.asarray(leaf) for leaf in jax.tree.leaves(state.params)]  # raises if a buffer was deleted
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True)), members
print("devices", jax.device_count())
"""


@pytest.mark.slow
@pytest.mark.parametrize("devices", [1, 8])
def test_fit_leaves_the_callers_state_alone(devices):
    """`fit` copies the state it is given: the caller's arrays stay readable and unchanged, on
    one device (where placing them could alias the caller's buffers) as on eight."""
    if jax.device_count() == devices:  # this process has them: no process to start
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(CALLER_STATE_SURVIVES, {})
        assert out.getvalue().split() == ["devices", str(devices)]
        return
    env = {**devices_env(devices), "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", CALLER_STATE_SURVIVES], cwd=REPO, env={**os.environ, **env},
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["devices", str(devices)]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"batch_size": 0}, "^batch_size: out of range"),
    ({"batch_size": 4096}, "^batch_size: is larger than the training set"),
    ({"batch_size": 32, "nan_policy": "skp"}, "^nan_policy: unknown name"),
    ({"batch_size": 32, "patience": -1}, "^patience: out of range"),
])
def test_fit_names_its_own_arguments_in_errors(digits, kwargs, message):
    """A library function speaks in its own terms; the pipeline names config keys (tests/run/test_bad_input.py)."""
    with pytest.raises(InputError, match=message):
        fit(state(), digits.train, digits.validation, epochs=1, **kwargs)
