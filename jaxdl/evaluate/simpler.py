"""Question 1, "have you ruled out simpler methods?": scikit-learn's first tries on the run's own split.

Beside the softmax-regression baseline (`jaxdl.evaluate.baseline`), three methods a practitioner
would fit first, on the flattened inputs: logistic regression (ridge regression for a regression
task), histogram gradient-boosted trees (early-stopped on the run's validation split) and k-nearest
neighbours (k chosen on the validation split). Each is scored on the same test examples as the
deep model, with a 95% interval (`jaxdl.evaluate.intervals`).

Affordable for any input: at most MAX_TRAIN_ROWS training and validation rows and MAX_TEST_ROWS
test rows (seeded random subsets; the deep model is then scored on the same test rows), one CPU
thread each, and a time budget: once BUDGET_SECONDS are spent, the methods left are skipped.
scikit-learn is imported only when the question is asked (~1 s).
"""

from __future__ import annotations

import time

import numpy as np

from jaxdl.data import Splits
from jaxdl.evaluate.intervals import compare, scored, wilson

MAX_TRAIN_ROWS = 2000
MAX_TEST_ROWS = 5000
BUDGET_SECONDS = 20.0
NEIGHBOURS = (1, 3, 5, 9, 15)
# Gradient-boosted trees kept small: 50 rounds of 15-leaf trees over 32 bins, stopped early on the
# run's validation split (digits: ~0.7 s on one core, within 1% of sklearn's defaults).
TREES = {"max_iter": 50, "max_leaf_nodes": 15, "max_bins": 32, "learning_rate": 0.2, "n_iter_no_change": 5}


def rows(arrays: dict, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x (n, F) float32 flattened, y, index) of at most `limit` examples of `arrays`, a seeded random
    subset in the split's order when there are more."""
    n = len(arrays["y"])
    index = np.arange(n) if n <= limit else np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
    x = np.asarray(arrays["x"][index], np.float32).reshape(len(index), -1)
    return np.nan_to_num(x), np.asarray(arrays["y"][index]), index


def targets(y: np.ndarray, task: str) -> np.ndarray:
    return y.reshape(-1).astype(np.int64) if task == "classification" else y.reshape(len(y), -1).astype(np.float64)


def nearest_neighbours(task: str, train, validation):
    """k-NN with k of NEIGHBOURS chosen by validation score (the smallest k on a tie); -> (model, {"k"})."""
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor  # noqa: PLC0415 (only when asked)

    kind = KNeighborsClassifier if task == "classification" else KNeighborsRegressor
    best = None
    for k in NEIGHBOURS:
        if k > len(train[1]):
            break
        model = kind(n_neighbors=k).fit(*train)
        score = model.score(*validation)  # accuracy, or R²: higher is better either way
        if best is None or score > best[0]:
            best = (score, model, k)
    return best[1], {"k": best[2]}


def linear(task: str, train, validation):
    from sklearn.linear_model import LogisticRegression, Ridge  # noqa: PLC0415

    model = LogisticRegression(max_iter=1000) if task == "classification" else Ridge(alpha=1.0)
    return model.fit(*train), {}


def trees(task: str, train, validation):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor  # noqa: PLC0415

    if task == "classification":
        model = HistGradientBoostingClassifier(**TREES, early_stopping=True, random_state=0)
    else:
        model = HistGradientBoostingRegressor(**TREES, early_stopping=True, random_state=0)
    x_val, y_val = validation
    if task == "classification":  # early stopping refuses a validation class the (subsampled) train lacks
        seen = np.isin(y_val, np.unique(train[1]))
        x_val, y_val = x_val[seen], y_val[seen]
    model.fit(*train, X_val=x_val, y_val=y_val)
    return model, {"rounds": int(model.n_iter_)}


def methods(task: str, outputs: int) -> list[tuple[str, object]]:
    """(name, fit function) in the order they run; trees only for one regression output."""
    found = [("logistic regression" if task == "classification" else "ridge regression", linear),
             ("k-nearest neighbours", nearest_neighbours)]
    if task == "classification" or outputs == 1:
        found.append(("gradient-boosted trees", trees))
    return found


def deep_predictions(outputs: np.ndarray, task: str) -> np.ndarray:
    return np.argmax(outputs, axis=-1) if task == "classification" else np.asarray(outputs)


