"""The run's answer to "Do you need insight into why it made a specific decision?".

`why_section` explains a handful of test answers (the worst errors and a few right ones) with
integrated gradients (`jaxdl.evaluate.attributions`) and says in plain words what it found; the
report draws the attribution maps, and for tabular inputs lists each example's top features with
their signed contributions ("why was this application refused": the features that pushed the
answer there, and those that spoke against it). `feature_contributions` and `explanation_sentence`
also serve `python -m jaxdl.explain` and the server's /explain route.
"""

from __future__ import annotations

import dataclasses
import time

import ml_collections
import numpy as np

from jaxdl.data import DataInfo
from jaxdl.data import table as table_lib
from jaxdl.evaluate.attributions import DEFAULT_STEPS, Attributions, attribute, baseline_words, not_attributable
from jaxdl.evaluate.passes import Predictions
from jaxdl.train.state import TrainState

QUESTION = "Do you need insight into why it made a specific decision?"
ERRORS, RIGHT = 4, 4  # examples explained in the report: the worst errors, then right answers
TOP_FEATURES = 5  # features listed per tabular example
COMPLETENESS = 0.01  # attributions should sum to f(x) - f(baseline) within this fraction
SIGNAL_MODELS = ("cnn", "rnn")  # their 1-D inputs are steps in order, not features (as jaxdl.report.build)


@dataclasses.dataclass
class Why:
    """fields: the summary.json answer (`questions.why`); attributions: of the test examples at `indices`
    (model-input shape), None when skipped."""

    fields: dict
    attributions: Attributions | None = None
    indices: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0,), np.int64))


def chosen_examples(outputs: np.ndarray, labels: np.ndarray, losses: np.ndarray, task: str, *,
                    errors: int = ERRORS, right: int = RIGHT) -> list[tuple[int, str]]:
    """(test index, "error" | "right") of the examples to explain: the `errors` wrong answers with the
    highest loss, then `right` right answers with the lowest loss, of different classes where there
    are (regression: the largest and the smallest absolute residuals)."""
    if task == "classification":
        predicted = np.argmax(outputs, axis=-1)
        wrong = np.flatnonzero(predicted != labels)
        worst = wrong[np.argsort(-losses[wrong], kind="stable")][:errors]
        correct = np.flatnonzero(predicted == labels)
        correct = correct[np.argsort(losses[correct], kind="stable")]
        _, firsts = np.unique(labels[correct], return_index=True)  # the most confident right answer per class
        firsts = np.sort(firsts)[:right]
        best = correct[np.concatenate([firsts, np.setdiff1d(np.arange(len(correct)), firsts)])][:right]
    else:
        residual = np.abs(outputs.reshape(len(outputs), -1) - labels.reshape(len(labels), -1)).mean(axis=1)
        order = np.argsort(-residual, kind="stable")
        worst, best = order[:errors], order[::-1][:right]
    return [(int(i), "error") for i in worst] + [(int(i), "right") for i in best if i not in worst]


def feature_contributions(attribution: np.ndarray, x: np.ndarray, preprocessing: dict | None = None, *,
                          stored: np.ndarray | None = None) -> list[dict]:
    """One tabular example's attributions (F,) summed per feature: [{"feature", "value", "contribution"}],
    largest |contribution| first.

    With a `csv:` run's `preprocessing`, features are the CSV's columns (a categorical column's one-hot
    inputs summed; its value is the category set, or "missing") and numeric values are shown as in
    the CSV: `stored` (F,) when given (NaN: "missing"), else undone from the standardised model input
    x (F,). Without it, features are x[0], x[1], ... with the values of x.
    """
    attribution, x = np.asarray(attribution, np.float64).reshape(-1), np.asarray(x).reshape(-1)
    rows = []
    for column in (preprocessing or {}).get("columns") or [{"name": f"x[{j}]", "kind": "plain", "inputs": [j, j + 1]}
                                                           for j in range(len(x))]:
        start, stop = column["inputs"]
        if column["kind"] == "categorical":
            chosen = np.flatnonzero((x if stored is None else stored)[start:stop] > 0.5)
            value = column["categories"][int(chosen[0])] if chosen.size else "missing"
        elif column["kind"] == "numeric":
            raw = float(stored[start]) if stored is not None else \
                column["mean"] + float(x[start]) / float(table_lib.inverse_std(column["std"]))
            value = "missing" if not np.isfinite(raw) else float(f"{raw:.6g}")
        else:
            value = float(f"{float(x[start]):.6g}")
        rows.append({"feature": column["name"], "value": value,
                     "contribution": float(attribution[start:stop].sum())})
    return sorted(rows, key=lambda row: -abs(row["contribution"]))


def explanation_sentence(answer: str, contributions: list[dict], top: int = 3) -> str:
    """Plain words: which features pushed the model to `answer`, and which spoke against it."""
    def listed(rows):
        return ", ".join(f"{r['feature']} = {r['value']} ({r['contribution']:+.3g})" for r in rows)

    pushing = [r for r in contributions if r["contribution"] > 0][:top]
    against = [r for r in contributions if r["contribution"] < 0][:top]
    words = f"{answer}: " + (f"mostly because of {listed(pushing)}" if pushing else "no feature pushed towards it")
    if against:
        words += f"; {listed(against)} spoke against it"
    return words + "."


