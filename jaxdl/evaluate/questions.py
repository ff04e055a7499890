"""The questions to ask before trusting a deep network, answered from the run's own evidence.

summary.json's `questions` holds one entry per question, each with "run" (false: with the
"reason" it was not answered) and "answer" (the plain-words sentence the report and the final
table show):

    simpler_methods  have you ruled out simpler methods?          jaxdl.evaluate.simpler
    why              do you need insight into a decision?         answer_why (attributions)
    good_enough      how will you evaluate it, when is it good enough?  jaxdl.evaluate.good_enough
    data             do you have plenty of varied training data?  jaxdl.evaluate.data_checks (+ learning_curve)
    compute          do you have the processing power and storage?  jaxdl.evaluate.compute

`eval.questions` chooses which are answered ("all", "none", or names joined by commas; `why` is
the report's why section, `jaxdl.evaluate.why`, so it follows `eval.report` whatever this says); the
learning curve (part of `data`) trains the model several more times and runs only with
`eval.learning_curve=true`. `before_training` answers `data` and `compute` before the first epoch
(the compute projection is then checked against the epochs), `after_training` the rest.
"""

from __future__ import annotations

import ml_collections
from jax.sharding import Mesh

from jaxdl.data import Splits
from jaxdl.errors import InputError, check_choice
from jaxdl.evaluate import compute as compute_lib
from jaxdl.evaluate.data_checks import answer_data
from jaxdl.evaluate.good_enough import answer_good_enough
from jaxdl.evaluate.learning_curve import answer_learning_curve
from jaxdl.evaluate.review import Review
from jaxdl.evaluate.simpler import answer_simpler_methods
from jaxdl.train.state import TrainState

QUESTIONS = ("simpler_methods", "why", "good_enough", "data", "compute")
TURNED_OFF = {"run": False, "reason": "turned off (eval.questions)"}


def asked(eval_config: ml_collections.ConfigDict | dict) -> tuple[str, ...]:
    """The questions `eval.questions` asks for, checked: "all" (the default), "none" (or ""), or
    names of QUESTIONS joined by commas (a tuple of them is taken too)."""
    learning_curve = eval_config.get("learning_curve", False)
    if not isinstance(learning_curve, bool):
        raise InputError("config.eval.learning_curve", "wrong type", got=learning_curve, expected="true or false")
    value = eval_config.get("questions", "all")
    if isinstance(value, str):
        value = value.strip()
        if value == "all":
            return QUESTIONS
        names = [] if value in ("none", "") else [part.strip() for part in value.split(",")]
    elif isinstance(value, (tuple, list)):
        names = list(value)
    else:
        raise InputError("config.eval.questions", "wrong type", got=value,
                         expected="all, none, or names joined by commas, e.g. data,compute")
    for name in names:
        check_choice("config.eval.questions", name, QUESTIONS)
    return tuple(q for q in QUESTIONS if q in names)


def before_training(config: ml_collections.ConfigDict, splits: Splits, state: TrainState, mesh: Mesh, *,
                    members: int = 0, data_config: ml_collections.ConfigDict | None = None) -> dict:
    """Answers `data` and `compute` (when asked) before the first epoch: {name: answer}."""
    wanted = asked(config.get("eval", {}))
    found = {}
    if "data" in wanted:
        found["data"] = answer_data(splits)
    if "compute" in wanted:
        found["compute"] = compute_lib.answer_compute(
            state, splits, batch_size=config.train.batch_size, epochs=config.train.epochs, members=members, mesh=mesh,
            skip_nonfinite=config.train.get("nan_policy", "halt") == "skip", data_config=data_config)
    return found


def answer_why(config: ml_collections.ConfigDict, splits: Splits, kept: TrainState, review: Review,
               mesh: Mesh) -> dict:
    """The `why` answer: the attributions `review_run` computed (`jaxdl.evaluate.why`, in
    review.fields["questions"]["why"]), with "run" (and "reason" when it was skipped) added."""
    found = dict((review.fields.get("questions") or {}).get("why") or {})
    if "answer" in found:
        return {"run": True, **found}
    return {"run": False, "reason": found.get("skipped", "no attributions were computed"), **found}


def after_training(config: ml_collections.ConfigDict, splits: Splits, kept: TrainState, review: Review, mesh: Mesh,
                   *, before: dict | None = None, summary: dict | None = None,
                   history: list[dict] | None = None) -> dict:
    """Every question's entry for summary.json, in QUESTIONS order (see module doc). `before`:
    what `before_training` answered; `summary`: the run's summary so far (its baseline, train time)."""
    eval_config = config.get("eval", {})
    wanted, before, summary = asked(eval_config), before or {}, summary or {}
    info = splits.info
    found = {}
    for name in QUESTIONS:
        if name == "why":  # computed by review_run and drawn in the report's why section: follows eval.report
            found[name] = answer_why(config, splits, kept, review, mesh)
        elif name not in wanted:
            found[name] = dict(TURNED_OFF)
        elif name == "simpler_methods":
            found[name] = answer_simpler_methods(splits, review.predictions.outputs, model_name=config.model.name,
                                                 seed=config.seed, baseline=summary.get("baseline"))
        elif name == "good_enough":
            found[name] = answer_good_enough(info.task, review.predictions.outputs, splits.test["y"],
                                             per_class=review.fields.get("per_class"),
                                             target=eval_config.get("target_accuracy", None), seed=config.seed)
        elif name == "data":
            found[name] = dict(before.get("data") or answer_data(splits))
            if eval_config.get("learning_curve", False):
                curve = answer_learning_curve(config, splits, kept, mesh)
                found[name]["learning_curve"] = curve
                if curve["run"]:
                    found[name]["answer"] += " " + curve["answer"]
        elif name == "compute":
            found[name] = compute_lib.check_projection(before["compute"], history or [],
                                                       summary.get("train_seconds", 0.0)) \
                if "compute" in before else {"run": False, "reason": "answered only before training (jaxdl's pipeline)"}
    return found