def answer_simpler_methods(splits: Splits, test_outputs: np.ndarray, *, model_name: str, seed: int = 0,
                           baseline: dict | None = None, budget_seconds: float = BUDGET_SECONDS) -> dict:
    """Fits the simpler methods and compares them with the deep model.

    Args:
      splits: the run's splits ({"x", "y"} arrays; a streamed training split is not read here).
      test_outputs: (n_test, ...) the deep model's outputs on every test example (logits or values).
      model_name: what the deep model is called in the sentences (e.g. "mlp").
      seed: the seed of the row subsets.
      baseline: the run's softmax-regression summary entry, listed with the others when it has test figures.
    Returns {"run": True, "answer" (a sentence), "deep" (score), "methods": [{"name", "test" (score),
    "vs_deep", "seconds", "settings"}], "skipped": [{"name", "reason"}], "train_rows", "test_rows",
    "budget_seconds"}; a score is `jaxdl.evaluate.intervals.scored`'s dict.
    """
    # Imported here, once, so that the methods' times below do not include it.
    import sklearn.ensemble  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import sklearn.neighbors  # noqa: F401
    from threadpoolctl import threadpool_limits

    task = splits.info.task
    if not isinstance(splits.train, dict):
        return {"run": False, "reason": "the training split was streamed (data.pipeline), not held in memory"}
    x_train, y_train, _ = rows(splits.train, MAX_TRAIN_ROWS, seed)
    x_val, y_val, _ = rows(splits.validation, MAX_TRAIN_ROWS, seed + 1)
    x_test, y_test, test_index = rows(splits.test, MAX_TEST_ROWS, seed + 2)
    train, validation = (x_train, targets(y_train, task)), (x_val, targets(y_val, task))
    deep = scored(task, deep_predictions(test_outputs[test_index], task), targets(y_test, task), seed)
    found, skipped, spent = [], [], 0.0
    if baseline and "test" in baseline and task == "classification" and len(test_index) == len(splits.test["y"]):
        accuracy, count = baseline["test"]["accuracy"], int(baseline["test"]["count"])
        low, high = wilson(round(accuracy * count), count)
        test = {"metric": "accuracy", "value": accuracy, "low": low, "high": high, "count": count}
        found.append({"name": f"{baseline['model']} (jaxdl baseline)", "test": test, "vs_deep": compare(test, deep),
                      "seconds": None, "settings": {}})
    for name, fit in methods(task, int(np.prod(y_train.shape[1:], dtype=int))):
        if spent > budget_seconds:
            skipped.append({"name": name, "reason": f"the time budget of {budget_seconds:g} s was spent"})
            continue
        tick = time.perf_counter()
        try:
            with threadpool_limits(1):  # beside JAX's own threads; predictable on a shared machine
                model, settings = fit(task, train, validation)
                predicted = model.predict(x_test)
        except ValueError as error:  # a method that cannot fit this split is reported, not fatal to the run
            skipped.append({"name": name, "reason": f"scikit-learn refused the split: {error}"})
            continue
        seconds = time.perf_counter() - tick
        spent += seconds
        test = scored(task, predicted, targets(y_test, task), seed)
        found.append({"name": name, "test": test, "vs_deep": compare(test, deep), "seconds": round(seconds, 3),
                      "settings": settings})
    return {"run": True, "answer": sentence(found, deep, model_name), "deep": deep, "methods": found,
            "skipped": skipped, "train_rows": int(len(y_train)), "test_rows": int(len(y_test)),
            "budget_seconds": budget_seconds}


def shown(score: dict) -> str:
    return f"{score['value']:.3f} [{score['low']:.3f}, {score['high']:.3f}]"


def sentence(found: list[dict], deep: dict, model_name: str) -> str:
    """The answer in plain words: which simpler methods are as good (or not shown to be worse)."""
    metric, count = deep["metric"], deep["count"]
    head = f"{model_name} test {metric} {shown(deep)} on {count} test examples (95% interval)"
    better = [m for m in found if m["vs_deep"] == "better"]
    close = [m for m in found if m["vs_deep"] == "overlapping"]
    if better:
        names = "; ".join(f"{m['name']} {shown(m['test'])}" for m in better)
        return f"No: a simpler method is as good or better: {names}, against {head}."
    if close:
        names = "; ".join(f"{m['name']} {shown(m['test'])}" for m in close)
        return (f"Not clearly: {head}; the intervals of {names} overlap it, so this test set cannot tell them apart.")
    if not found:
        return f"Not answered: no simpler method was fitted ({head})."
    best = max(found, key=lambda m: m["test"]["value"] * (1 if metric == "accuracy" else -1))
    return f"Yes: every simpler method is worse beyond its interval; the best, {best['name']}, scores " \
           f"{shown(best['test'])} against {head}."
