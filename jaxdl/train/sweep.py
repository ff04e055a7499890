"""Sweeps: many runs of one experiment, trained together as one compiled program.

The config section `sweep` (shared by every experiment, see `default_config`):

    sweep.seeds          members per setting, with seeds config.seed, config.seed + 1, ... (default 1)
    sweep.learning_rate  tuple of peak learning rates; () = config.optimizer.learning_rate
    sweep.weight_decay   tuple of weight decays (L2);   () = config.optimizer.weight_decay
    sweep.l1             (where the config has it) tuple of L1 rates; () = config.optimizer.l1

The members are the product of the settings and the seeds. Their train states are created with
`jax.vmap` over PRNG keys, each member's hyperparameters are written into its optimizer state
(`optax.inject_hyperparams`, see `jaxdl.train.optimizer`), and `jaxdl.fit(..., members=M)` trains the
stack with `fit_epoch` vmapped: each member has its own data order (from its own key) and its own
early stopping. A member trains exactly as a solo run with its seed and hyperparameters would.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxdl.errors import InputError, check_range
from jaxdl.train.fit import FitResult
from jaxdl.train.losses import MetricsFn
from jaxdl.train.optimizer import HYPERPARAMETER_RANGES
from jaxdl.train.state import TrainState, create_state


@dataclasses.dataclass(frozen=True)
class Member:
    """One run of a sweep: its position in the stack, its seed and its injected hyperparameters."""

    index: int
    seed: int
    hyperparameters: dict[str, float]



SHORT_NAMES = {"learning_rate": "lr", "weight_decay": "wd", "l1": "l1", "seed": "seed"}


def member_labels(members: list[Member]) -> list[str]:
    """Short names for legends and titles, showing only what differs between members, e.g. `lr=0.01 seed=1`."""
    settings = [{**m.hyperparameters, "seed": m.seed} for m in members]
    varying = [name for name in settings[0] if len({s[name] for s in settings}) > 1] or ["seed"]
    return [" ".join(f"{SHORT_NAMES.get(name, name)}={s[name]:g}" for name in varying) for s in settings]


def default_config(hyperparameters: tuple[str, ...] = ("learning_rate", "weight_decay")) -> ml_collections.ConfigDict:
    """The `sweep` section of a config: one member (no sweep) until a field is set."""
    section = ml_collections.ConfigDict()
    section.seeds = 1
    for name in hyperparameters:
        section[name] = ()
    return section


def members_of(config: ml_collections.ConfigDict) -> list[Member]:
    """The members that `config.sweep` asks for, checked; [] when the config asks for no sweep."""
    section = config.get("sweep")
    if section is None:
        return []
    seeds = check_range("config.sweep.seeds", section.get("seeds", 1), low=1, integer=True)
    values: dict[str, tuple[float, ...]] = {}
    for name in section:
        if name == "seeds":
            continue
        where = f"config.sweep.{name}"
        if name not in HYPERPARAMETER_RANGES:
            raise InputError(where, "not a hyperparameter a sweep can vary",
                             expected="seeds or one of " + ", ".join(HYPERPARAMETER_RANGES))
        given = section[name]
        if not isinstance(given, (tuple, list)):
            raise InputError(where, "wrong type", got=given, expected="a tuple of values such as (0.01,0.1) or ()")
        if given and name not in config.optimizer:
            raise InputError(where, "the optimizer has no such term", got=given,
                             hint=f"set config.optimizer.{name} in the config file to sweep it")
        for value in given:
            check_range(where, value, **HYPERPARAMETER_RANGES[name])
        values[name] = tuple(float(v) for v in given) or (float(config.optimizer.get(name, 0.0)),)
    if seeds == 1 and all(not section[name] for name in values):
        return []
    settings = itertools.product(*values.values())
    runs = itertools.product(settings, range(config.seed, config.seed + seeds))
    return [Member(index=i, seed=seed, hyperparameters=dict(zip(values, setting, strict=True)))
            for i, (setting, seed) in enumerate(runs)]


def create_states(model: nn.Module, tx: optax.GradientTransformation, input_shape: tuple[int, ...],
                  members: list[Member], metrics_fn: MetricsFn) -> TrainState:
    """A stack of train states, one per member: every leaf gets a leading axis of size M.

    Member i is initialised exactly as `create_state(..., members[i].seed, ...)` would, and its
    optimizer state carries its own hyperparameters.
    """
    keys = jnp.stack([jax.random.PRNGKey(member.seed) for member in members])
    # One compiled program rather than op-by-op dispatch; the initial values are the same.
    states = jax.jit(jax.vmap(lambda key: create_state(model, tx, input_shape, key, metrics_fn)))(keys)
    return set_hyperparameters(states, members)


def set_hyperparameters(states: TrainState, members: list[Member]) -> TrainState:
    """Writes each member's values into the stacked `opt_state.hyperparams` (shape (M,) each)."""
    hyperparams = getattr(states.opt_state, "hyperparams", None)
    if hyperparams is None:
        raise InputError("config.sweep", "the optimizer state has no injected hyperparameters",
                         hint="build the optimizer with jaxdl.train.optimizer.build_optimizer")
    updated = dict(hyperparams)
    for name in members[0].hyperparameters:
        if name not in hyperparams:
            raise InputError(f"config.sweep.{name}", "the optimizer has no such injected hyperparameter",
                             expected="one of " + ", ".join(hyperparams))
        updated[name] = jnp.asarray([m.hyperparameters[name] for m in members], hyperparams[name].dtype)
    return states.replace(opt_state=states.opt_state._replace(hyperparams=updated))


def take_member(tree, index: int):
    """Member `index` of a stacked pytree (static fields kept)."""
    return jax.tree.map(lambda leaf: leaf[index], tree)


def member_result(result: FitResult, index: int) -> FitResult:
    """The `FitResult` of one member of a stacked fit, as if it had been a solo run."""
    history = [{k: v for k, v in line.items() if k != "member"}
               for record in result.history for line in record["members"] if line["member"] == index]
    return FitResult(state=take_member(result.state, index), fit_state=take_member(result.fit_state, index),
                     history=history, epochs_run=result.epochs_run[index], best_epoch=result.best_epoch[index],
                     stopped_early=result.stopped_early[index], resumed_from=result.resumed_from,
                     train_seconds=result.train_seconds, diverged=result.diverged[index])


def progress_record(record: dict) -> dict:
    """For a progress bar: an epoch record of a stack reduced to its member with the lowest val loss."""
    def val_loss(line: dict) -> float:
        loss = line.get("val_loss", math.inf)
        return loss if math.isfinite(loss) else math.inf

    return {**min(record["members"], key=val_loss), "seconds": record["seconds"]}
