"""Integrated gradients: exact on a linear model, complete on an MLP and a CNN, the same in any chunking;
and the words the report and `jaxdl.explain` build from them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.data import DataInfo
from jaxdl.evaluate import attributions
from jaxdl.evaluate.attributions import chunk_size, integrated_gradients
from jaxdl.evaluate.passes import Predictions
from jaxdl.evaluate.why import chosen_examples, explanation_sentence, feature_contributions, why_section
from jaxdl.models.cnn import CNN
from jaxdl.models.mlp import MLP
from jaxdl.train.losses import classification_metrics
from jaxdl.train.state import TrainState


def jittered(variables, seed: int = 1, scale: float = 0.3):
    """Every parameter moved by Gaussian noise: nonzero biases, so f is not positively homogeneous in x
    (a zero-bias ReLU net has f(0) = 0 and no gradient there, a degenerate path end)."""
    leaves, tree = jax.tree.flatten(variables)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return jax.tree.unflatten(tree, [leaf + scale * jax.random.normal(key, leaf.shape)
                                     for leaf, key in zip(leaves, keys, strict=True)])


def model_and_variables(model, shape):
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, *shape)))  # (op by op: seconds for a CNN)
    return model, jax.jit(jittered)(variables)


IMAGES = np.random.default_rng(0).uniform(0, 1, (6, 8, 8, 1)).astype(np.float32)


def test_on_a_linear_model_the_attributions_are_the_weights_times_the_input_minus_the_baseline():
    model, variables = model_and_variables(MLP(num_outputs=3, hidden_sizes=()), (5,))
    rng = np.random.default_rng(0)
    x, baseline = rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=(5,)).astype(np.float32)
    targets = np.array([0, 2, 1, 2])
    found = integrated_gradients(model.apply, variables, x, targets=targets, baseline=baseline, steps=8)
    weights = np.asarray(variables["params"]["head"]["kernel"])  # (5, 3)
    want = weights[:, targets].T * (x - baseline)
    np.testing.assert_allclose(found.integrated_gradients, want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(found.gradient_x_input, want, rtol=1e-6, atol=1e-7)
    assert found.targets.tolist() == targets.tolist()
    assert np.all(found.relative_gap < 1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("model, steps", [(MLP(num_outputs=10, hidden_sizes=(32, 32)), 64),
                                          (CNN(num_outputs=10, channels=(4, 8), dense_sizes=(16,)), 128)])
def test_attributions_sum_to_the_change_of_the_output_within_one_percent(model, steps):
    model, variables = model_and_variables(model, (8, 8, 1))
    found = integrated_gradients(model.apply, variables, IMAGES, steps=steps)
    apply = jax.jit(model.apply)  # (op by op, a CNN takes seconds)
    logits, at_baseline = np.asarray(apply(variables, IMAGES)), np.asarray(apply(variables, np.zeros_like(IMAGES)))
    assert found.targets.tolist() == logits.argmax(axis=1).tolist()  # the predicted class by default
    rows = np.arange(len(IMAGES))
    np.testing.assert_allclose(found.at_input, logits[rows, found.targets], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(found.at_baseline, at_baseline[rows, found.targets], rtol=1e-5, atol=1e-5)
    delta = found.at_input - found.at_baseline
    assert np.all(np.abs(delta) > 0.05)  # a real change to attribute
    sums = found.integrated_gradients.reshape(len(IMAGES), -1).sum(axis=1)
    assert np.all(np.abs(sums - delta) <= 0.01 * np.abs(delta)), (sums, delta)
    assert np.all(found.relative_gap <= 0.01)
    assert found.integrated_gradients.shape == found.gradient_x_input.shape == IMAGES.shape


def test_chunks_padded_to_a_power_of_two_give_the_attributions_of_one_call_per_example():
    assert [chunk_size(n, 8) for n in (1, 2, 3, 5, 8, 9, 100)] == [1, 2, 4, 8, 8, 8, 8]
    assert chunk_size(7, 6) == 4
    model, variables = model_and_variables(MLP(num_outputs=4, hidden_sizes=(16,)), (8, 8, 1))
    targets = np.array([3, 0, 1, 2, 3, 1])
    together = integrated_gradients(model.apply, variables, IMAGES, targets=targets, steps=16, max_chunk=4)
    for i in range(len(IMAGES)):
        alone = integrated_gradients(model.apply, variables, IMAGES[i:i + 1], targets=targets[i:i + 1], steps=16)
        np.testing.assert_allclose(together.integrated_gradients[i], alone.integrated_gradients[0], atol=1e-6)
        assert together.targets[i] == targets[i]


def test_large_inputs_take_fewer_examples_per_call(monkeypatch):
    model, variables = model_and_variables(MLP(num_outputs=4, hidden_sizes=(16,)), (8, 8, 1))
    sizes, compiled = [], attributions.attribution_compiled

    def spy(apply_fn, variables, x, *rest, **options):
        sizes.append(len(x))
        return compiled(apply_fn, variables, x, *rest, **options)

    monkeypatch.setattr(attributions, "attribution_compiled", spy)
    monkeypatch.setattr(attributions, "MAX_POINT_VALUES", 3 * 17 * 64)  # three examples of 17 points of 64 values
    integrated_gradients(model.apply, variables, IMAGES, steps=16)
    assert sizes == [2, 2, 2]  # a power of two at most 3


def test_a_regression_output_is_explained_by_its_index():
    model, variables = model_and_variables(MLP(num_outputs=2, hidden_sizes=(8,)), (3,))
    x = np.random.default_rng(2).normal(size=(3, 3)).astype(np.float32)
    found = integrated_gradients(model.apply, variables, x, targets=np.ones(3, np.int64), steps=64)
    np.testing.assert_allclose(found.at_input, np.asarray(model.apply(variables, x))[:, 1], rtol=1e-5)
    assert found.targets.tolist() == [1, 1, 1]


def test_the_examples_explained_are_the_worst_errors_then_confident_right_answers_of_different_classes():
    logits = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0], [5.0, 0.0], [0.0, 0.5]])
    labels = np.array([1, 0, 0, 1, 0, 1])
    losses = -np.log(np.exp(logits[np.arange(6), labels]) / np.exp(logits).sum(axis=1))
    chosen = chosen_examples(logits, labels, losses, "classification", errors=1, right=3)
    assert chosen == [(1, "error"), (4, "right"), (3, "right"), (2, "right")]
    residual = chosen_examples(np.array([[1.0], [5.0], [2.0]]), np.array([1.0, 1.0, 1.5]), np.zeros(3), "regression",
                               errors=1, right=1)
    assert residual == [(1, "error"), (0, "right")]


PREPROCESSING = {"columns": [
    {"name": "income", "kind": "numeric", "inputs": [0, 1], "mean": 50.0, "std": 10.0},
    {"name": "housing", "kind": "categorical", "inputs": [1, 4], "categories": ["own", "rent", "free"]},
    {"name": "age", "kind": "numeric", "inputs": [4, 5], "mean": 40.0, "std": 5.0},
]}


def test_a_tables_attributions_are_summed_per_column_and_read_in_the_csvs_values():
    x = np.array([-2.0, 0.0, 1.0, 0.0, 0.4], np.float32)  # income 30, housing "rent", age 42
    attribution = np.array([-0.9, 0.0, 0.5, 0.0, 0.1])
    rows = feature_contributions(attribution, x, PREPROCESSING)
    assert rows == [{"feature": "income", "value": 30.0, "contribution": pytest.approx(-0.9)},
                    {"feature": "housing", "value": "rent", "contribution": pytest.approx(0.5)},
                    {"feature": "age", "value": 42.0, "contribution": pytest.approx(0.1)}]
    stored = np.array([np.nan, 0, 0, 0, 42.0], np.float32)  # as a CSV row stores it: income missing, no housing
    assert [r["value"] for r in feature_contributions(attribution, x, PREPROCESSING, stored=stored)] == \
        ["missing", "missing", 42.0]
    assert explanation_sentence("answered 'refused' (93%)", rows) == \
        "answered 'refused' (93%): mostly because of housing = rent (+0.5), age = 42.0 (+0.1); " \
        "income = 30.0 (-0.9) spoke against it."
    plain = feature_contributions(np.array([0.2, -0.3]), np.array([1.5, 2.0]))
    assert [r["feature"] for r in plain] == ["x[1]", "x[0]"]


def test_the_why_section_answers_in_words_and_lists_a_tables_top_features():
    model, variables = model_and_variables(MLP(num_outputs=2, hidden_sizes=(8,)), (5,))
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 5)).astype(np.float32)
    y = rng.integers(0, 2, size=12)
    outputs = np.asarray(model.apply(variables, x))
    losses = np.asarray(classification_metrics(jnp.asarray(outputs), jnp.asarray(y))["loss"])
    state = TrainState(step=0, params=variables["params"], opt_state=(), rng=0, batch_stats={},
                       apply_fn=model.apply, tx=None, metrics_fn=None)
    info = DataInfo(name="credit", task="classification", input_shape=(5,), num_classes=2,
                    class_names=("granted", "refused"), preprocessing=PREPROCESSING, stored={"kind": "table"})
    why = why_section(state, {"x": x, "y": y}, Predictions({}, outputs, {"loss": losses}, None), info,
                      {"name": "mlp"}, steps=32, errors=2, right=2)
    fields = why.fields
    assert fields["question"] == "Do you need insight into why it made a specific decision?"
    assert "Integrated gradients" in fields["answer"] and fields["steps"] == 32 and "zeros" in fields["baseline"]
    assert len(fields["examples"]) == 4 and why.indices.tolist() == [e["index"] for e in fields["examples"]]
    first = fields["examples"][0]
    assert first["role"] == "error" and first["predicted"] != first["true"]
    assert [f["feature"] for f in first["top_features"]][:1] and first["sentence"].startswith(
        f"answered '{first['predicted']}'")
    total = sum(f["contribution"] for f in first["top_features"])
    assert total == pytest.approx(first["attribution_sum"], abs=1e-5)  # 3 columns: all of them are listed
    assert fields["completeness"]["within_1_percent"] == (fields["completeness"]["max_relative_gap"] <= 0.01)
    skipped = why_section(state, {"x": x, "y": y}, Predictions({}, outputs, {"loss": losses}, None), info,
                          {"name": "rnn", "vocab_size": 256})
    assert "token ids" in skipped.fields["skipped"] and skipped.attributions is None
