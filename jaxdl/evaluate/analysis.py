"""What a prediction pass says about the model, read on the host.

Per-class precision / recall / F1, the most confused pairs, the worst examples, regression
residuals, a learning-curve check for overfitting, and the `eval.*` config checks. Inputs are the
arrays of `jaxdl.evaluate.passes.Predictions`.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from jaxdl.errors import InputError, check_range
from jaxdl.evaluate.passes import Predictions
from jaxdl.train import scores

# Overfitting: validation loss at least this much above its best, for at least this many of the
# last epochs, while training loss fell below its value at the best epoch.
OVERFIT_RISE = 0.05
OVERFIT_EPOCHS = 5


def per_class_scores(confusion: np.ndarray, class_names: tuple[str, ...] = ()) -> list[dict]:
    """Precision, recall, F1 and support per class from a (K, K) confusion matrix (rows = true).

    A class never predicted has precision 0; a class with no examples has recall 0.
    """
    confusion = np.asarray(confusion, np.float64)
    hits = np.diag(confusion)
    predicted, support = confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(hits), where=total > 0)
    names = class_names or tuple(str(k) for k in range(len(hits)))
    return [{"class": names[k], "precision": float(precision[k]), "recall": float(recall[k]),
             "f1": float(f1[k]), "support": int(support[k])} for k in range(len(hits))]


def macro_average(per_class: list[dict]) -> dict[str, float]:
    """Unweighted mean of precision, recall and F1 over the classes that have examples."""
    present = [row for row in per_class if row["support"] > 0] or per_class
    return {key: float(np.mean([row[key] for row in present])) for key in ("precision", "recall", "f1")}


def most_confused(confusion: np.ndarray, class_names: tuple[str, ...] = (), top: int = 5) -> list[dict]:
    """The `top` off-diagonal cells with the most examples: [{"true", "predicted", "count"}], largest first."""
    confusion = np.asarray(confusion)
    names = class_names or tuple(str(k) for k in range(len(confusion)))
    off = confusion.astype(np.int64).copy()
    np.fill_diagonal(off, 0)
    cells = np.argsort(-off, axis=None, kind="stable")[:top]
    pairs = [np.unravel_index(cell, off.shape) for cell in cells]
    return [{"true": names[t], "predicted": names[p], "count": int(off[t, p])} for t, p in pairs if off[t, p] > 0]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64: (N, K) -> (N, K)."""
    shifted = np.asarray(logits, np.float64) - np.max(logits, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def worst_examples(predictions: Predictions, labels: np.ndarray, class_names: tuple[str, ...] = (),
                   top: int = 16) -> list[dict]:
    """The `top` examples with the highest loss, highest first.

    Each: {"index" (in the split), "true", "predicted", "probability" (of the predicted class),
    "true_probability", "loss"}.
    """
    losses = predictions.per_example["loss"]
    order = np.argsort(-losses, kind="stable")[:top]
    probabilities = softmax(predictions.outputs[order])
    names = class_names or tuple(str(k) for k in range(predictions.outputs.shape[-1]))
    rows = []
    for row, index in enumerate(order):
        predicted, true = int(np.argmax(probabilities[row])), int(labels[index])
        rows.append({"index": int(index), "true": names[true], "predicted": names[predicted],
                     "probability": float(probabilities[row, predicted]),
                     "true_probability": float(probabilities[row, true]), "loss": float(losses[index])})
    return rows


def residual_stats(outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Regression residuals (prediction - target) over all outputs: mean, std, MAE, max |r|, R²."""
    predicted = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
    true = np.asarray(targets, np.float64).reshape(len(targets), -1)
    residuals = predicted - true
    spread = np.sum(np.square(true - true.mean(axis=0)))
    return {"mean": float(residuals.mean()), "std": float(residuals.std()), "mae": float(np.abs(residuals).mean()),
            "max_abs": float(np.abs(residuals).max()),
            "r2": float(1 - np.sum(np.square(residuals)) / spread) if spread > 0 else float("nan")}


def overfitting(history: list[dict], *, rise: float = OVERFIT_RISE, epochs: int = OVERFIT_EPOCHS) -> dict:
    """Reads the learning curves: has validation loss risen while training loss kept falling?

    `history` is metrics.jsonl (one dict per epoch with "epoch", "train_loss", "val_loss").
    Returns {"overfitting": bool, "best_epoch", "epochs_above_best", "val_loss_best", "val_loss_last",
    "train_loss_at_best", "train_loss_last"}: overfitting when, for the last `epochs` epochs or
    more, validation loss stayed more than `rise` (relative) above its best while training loss
    ended below its value at the best epoch.
    """
    if not history:
        return {"overfitting": False}
    val = np.array([r["val_loss"] for r in history], np.float64)
    train = np.array([r["train_loss"] for r in history], np.float64)
    best = int(np.nanargmin(val)) if np.isfinite(val).any() else 0
    above = val > val[best] * (1 + rise) + 1e-12
    trailing = len(above) - (np.flatnonzero(~above)[-1] + 1) if not above.all() else len(above)
    flag = bool(trailing >= epochs and train[-1] < train[best])
    return {"overfitting": flag, "best_epoch": int(history[best]["epoch"]), "epochs_above_best": int(trailing),
            "val_loss_best": float(val[best]), "val_loss_last": float(val[-1]),
            "train_loss_at_best": float(train[best]), "train_loss_last": float(train[-1])}


def target_verdict(target: float | None, test: dict[str, float]) -> dict | None:
    """{"metric": "accuracy", "target", "value", "met"} for `eval.target_accuracy`; None without a target."""
    if target is None:
        return None
    value = test["accuracy"]
    return {"metric": "accuracy", "target": float(target), "value": value, "met": bool(value >= target)}


def check_eval_config(config: ml_collections.ConfigDict, task: str | None = None) -> None:
    """Checks the optional `eval.*` keys: baseline, report (booleans), target_accuracy (None or (0, 1]),
    metrics (score names of `jaxdl.train.scores`, for the task when it is known)."""
    scores.check_names("config.eval.metrics", config.get("metrics", ()), task)
    for key in ("baseline", "report"):
        if not isinstance(config.get(key, True), bool):
            raise InputError(f"config.eval.{key}", "wrong type", got=config.get(key), expected="true or false")
    target = config.get("target_accuracy", None)
    if target is not None:
        check_range("config.eval.target_accuracy", target, low=0, high=1, low_inclusive=False)
        if task is not None and task != "classification":
            raise InputError("config.eval.target_accuracy", "a target accuracy needs a classification task",
                             got=task, expected="classification data, or no target")
