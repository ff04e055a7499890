"""Why a finished run answers what it answers on new inputs: `Explainer` over a `Predictor`.

Inputs come in the form the dataset stores them (uint8 pixels, a table's raw rows) and pass the
input door (`Predictor.check`); they are turned into the model's inputs as in training
(`Predictor.preprocess`), and integrated gradients (`jaxdl.evaluate.attributions`) are taken with
respect to those. They have the stored input's shape, so `attributions[i][...]` belongs to the same
pixel, step or feature as the input's value there. The explained output is the logit of the
predicted class (classification) or output 0 (regression); the baseline is zeros in the model's
input space (`jaxdl.evaluate.attributions.baseline_words`).

Used by `python -m jaxdl.explain` and the server's /explain route.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxdl.deploy.run_loader import Predictor
from jaxdl.errors import InputError
from jaxdl.evaluate.attributions import (
    DEFAULT_STEPS,
    MAX_CHUNK,
    Attributions,
    baseline_words,
    integrated_gradients,
    not_attributable,
)
from jaxdl.evaluate.why import TOP_FEATURES, explanation_sentence, feature_contributions, is_tabular


class Explainer:
    """Attributions of `predictor`'s model: `explainer(x)` -> one JSON-able dict per input (see `rows`).

    steps: trapezoid intervals of integrated gradients; max_chunk: inputs per compiled call (padded
    to a power of two, so at most log2(max_chunk) + 1 shapes compile). InputError for a run whose
    inputs cannot be attributed (token ids).
    """

    def __init__(self, predictor: Predictor, *, steps: int = DEFAULT_STEPS, max_chunk: int = MAX_CHUNK):
        reason = not_attributable(predictor.config.model)
        if reason:
            raise InputError("--workdir", f"its answers cannot be explained: {reason}", got=predictor.workdir,
                             expected="a run whose model reads numbers (images, tables, signals)")
        self.predictor, self.steps, self.max_chunk = predictor, steps, max_chunk
        self.info = predictor.info
        self.tabular = is_tabular(self.info, predictor.config.model)
        self.classification = self.info.task == "classification"
        self.explained = "the logit of the predicted class" if self.classification else "regression output 0"

    def describe(self) -> dict:
        """How the attributions are made (the header of `jaxdl.explain`'s JSON)."""
        return {"workdir": self.predictor.workdir, "model": self.predictor.model_description,
                "method": "integrated gradients", "steps": self.steps, "baseline": baseline_words(self.info.stored),
                "explained": self.explained,
                "attributions": "per value of the stored input (same shape), in units of the explained output; "
                                "they sum to its change from the baseline (completeness_gap: the relative error)"}

    def attributions(self, x: Any) -> tuple[np.ndarray, np.ndarray, Attributions]:
        """(stored inputs (N, *S) after the input door, the model's inputs (N, *S), their `Attributions`)."""
        x = self.predictor.check(x)
        model_x = self.predictor.preprocess(x)
        targets = None if self.classification else np.zeros(len(x), np.int64)
        found = integrated_gradients(self.predictor.apply_fn, self.predictor.variables, model_x, targets=targets,
                                     steps=self.steps, max_chunk=self.max_chunk)
        return x, model_x, found

    def __call__(self, x: Any, names: list | None = None) -> list[dict]:
        """`rows` of stored inputs x (N, *S), checked by the input door."""
        return self.rows(*self.attributions(x), names)

    def rows(self, x: np.ndarray, model_x: np.ndarray, found: Attributions, names: list | None = None) -> list[dict]:
        """One dict per input: `input` (its name, or index), `predicted` and `probability` (classification;
        `probabilities` of every class) or `output` (regression), `output_at_input`, `output_at_baseline`,
        `completeness_gap`, `attributions` and `gradient_x_input` (nested lists of the stored input's
        shape); for tabular inputs also `top_features` [{feature, value, contribution}] and a `sentence`."""
        table = self.info.stored.get("kind") == "table"  # raw values (NaN: missing) shown as in the CSV
        outputs = self.predictor(x)
        names = list(range(len(x))) if names is None else names
        rows = []
        for i, name in enumerate(names):
            row: dict = {"input": name}
            if self.classification:
                target = int(found.targets[i])
                row.update(predicted=self.predictor.class_names[target], probability=float(outputs[i, target]),
                           probabilities={str(c): float(p) for c, p in zip(self.predictor.class_names, outputs[i],
                                                                           strict=True)})
            else:
                row["output"] = np.asarray(outputs[i], np.float64).reshape(-1).tolist()
            row.update(output_at_input=float(found.at_input[i]), output_at_baseline=float(found.at_baseline[i]),
                       completeness_gap=float(found.relative_gap[i]))
            if self.tabular:
                contributions = feature_contributions(found.integrated_gradients[i], model_x[i],
                                                      self.info.preprocessing, stored=x[i] if table else None)
                answer = f"answered {row['predicted']!r} ({row['probability']:.0%})" if self.classification \
                    else f"output {row['output'][0]:.4g}"
                row.update(top_features=contributions[:TOP_FEATURES],
                           sentence=explanation_sentence(answer, contributions))
            row.update(attributions=rounded(found.integrated_gradients[i]),
                       gradient_x_input=rounded(found.gradient_x_input[i]))
            rows.append(row)
        return rows


def rounded(values: np.ndarray) -> list:
    """float32 values as nested lists of floats with 7 significant digits (float32's precision)."""
    return np.vectorize(lambda v: float(f"{v:.7g}"), otypes=[float])(np.asarray(values, np.float64)).tolist()


__all__ = ["Explainer"]
