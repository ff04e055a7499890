"""95% intervals that make "better" mean something on a small test set.

Accuracy: the Wilson score interval of k right answers out of n (closed form, Newcombe 1998, as
scipy's `binomtest(...).proportion_ci(method="wilson")` computes it; tests compare the two). Mean
squared error: a percentile bootstrap over the test examples (scipy's `bootstrap`, seeded).
"""

from __future__ import annotations

import math
import statistics

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 1000


def wilson(correct: int, count: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """(low, high) of the two-sided Wilson interval for `correct` successes in `count` trials; (0, 1) for none.

    Closed form rather than scipy.stats: importing that costs every training command about a second.
    """
    if count <= 0:
        return 0.0, 1.0
    k, n = int(correct), int(count)
    z = statistics.NormalDist().inv_cdf(0.5 + 0.5 * confidence)
    p = k / n
    denominator = 2 * (n + z**2)
    center = (2 * n * p + z**2) / denominator
    delta = z / denominator * math.sqrt(4 * n * p * (1 - p) + z**2)
    return (0.0 if k == 0 else center - delta), (1.0 if k == n else center + delta)


def bootstrap_mean(values: np.ndarray, seed: int = 0, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """(low, high) percentile-bootstrap interval of the mean of `values` (n,), e.g. per-example squared errors."""
    values = np.asarray(values, np.float64).reshape(-1)
    if len(values) < 2 or np.all(values == values[0]):
        mean = float(values.mean()) if len(values) else float("nan")
        return mean, mean
    from scipy import stats  # noqa: PLC0415

    result = stats.bootstrap((values,), np.mean, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=confidence,
                             method="percentile", random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def scored(task: str, predicted: np.ndarray, true: np.ndarray, seed: int = 0) -> dict:
    """The test score of predictions with its interval.

    Classification: `predicted` and `true` are (n,) class ids -> {"metric": "accuracy", "value",
    "low", "high", "count"} (Wilson). Regression: (n, ...) values -> {"metric": "mse", ...} (bootstrap
    over the examples' mean squared errors).
    """
    true = np.asarray(true)
    if task == "classification":
        right = int(np.sum(np.asarray(predicted).reshape(-1) == true.reshape(-1)))
        low, high = wilson(right, len(true))
        return {"metric": "accuracy", "value": right / max(len(true), 1), "low": low, "high": high,
                "count": int(len(true))}
    errors = np.square(np.asarray(predicted, np.float64).reshape(len(true), -1)
                       - true.astype(np.float64).reshape(len(true), -1)).mean(axis=1)
    low, high = bootstrap_mean(errors, seed)
    return {"metric": "mse", "value": float(errors.mean()), "low": low, "high": high, "count": int(len(true))}


def compare(simple: dict, deep: dict) -> str:
    """How a simpler method's score stands against the deep model's (both from `scored`):
    "better" (its point estimate is at least as good), "overlapping" (worse, but the intervals
    overlap: not shown to be worse), or "worse" (its interval lies wholly on the worse side)."""
    higher_is_better = simple["metric"] == "accuracy"
    sign = 1 if higher_is_better else -1
    if sign * (simple["value"] - deep["value"]) >= 0:
        return "better"
    overlap = simple["high"] >= deep["low"] if higher_is_better else simple["low"] <= deep["high"]
    return "overlapping" if overlap else "worse"
