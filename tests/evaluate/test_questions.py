"""The questions before trusting a network: each answer's numbers checked against a direct computation
(scikit-learn fits on the same split, a constructed miscalibrated model, planted duplicates, XLA's count
of a Dense layer, the projection against the measured epochs), on one small trained run."""

from __future__ import annotations

import dataclasses
import json
import logging
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import REPO
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import precision_recall_fscore_support
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

from jaxdl import parallel
from jaxdl.data import DataInfo, Splits
from jaxdl.errors import InputError
from jaxdl.evaluate import compute, data_checks, good_enough, intervals, learning_curve, questions, simpler
from jaxdl.models.mlp import MLP
from jaxdl.report import run_schema
from jaxdl.report.console import final_table
from jaxdl.run.config import load_config
from jaxdl.run.pipeline import train_and_evaluate
from jaxdl.train.losses import metrics_for_task
from jaxdl.train.optimizer import build_optimizer
from jaxdl.train.state import create_state


@pytest.fixture(autouse=True)
def one_thread():
    """scikit-learn on one thread, as the run fits it (many threads crawl on a shared CPU)."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_dir):
    """One small MLP run on digits answering every question; one jitted step per call, as the projection times."""
    config = load_config(os.path.join(REPO, "configs", "mlp.py:tiny"))
    with config.unlocked():
        config.data.data_dir = data_dir
        # Steps of ~80 MFLOP: long enough that the time between them (more on a busy machine) is small beside them.
        config.model.hidden_sizes = (2048,)
        config.train.epochs, config.train.batch_size, config.train.steps_per_call = 4, 128, "1"
        config.eval.questions = "all"
    workdir = str(tmp_path_factory.mktemp("questions"))
    summary = train_and_evaluate(config, workdir, progress=False)
    return workdir, summary


def flat(arrays):
    return arrays["x"].reshape(len(arrays["x"]), -1), arrays["y"]


@pytest.mark.slow
def test_every_question_has_an_entry_that_the_run_door_reads(run):
    workdir, summary = run
    assert list(summary["questions"]) == list(questions.QUESTIONS)
    stored = run_schema.read_workdir_json(workdir, "summary.json")["questions"]
    for name in questions.QUESTIONS:
        assert stored[name]["run"] is True and stored[name]["answer"], name
    assert "Integrated gradients" in stored["why"]["answer"]  # the why section's own answer (jaxdl.evaluate.why)
    table = final_table(summary)
    for name in ("simpler methods", "good enough", "data", "compute"):
        assert f"q: {name}" in table
    assert "\n  why " in table and "q: why" not in table  # said once, by the why section's row
    page = open(os.path.join(workdir, "report.html"), encoding="utf-8").read()
    for title in ("simpler machine-learning methods", "When is it good enough", "varied training data",
                  "processing power and storage"):
        assert title in page
    for figure in ("simpler_methods.png", "good_enough.png", "data.png", "compute.png"):
        assert os.path.getsize(os.path.join(workdir, figure)) > 1000


def test_simpler_methods_score_as_a_direct_scikit_learn_fit_on_the_same_split(run, digits):
    answer = run[1]["questions"]["simpler_methods"]
    x_train, y_train = flat(digits.train)
    x_val, y_val = flat(digits.validation)
    x_test, y_test = flat(digits.test)
    by_name = {m["name"]: m for m in answer["methods"]}
    assert by_name["logistic regression"]["test"]["value"] == \
        LogisticRegression(max_iter=1000).fit(x_train, y_train).score(x_test, y_test)
    k = by_name["k-nearest neighbours"]["settings"]["k"]
    assert by_name["k-nearest neighbours"]["test"]["value"] == \
        KNeighborsClassifier(n_neighbors=k).fit(x_train, y_train).score(x_test, y_test)
    scores = {n: KNeighborsClassifier(n_neighbors=n).fit(x_train, y_train).score(x_val, y_val)
              for n in simpler.NEIGHBOURS}
    assert k == max(scores, key=lambda n: (scores[n], -n))  # the best on validation, the smallest on a tie
    trees = HistGradientBoostingClassifier(**simpler.TREES, early_stopping=True, random_state=0)
    trees.fit(x_train, y_train, X_val=x_val, y_val=y_val)
    assert by_name["gradient-boosted trees"]["test"]["value"] == trees.score(x_test, y_test)
    deep = answer["deep"]
    assert deep["count"] == len(y_test) == answer["test_rows"]
    assert deep["value"] == pytest.approx(run[1]["test"]["accuracy"])
    assert (deep["low"], deep["high"]) == intervals.wilson(round(deep["value"] * deep["count"]), deep["count"])
    for method in answer["methods"]:
        assert method["vs_deep"] == intervals.compare(method["test"], deep)
    assert answer["answer"].startswith(("No:", "Yes:", "Not clearly:"))


def test_per_class_figures_equal_scikit_learn_on_the_same_predictions(run):
    summary = run[1]
    confusion = np.asarray(summary["confusion_matrix"])
    true = np.repeat(np.repeat(np.arange(10), 10), confusion.reshape(-1))
    predicted = np.repeat(np.tile(np.arange(10), 10), confusion.reshape(-1))
    precision, recall, f1, support = precision_recall_fscore_support(true, predicted, labels=range(10),
                                                                     zero_division=0)
    rows = summary["per_class"]
    assert [r["precision"] for r in rows] == pytest.approx(precision)
    assert [r["recall"] for r in rows] == pytest.approx(recall)
    assert [r["f1"] for r in rows] == pytest.approx(f1)
    weakest = summary["questions"]["good_enough"]["weakest_class"]
    assert weakest["f1"] == pytest.approx(f1.min())


def test_wilson_interval_and_the_comparison():
    low, high = intervals.wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    deep = {"metric": "accuracy", "value": 0.956, "low": 0.90, "high": 0.98}
    assert intervals.compare({"metric": "accuracy", "value": 0.965, "low": 0.91, "high": 0.99}, deep) == "better"
    assert intervals.compare({"metric": "accuracy", "value": 0.93, "low": 0.88, "high": 0.96}, deep) == "overlapping"
    assert intervals.compare({"metric": "accuracy", "value": 0.70, "low": 0.60, "high": 0.80}, deep) == "worse"
    mse = {"metric": "mse", "value": 1.0, "low": 0.8, "high": 1.2}
    assert intervals.compare({"metric": "mse", "value": 2.0, "low": 1.5, "high": 2.5}, mse) == "worse"


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 100_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
       st.sampled_from([0.5, 0.9, 0.95, 0.99, 0.999]))
def test_wilson_interval_is_scipys_to_rounding(correct_of, confidence):
    """The closed form (no scipy.stats import in a training command) against scipy's binomtest."""
    from scipy import stats

    correct, count = correct_of
    expected = stats.binomtest(correct, count).proportion_ci(confidence_level=confidence, method="wilson")
    low, high = intervals.wilson(correct, count, confidence)
    assert low == pytest.approx(expected.low, abs=1e-12) and high == pytest.approx(expected.high, abs=1e-12)
    assert 0.0 <= low <= correct / count <= high <= 1.0


