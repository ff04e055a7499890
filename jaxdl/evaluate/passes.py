"""Evaluation passes: one compiled program over a split, every example exactly once.

`evaluate_split` gives the mean metrics; `predict_split` also gives each example's output and
metrics and, for classification, the confusion matrix, all from the same program (padded,
masked batches in one `lax.scan`). What those arrays say is read in `jaxdl.evaluate.analysis`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxdl import parallel
from jaxdl.train import scores
from jaxdl.train.fit import eval_batch_size_for
from jaxdl.train.losses import batch_metrics
from jaxdl.train.state import TrainState, apply_model
from jaxdl.train.step import constrain, eval_batches, evaluate_batches, masked_sum


def evaluate_split(state: TrainState, arrays: dict[str, np.ndarray], *, mesh: Mesh | None = None,
                   batch_size: int = 1024, metrics: tuple[str, ...] = ()) -> dict[str, float]:
    """Mean metrics over every example of `arrays` ({"x", "y"} on the host), plus "count", and the
    scores named in `metrics` (`jaxdl.train.scores`: "f1_macro", "roc_auc", "r2", ...) from the same pass."""
    if metrics:
        names = scores.check_names("metrics", metrics, scores.task_of(arrays["y"]))
        predictions = predict_split(state, arrays, mesh=mesh, batch_size=batch_size)
        return {**predictions.metrics, **scores.compute(names, predictions.outputs, arrays["y"])}
    mesh = mesh or parallel.make_mesh()
    batch_size = eval_batch_size_for(len(arrays["y"]), batch_size, mesh)
    batches = jax.device_put(eval_batches(arrays, batch_size), parallel.replicated(mesh))
    return host_metrics(parallel.host_get(evaluate_compiled(state, batches, parallel.batch_sharded(mesh))))


def host_metrics(metrics: dict) -> dict[str, float]:
    return {name: (int(value) if name == "count" else float(value)) for name, value in metrics.items()}


@dataclasses.dataclass
class Predictions:
    """What one pass over a split of N examples gives.

    Attributes:
      metrics: mean of each metric over the N examples, plus "count" (= N).
      outputs: (N, *output_shape) float32 model outputs (logits for classification).
      per_example: {metric name: (N,)} each example's metrics, e.g. "loss".
      confusion: (K, K) int64 counts, rows = true class, columns = predicted (classification), else None.
    """

    metrics: dict[str, float]
    outputs: np.ndarray
    per_example: dict[str, np.ndarray]
    confusion: np.ndarray | None


def predict_batches(state: TrainState, batches: dict[str, jax.Array], *, num_classes: int = 0,
                    batch_sharding: jax.sharding.Sharding | None = None):
    """One scan over padded batches {"x": (M, B, ...), "y": (M, B, ...), "mask": (M, B)}.

    Returns (means incl. "count", outputs (M, B, ...), per-example metrics {name: (M, B)},
    confusion (K, K) int32 or None). Padding rows count nowhere: not in the means, not in the
    confusion matrix.
    """

    def body(confusion, batch):
        batch = constrain(batch, batch_sharding)
        outputs, _ = apply_model(state, state.params, batch["x"], train=False)
        metrics = batch_metrics(state.metrics_fn, outputs, batch)
        sums = {name: masked_sum(value, batch["mask"]) for name, value in metrics.items()}
        sums["count"] = jnp.sum(batch["mask"])
        if num_classes:
            predicted = jnp.argmax(outputs, axis=-1)
            confusion = confusion.at[batch["y"], predicted].add((batch["mask"] > 0).astype(jnp.int32))
        return confusion, (sums, outputs, metrics)

    confusion = jnp.zeros((num_classes, num_classes), jnp.int32) if num_classes else None
    confusion, (sums, outputs, per_example) = jax.lax.scan(body, confusion, batches)
    totals = jax.tree.map(lambda s: jnp.sum(s, axis=0), sums)
    count = totals.pop("count")
    means = {name: total / jnp.maximum(count, 1) for name, total in totals.items()}
    return {**means, "count": count}, outputs, per_example, confusion


# Compiled once per (state structure, shapes, sharding), not per call: the cache lives with these objects.
evaluate_compiled = jax.jit(evaluate_batches, static_argnums=2)
predict_compiled = jax.jit(predict_batches, static_argnames=("num_classes", "batch_sharding"))


def predict_split(state: TrainState, arrays: dict[str, np.ndarray], *, num_classes: int = 0,
                  mesh: Mesh | None = None, batch_size: int = 1024) -> Predictions:
    """Runs the model once over every example of `arrays` ({"x", "y"} on the host), as one program."""
    mesh = mesh or parallel.make_mesh()
    n = len(arrays["y"])
    batch_size = eval_batch_size_for(n, batch_size, mesh)
    batches = jax.device_put(eval_batches(arrays, batch_size), parallel.replicated(mesh))
    metrics, outputs, per_example, confusion = parallel.host_get(
        predict_compiled(state, batches, num_classes=num_classes, batch_sharding=parallel.batch_sharded(mesh)))

    def unpad(a):
        return np.asarray(a).reshape(-1, *a.shape[2:])[:n]

    return Predictions(metrics=host_metrics(metrics), outputs=unpad(outputs),
                       per_example={name: unpad(value) for name, value in per_example.items()},
                       confusion=None if confusion is None else np.asarray(confusion, np.int64))


def count_params(params) -> int:
    """Number of scalar parameters."""
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(params)))
