"""Would more data help? The model retrained on 10, 25, 50 and 100% of the training split.

Opt-in (`eval.learning_curve=true`): it trains the model SEEDS x len(FRACTIONS) more times. Each
fraction is one seeded random subset of the training split; its SEEDS members (different
initialisations and data orders) train side by side as one vmapped program (`jaxdl.fit(...,
members=SEEDS)`), under the run's budget (epochs, batch size, patience). Each member's score is its
validation accuracy (classification; validation loss for regression) at its best epoch. The answer
reads the slope between the last two points: the gain per doubling of the training data.
"""

from __future__ import annotations

import math

import flax.linen as nn
import ml_collections
import numpy as np
from jax.sharding import Mesh

from jaxdl.data import Splits
from jaxdl.train.fit import fit
from jaxdl.train.optimizer import build_optimizer
from jaxdl.train.state import TrainState
from jaxdl.train.sweep import Member, create_states

FRACTIONS = (0.1, 0.25, 0.5, 1.0)
SEEDS = 3


def subset(arrays: dict, fraction: float, seed: int) -> dict:
    """A seeded random `fraction` of the examples of `arrays`, in their order."""
    n = len(arrays["y"])
    keep = np.sort(np.random.default_rng(seed).permutation(n)[:max(1, round(fraction * n))])
    return {key: value[keep] for key, value in arrays.items()}


def best_scores(result, metric: str) -> list[float]:
    """Each member's validation `metric` at its best epoch."""
    found = []
    for member, best in enumerate(np.atleast_1d(result.best_epoch).tolist()):
        lines = [line for record in result.history for line in record["members"]
                 if line["member"] == member and line["epoch"] == best]
        found.append(float(lines[0][metric]) if lines else math.nan)
    return found


def answer_learning_curve(config: ml_collections.ConfigDict, splits: Splits, kept: TrainState, mesh: Mesh) -> dict:
    """{"run": True, "metric", "points": [{"fraction", "train_examples", "scores" (one per seed), "mean",
    "std"}], "gain_per_doubling", "verdict", "answer"}; {"run": False, "reason"} when it cannot run."""
    model = getattr(kept.apply_fn, "__self__", None)
    if not isinstance(splits.train, dict):
        return {"run": False, "reason": "the training split was streamed (data.pipeline), not held in memory"}
    if not isinstance(model, nn.Module):
        return {"run": False, "reason": "the model is not a Linen module the run can rebuild"}
    classification = splits.info.task == "classification"
    metric = "val_accuracy" if classification else "val_loss"
    batch_size, points = config.train.batch_size, []
    for index, fraction in enumerate(FRACTIONS):
        train = subset(splits.train, fraction, config.seed + index)
        steps = len(train["y"]) // batch_size
        if steps == 0:
            continue
        tx = build_optimizer(config.optimizer, steps_per_epoch=steps, epochs=config.train.epochs)
        members = [Member(index=i, seed=config.seed + i, hyperparameters={}) for i in range(SEEDS)]
        states = create_states(model, tx, splits.info.input_shape, members, kept.metrics_fn)
        result = fit(states, train, splits.validation, epochs=config.train.epochs, batch_size=batch_size,
                     patience=config.train.patience, eval_batch_size=config.eval.batch_size, mesh=mesh,
                     members=SEEDS, steps_per_call=config.train.get("steps_per_call", "auto"))
        scores = best_scores(result, metric)
        points.append({"fraction": fraction, "train_examples": int(len(train["y"])), "scores": scores,
                       "mean": float(np.nanmean(scores)), "std": float(np.nanstd(scores))})
    if len(points) < 2:
        return {"run": False, "reason": f"fewer than two fractions of the training split hold a batch of {batch_size}"}
    last, before = points[-1], points[-2]
    doublings = math.log2(last["train_examples"] / before["train_examples"])
    gain = (last["mean"] - before["mean"]) / doublings * (1 if classification else -1)
    noise = max(last["std"], before["std"], 0.005 if classification else 0.0)
    verdict = "more data would likely help" if gain > noise else "flat: more of the same data would help little"
    name = "validation accuracy" if classification else "validation loss"
    change = f"{gain:+.4f}" if classification else f"{-gain:+.4g}"
    answer = (f"Learning curve ({SEEDS} seeds per size): {name} {before['mean']:.4g} with {before['train_examples']} "
              f"examples, {last['mean']:.4g} with {last['train_examples']}: {change} per doubling; {verdict}.")
    return {"run": True, "metric": metric.removeprefix("val_"), "points": points, "gain_per_doubling": gain,
            "verdict": verdict, "answer": answer}