def test_regression_baselines_with_a_bootstrap_interval():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=300)).astype(np.float32)[:, None]
    parts = [{"x": x[a:b], "y": y[a:b]} for a, b in ((0, 200), (200, 250), (250, 300))]
    splits = Splits(*parts, info=DataInfo(name="line", task="regression", input_shape=(4,), target_shape=(1,)))
    answer = simpler.answer_simpler_methods(splits, np.zeros((50, 1), np.float32), model_name="zero")
    ridge = next(m for m in answer["methods"] if m["name"] == "ridge regression")
    direct = Ridge(alpha=1.0).fit(x[:200], y[:200].astype(np.float64)).predict(x[250:])
    assert ridge["test"]["value"] == pytest.approx(np.mean(np.square(direct.ravel() - y[250:, 0])))
    assert ridge["test"]["low"] < ridge["test"]["value"] < ridge["test"]["high"]
    trees = HistGradientBoostingRegressor(**simpler.TREES, early_stopping=True, random_state=0)
    trees.fit(x[:200], y[:200, 0], X_val=x[200:250], y_val=y[200:250, 0])
    found = next(m for m in answer["methods"] if m["name"] == "gradient-boosted trees")
    assert found["test"]["value"] == pytest.approx(np.mean(np.square(trees.predict(x[250:]) - y[250:, 0])))
    assert answer["deep"]["value"] == pytest.approx(np.mean(np.square(y[250:])))  # the zero model
    assert answer["answer"].startswith("No:")  # every method beats predicting zero


