"""train.nan_policy: `halt` stops at the first non-finite epoch, `skip` drops those updates and counts them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import run_cli

from jaxdl.models import MLP
from jaxdl.train import nonfinite
from jaxdl.train.checkpoint import Checkpointer
from jaxdl.train.digest import params_sha256
from jaxdl.train.fit import fit, init_fit_state
from jaxdl.train.losses import classification_metrics
from jaxdl.train.state import create_state
from jaxdl.train.step import train_step

BATCH = 32


def small_state(seed: int = 0):
    return create_state(MLP(num_outputs=10, hidden_sizes=(16,)), optax.sgd(0.1), (8, 8, 1), seed,
                        classification_metrics)


def train_subset(digits, steps: int, poison: tuple[int, ...] = ()) -> dict:
    """`steps` whole batches of digits' train split (no tail is dropped), with NaN in the `poison` examples."""
    x = digits.train["x"][: steps * BATCH].copy()
    x[list(poison)] = np.nan
    return {"x": x, "y": digits.train["y"][: steps * BATCH]}


def all_finite(tree) -> bool:
    return all(bool(np.all(np.isfinite(leaf))) for leaf in jax.tree.leaves(jax.device_get(tree)))


@pytest.mark.parametrize(("bad", "expected"), [
    (None, True), (np.nan, False), (np.inf, False), (-np.inf, False), ("inf_and_minus_inf", False)])
def test_all_finite_finds_any_bad_element(bad, expected):
    """One bad element among many, in any leaf; +inf and -inf in two leaves (their sum is NaN)."""
    tree = {"a": jnp.ones((300, 7)), "b": [jnp.full((5,), -2.0), jnp.zeros((2, 3), jnp.bfloat16)]}
    if bad == "inf_and_minus_inf":
        tree["a"], tree["b"][0] = tree["a"].at[4, 4].set(np.inf), tree["b"][0].at[1].set(-np.inf)
    elif bad is not None:
        tree["b"][1] = tree["b"][1].at[1, 2].set(bad)
    assert bool(jax.jit(nonfinite.all_finite)(tree)) is expected


def test_all_finite_does_not_overflow_on_large_half_precision_values():
    """float16 tops out at 65504: the check sums in float32, so many large finite values stay finite."""
    assert bool(nonfinite.all_finite({"g": jnp.full((1000,), 60000.0, jnp.float16)}))


def test_skip_leaves_the_state_alone_but_advances_the_step(digits):
    state = small_state()
    batch = {"x": jnp.asarray(train_subset(digits, 1, poison=(3,))["x"]), "y": jnp.asarray(digits.train["y"][:BATCH])}
    skipped, metrics = jax.jit(lambda s, b: train_step(s, b, skip_nonfinite=True))(state, batch)
    assert bool(metrics["nonfinite"])
    assert int(skipped.step) == 1
    assert params_sha256(skipped.params) == params_sha256(state.params)
    assert params_sha256(skipped.opt_state) == params_sha256(state.opt_state)
    applied, metrics = jax.jit(train_step)(state, batch)
    assert bool(metrics["nonfinite"]) and not all_finite(applied.params)


def test_streaks_count_runs_across_the_epoch_boundary():
    flags = jnp.array([True, True, False, True, True, True])
    runs = jax.device_get(nonfinite.streaks(flags, jnp.int32(2)))
    assert (runs["count"], runs["longest"], runs["trailing"], runs["first"]) == (5, 4, 3, 0)
    clean = jax.device_get(nonfinite.streaks(jnp.zeros(4, bool), jnp.int32(7)))
    assert (clean["count"], clean["longest"], clean["trailing"], clean["first"]) == (0, 0, 0, -1)


@pytest.mark.slow
def test_halt_names_the_epoch_and_keeps_the_last_good_checkpoint(digits, tmp_path):
    directory = str(tmp_path / "checkpoints")
    clean, poisoned = train_subset(digits, 8), train_subset(digits, 8, poison=(100,))
    checkpointer = Checkpointer(directory, every_epochs=1, keep=5)
    fit(small_state(), clean, digits.validation, epochs=2, batch_size=BATCH, checkpointer=checkpointer)
    checkpointer.close()
    like = init_fit_state(small_state())
    good = jax.device_get(Checkpointer(directory).restore(like)[0])

    checkpointer = Checkpointer(directory, every_epochs=1, keep=5)
    records = []
    with pytest.raises(nonfinite.NonFiniteError) as caught:
        fit(small_state(), poisoned, digits.validation, epochs=4, batch_size=BATCH, checkpointer=checkpointer,
            on_epoch=records.append)
    checkpointer.close()
    message = str(caught.value)
    assert message.startswith("epoch 3: loss or gradient is NaN or infinite (train.nan_policy=halt)")
    assert "kept the last checkpoint, epoch 2" in message
    # Once the poisoned batch's NaN reaches the parameters, every later step of the epoch is NaN too.
    assert [r["epoch"] for r in records] == [3]
    first = int(message.split("the first is step ", 1)[1].split("'", 1)[0])
    assert 2 * 8 < first <= 3 * 8 and records[0]["nonfinite_steps"] == 3 * 8 - first + 1
    checkpointer = Checkpointer(directory)
    assert checkpointer.epochs() == [1, 2]
    kept = jax.device_get(checkpointer.restore(like)[0])
    assert all_finite(kept.train.params)
    assert params_sha256(kept) == params_sha256(good)


def test_skip_counts_the_poisoned_batch_each_epoch_and_trains_on(digits):
    poisoned = train_subset(digits, 8, poison=(100,))
    result = fit(small_state(), poisoned, digits.validation, epochs=3, batch_size=BATCH, nan_policy="skip")
    assert [r["nonfinite_steps"] for r in result.history] == [1, 1, 1]
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"]) for r in result.history)
    assert all_finite(result.fit_state)
    assert int(result.fit_state.train.step) == 3 * 8
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]


def test_skip_halts_after_too_many_in_a_row_counting_across_epochs(digits):
    everything_nan = train_subset(digits, 4, poison=tuple(range(4 * BATCH)))
    records = []
    with pytest.raises(nonfinite.NonFiniteError) as caught:
        fit(small_state(), everything_nan, digits.validation, epochs=5, batch_size=BATCH, nan_policy="skip",
            max_consecutive_nonfinite=6, on_epoch=records.append)
    assert str(caught.value).startswith("epoch 2: loss or gradient is NaN or infinite "
                                        "(train.max_consecutive_nonfinite=6) (got '8 non-finite steps in a row'")
    assert [r["nonfinite_steps"] for r in records] == [4, 4]


@pytest.mark.slow
def test_halt_through_the_command_line(data_dir, tmp_path):
    workdir = tmp_path / "diverges"
    result = run_cli("experiments.mlp", "--config", "configs/mlp.py:tiny", f"--config.data.data_dir={data_dir}",
                     "--config.optimizer.name=sgd", "--config.optimizer.learning_rate=10",
                     "--config.model.activation=linear", "--config.model.hidden_sizes=(32,32)",
                     "--config.checkpoint.every_epochs=1", "--config.train.steps_per_call=epoch", "--quiet",
                     f"--workdir={workdir}")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: epoch 1: loss or gradient is NaN or infinite"), lines
    assert "no checkpoint was saved before it" in lines[0]
    assert "Traceback" not in result.stderr
    assert (workdir / "metrics.jsonl").read_text().count('"epoch": 1,') == 1
    assert not (workdir / "summary.json").exists()
