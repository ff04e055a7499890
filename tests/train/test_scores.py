"""Scores that are no per-example means (`jaxdl.train.scores`): the values scikit-learn gives on the same
predictions, every epoch of a fit and per member of a sweep, and early stopping that follows one of them."""

from __future__ import annotations

import numpy as np
import optax
import pytest
import scipy.special
from sklearn import metrics as sk

import jaxdl
from jaxdl.evaluate.passes import predict_split
from jaxdl.train import scores
from jaxdl.train.sweep import Member, take_member

ALL = scores.CLASSIFICATION
EPOCHS = 4


def direct(name: str, logits: np.ndarray, labels: np.ndarray) -> float:
    """What a person would write with scikit-learn for each score (10 classes, all present)."""
    predicted = logits.argmax(-1)
    probabilities = scipy.special.softmax(logits.astype(np.float64), axis=-1)
    return {
        "f1_macro": lambda: sk.f1_score(labels, predicted, average="macro"),
        "f1_micro": lambda: sk.f1_score(labels, predicted, average="micro"),
        "precision": lambda: sk.precision_score(labels, predicted, average="macro", zero_division=0),
        "recall": lambda: sk.recall_score(labels, predicted, average="macro"),
        "roc_auc": lambda: sk.roc_auc_score(labels, probabilities, multi_class="ovr"),
        "average_precision": lambda: sk.average_precision_score(np.eye(10)[labels], probabilities),
    }[name]()


def small_state(splits, learning_rate=1e-3, seed=0):
    model = jaxdl.models.MLP(num_outputs=10, hidden_sizes=(16,))
    return jaxdl.create_state(model, optax.adam(learning_rate), splits.info.input_shape, seed,
                              jaxdl.metrics_for_task("classification"))


@pytest.fixture(scope="module")
def last(digits):
    """Every classification score each epoch, the last model kept (patience 0)."""
    return jaxdl.fit(small_state(digits), digits.train, digits.validation, epochs=EPOCHS, batch_size=64,
                     metrics=ALL, steps_per_call="epoch")


@pytest.fixture(scope="module")
def by_f1(digits):
    """Early stopping on val_f1_macro, with patience to spare: the best epoch by F1 is kept."""
    return jaxdl.fit(small_state(digits), digits.train, digits.validation, epochs=EPOCHS, batch_size=64,
                     patience=EPOCHS, monitor="val_f1_macro", steps_per_call="epoch")


def test_each_epoch_records_every_score_and_the_last_equals_scikit_learn_on_its_predictions(digits, last):
    assert [sorted(k for k in r if k.startswith("val_") and k[4:] in ALL) for r in last.history] == \
        [sorted(f"val_{n}" for n in ALL)] * EPOCHS
    logits = predict_split(last.state, digits.validation).outputs
    for name in ALL:
        assert last.history[-1][f"val_{name}"] == pytest.approx(direct(name, logits, digits.validation["y"]),
                                                                rel=1e-5), name
    # The scores are not the per-example accuracy under another name: macro F1 differs from it.
    assert last.history[-1]["val_f1_macro"] != pytest.approx(last.history[-1]["val_accuracy"], abs=1e-6)


def test_evaluate_split_adds_the_scores_of_its_one_pass(digits, last):
    test = jaxdl.evaluate_split(last.state, digits.test, metrics=("f1_macro", "roc_auc"))
    logits = predict_split(last.state, digits.test).outputs
    assert test["f1_macro"] == pytest.approx(direct("f1_macro", logits, digits.test["y"]), rel=1e-6)
    assert test["roc_auc"] == pytest.approx(direct("roc_auc", logits, digits.test["y"]), rel=1e-6)
    assert {"loss", "accuracy", "count"} <= set(test)


def test_early_stopping_on_val_f1_macro_keeps_the_epoch_with_the_highest_value(digits, by_f1):
    f1 = [record["val_f1_macro"] for record in by_f1.history]
    assert "val_f1_macro" in by_f1.history[0] and len(f1) == EPOCHS  # computed although not in `metrics`
    assert by_f1.best_epoch == int(np.argmax(f1)) + 1
    kept = jaxdl.evaluate_split(by_f1.state, digits.validation, metrics=("f1_macro",))
    assert kept["f1_macro"] == pytest.approx(max(f1), rel=1e-5)