def test_calibration_error_of_a_model_that_says_90_percent_and_is_right_60_percent():
    labels = np.zeros(100, np.int64)
    logits = np.zeros((100, 2), np.float32)
    logits[:, 0] = np.log(9.0)  # softmax: 0.9 for class 0 in every row
    labels[60:] = 1  # right on 60 of 100
    answer = good_enough.answer_good_enough("classification", logits, labels, target=0.55)
    assert answer["ece"] == pytest.approx(0.3, abs=1e-6)
    assert answer["reliability"] == [pytest.approx({"low": 13 / 15, "high": 14 / 15, "count": 100, "accuracy": 0.6,
                                                    "confidence": 0.9})]
    at_90 = next(r for r in answer["coverage"] if r["threshold"] == 0.9)
    assert at_90["coverage"] == 1.0 and at_90["accuracy"] == pytest.approx(0.6)
    assert next(r for r in answer["coverage"] if r["threshold"] == 0.95)["answered"] == 0
    # 0.6 >= 0.55, but the interval's lower bound (0.502) is not: the test set cannot show the target met
    assert answer["target"]["verdict"] == "not shown" and answer["target"]["met"] is False
    assert "overconfident" in answer["answer"]
    ece, bins = good_enough.reliability(np.array([0.95, 0.95, 0.55, 0.55]), np.array([True, True, True, False]))
    assert ece == pytest.approx(0.5 * 0.05 + 0.5 * 0.05) and [b["count"] for b in bins] == [2, 2]


def test_one_confident_answer_in_a_thousand_is_under_one_percent_not_zero():
    labels = np.zeros(1000, np.int64)
    logits = np.zeros((1000, 2), np.float32)
    logits[0, 0] = 5.0  # one row at 0.99 confidence, the rest at 0.5
    answer = good_enough.answer_good_enough("classification", logits, labels)
    assert next(r for r in answer["coverage"] if r["threshold"] == 0.9)["answered"] == 1
    assert "At 0.9 confidence, <1% of inputs are answered with 100.0% accuracy." in answer["answer"]


def planted(digits) -> Splits:
    """digits with train examples 3, 10, 20 copied into test rows 0, 1, 2 and a copy of train example 30
    with two pixels a little brighter (2/255) into test row 3."""
    x = digits.test["x"].copy()
    x[[0, 1, 2]] = digits.train["x"][[3, 10, 20]]
    x[3] = digits.train["x"][30]
    x[3, 4, 4] = np.minimum(x[3, 4, 4] + 2 / 255, 1)
    x[3, 2, 5] = np.minimum(x[3, 2, 5] + 2 / 255, 1)
    return dataclasses.replace(digits, test={**digits.test, "x": x})


def test_planted_duplicates_are_found_exactly_and_nearly(digits):
    found = data_checks.duplicates(digits.train["x"], planted(digits).test["x"])
    assert found["exact"] == 3 and found["exact_indices"] == [0, 1, 2]
    assert 3 in found["near_indices"] and found["near"] >= 1
    clean = data_checks.duplicates(digits.train["x"], digits.test["x"])
    assert clean["exact"] == 0 and 3 not in clean["near_indices"]


