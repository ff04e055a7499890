"""Question 3, "how will you evaluate it, when is it good enough?", read from the test pass.

Classification: the weakest classes (per-class precision, recall and F1 are the summary's
`per_class`), calibration (expected calibration error over equal-width confidence bins, and the
bins themselves: the reliability diagram), accuracy against coverage (answer only when the top
probability reaches a threshold), and `eval.target_accuracy` judged by the Wilson interval's lower
bound rather than the point estimate. Regression: mean squared error with a bootstrap interval.
"""

from __future__ import annotations

import numpy as np

from jaxdl.evaluate.analysis import softmax
from jaxdl.evaluate.intervals import scored, wilson

CALIBRATION_BINS = 15
THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
SHOWN_THRESHOLD = 0.9


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS) -> tuple[float, list[dict]]:
    """Expected calibration error and its bins.

    Args:
      confidence: (n,) the probability the model gave its answer.
      correct: (n,) bool, the answer was right.
      bins: equal-width bins over [0, 1]; bin b holds (b/bins, (b+1)/bins] (the first includes 0).
    Returns (ECE = sum over bins of share * |accuracy - mean confidence|, [{"low", "high", "count",
    "accuracy", "confidence"} for each non-empty bin]).
    """
    confidence = np.asarray(confidence, np.float64)
    correct = np.asarray(correct, bool)
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    ece, found = 0.0, []
    for b in range(bins):
        members = which == b
        count = int(members.sum())
        if not count:
            continue
        accuracy, mean = float(correct[members].mean()), float(confidence[members].mean())
        ece += count / len(confidence) * abs(accuracy - mean)
        found.append({"low": b / bins, "high": (b + 1) / bins, "count": count, "accuracy": accuracy,
                      "confidence": mean})
    return float(ece), found


def coverage(confidence: np.ndarray, correct: np.ndarray, thresholds=THRESHOLDS) -> list[dict]:
    """Answering only when confidence >= t: [{"threshold", "coverage" (share answered), "answered",
    "accuracy" (among those answered; None when none is), "low", "high" (its Wilson interval)}]."""
    rows = []
    for t in thresholds:
        answered = confidence >= t
        count, right = int(answered.sum()), int(correct[answered].sum())
        low, high = wilson(right, count)
        rows.append({"threshold": t, "coverage": count / len(confidence), "answered": count,
                     "accuracy": right / count if count else None, "low": low, "high": high})
    return rows


def target_with_interval(target: float | None, accuracy: dict) -> dict | None:
    """`eval.target_accuracy` against the accuracy's interval: "met" when even its lower bound reaches
    the target, "not met" when its upper bound does not, else "not shown" (the test set is too small to tell)."""
    if target is None:
        return None
    verdict = "met" if accuracy["low"] >= target else "not met" if accuracy["high"] < target else "not shown"
    return {"target": float(target), "accuracy": accuracy["value"], "low": accuracy["low"], "high": accuracy["high"],
            "met": verdict == "met", "verdict": verdict}


def answer_good_enough(task: str, outputs: np.ndarray, labels: np.ndarray, *, per_class: list[dict] | None = None,
                       target: float | None = None, seed: int = 0) -> dict:
    """The answer from the test pass: `outputs` (n, K) logits (classification) or (n, ...) values,
    `labels` (n,) class ids or (n, ...) targets, `per_class` the summary's per-class figures."""
    if task != "classification":
        test = scored(task, outputs, labels, seed)
        return {"run": True, "test": test,
                "answer": f"Test MSE {test['value']:.4g} [{test['low']:.4g}, {test['high']:.4g}] on {test['count']} "
                          "examples (95% bootstrap interval); whether that is good enough is a question of the "
                          "units of the target: compare it with the error the use can bear."}
    probabilities = softmax(outputs)
    predicted = np.argmax(probabilities, axis=-1)
    confidence = probabilities[np.arange(len(predicted)), predicted]
    correct = predicted == np.asarray(labels).reshape(-1)
    test = scored(task, predicted, labels, seed)
    ece, bins = reliability(confidence, correct)
    rows = coverage(confidence, correct)
    verdict = target_with_interval(target, test)
    result = {"run": True, "test": test, "ece": ece, "reliability": bins, "coverage": rows,
              "mean_confidence": float(confidence.mean())}
    if per_class:
        weakest = min(per_class, key=lambda r: (r["f1"], r["class"] if isinstance(r["class"], str) else ""))
        result["weakest_class"] = weakest
    if verdict is not None:
        result["target"] = verdict
    result["answer"] = sentence(result)
    return result


def percent(share: float) -> str:
    """A share (0..1) as a whole percent, "<1%" for a few answered out of many (never "0%" for some)."""
    return "<1%" if 0 < share < 0.005 else f"{100 * share:.0f}%"


def sentence(result: dict) -> str:
    test = result["test"]
    parts = [f"Test accuracy {test['value']:.3f} [{test['low']:.3f}, {test['high']:.3f}] on {test['count']} examples."]
    shown = next(r for r in result["coverage"] if r["threshold"] == SHOWN_THRESHOLD)
    if shown["answered"]:
        parts.append(f"At {SHOWN_THRESHOLD:g} confidence, {percent(shown['coverage'])} of inputs are answered with "
                     f"{100 * shown['accuracy']:.1f}% accuracy.")
    over = result["mean_confidence"] - test["value"]
    tone = "overconfident" if over > 0.02 else "underconfident" if over < -0.02 else "well calibrated"
    parts.append(f"Expected calibration error {result['ece']:.3f} ({tone}: mean confidence "
                 f"{result['mean_confidence']:.3f}).")
    if "weakest_class" in result:
        weakest = result["weakest_class"]
        parts.append(f"Weakest class: {weakest['class']} (F1 {weakest['f1']:.3f}, {weakest['support']} examples).")
    if "target" in result:
        target = result["target"]
        parts.append(f"Target {target['target']:g}: {target['verdict']} (judged by the interval's lower bound "
                     f"{target['low']:.3f}).")
    return " ".join(parts)
