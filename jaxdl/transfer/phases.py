"""Fine-tuning: frozen layers, per-group learning rates, and training in phases.

A phase is one `jaxdl.fit` call under its own optimizer section. The section's `freeze` patterns
(`jaxdl.train.paths`) give the frozen parameters no update at all (`jaxdl.train.optimizer`); `lr_multipliers`
give groups their own rates. `prepare_phase` also runs every batch-norm layer whose parameters are
all frozen in inference mode, in training too: it normalises with its stored statistics and does
not update them, so a frozen layer computes in training exactly what it computes at test time,
and its statistics stay bit for bit as loaded. The model does that itself: the phase's
`apply_fn` is the `apply` of the model cloned with its `frozen_norms` field naming those layers.

The usual schedule has two phases (`two_phases`): the new head alone with the body frozen, then
every layer at a lower rate, the pretrained body lower still. `run_phases` trains them one after
the other, each starting from the model the previous one kept.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

from jaxdl.errors import InputError, check_range
from jaxdl.train import paths
from jaxdl.train.checkpoint import Checkpointer
from jaxdl.train.fit import FitResult, fit
from jaxdl.train.optimizer import build_optimizer
from jaxdl.train.state import TrainState
from jaxdl.transfer import features

PyTree = Any


def frozen_norm_layers(params: PyTree, freeze: Sequence[str]) -> frozenset[tuple[str, ...]]:
    """Paths (as tuples of names) of the layers whose parameters `freeze` selects, every one of them."""
    names = list(paths.leaves_by_path(params))
    layers = paths.module_paths(names)
    return frozenset(tuple(layer.split("/")) for layer in layers
                     if all(paths.selected(name, freeze) for name in names if name.startswith(layer + "/")))


def with_frozen_norms(apply_fn: Callable, frozen_layers: frozenset[tuple[str, ...]],
                      batch_stats: PyTree) -> Callable:
    """The `apply` of `apply_fn`'s model (`apply_fn.__self__`) cloned with its `frozen_norms` field
    naming the batch-norm layers (those with `batch_stats`) among `frozen_layers`.

    The model runs those layers in inference mode, in training too (see the model families'
    `frozen_norms`); gradients still flow through them to the layers before them. An empty set
    clears the field, so each phase states its own. A model without batch-norm statistics is
    returned as it is; one with frozen batch norms but no `frozen_norms` field is an InputError.
    """
    have_stats = {tuple(layer.split("/")) for layer in paths.module_paths(list(paths.leaves_by_path(batch_stats)))}
    norms = tuple(sorted("/".join(layer) for layer in frozen_layers & have_stats))
    model = getattr(apply_fn, "__self__", None)
    if not (isinstance(model, nn.Module) and "frozen_norms" in {field.name for field in dataclasses.fields(model)}):
        if norms:
            raise InputError("model", "freezes batch-norm layers but cannot run them in inference mode",
                             got=f"{type(model).__name__} without a frozen_norms field, frozen norms {list(norms)}",
                             expected="a model with a frozen_norms field (cnn, resnet, hybrid), or those "
                                      "layers left trainable")
        return apply_fn
    return model.clone(frozen_norms=norms).apply


def prepare_phase(state: TrainState, optimizer: ml_collections.ConfigDict, *, steps_per_epoch: int,
                  epochs: int) -> TrainState:
    """`state` ready to train under the `optimizer` section: its optimizer, a fresh optimizer state,
    and batch-norm layers frozen as its `freeze` patterns say (none frozen without the key)."""
    tx = build_optimizer(optimizer, steps_per_epoch=steps_per_epoch, epochs=epochs)
    frozen = frozen_norm_layers(state.params, tuple(optimizer.get("freeze", ())))
    return state.replace(tx=tx, opt_state=tx.init(state.params),
                         apply_fn=with_frozen_norms(state.apply_fn, frozen, state.batch_stats))


@dataclasses.dataclass(frozen=True)
class Phase:
    """One stage of training: a name, a number of epochs, and the optimizer section it trains under."""

    name: str
    epochs: int
    optimizer: ml_collections.ConfigDict


def two_phases(optimizer: ml_collections.ConfigDict, *, head: Sequence[str] = ("head",), head_epochs: int,
               epochs: int, finetune_lr_ratio: float = 0.1, body_lr_ratio: float = 0.1,
               keep_frozen: Sequence[str] = ()) -> list[Phase]:
    """Head only, then everything at a lower rate.

    Phase "head": `head_epochs` with every parameter not selected by the `head` patterns
    (`jaxdl.train.paths`; e.g. `("head",)`, or `("*", "!conv_0")` for all but the first layer) frozen,
    at the optimizer's own rate. Phase "all": `epochs` with everything trained but what the
    `keep_frozen` patterns select (e.g. `("norm_*",)`: batch norms keep the source's statistics),
    at the rate times `finetune_lr_ratio`, and the body at that times `body_lr_ratio`
    (discriminative rates). A phase of 0 epochs is left out.
    """
    check_range("finetune_lr_ratio", finetune_lr_ratio, low=0, low_inclusive=False, high=1)
    check_range("body_lr_ratio", body_lr_ratio, low=0, low_inclusive=False, high=1)
    head = tuple(head)
    if not head or not isinstance(head[0], str) or head[0].startswith("!"):
        raise InputError("head", "needs patterns of the head's layers", got=head,
                         expected='a tuple such as ("head",) or ("*", "!conv_0")')
    # The complement of a last-match-wins pattern list: the same list, each pattern flipped.
    flipped = tuple(pattern[1:] if pattern.startswith("!") else f"!{pattern}" for pattern in head)
    only_head = optimizer.copy_and_resolve_references()
    with only_head.unlocked():
        only_head.freeze = ("*", *flipped)
    everything = optimizer.copy_and_resolve_references()
    with everything.unlocked():
        everything.learning_rate = optimizer.learning_rate * finetune_lr_ratio
        everything.lr_multipliers = (f"*={body_lr_ratio}", *(f"{pattern[1:]}={body_lr_ratio}" if pattern.startswith("!")
                                                             else f"{pattern}=1" for pattern in head))
        if keep_frozen:
            everything.freeze = tuple(keep_frozen)
    phases = [Phase("head", head_epochs, only_head), Phase("all", epochs, everything)]
    return [phase for phase in phases if phase.epochs > 0]


def run_phases(state: TrainState, train: dict[str, np.ndarray], validation: dict[str, np.ndarray],
               phases: Sequence[Phase], *, batch_size: int, patience: int = 0, eval_batch_size: int = 1024,
               mesh: Mesh | None = None, checkpoint_dir: str | None = None, checkpoint_meta: dict | None = None,
               on_epoch: Callable[[dict], None] | None = None, cache_features: bool = True) -> list[FitResult]:
    """Trains `state` through `phases` in order, each a `fit` call; returns their results.

    Like `fit`, this consumes `state` (its buffers are donated). Each phase starts from a copy of
    the model the previous one kept (`FitResult.state`), with a fresh optimizer state; the step
    counter runs on, so data order and dropout keys never repeat.
    Records passed to `on_epoch` get "phase" and "step" (optimizer steps since the first phase).
    With `checkpoint_dir`, phase P checkpoints into `checkpoint_dir/P` and a rerun resumes there.
    With `cache_features`, a phase that trains the head alone on a frozen body (`features.cached_head`)
    computes the body's features once and trains the head on them (`features.fit_head`): the same
    result up to float rounding when the body has no dropout or augmentation, which that mode leaves
    out; its epoch records get "cached_features": True.
    """
    if not phases:
        raise InputError("phases", "nothing to train", expected="at least one phase with epochs > 0")
    steps_per_epoch = len(train["y"]) // batch_size
    results = []
    steps_before = 0
    for phase in phases:
        state = prepare_phase(state, phase.optimizer, steps_per_epoch=steps_per_epoch, epochs=phase.epochs)

        def record(entry, phase=phase, steps_before=steps_before):
            if on_epoch is not None:
                on_epoch({**entry, "phase": phase.name, "step": steps_before + entry["epoch"] * steps_per_epoch})

        checkpointer = (Checkpointer(os.path.join(checkpoint_dir, phase.name))
                        if checkpoint_dir else None)
        head = features.cached_head(state, phase.optimizer, train["x"][:1]) if cache_features else None
        try:
            if head is not None:
                result = features.fit_head(
                    state, head, train, validation, phase.optimizer, epochs=phase.epochs, batch_size=batch_size,
                    patience=patience, eval_batch_size=eval_batch_size, mesh=mesh, checkpointer=checkpointer,
                    checkpoint_meta={**(checkpoint_meta or {}), "phase": phase.name, "cached_features": True},
                    on_epoch=lambda entry, record=record: record({**entry, "cached_features": True}))
            else:
                result = fit(state, train, validation, epochs=phase.epochs, batch_size=batch_size,
                             patience=patience, eval_batch_size=eval_batch_size, mesh=mesh, checkpointer=checkpointer,
                             checkpoint_meta={**(checkpoint_meta or {}), "phase": phase.name}, on_epoch=record)
        finally:
            if checkpointer is not None:
                checkpointer.close()
        results.append(result)
        state = jax.tree.map(jnp.copy, result.state)  # the next fit donates its input; keep this result whole
        steps_before += phase.epochs * steps_per_epoch
    return results
