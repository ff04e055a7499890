"""Scores of a whole split that are no per-example means (F1, ROC AUC, R², ...), computed with scikit-learn.

A per-example metric (`jaxdl.train.losses`) is a mean over examples and is summed on the device. A
score is computed on the host from a split's predictions, by scikit-learn:

    f1_macro, f1_micro     F1 over classes: the mean of the per-class F1s, or of all decisions pooled
    precision, recall      macro averages (per class: summary.json's `per_class`, from the same predictions)
    roc_auc                one class against the rest, macro average over classes (binary: the positive class)
    average_precision      the area under the precision-recall curve, the same way
    r2, mae                regression: coefficient of determination, mean absolute error

`fit` computes the chosen scores on the validation split each epoch, from the outputs its validation
pass already produces (no second pass), and early stopping may `monitor` any of them; the test pass
does the same at the end. Shapes: `outputs` (N, classes) logits or (N, ...) regression outputs,
`targets` (N,) int class labels or (N, ...) regression targets.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from jaxdl.errors import InputError, check_choice, did_you_mean

CLASSIFICATION = ("f1_macro", "f1_micro", "precision", "recall", "roc_auc", "average_precision")
REGRESSION = ("r2", "mae")
NAMES = CLASSIFICATION + REGRESSION
# Monitored values that are better when lower; every other one is better when higher.
LOWER_IS_BETTER = ("loss", "mae", "mse", "error")
MODES = ("auto", "min", "max")


def check_names(where: str, names: Any, task: str | None = None) -> tuple[str, ...]:
    """`names` as a tuple of known score names (for `task`, when given); an InputError naming `where`
    with the close name otherwise."""
    if isinstance(names, str):
        names = (names,)
    if not isinstance(names, (tuple, list)):
        raise InputError(where, "wrong type", got=names, expected="a tuple of score names such as ('f1_macro',)")
    for name in names:
        check_choice(where, name, NAMES)
        if task is not None and name not in (CLASSIFICATION if task == "classification" else REGRESSION):
            raise InputError(where, f"not a score of {task}", got=name,
                             expected="one of " + ", ".join(CLASSIFICATION if task == "classification" else REGRESSION))
    return tuple(dict.fromkeys(names))


def split_metrics(metrics: Any) -> tuple[Callable | None, tuple[str, ...]]:
    """A `metrics=` argument -> (per-example metrics function or None, score names).

    It is a per-example metrics function, a tuple of score names, or a tuple of both kinds
    (`(my_metrics, "f1_macro")`).
    """
    if metrics is None:
        return None, ()
    items = metrics if isinstance(metrics, (tuple, list)) else (metrics,)
    functions = [item for item in items if callable(item)]
    if len(functions) > 1:
        raise InputError("metrics", "more than one per-example metrics function", got=len(functions),
                         expected="one function (outputs, labels) -> {'loss': (batch,), ...} and score names")
    names = check_names("metrics", [item for item in items if not callable(item)])
    return (functions[0] if functions else None), names


def task_of(targets: np.ndarray) -> str:
    """Integer labels are classes; anything else is regression."""
    return "classification" if np.issubdtype(np.asarray(targets).dtype, np.integer) else "regression"


def compute(names: Iterable[str], outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """{name: value} of each score over N examples; NaN where the outputs are not finite or a score
    is undefined (ROC AUC on a split that holds one class)."""
    names = tuple(names)
    if not names:
        return {}
    outputs, targets = np.asarray(outputs, np.float64), np.asarray(targets)
    if not np.all(np.isfinite(outputs)):
        return {name: math.nan for name in names}
    if task_of(targets) == "classification":
        return {name: classification_score(name, outputs, targets) for name in names}
    from sklearn import metrics as sk  # here, not at import: scikit-learn takes ~0.8 s to import

    true, predicted = targets.reshape(len(targets), -1), outputs.reshape(len(outputs), -1)
    found = {"r2": lambda: sk.r2_score(true, predicted), "mae": lambda: sk.mean_absolute_error(true, predicted)}
    return {name: float(found[name]()) for name in names}


def classification_score(name: str, logits: np.ndarray, labels: np.ndarray) -> float:
    """One score of `logits` (N, K) against int `labels` (N,); every one of the K classes counts."""
    import scipy.special
    from sklearn import metrics as sk  # here, not at import: scikit-learn takes ~0.8 s to import

    classes = np.arange(logits.shape[-1])
    predicted = np.argmax(logits, axis=-1)
    if name in ("f1_macro", "f1_micro", "precision", "recall"):
        average = "micro" if name == "f1_micro" else "macro"
        function = {"precision": sk.precision_score, "recall": sk.recall_score}.get(name, sk.f1_score)
        return float(function(labels, predicted, labels=classes, average=average, zero_division=0))
    probabilities = scipy.special.softmax(logits, axis=-1)
    present = np.unique(labels)
    if len(present) < 2:
        return math.nan
    function = sk.roc_auc_score if name == "roc_auc" else sk.average_precision_score
    if len(classes) == 2:
        return float(function(labels, probabilities[:, 1]))
    # The classes absent from the split have no curve: the macro average is over those present.
    onehot = labels[:, None] == present[None, :]
    return float(function(onehot, probabilities[:, present], average="macro"))


def compute_stacked(names: Iterable[str], outputs: np.ndarray, targets: np.ndarray,
                    members: bool) -> dict[str, np.ndarray | float]:
    """`compute` for one run, or per member of a stack (`outputs` (M, N, ...)): {name: (M,) array}."""
    if not members:
        return compute(names, outputs, targets)
    rows = [compute(names, member, targets) for member in outputs]
    return {name: np.array([row[name] for row in rows], np.float32) for name in names}


@dataclasses.dataclass(frozen=True)
class Monitor:
    """What early stopping and the choice of best epoch (and best sweep member) watch.

    Attributes:
      name: the validation value, e.g. "val_loss", "val_accuracy", "val_f1_macro".
      key: its name without "val_" ("loss", "f1_macro").
      sign: +1 when lower is better, -1 when higher is: `sign * value` is what is minimised.
      score: whether it is a score (computed on the host) rather than a per-example mean (on the device).
    """

    name: str
    key: str
    sign: float
    score: bool

    @property
    def mode(self) -> str:
        return "min" if self.sign > 0 else "max"


def monitor_of(where: str, name: str, mode: str = "auto", metric_names: Iterable[str] | None = None) -> Monitor:
    """The Monitor of `name` ("val_" + a per-example metric of `metric_names` or a score name); `mode`
    auto (loss, mae, mse, error: min; others: max), min or max. InputError naming `where` otherwise."""
    check_choice(f"{where}_mode", mode, MODES)
    known = [f"val_{n}" for n in (*(metric_names if metric_names is not None else ("loss", "accuracy", "mse")),
                                  *NAMES)]
    if not isinstance(name, str) or name not in known:
        suggestion = did_you_mean(name, known)
        raise InputError(where, "not a validation value to monitor", got=name,
                         expected="one of " + ", ".join(known),
                         hint=f"did you mean {suggestion!r}?" if suggestion else None)
    key = name[len("val_"):]
    lower = key.endswith(LOWER_IS_BETTER) if mode == "auto" else mode == "min"
    return Monitor(name=name, key=key, sign=1.0 if lower else -1.0, score=key in NAMES)


def of_config(config) -> tuple[str, ...]:
    """The scores a run's config asks for: `eval.metrics`, and the one `train.monitor` watches if it is a score."""
    names = tuple(config.get("eval", {}).get("metrics", ()))
    key = config.train.get("monitor", "val_loss").removeprefix("val_")
    return names + (key,) if key in NAMES and key not in names else names
