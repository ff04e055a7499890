"""Evaluating a sweep: each member and their ensemble over a split, in one compiled program.

The stack of train states comes from `jaxdl.train.sweep`; `sweep_summary` is the sweep's part of
summary.json (best member by validation loss, the ensemble of the members that did not diverge).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxdl import parallel
from jaxdl.train import scores
from jaxdl.train.digest import params_sha256
from jaxdl.train.fit import FitResult, eval_batch_size_for
from jaxdl.train.losses import batch_metrics
from jaxdl.train.state import TrainState, apply_model
from jaxdl.train.step import eval_batches, evaluate_batches, masked_sum
from jaxdl.train.sweep import Member, member_labels, take_member


def member_and_ensemble_metrics(states: TrainState, batches: dict[str, jax.Array], include: jax.Array, *,
                                probabilities: bool, batch_sharding=None) -> tuple[dict, dict]:
    """Metrics of every member and of their ensemble over padded `batches` (from `eval_batches`).

    Args:
      states: a stack of M train states.
      batches: {"x": (num_batches, B, ...), "y": ..., "mask": (num_batches, B)}.
      include: (M,) bool, the members that join the ensemble.
      probabilities: True for classification: the ensemble averages softmax probabilities (its
        logits are their log); False: it averages the outputs.
    Returns:
      ({name: (M,)} per member, {name: ()} of the ensemble), each with "count", and the outputs of
      the members (M, num_batches, B, ...) and of the ensemble (num_batches, B, ...) (log-probabilities
      for classification), for scores computed on the host.
    """
    per_member = jax.vmap(functools.partial(evaluate_batches, batch_sharding=batch_sharding), in_axes=(0, None))(
        states, batches)

    def outputs(state):  # (num_batches, B, num_outputs)
        return jax.lax.map(lambda batch: apply_model(state, state.params, batch["x"], train=False)[0], batches)

    stacked = outputs_of_members = jax.vmap(outputs)(states)
    if probabilities:
        stacked = jax.nn.softmax(stacked.astype(jnp.float32), axis=-1)
    weights = include.astype(jnp.float32).reshape((-1,) + (1,) * (stacked.ndim - 1))
    mean = jnp.sum(jnp.where(weights > 0, stacked, 0.0) * weights, axis=0) / jnp.maximum(jnp.sum(include), 1)
    combined = jnp.log(jnp.maximum(mean, jnp.finfo(jnp.float32).tiny)) if probabilities else mean
    metrics = jax.vmap(functools.partial(batch_metrics, states.metrics_fn))(combined, batches)
    sums = {name: masked_sum(value, batches["mask"]) for name, value in metrics.items()}
    count = jnp.sum(batches["mask"])
    ensemble = {**{name: total / jnp.maximum(count, 1) for name, total in sums.items()}, "count": count}
    return per_member, ensemble, outputs_of_members, combined


members_compiled = jax.jit(member_and_ensemble_metrics, static_argnames=("probabilities", "batch_sharding"))


def evaluate_members(states: TrainState, arrays: dict[str, np.ndarray], *, task: str, mesh: Mesh | None = None,
                     batch_size: int = 1024, include: np.ndarray | None = None,
                     metrics: tuple[str, ...] = ()) -> tuple[list[dict], dict]:
    """Host-side: metrics of each member and of the ensemble over every example of `arrays`, with the
    scores named in `metrics` (`jaxdl.train.scores`) from the same pass.

    Returns ([{name: float} per member], {name: float} of the ensemble); "count" is an int.
    """
    mesh = mesh or parallel.make_mesh()
    count = int(np.shape(states.step)[0])
    include = np.ones(count, bool) if include is None else np.asarray(include, bool)
    batch_size = eval_batch_size_for(len(arrays["y"]), batch_size, mesh)
    batches = jax.device_put(eval_batches(arrays, batch_size), parallel.replicated(mesh))
    sharding = None if parallel.splits_members(mesh, count) else parallel.batch_sharded(mesh)
    per_member, ensemble, member_outputs, ensemble_outputs = members_compiled(
        states, batches, include, probabilities=task == "classification", batch_sharding=sharding)
    per_member, ensemble = parallel.host_get((per_member, ensemble))
    as_python = lambda name, value: int(value) if name == "count" else float(value)
    members = [{name: as_python(name, value[i]) for name, value in per_member.items()} for i in range(count)]
    ensemble = {name: as_python(name, value) for name, value in ensemble.items()}
    if metrics:
        n, targets = len(arrays["y"]), arrays["y"]
        member_outputs, ensemble_outputs = parallel.host_get((member_outputs, ensemble_outputs))
        for i, member in enumerate(members):
            member.update(scores.compute(metrics, unpad(member_outputs[i], n), targets))
        ensemble.update(scores.compute(metrics, unpad(ensemble_outputs, n), targets))
    return members, ensemble


def unpad(outputs: np.ndarray, n: int) -> np.ndarray:
    """(num_batches, B, ...) outputs of padded batches -> (n, ...), the real rows."""
    return np.asarray(outputs).reshape(-1, *outputs.shape[2:])[:n]


def sweep_summary(members: list[Member], result: FitResult, splits, *, mesh: Mesh, batch_size: int,
                  metrics: tuple[str, ...] = (), monitor: scores.Monitor | None = None) -> dict:
    """The sweep's part of summary.json.

    The kept models (best or last, per member) are evaluated on the validation set. The members
    that did not diverge in training (`result.diverged`) and whose kept model has a finite
    validation loss form the ensemble, whose prediction is their average; the one of them with the
    best monitored validation value (`monitor`, default: the lowest loss) is the best member.
    `metrics`: the scores computed for each member and the ensemble (the monitored one among them).

    Returns {"members": [...], "best_member": index, "ensemble": {...}}; each member's entry says
    whether it "diverged".
    """
    task = splits.info.task
    monitor = monitor or scores.monitor_of("monitor", "val_loss")
    validation, _ = evaluate_members(result.state, splits.validation, task=task, mesh=mesh, batch_size=batch_size,
                                     metrics=metrics)
    losses = np.array([m["loss"] for m in validation])
    watched = np.array([m[monitor.key] for m in validation], np.float64) * monitor.sign
    diverged = np.asarray(result.diverged, bool)
    kept = np.isfinite(losses) & ~diverged
    best = int(np.argmin(np.where(kept & np.isfinite(watched), watched, np.inf)))
    test, ensemble = evaluate_members(result.state, splits.test, task=task, mesh=mesh, batch_size=batch_size,
                                      include=kept, metrics=metrics)
    labels = member_labels(members)
    entries = [{
        "member": member.index,
        "label": labels[member.index],
        "seed": member.seed,
        "hyperparameters": member.hyperparameters,
        "test": test[member.index],
        "validation": validation[member.index],
        "epochs_run": result.epochs_run[member.index],
        "best_epoch": result.best_epoch[member.index],
        "stopped_early": result.stopped_early[member.index],
        "diverged": bool(diverged[member.index]),
        "params_sha256": params_sha256(take_member(result.state.params, member.index)),
    } for member in members]
    return {
        "members": entries,
        "best_member": best,
        "ensemble": {"members": int(kept.sum()), "test": ensemble},
    }
