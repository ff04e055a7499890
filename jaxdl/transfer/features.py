"""Head-only training on cached features: run the frozen body once, train the head on its output.

When a phase trains one layer alone (the head) with everything else frozen, every step of plain
training runs the whole model forward and backward to update that one layer, and the body computes
the same features for an example each time it sees it. `fit_head` instead computes the input of the
head once per example (one inference-mode pass over the training and validation arrays), trains a
model made of the head alone on those features with the same optimizer section and the same `fit`
loop (same data order, same steps, same validation and early stopping), and puts the trained head
back into the full state, so what comes after (evaluation, the next phase, checkpoints of the next
phase) sees a normal model.

The head is found by its parameters: the one layer (a submodule, e.g. `head`) whose parameters are
exactly the ones the phase's `freeze` patterns leave trainable. The features are what that layer's
`__call__` receives, read with a Flax method interceptor (`nn.intercept_methods`); the head itself is
that call's module, cloned unbound. `cached_head` says whether a phase qualifies: one trainable
layer, called once, whose output is the model's output, without batch-norm statistics, and no
`lr_multipliers` in the section.

The result equals plain training up to float rounding when the body computes the same in training
as in inference: no dropout and no random shifts (augmentation) in the body, and every batch norm of
the body frozen (which a fully frozen body has, `jaxdl.transfer.phases`). With dropout or random
shifts in the body the cached features are the clean ones: the head then trains without that noise.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from jaxdl import parallel
from jaxdl.train import paths
from jaxdl.train.checkpoint import Checkpointer
from jaxdl.train.fit import FitResult, eval_batch_size_for, fit
from jaxdl.train.optimizer import build_optimizer
from jaxdl.train.state import TrainState

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Head:
    """The layer a phase trains alone.

    Attributes:
      path: its module path, e.g. ("head",).
      module: the layer, unbound (`module.apply({"params": head_params}, features)` runs it).
      kwargs: the keyword arguments the model calls it with (a "train" one follows the step).
      feature_shape: one example's features, the layer's input without the batch axis.
    """

    path: tuple[str, ...]
    module: nn.Module
    kwargs: dict
    feature_shape: tuple[int, ...]


def trainable_layer(params: PyTree, freeze: Sequence[str]) -> tuple[str, ...] | None:
    """The path of the one layer whose parameters are exactly those `freeze` leaves trainable, or None."""
    names = list(paths.leaves_by_path(params))
    trainable = [name for name in names if not paths.selected(name, freeze)]
    if not trainable or any("/" not in name for name in trainable):
        return None
    common = os.path.commonprefix([name.split("/")[:-1] for name in trainable])
    if not common:
        return None
    prefix = "/".join(common) + "/"
    if any(name.startswith(prefix) and paths.selected(name, freeze) for name in names):
        return None
    return tuple(common)


def get_subtree(tree: PyTree, path: Sequence[str]) -> PyTree:
    for name in path:
        tree = tree[name]
    return tree


def put_subtree(tree: PyTree, path: Sequence[str], value: PyTree) -> PyTree:
    """`tree` (nested dicts) with the subtree at `path` replaced by `value`; the rest is shared, not copied."""
    if not path:
        return value
    return {**tree, path[0]: put_subtree(tree[path[0]], path[1:], value)}


def nest(path: Sequence[str], value: PyTree) -> PyTree:
    """{path[0]: {path[1]: ... value}}: a tree holding `value` alone at `path`."""
    for name in reversed(path):
        value = {name: value}
    return value


def run_capturing(apply_fn: Callable, variables: dict, x: jax.Array, path: tuple[str, ...]) -> tuple[jax.Array, list]:
    """The model's inference output on `x`, and every call of the layer at `path`: (module, args, kwargs, output)."""
    calls = []

    def interceptor(next_fun, args, kwargs, context):
        output = next_fun(*args, **kwargs)
        if context.method_name == "__call__" and context.module.path == path:
            calls.append((context.module, args, kwargs, output))
        return output

    with nn.intercept_methods(interceptor):
        outputs = apply_fn(variables, x, train=False)
    return outputs, calls


def cached_head(state: TrainState, optimizer: ml_collections.ConfigDict, example: np.ndarray) -> Head | None:
    """The head a phase under `optimizer` trains alone on features of the frozen body, or None when it
    does not qualify (see the module doc). `example`: (1, *input_shape), only its shape and dtype matter."""
    freeze = tuple(optimizer.get("freeze", ()))
    if not freeze or tuple(optimizer.get("lr_multipliers", ())):
        return None
    path = trainable_layer(state.params, freeze)
    if path is None or jax.tree.leaves(get_subtree(state.batch_stats, path) if has_path(state.batch_stats, path)
                                       else {}):
        return None
    found = {}

    def trace(variables, x):
        outputs, calls = run_capturing(state.apply_fn, variables, x, path)
        # Identity of traced values: the model returns the head's output itself, nothing after it.
        found["ok"] = (len(calls) == 1 and len(calls[0][1]) == 1 and isinstance(calls[0][1][0], jax.Array)
                       and outputs is calls[0][3])
        if found["ok"]:
            module, (features,), kwargs, _ = calls[0]
            found["head"] = Head(path, module.clone(parent=None), dict(kwargs), tuple(features.shape[1:]))
        return outputs

    jax.eval_shape(trace, state.variables(), jax.ShapeDtypeStruct(np.shape(example), np.float32))
    return found["head"] if found["ok"] else None


def has_path(tree: PyTree, path: Sequence[str]) -> bool:
    for name in path:
        if not isinstance(tree, dict) or name not in tree:
            return False
        tree = tree[name]
    return True