def test_constant_and_missing_features_are_named():
    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    x[:, 1] = 7.0
    x[:, 3] = np.nan
    preprocessing = {"columns": [{"name": "age", "kind": "numeric", "inputs": [0, 1]},
                                 {"name": "country", "kind": "categorical", "inputs": [1, 3],
                                  "categories": ["fr", "de"]},
                                 {"name": "income", "kind": "numeric", "inputs": [3, 4]}]}
    found = data_checks.feature_problems(x, preprocessing)
    assert found["constant"] == 1 and found["constant_names"] == ["country=fr"]
    assert found["all_missing"] == 1 and found["all_missing_names"] == ["income"]


def whole_array_checks(train_x: np.ndarray, test_x: np.ndarray) -> tuple:
    """The data checks computed on whole arrays at once (what `data_checks` did before it went by blocks)."""
    x = np.nan_to_num(np.asarray(train_x, np.float32))
    low, high = (np.percentile(x, 1, axis=0), np.percentile(x, 99, axis=0)) if x.ndim == 2 else (
        np.percentile(x, 1), np.percentile(x, 99))

    def coarse(values, offset):
        values = data_checks.pooled(np.nan_to_num(np.asarray(values, np.float32)))
        scaled = (values - low) / np.where(high > low, high - low, 1.0)
        return np.clip(np.floor(scaled * data_checks.COARSE_LEVELS + offset), 0, data_checks.COARSE_LEVELS)

    flat = np.asarray(train_x, np.float32).reshape(len(train_x), -1)
    missing = np.all(np.isnan(flat), axis=0)
    spread = np.nanmax(np.where(missing, 0, flat), axis=0) - np.nanmin(np.where(missing, 0, flat), axis=0)
    return low, high, [coarse(test_x, offset).astype(np.uint8) for offset in (0.0, 0.5)], missing, spread


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(((9, 5), (7, 12, 10, 1), (6, 4, 3))), st.integers(0, 2**16), st.booleans(),
       st.integers(1, 400))
def test_checks_by_blocks_give_the_whole_arrays_numbers(shape, seed, odd_values, block_bytes):
    """Duplicates, value range and feature problems go a block of rows at a time (a large split is never
    copied whole): the same numbers as on the whole array, NaN, infinities and all-NaN columns included."""
    rng = np.random.default_rng(seed)
    train = rng.normal(0, 1, shape).astype(np.float32)
    train[:, 0] = 2.5  # a constant feature
    if odd_values:
        flat = train.reshape(len(train), -1)
        flat[:, -1] = np.nan  # an all-missing feature
        flat[:, 1] = -4.0  # a feature constant wherever it is not missing
        flat[::2, 1] = np.nan
        flat[rng.integers(0, len(flat), 3), rng.integers(2, flat.shape[1] - 1, 3)] = [np.inf, -np.inf, np.nan]
    test = np.concatenate([train[:2], rng.normal(0, 1, (3, *shape[1:])).astype(np.float32)])
    low, high, coarse, missing, spread = whole_array_checks(train, test)
    original = data_checks.BLOCK_BYTES
    data_checks.BLOCK_BYTES = block_bytes  # 1 to 400 bytes: one row, or a few, a block
    try:
        assert train.nbytes <= data_checks.RANGE_SAMPLE_BYTES  # percentiles of every value
        got_low, got_high = data_checks.value_range(train)
        got_coarse = [data_checks.coarsen(test, got_low, got_high, offset) for offset in (0.0, 0.5)]
        found = data_checks.feature_problems(train)
        duplicates = data_checks.duplicates(train, test)
    finally:
        data_checks.BLOCK_BYTES = original
    np.testing.assert_array_equal(got_low, low)
    np.testing.assert_array_equal(got_high, high)
    for got, want in zip(got_coarse, coarse, strict=True):
        assert got.dtype == np.uint8 and got.tobytes() == want.tobytes()
    assert found["all_missing"] == int(missing.sum())
    assert found["constant"] == int(((spread == 0) & ~missing).sum()) >= 1 + odd_values  # x[0] (and x[1])
    assert found["all_missing"] == int(odd_values)
    assert duplicates["exact"] >= 2 and duplicates["exact_indices"][:2] == [0, 1]


