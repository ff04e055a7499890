"""Evaluation: the one-pass test predictions and the figures read from them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxdl.errors import InputError
from jaxdl.evaluate.analysis import (
    check_eval_config,
    macro_average,
    most_confused,
    overfitting,
    per_class_scores,
    residual_stats,
    target_verdict,
    worst_examples,
)
from jaxdl.evaluate.members import evaluate_members
from jaxdl.evaluate.passes import Predictions, evaluate_split, predict_split
from jaxdl.models.mlp import MLP
from jaxdl.train.losses import classification_metrics, regression_metrics
from jaxdl.train.state import TrainState, create_state
from jaxdl.train.step import eval_batches, evaluate_batches


@pytest.fixture(scope="module")
def untrained(digits):
    """A small MLP at its random initialisation: wrong often enough to fill a confusion matrix."""
    return create_state(MLP(num_outputs=10, hidden_sizes=(16,)), optax.sgd(0.1), digits.info.input_shape, 3,
                        classification_metrics)


def test_one_pass_counts_every_example_once_and_agrees_with_accuracy(untrained, digits):
    test = digits.test
    n = len(test["y"])
    predictions = predict_split(untrained, test, num_classes=10, batch_size=100)  # 359 = 3*100 + 59 padded

    assert predictions.metrics["count"] == n
    assert predictions.outputs.shape == (n, 10)
    assert predictions.per_example["loss"].shape == (n,)
    confusion = predictions.confusion
    assert confusion.sum() == n
    assert np.array_equal(confusion.sum(axis=1), np.bincount(test["y"], minlength=10))
    # The same matrix counted on the host from the pass's own outputs.
    expected = np.zeros((10, 10), np.int64)
    np.add.at(expected, (test["y"], predictions.outputs.argmax(axis=1)), 1)
    assert np.array_equal(confusion, expected)
    # Diagonal and accuracy are the same count: exactly, in float32 as the device divides.
    assert np.float32(np.trace(confusion)) / np.float32(n) == np.float32(predictions.metrics["accuracy"])
    assert 0 < np.trace(confusion) < n
    # Same figures as the plain evaluation, whatever the batch size.
    plain = evaluate_split(untrained, test, batch_size=64)
    assert plain["accuracy"] == predictions.metrics["accuracy"]
    assert plain["loss"] == pytest.approx(predictions.metrics["loss"], rel=1e-5)
    assert predictions.per_example["loss"].mean() == pytest.approx(predictions.metrics["loss"], rel=1e-5)


def test_per_class_scores_match_a_hand_computation():
    # rows = true class, columns = predicted
    confusion = np.array([[5, 1, 0],
                          [2, 3, 1],
                          [0, 0, 0]])
    rows = per_class_scores(confusion, ("cat", "dog", "fox"))
    # cat: precision 5/7, recall 5/6; dog: precision 3/4, recall 3/6; fox: never right, never present.
    p_cat, r_cat, p_dog, r_dog = 5 / 7, 5 / 6, 3 / 4, 3 / 6
    assert rows[0] == {"class": "cat", "precision": pytest.approx(p_cat), "recall": pytest.approx(r_cat),
                       "f1": pytest.approx(2 * p_cat * r_cat / (p_cat + r_cat)), "support": 6}
    assert rows[1] == {"class": "dog", "precision": pytest.approx(p_dog), "recall": pytest.approx(r_dog),
                       "f1": pytest.approx(2 * p_dog * r_dog / (p_dog + r_dog)), "support": 6}
    assert rows[2] == {"class": "fox", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    macro = macro_average(rows)  # over the classes that have examples
    assert macro["precision"] == pytest.approx((p_cat + p_dog) / 2)


def test_most_confused_pairs_are_the_largest_off_diagonal_cells():
    confusion = np.array([[9, 0, 4],
                          [1, 8, 0],
                          [2, 7, 9]])
    pairs = most_confused(confusion, ("a", "b", "c"), top=3)
    assert pairs == [{"true": "c", "predicted": "b", "count": 7}, {"true": "a", "predicted": "c", "count": 4},
                     {"true": "c", "predicted": "a", "count": 2}]
    assert most_confused(np.eye(3, dtype=int) * 5) == []


def test_worst_examples_are_the_highest_losses_with_their_probabilities():
    outputs = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.6, 0.1]]))
    labels = np.array([0, 1, 1])
    loss = -np.log(np.array([0.7, 0.1, 0.6]))
    predictions = Predictions(metrics={}, outputs=outputs, per_example={"loss": loss}, confusion=None)
    worst = worst_examples(predictions, labels, top=2)
    assert [w["index"] for w in worst] == [1, 2]
    assert worst[0]["true"] == "1" and worst[0]["predicted"] == "2"
    assert worst[0]["probability"] == pytest.approx(0.8) and worst[0]["true_probability"] == pytest.approx(0.1)
    assert worst[1]["predicted"] == worst[1]["true"] == "1"


def curve(train, val):
    return [{"epoch": i + 1, "train_loss": t, "val_loss": v} for i, (t, v) in enumerate(zip(train, val, strict=True))]


def test_overfitting_flag_needs_val_loss_up_for_several_epochs_while_train_loss_falls():
    falling = [1.0 / (i + 1) for i in range(12)]
    val_u = [1.0, 0.6, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85]
    rising = overfitting(curve(falling, val_u))
    assert rising["overfitting"] is True
    assert rising["best_epoch"] == 3 and rising["epochs_above_best"] == 9
    # Both falling: learning, not overfitting.
    assert overfitting(curve(falling, [v * 1.1 for v in falling]))["overfitting"] is False
    # Validation up but training up too (e.g. a learning rate too high): not overfitting.
    assert overfitting(curve(val_u, val_u))["overfitting"] is False
    # Only the last few epochs up: too early to say.
    assert overfitting(curve(falling, [*falling[:9], 0.5, 0.6, 0.7]))["overfitting"] is False
    assert overfitting([]) == {"overfitting": False}


def test_residual_stats():
    stats = residual_stats(np.array([[1.0], [2.0], [4.0]]), np.array([[1.0], [3.0], [3.0]]))
    assert stats["mean"] == pytest.approx(0.0) and stats["mae"] == pytest.approx(2 / 3)
    assert stats["max_abs"] == 1.0 and stats["r2"] == pytest.approx(1 - 2 / (8 / 3))


def test_target_verdict():
    assert target_verdict(None, {"accuracy": 0.5}) is None
    assert target_verdict(0.9, {"accuracy": 0.9})["met"] is True
    assert target_verdict(0.95, {"accuracy": 0.9})["met"] is False


@pytest.mark.parametrize(("key", "value", "task", "message"), [
    ("target_accuracy", 1.5, None, "out of range"),
    ("target_accuracy", 0.9, "regression", "needs a classification task"),
    ("baseline", "yes", None, "wrong type"),
])
def test_bad_eval_config_is_an_input_error(key, value, task, message):
    config = ml_collections.ConfigDict({"batch_size": 8, key: value})
    with pytest.raises(InputError, match=message):
        check_eval_config(config, task)


def divide_by_row_sum(variables, x, *, train=False, rngs=None):
    """A model whose all-zero padding rows compute 0 / 0 = NaN: (batch, d) -> (batch, d), each row over its sum."""
    del train, rngs
    return x / jnp.sum(x, axis=1, keepdims=True) * variables["params"]["scale"]


def test_nan_on_padding_rows_never_reaches_the_metrics():
    rng = np.random.default_rng(0)
    arrays = {"x": rng.uniform(0.5, 1.5, (10, 3)).astype(np.float32),
              "y": rng.uniform(0.0, 1.0, (10, 3)).astype(np.float32)}
    state = TrainState(step=jnp.zeros((), jnp.int32), params={"scale": jnp.float32(2.0)}, opt_state=(),
                       rng=jax.random.PRNGKey(0), batch_stats={}, apply_fn=divide_by_row_sum, tx=optax.sgd(0.1),
                       metrics_fn=regression_metrics)
    outputs = 2.0 * arrays["x"] / arrays["x"].sum(axis=1, keepdims=True)
    expected = float(np.mean((outputs - arrays["y"]) ** 2))  # the mean over the 10 real rows
    batches = eval_batches(arrays, 4)  # 3 batches of 4: 2 padding rows of zeros
    assert batches["mask"].sum() == 10 and batches["mask"].size == 12
    # The padding rows are NaN (the case masking by multiplication, NaN * 0 = NaN, gets wrong) ...
    assert np.isnan(np.asarray(divide_by_row_sum({"params": state.params}, batches["x"][-1]))[2:]).all()
    # ... and count nowhere, through every evaluation path.
    found = {"evaluate_batches": float(jax.jit(evaluate_batches)(state, batches)["mse"]),
             "evaluate_split": evaluate_split(state, arrays, batch_size=4)["mse"],
             "predict_split": predict_split(state, arrays, batch_size=4).metrics["mse"]}
    members, ensemble = evaluate_members(jax.tree.map(lambda a: jnp.stack([a, a]), state), arrays,
                                         task="regression", batch_size=4)
    found.update(members=members[0]["mse"], ensemble=ensemble["mse"])
    wrong = {path: mse for path, mse in found.items()
             if not (np.isfinite(mse) and mse == pytest.approx(expected, rel=1e-5))}
    assert not wrong, (wrong, expected)