def is_tabular(info: DataInfo, model_config: ml_collections.ConfigDict | dict) -> bool:
    """Whether inputs are unordered features (a table), listed by feature rather than drawn."""
    return info.stored.get("kind") == "table" or (len(info.input_shape) == 1
                                                  and model_config.get("name", "") not in SIGNAL_MODELS)


def example_fields(index: int, role: str, k: int, found: Attributions, labels: np.ndarray, info: DataInfo) -> dict:
    """One explained example's summary.json record."""
    fields = {"index": index, "role": role, "output_at_input": float(found.at_input[k]),
              "output_at_baseline": float(found.at_baseline[k]),
              "attribution_sum": float(found.integrated_gradients[k].sum(dtype=np.float64)),
              "relative_gap": float(found.relative_gap[k])}
    if info.task == "classification":
        logits = found.outputs[k].astype(np.float64)
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        predicted = int(found.targets[k])
        name = (lambda label: info.class_names[label] if info.class_names else str(label))  # own data may name none
        fields.update(true=name(int(labels[index])), predicted=name(predicted),
                      probability=float(probabilities[predicted]))
    else:
        fields.update(true=np.asarray(labels[index], np.float64).reshape(-1).tolist(),
                      predicted=found.outputs[k].astype(np.float64).reshape(-1).tolist())
    return fields


def completeness_words(found: Attributions, indices: np.ndarray, explained: str) -> str:
    """The completeness check in words: how many examples' attributions sum to the change of the explained
    output within 1%, and where not, how small that change (and the absolute gap) was."""
    gaps, within = found.relative_gap, found.relative_gap <= COMPLETENESS
    words = f"Their attributions add up to the change of {explained} from the baseline within 1% for " \
            f"{int(within.sum())} of {len(gaps)} examples (largest gap {100 * gaps.max():.3g}%)"
    if within.all():
        return words + "."
    k = int(np.argmax(gaps))
    change = float(found.at_input[k]) - float(found.at_baseline[k])
    return words + f"; test #{int(indices[k])} has that gap on a change of only {change:+.3g} (an absolute gap of " \
                   f"{abs(float(found.gap[k])):.2g}): more steps shrink it."


def why_section(state: TrainState, test: dict[str, np.ndarray], predictions: Predictions, info: DataInfo,
                model_config: ml_collections.ConfigDict | dict, *, steps: int = DEFAULT_STEPS,
                errors: int = ERRORS, right: int = RIGHT) -> Why:
    """Explains the worst test errors and a few right answers (see the module docstring).

    test: {"x": (N, *S) model inputs, "y": labels}; predictions: the test pass of `state`.
    The fields say what was explained (the logit of the predicted class, or regression output 0),
    how (integrated gradients, `steps`, the baseline), the completeness check, and per example its
    index, role, answer and, for tabular inputs, the top features and a sentence.
    """
    started = time.perf_counter()
    reason = not_attributable(model_config)
    if reason:
        return Why({"question": QUESTION, "skipped": reason})
    chosen = chosen_examples(predictions.outputs, test["y"], predictions.per_example["loss"], info.task,
                             errors=errors, right=right)
    if not chosen:
        return Why({"question": QUESTION, "skipped": "no test examples"})
    indices = np.array([i for i, _ in chosen], np.int64)
    targets = None if info.task == "classification" else np.zeros(len(indices), np.int64)
    found = attribute(state, test["x"][indices], targets=targets, steps=steps)
    tabular = is_tabular(info, model_config)
    examples = []
    for k, (index, role) in enumerate(chosen):
        fields = example_fields(index, role, k, found, test["y"], info)
        if tabular:
            contributions = feature_contributions(found.integrated_gradients[k], test["x"][index], info.preprocessing)
            answer = f"answered {fields['predicted']!r} ({fields['probability']:.0%})" \
                if info.task == "classification" else f"output {fields['predicted'][0]:.4g}"
            fields.update(top_features=contributions[:TOP_FEATURES],
                          sentence=explanation_sentence(answer, contributions))
        examples.append(fields)
    explained = "the logit of the predicted class" if info.task == "classification" else "regression output 0"
    wrong = sum(role == "error" for _, role in chosen)
    answer = (f"Integrated gradients attribute {explained} to each input {'feature' if tabular else 'value'}: "
              f"the {wrong} worst test errors and {len(chosen) - wrong} right answers are explained below. "
              + completeness_words(found, indices, explained)
              + " Use `python -m jaxdl.explain` or the server's /explain for new inputs.")
    completeness = {"max_relative_gap": float(found.relative_gap.max()), "max_abs_gap": float(np.abs(found.gap).max()),
                    "within_1_percent": bool(found.relative_gap.max() <= COMPLETENESS)}
    return Why({"question": QUESTION, "answer": answer, "method": "integrated gradients", "steps": steps,
                "baseline": baseline_words(info.stored), "explained": explained,
                "completeness": completeness,
                "examples": examples, "seconds": time.perf_counter() - started}, found, indices)