def test_a_large_splits_value_range_is_that_of_every_kth_example(monkeypatch):
    """Over RANGE_SAMPLE_BYTES of inputs, the 1st and 99th percentiles are those of every k-th example,
    k the smallest that fits (so they never copy the whole split); below it, of every example."""
    x = np.random.default_rng(0).gamma(2.0, 1.0, (103, 6, 5)).astype(np.float32)
    x[::7] += 40  # every 7th example is far brighter: the sample's percentiles see it as the whole does
    monkeypatch.setattr(data_checks, "RANGE_SAMPLE_BYTES", x.nbytes // 3)
    low, high = data_checks.value_range(x)
    k = -(-x.nbytes // (x.nbytes // 3))
    assert k == 3 and (low, high) == (np.percentile(x[::3], 1), np.percentile(x[::3], 99))
    assert (low, high) != (np.percentile(x, 1), np.percentile(x, 99))
    monkeypatch.setattr(data_checks, "RANGE_SAMPLE_BYTES", x.nbytes)
    assert data_checks.value_range(x) == (np.percentile(x, 1), np.percentile(x, 99))


def test_a_tiny_test_set_gets_one_warning_line(digits, caplog):
    small = dataclasses.replace(digits, test={k: v[:20] for k, v in digits.test.items()})
    with caplog.at_level(logging.WARNING, logger="jaxdl"):
        answer = data_checks.answer_data(small)
    assert answer["tiny_test"] is True and "tiny" in answer["answer"]
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1 and lines[0].startswith("the test set has only 20 examples (fewer than 100)")
    assert answer["balance"]["counts"]["test"] == np.bincount(small.test["y"], minlength=10).tolist()


def test_flops_of_a_dense_layer_are_two_in_out_batch():
    batch, width_in, width_out = 8, 20, 30
    layer = nn.Dense(width_out, use_bias=False)
    x = jnp.ones((batch, width_in))
    params = layer.init(jax.random.PRNGKey(0), x)
    compiled = jax.jit(layer.apply).lower(params, x).compile()
    assert compute.step_cost(compiled)["flops"] == 2 * width_in * width_out * batch
    assert compute.step_memory(compiled)["arguments"] == 4 * (width_in * width_out + batch * width_in)


def test_model_flops_count_a_convolution_and_its_weight_gradient():
    """The compute question's FLOPs are counted on the step lowered for the CPU, whatever device runs the
    run (a GPU's count of its compiled step left cuDNN's convolutions out): a 3x3 convolution of 1 -> 16
    channels over 8x8 images, 2 * 9 * 16 FLOPs per output pixel forward and as much again for its weight
    gradient (the images need no gradient), then 2x2 max pooling and a dense 256 -> 10 head (forward,
    weight and input gradients); elementwise work and Adam add a little."""
    from jaxdl.models.cnn import CNN

    batch = 32
    model = CNN(num_outputs=10, channels=(16,), dense_sizes=())
    state = create_state(model, optax.adam(1e-3), (8, 8, 1), 0, metrics_for_task("classification"))
    data = {"x": np.zeros((batch, 8, 8, 1), np.float32), "y": np.zeros((batch,), np.int32)}
    products = 2 * (2 * 9 * 1 * 16 * 8 * 8 * batch) + 3 * (2 * 4 * 4 * 16 * 10 * batch)
    flops = compute.model_flops(state, data)
    assert products <= flops <= 1.25 * products
    stack = jax.tree.map(lambda a: jnp.stack([a, a]), state)
    assert compute.model_flops(stack, data, members=2) == pytest.approx(2 * flops, rel=0.01)


def test_the_projection_is_within_a_factor_of_two_of_the_measured_epochs(run, digits):
    answer = run[1]["questions"]["compute"]
    assert answer["steps_per_epoch"] == 1295 // 128 and answer["batch_size"] == 128
    # XLA counts 2 per multiply-add: the forward matmuls of 64-2048-10, the weight gradients of both layers
    # and the input gradient of the second (not of the first: the inputs need none); the rest is elementwise.
    matmuls = 2 * 128 * (2 * 64 * 2048 + 3 * 2048 * 10)
    assert matmuls <= answer["flops_per_step"] <= 1.25 * matmuls
    assert answer["data_bytes"]["total"] == sum(a.nbytes for part in (digits.train, digits.validation, digits.test)
                                                for a in part.values())
    assert answer["device_memory"]["arguments"] >= 4 * (64 * 2048 + 2048 * 10) * 3  # parameters and Adam's moments
    assert answer["disk_bytes"] > 0
    assert 0.5 <= answer["actual"]["ratio"] <= 2.0, answer["answer"]


def test_eval_questions_chooses_and_checks_names():
    assert questions.asked({"questions": "all"}) == questions.QUESTIONS
    assert questions.asked({"questions": "compute, data"}) == ("data", "compute")
    assert questions.asked({"questions": "none"}) == ()
    with pytest.raises(InputError, match=r"config\.eval\.questions.*did you mean 'compute'"):
        questions.asked({"questions": "data,compte"})
    with pytest.raises(InputError, match=r"config\.eval\.learning_curve"):
        questions.asked({"learning_curve": "yes"})


def test_the_summary_stays_json_without_nan(run):
    json.dumps(run[1]["questions"], allow_nan=False)


@pytest.mark.slow
def test_the_learning_curve_trains_each_size_with_its_seeds_side_by_side(digits):
    config = load_config(os.path.join(REPO, "configs", "mlp.py:tiny"))
    with config.unlocked():
        config.model.hidden_sizes = (8,)
        config.train.epochs, config.train.batch_size = 2, 64
    model = MLP(num_outputs=10, hidden_sizes=(8,))
    state = create_state(model, build_optimizer(config.optimizer, steps_per_epoch=20, epochs=2), (8, 8, 1), 0,
                         metrics_for_task("classification"))
    curve = learning_curve.answer_learning_curve(config, digits, state, parallel.make_mesh())
    assert curve["run"] is True
    assert [p["train_examples"] for p in curve["points"]] == [round(f * 1295) for f in learning_curve.FRACTIONS]
    assert all(len(p["scores"]) == learning_curve.SEEDS and 0 <= p["mean"] <= 1 for p in curve["points"])
    assert len({tuple(p["scores"]) for p in curve["points"]}) == len(curve["points"])
    assert curve["points"][-1]["mean"] > curve["points"][0]["mean"]  # 1295 examples beat 130 after two epochs
    assert curve["verdict"] in curve["answer"]


def test_a_validation_class_missing_from_train_does_not_stop_the_simpler_methods():
    """The hybrid's 37 sums: rare classes may be in validation and not in train; the trees' early stopping
    would refuse them, so they are left out of its validation rows (the default hybrid run crashed here)."""
    rng = np.random.default_rng(0)

    def part(n, labels):
        return {"x": rng.normal(size=(n, 4)).astype(np.float32), "y": rng.choice(labels, n).astype(np.int32)}

    info = DataInfo(name="rare", task="classification", input_shape=(4,), num_classes=5)
    splits = Splits(part(60, [0, 1, 2]), part(30, [0, 1, 2, 3, 4]), part(30, [0, 1, 2, 3, 4]), info)
    answer = simpler.answer_simpler_methods(splits, rng.normal(size=(30, 5)).astype(np.float32), model_name="mlp")
    assert answer["run"] and {m["name"] for m in answer["methods"]} >= {"gradient-boosted trees"}, answer
    assert answer["skipped"] == []
