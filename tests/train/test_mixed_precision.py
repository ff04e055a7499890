"""Mixed precision: bfloat16 trains as well as float32 and saves float32 parameters; float16 scales the
loss dynamically (an overflow is skipped, counted and lowers the scale; it is not divergence) and
resumes bit for bit; float32 states are exactly what they were before loss scaling existed."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import REPO, run_cli

from jaxdl.deploy.run_loader import load_run
from jaxdl.models import MLP
from jaxdl.run.config import load_config
from jaxdl.run.pipeline import train_and_evaluate
from jaxdl.train import loss_scale
from jaxdl.train.checkpoint import Checkpointer, tree_digest
from jaxdl.train.fit import fit
from jaxdl.train.losses import classification_metrics
from jaxdl.train.state import ScaledTrainState, TrainState, create_state, with_loss_scale
from jaxdl.train.step import train_step

# Small configs that converge on digits in seconds (test accuracy ~95-97%).
RUNS = {
    "mlp": ("mlp.py:tiny", {"hidden_sizes": (64,)}, 15),
    "cnn": ("cnn.py:tiny", {"channels": (16,), "dense_sizes": (32,), "dropout": 0.0}, 15),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    """family, dtype -> (workdir, summary, kept state) of a finished run, trained once per module."""
    root, done = tmp_path_factory.mktemp("mixed_precision"), {}

    def get(family: str, dtype: str):
        if (family, dtype) not in done:
            spec, model, epochs = RUNS[family]
            config = load_config(os.path.join(REPO, "configs", spec))
            with config.unlocked():
                config.data.data_dir = data_dir
                config.model.update({**model, "dtype": dtype})
                config.train.epochs = epochs
                # What no test here reads: the report, the questions' answers, and "auto" timing the step
                # programs (whatever K trains the same bits).
                config.eval.update({"report": False, "questions": "none"})
                config.train.steps_per_call = "epoch"
            workdir = str(root / f"{family}-{dtype}")
            summary, state = train_and_evaluate(config, workdir, progress=False, return_state=True)
            done[family, dtype] = workdir, summary, state
        return done[family, dtype]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("family", ["mlp", pytest.param("cnn", marks=pytest.mark.slow)])
def test_bfloat16_trains_to_within_a_point_of_float32(runs, family):
    _, full, _ = runs(family, "float32")
    _, half, _ = runs(family, "bfloat16")
    assert full["model_dtype"] == "float32" and half["model_dtype"] == "bfloat16"
    assert full["test"]["accuracy"] > 0.93  # both trained: the comparison means something
    assert abs(half["test"]["accuracy"] - full["test"]["accuracy"]) <= 0.01
    assert half["params_sha256"] != full["params_sha256"]  # it did compute in another dtype


@pytest.mark.slow
def test_a_bfloat16_run_saves_float32_and_loads_as_the_bfloat16_model(runs, digits):
    workdir, summary, state = runs("cnn", "bfloat16")
    assert type(state) is TrainState  # no loss scale: bfloat16 has float32's exponent range
    assert {leaf.dtype for leaf in jax.tree.leaves(state.variables())} == {np.dtype(np.float32)}
    checkpoints = Checkpointer(os.path.join(workdir, "checkpoints"))
    saved = checkpoints.read_meta(checkpoints.epochs()[-1])["state_leaves"]
    checkpoints.close()
    assert any("params" in path for path in saved) and any("batch_stats" in path for path in saved)
    assert all(spec.startswith(("float32", "int32", "uint32", "bool")) for spec in saved.values()), saved
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert not any("train_overflow_steps" in record or "train_loss_scale" in record for record in records)

    predictor = load_run(workdir)
    assert predictor.apply_fn.__self__.dtype == jnp.bfloat16
    assert {leaf.dtype for leaf in jax.tree.leaves(predictor.variables)} == {np.dtype(np.float32)}
    images = np.round(digits.test["x"] * 255).astype(np.uint8)
    probabilities = predictor(images)
    assert probabilities.dtype == np.float32
    right = int(np.sum(np.argmax(probabilities, axis=-1) == digits.test["y"]))
    assert abs(right - summary["test"]["accuracy"] * summary["test"]["count"]) <= 1


@pytest.mark.slow
def test_predict_and_export_commands_on_a_bfloat16_run(runs, digits, tmp_path):
    workdir, _, _ = runs("mlp", "bfloat16")
    images = np.round(digits.test["x"][:50] * 255).astype(np.uint8)
    np.savez(tmp_path / "inputs.npz", x=images, y=digits.test["y"][:50])
    predicted = run_cli("jaxdl.predict", "--workdir", workdir, str(tmp_path / "inputs.npz"),
                        "--output", str(tmp_path / "rows.jsonl"))
    assert predicted.returncode == 0, predicted.stderr
    rows = [json.loads(line) for line in open(tmp_path / "rows.jsonl")]
    expected = load_run(workdir)(images)
    assert [row["predicted"] for row in rows] == [str(c) for c in np.argmax(expected, axis=-1)]

    exported = run_cli("jaxdl.export", "--workdir", workdir, "--output", str(tmp_path / "model.jaxexport"))
    assert exported.returncode == 0, exported.stderr
    model = jax.export.deserialize((tmp_path / "model.jaxexport").read_bytes())
    np.testing.assert_allclose(np.asarray(model.call(images)), expected, rtol=0, atol=1e-6)


def float16_state(scale: float = loss_scale.INITIAL_SCALE, growth_interval: int = loss_scale.GROWTH_INTERVAL,
                  lr: float = 3e-3) -> ScaledTrainState:
    state = create_state(MLP(num_outputs=10, hidden_sizes=(64,), dtype=jnp.float16), optax.adam(lr), (8, 8, 1), 0,
                         classification_metrics)
    assert isinstance(state, ScaledTrainState) and float(state.loss_scale.scale) == loss_scale.INITIAL_SCALE
    return with_loss_scale(state, loss_scale.for_dtype(jnp.float16, scale=scale, growth_interval=growth_interval))


def batch_of(digits, size: int = 32) -> dict:
    return {"x": jnp.asarray(digits.train["x"][:size]), "y": jnp.asarray(digits.train["y"][:size])}


def test_float32_and_bfloat16_states_hold_no_loss_scale():
    for dtype in (jnp.float32, jnp.bfloat16):
        state = create_state(MLP(num_outputs=10, hidden_sizes=(8,), dtype=dtype), optax.adam(1e-3), (8, 8, 1), 0,
                             classification_metrics)
        assert type(state) is TrainState and state.loss_scale is None
        paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(state)[0]]
        assert not any("loss_scale" in path for path in paths)


def test_an_overflowing_step_is_skipped_and_halves_the_scale(digits):
    state = float16_state(scale=2.0 ** 30)  # 2^30 times any gradient of the loss overflows float16 (max 65504)
    step = jax.jit(train_step)
    new, metrics = step(state, batch_of(digits))
    assert bool(metrics["overflow"]) and not bool(metrics["nonfinite"])
    assert np.isfinite(float(metrics["loss"]))
    assert float(new.loss_scale.scale) == 2.0 ** 29 and int(new.step) == 1
    assert tree_digest((new.params, new.opt_state))[0] == tree_digest((state.params, state.opt_state))[0]

    fine, metrics = step(float16_state(scale=2.0 ** 10), batch_of(digits))
    assert not bool(metrics["overflow"]) and float(fine.loss_scale.scale) == 2.0 ** 10
    assert tree_digest(fine.params)[0] != tree_digest(state.params)[0]


def test_the_scale_doubles_after_growth_interval_finite_steps(digits):
    state, step = float16_state(scale=2.0 ** 8, growth_interval=3), jax.jit(train_step)
    scales = []
    for _ in range(8):
        state, metrics = step(state, batch_of(digits))
        assert not bool(metrics["overflow"])
        scales.append(float(state.loss_scale.scale))
    # Flax's DynamicScale grows on the step after `growth_interval` finite ones (when the count equals it).
    assert scales == [2.0 ** 8] * 3 + [2.0 ** 9] * 4 + [2.0 ** 10]


def test_a_nan_loss_is_divergence_not_an_overflow(digits):
    state = float16_state()
    batch = batch_of(digits)
    batch["x"] = batch["x"].at[3].set(jnp.nan)
    new, metrics = jax.jit(lambda s, b: train_step(s, b, skip_nonfinite=True))(state, batch)
    assert bool(metrics["nonfinite"]) and not bool(metrics["overflow"])
    assert float(new.loss_scale.scale) == loss_scale.INITIAL_SCALE  # the scale only answers overflows
    assert tree_digest(new.params)[0] == tree_digest(state.params)[0]


def test_a_forced_float16_overflow_lowers_the_scale_and_training_goes_on(digits):
    start = 2.0 ** 30
    result = fit(float16_state(scale=start), digits.train, digits.validation, epochs=5, batch_size=32,
                 nan_policy="halt")  # an overflow is no divergence: "halt" lets the run go on
    overflows = [record["train_overflow_steps"] for record in result.history]
    assert overflows[0] >= 5 and sum(overflows) < 40  # several at first, then the scale fits
    assert all(record["nonfinite_steps"] == 0 for record in result.history)
    # No growth within 2000 steps: every overflow halved the scale, and nothing else changed it.
    assert result.history[-1]["train_loss_scale"] == start / 2 ** sum(overflows)
    assert float(result.state.loss_scale.scale) == start / 2 ** sum(overflows)
    assert np.isfinite(result.history[-1]["train_loss"]) and result.history[-1]["train_loss"] < 0.4
    assert result.history[-1]["val_accuracy"] > 0.9


@pytest.mark.slow
def test_float16_resume_is_bit_identical(digits, tmp_path):
    # The scale doubles every 11 finite steps until it overflows again: both happen on either side of the resume.
    def state():
        return float16_state(scale=2.0 ** 20, growth_interval=10)

    straight = fit(state(), digits.train, digits.validation, epochs=4, batch_size=32)
    assert all(record["train_overflow_steps"] > 0 for record in straight.history)

    for epochs in (2, 4):
        checkpointer = Checkpointer(str(tmp_path / "ck"), every_epochs=1, every_seconds=0)
        resumed = fit(state(), digits.train, digits.validation, epochs=epochs, batch_size=32,
                      checkpointer=checkpointer)
        checkpointer.close()
    assert resumed.resumed_from == 2 and [record["epoch"] for record in resumed.history] == [3, 4]
    without_seconds = [{k: v for k, v in record.items() if k != "seconds"} for record in straight.history[2:]]
    assert [{k: v for k, v in record.items() if k != "seconds"} for record in resumed.history] == without_seconds
    assert tree_digest(resumed.fit_state)[0] == tree_digest(straight.fit_state)[0]  # loss scale included
    assert int(resumed.fit_state.train.loss_scale.fin_steps) == int(straight.fit_state.train.loss_scale.fin_steps)


def test_every_config_has_model_dtype_float32_and_a_run_records_it(runs):
    for spec in ("mlp.py", "cnn.py", "rnn.py", "hybrid.py", "playground.py", "transfer.py", "transfer.py:folder"):
        assert load_config(os.path.join(REPO, "configs", spec)).model.dtype == "float32", spec
    workdir, summary, _ = runs("mlp", "float32")
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["model"]["dtype"] == "float32"
    assert summary["model_dtype"] == "float32"
