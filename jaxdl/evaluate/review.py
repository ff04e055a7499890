"""After training, everything a person needs to judge a run, as summary.json fields and arrays.

`review_run` makes one compiled pass over the test split and reads from it the confusion matrix,
per-class figures, the worst errors (classification) or residuals (regression); it captures the
hidden activations of one test example per class, reads the learning curves for overfitting,
fits the no-hidden-layer baseline under the same budget, and checks `eval.target_accuracy`.
"""

from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np
from jax.sharding import Mesh

from jaxdl.data import Splits
from jaxdl.evaluate import activations as activations_lib
from jaxdl.evaluate.analysis import (
    macro_average,
    most_confused,
    overfitting,
    per_class_scores,
    residual_stats,
    target_verdict,
    worst_examples,
)
from jaxdl.evaluate.baseline import baseline_name, fit_baseline, is_baseline_model
from jaxdl.evaluate.passes import Predictions, predict_split
from jaxdl.evaluate.why import QUESTION, Why, why_section
from jaxdl.train import scores
from jaxdl.train.state import TrainState

WORST_EXAMPLES = 16


@dataclasses.dataclass
class Review:
    """The findings of `review_run`.

    Attributes:
      fields: summary.json entries (confusion_matrix, per_class, most_confused, worst_errors or
        residuals, activations, overfitting, baseline, target).
      predictions: the test pass (outputs and per-example losses of every test example).
      activations: {layer name: (n, ...)} for the test examples at `examples`.
      examples: (n,) test indices the activations belong to (one per class, in class order).
      why: the attributions of a few test answers (`jaxdl.evaluate.why`), also in fields["questions"]["why"].
    """

    fields: dict
    predictions: Predictions
    activations: dict[str, np.ndarray]
    examples: np.ndarray
    why: Why | None = None

    @property
    def test(self) -> dict[str, float]:
        return self.predictions.metrics


def findings_on_test(predictions: Predictions, test: dict[str, np.ndarray], info) -> dict:
    """summary.json fields read from the test pass."""
    if info.task != "classification":
        return {"residuals": residual_stats(predictions.outputs, test["y"])}
    names = info.class_names
    per_class = per_class_scores(predictions.confusion, names)
    return {"confusion_matrix": predictions.confusion.tolist(), "class_names": list(names),
            "per_class": per_class, "macro_average": macro_average(per_class),
            "most_confused": most_confused(predictions.confusion, names),
            "worst_errors": worst_examples(predictions, test["y"], names, top=WORST_EXAMPLES)}


def review_run(config: ml_collections.ConfigDict, splits: Splits, state: TrainState, mesh: Mesh,
               history: list[dict]) -> Review:
    """Evaluates the trained `state` on the test split and gathers the findings (see module doc)."""
    eval_config = config.get("eval", ml_collections.ConfigDict())
    info = splits.info
    predictions = predict_split(state, splits.test, num_classes=info.num_classes, mesh=mesh,
                                         batch_size=eval_config.get("batch_size", 1024))
    predictions.metrics.update(scores.compute(scores.of_config(config), predictions.outputs, splits.test["y"]))
    fields = findings_on_test(predictions, splits.test, info)
    examples = activations_lib.representative_examples(splits.test["y"], info.num_classes)
    activations = activations_lib.capture(state, splits.test["x"][examples])
    fields["activations"] = activations_lib.describe(activations)
    fields["activation_examples"] = examples.tolist()
    curves = overfitting(history)
    fields["overfitting"] = curves.pop("overfitting")
    fields["overfitting_evidence"] = curves
    if not eval_config.get("baseline", True):
        fields["baseline"] = {"model": baseline_name(info.task), "skipped": "turned off (eval.baseline=false)"}
    elif not isinstance(splits.train, dict):
        fields["baseline"] = {"model": baseline_name(info.task),
                              "skipped": "the training split was streamed (data.pipeline), not held in memory"}
    elif is_baseline_model(config):
        fields["baseline"] = {"model": baseline_name(info.task), "skipped": "the model itself has no hidden layer"}
    else:
        fields["baseline"] = fit_baseline(config, splits, mesh)
    target = target_verdict(eval_config.get("target_accuracy", None), predictions.metrics)
    if target is not None:
        fields["target"] = target
    # The attributions of a few answers: drawn in the report, so computed with it.
    why = why_section(state, splits.test, predictions, info, config.model) if eval_config.get("report", True) \
        else Why({"question": QUESTION, "skipped": "turned off with the report (eval.report=false)"})
    fields.setdefault("questions", {})["why"] = why.fields
    return Review(fields=fields, predictions=predictions, activations=activations, examples=examples, why=why)