def test_monitor_mode_min_keeps_the_lowest_and_stops_when_it_does_not_fall(digits, by_f1):
    result = jaxdl.fit(small_state(digits), digits.train, digits.validation, epochs=EPOCHS, batch_size=64,
                       patience=1, monitor="val_f1_macro", monitor_mode="min", steps_per_call="epoch")
    f1 = [record["val_f1_macro"] for record in by_f1.history]  # the same epochs (same seed and data)
    assert f1[1] > f1[0]  # learning: the second epoch is better, so "min" stops there with the first
    assert (result.best_epoch, result.epochs_run, result.stopped_early) == (1, 2, True)


@pytest.mark.slow  # compiles the vmapped programs of a stack (about 20 s on 2 shared cores)
def test_a_sweep_scores_each_member_on_its_own_predictions(digits):
    members = [Member(0, 0, {"learning_rate": 1e-3}), Member(1, 1, {"learning_rate": 2e-2})]
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
    states = jaxdl.create_states(jaxdl.models.MLP(num_outputs=10, hidden_sizes=(16,)), tx,
                                 digits.info.input_shape, members, jaxdl.metrics_for_task("classification"))
    result = jaxdl.fit(states, digits.train, digits.validation, epochs=3, batch_size=64, patience=3,
                       members=2, monitor="val_f1_macro", metrics=("roc_auc",), steps_per_call="epoch")
    for index in range(2):
        history = [line for record in result.history for line in record["members"] if line["member"] == index]
        f1 = [line["val_f1_macro"] for line in history]
        assert result.best_epoch[index] == int(np.argmax(f1)) + 1
        kept = take_member(result.state, index)
        logits = predict_split(kept, digits.validation).outputs
        assert max(f1) == pytest.approx(direct("f1_macro", logits, digits.validation["y"]), rel=1e-5)
        assert "val_roc_auc" in history[-1]
    first = [line["val_f1_macro"] for record in result.history for line in record["members"]]
    assert len(set(first)) > 1  # the members differ: each was scored on its own outputs


def test_regression_scores_and_the_binary_curve_equal_scikit_learn():
    rng = np.random.default_rng(0)
    targets, outputs = rng.normal(size=(50, 3)).astype(np.float32), rng.normal(size=(50, 3)).astype(np.float32)
    found = scores.compute(("r2", "mae"), outputs, targets)
    assert found["r2"] == pytest.approx(sk.r2_score(targets, outputs))
    assert found["mae"] == pytest.approx(sk.mean_absolute_error(targets, outputs))
    labels, logits = rng.integers(0, 2, 40), rng.normal(size=(40, 2))
    found = scores.compute(("roc_auc", "average_precision"), logits, labels)
    positive = scipy.special.softmax(logits, axis=-1)[:, 1]
    assert found["roc_auc"] == pytest.approx(sk.roc_auc_score(labels, positive))
    assert found["average_precision"] == pytest.approx(sk.average_precision_score(labels, positive))
    assert np.isnan(scores.compute(("f1_macro",), np.full((3, 2), np.nan), np.array([0, 1, 0]))["f1_macro"])


def test_monitor_direction_is_inferred_and_bad_names_are_one_error_with_the_close_name():
    assert scores.monitor_of("m", "val_loss").mode == "min" and scores.monitor_of("m", "val_mae").mode == "min"
    assert scores.monitor_of("m", "val_accuracy").mode == "max" and scores.monitor_of("m", "val_r2").mode == "max"
    assert scores.monitor_of("m", "val_loss", "max").mode == "max"
    with pytest.raises(jaxdl.InputError, match=r"^m: not a validation value .*did you mean 'val_f1_macro'\?$"):
        scores.monitor_of("m", "val_f1_macr")
    with pytest.raises(jaxdl.InputError, match=r"^metrics: unknown name \(got 'roc', .*did you mean 'roc_auc'\?$"):
        scores.check_names("metrics", ("roc",))
    with pytest.raises(jaxdl.InputError, match=r"^x: not a score of regression \(got 'f1_macro'"):
        scores.check_names("x", ("f1_macro",), "regression")
    assert scores.split_metrics((jaxdl.classification_metrics, "f1_macro")) == (jaxdl.classification_metrics,
                                                                                  ("f1_macro",))