def head_features(state: TrainState, head: Head, x: np.ndarray, *, batch_size: int = 1024,
                  mesh: Mesh | None = None) -> np.ndarray:
    """(N, *input_shape) -> (N, *head.feature_shape): the head's input for each example, in inference
    mode (batch norms on their stored statistics, no dropout, no augmentation), as float32 host arrays."""
    mesh = mesh or parallel.make_mesh()
    n = len(x)
    size = eval_batch_size_for(n, batch_size, mesh)
    sharding = parallel.batch_sharded(mesh)

    @jax.jit
    def body(variables, batch):
        _, calls = run_capturing(state.apply_fn, variables, batch, head.path)
        return calls[0][1][0]

    variables = jax.device_put(state.variables(), parallel.replicated(mesh))
    chunks = []
    for start in range(0, n, size):
        batch = np.asarray(x[start:start + size], np.float32)
        real = len(batch)
        if real < size:  # one compiled shape: pad the last batch, drop the padding's features
            batch = np.concatenate([batch, np.zeros((size - real, *batch.shape[1:]), batch.dtype)])
        chunks.append(np.asarray(parallel.host_get(body(variables, jax.device_put(batch, sharding))))[:real])
    return np.concatenate(chunks) if chunks else np.zeros((0, *head.feature_shape), np.float32)


def head_apply_fn(head: Head) -> Callable:
    """An `apply` for a state whose params are `nest(head.path, head_params)`: the head alone on features."""

    def apply(variables, x, *, train: bool = False, rngs=None, **_):
        kwargs = {**head.kwargs, **({"train": train} if "train" in head.kwargs else {})}
        return head.module.apply({"params": get_subtree(variables["params"], head.path)}, x, rngs=rngs or {},
                                 **kwargs)

    return apply


def fit_head(state: TrainState, head: Head, train: dict[str, np.ndarray], validation: dict[str, np.ndarray],
             optimizer: ml_collections.ConfigDict, *, epochs: int, batch_size: int, patience: int = 0,
             eval_batch_size: int = 1024, mesh: Mesh | None = None, checkpointer: Checkpointer | None = None,
             checkpoint_meta: dict | None = None, on_epoch: Callable[[dict], None] | None = None) -> FitResult:
    """Trains `head` of `state` on the frozen body's features, like `fit(state, ...)` under `optimizer`.

    `state` must be ready for the phase (`jaxdl.transfer.phases.prepare_phase`): its `tx`,
    `apply_fn` and fresh optimizer state are those plain training would use. The head trains with
    the same section minus `freeze` (every parameter of the head-only model trains; the frozen ones
    would get no update anyway, and clipping and weight decay see the same trainable parameters),
    from the same step and run key, so it sees the batches in the same order.

    Returns `fit`'s result for the full model: its `state` is `state` with the trained (or, with
    `patience`, the best) head and the step counter advanced, and a fresh optimizer state (the
    head-only model's does not fit the full one; no phase carries its optimizer state anyway).
    `fit_state` holds the same. `train_seconds` and the first epoch record's "seconds" include the
    feature pass, whose time is also given as "feature_seconds" in that record. A checkpointer saves
    and resumes the head-only run.
    """
    mesh = mesh or parallel.make_mesh()
    tick = time.perf_counter()
    train_features = {"x": head_features(state, head, train["x"], batch_size=eval_batch_size, mesh=mesh),
                      "y": train["y"]}
    val_features = {"x": head_features(state, head, validation["x"], batch_size=eval_batch_size, mesh=mesh),
                    "y": validation["y"]}
    feature_seconds = time.perf_counter() - tick
    plain = optimizer.copy_and_resolve_references()
    with plain.unlocked():
        del plain["freeze"]
    tx = build_optimizer(plain, steps_per_epoch=len(train["y"]) // batch_size, epochs=epochs)
    params = nest(head.path, get_subtree(state.params, head.path))
    small = state.replace(params=params, opt_state=tx.init(params), batch_stats={}, tx=tx,
                          apply_fn=head_apply_fn(head), augment=None)  # features, not images: nothing to augment
    first = [True]

    def record(entry: dict) -> None:
        if first[0]:
            entry = {**entry, "seconds": entry["seconds"] + feature_seconds, "feature_seconds": feature_seconds}
            first[0] = False
        if on_epoch is not None:
            on_epoch(entry)

    result = fit(small, train_features, val_features, epochs=epochs, batch_size=batch_size, patience=patience,
                 eval_batch_size=eval_batch_size, mesh=mesh, checkpointer=checkpointer,
                 checkpoint_meta=checkpoint_meta, on_epoch=record)

    def full(head_params: PyTree, step: jax.Array) -> TrainState:
        params = put_subtree(state.params, head.path, get_subtree(head_params, head.path))
        return state.replace(step=step, params=params, opt_state=state.tx.init(params))

    kept = full(result.state.params, result.state.step)
    fit_state = result.fit_state
    early = fit_state.early.replace(
        best_params=put_subtree(state.params, head.path, get_subtree(fit_state.early.best_params, head.path)),
        best_batch_stats=state.batch_stats)
    fit_state = fit_state.replace(train=full(fit_state.train.params, fit_state.train.step), early=early)
    history = list(result.history)
    if history:
        history[0] = {**history[0], "seconds": history[0]["seconds"] + feature_seconds,
                      "feature_seconds": feature_seconds}
    return dataclasses.replace(result, state=kept, fit_state=fit_state, history=history,
                               train_seconds=result.train_seconds + feature_seconds)
