"""Optax optimizers from config: name, learning rate, schedule, weight decay, L1, clipping, freezing.

The peak learning rate, the weight decay and the L1 rate are injected hyperparameters
(`optax.inject_hyperparams`): they live in the optimizer state, so a stacked sweep can give each
member its own values without a second compile. The schedule is a shape in [0, 1] that
multiplies the peak rate, step by step.

Weight decay (L2) acts by default on the kernels only, the parameters with two or more dimensions
(Dense and Conv kernels, embeddings), not on biases or normalisation scales and offsets, as is usual:
decaying those pulls layers towards zero output or zero scale without curbing how complex the
function is. `weight_decay_on="all"` decays every parameter.

Two optional keys act on groups of parameters, named by path patterns (`jaxdl.train.paths`): `freeze`
(those parameters get no update at all) and `lr_multipliers` (a rate per group, e.g. a smaller one
for a pretrained body). Without them the optimizer, and its state, are exactly the plain one.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxdl.errors import InputError, check_choice, check_range
from jaxdl.train import paths
from jaxdl.train.ema import params_ema

Schedule = Callable[[int], float]

# name -> (learning_rate, momentum) -> the core update rule, without decay or clipping.
OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": lambda lr, momentum: optax.sgd(lr),
    "momentum": lambda lr, momentum: optax.sgd(lr, momentum=momentum),
    "nesterov": lambda lr, momentum: optax.sgd(lr, momentum=momentum, nesterov=True),
    "adam": lambda lr, momentum: optax.adam(lr, b1=momentum),
    "adamw": lambda lr, momentum: optax.adam(lr, b1=momentum),  # made with decoupled decay in `make`
    "rmsprop": lambda lr, momentum: optax.rmsprop(lr),
    "adagrad": lambda lr, momentum: optax.adagrad(lr),
    "lamb": lambda lr, momentum: optax.lamb(lr, b1=momentum),
}

SCHEDULES = ("constant", "linear", "cosine", "warmup_cosine", "onecycle")
# onecycle (fastai's default policy): the rate starts at 1/ONECYCLE_DIV of the peak, rises along a half
# cosine to the peak over the warmup (`warmup_epochs`, or ONECYCLE_WARMUP of the run when 0), then
# falls along a half cosine to `final_lr_ratio` of the peak.
ONECYCLE_DIV = 25.0
ONECYCLE_WARMUP = 0.25
# The schedules stretched over the whole run (`epochs * steps_per_epoch` steps): with another number
# of epochs the same step gets another rate, so a resumed run may not change `train.epochs` under them.
LENGTH_DEPENDENT_SCHEDULES = tuple(name for name in SCHEDULES if name != "constant")

# What weight decay acts on: "kernels" (parameters with ndim >= 2) or "all".
WEIGHT_DECAY_TARGETS = ("kernels", "all")

# The injected hyperparameters and their valid ranges (keyword arguments of `check_range`).
HYPERPARAMETER_RANGES: dict[str, dict] = {
    "learning_rate": {"low": 0, "low_inclusive": False, "high": 10},
    "weight_decay": {"low": 0, "high": 1},
    "l1": {"low": 0, "high": 1},
}


def schedule_shape(config: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: int) -> Schedule:
    """Learning-rate multiplier per step, peaking at 1.

    `schedule`: constant | linear (1 -> final_ratio) | cosine (1 -> final_ratio) |
    warmup_cosine (0 -> 1 over `warmup_epochs`, then cosine to final_ratio) |
    onecycle (1/25 -> 1 along a half cosine over `warmup_epochs`, or the first quarter of the run when
    0, then a half cosine down to final_ratio).
    """
    name = check_choice("config.optimizer.schedule", config.schedule, SCHEDULES)
    final = config.get("final_lr_ratio", 0.0)
    total = max(total_steps, 1)
    if name == "constant":
        return optax.constant_schedule(1.0)
    if name == "linear":
        return optax.linear_schedule(1.0, final, total)
    if name == "cosine":
        return optax.cosine_decay_schedule(1.0, total, alpha=final)
    warmup = min(int(config.get("warmup_epochs", 0) * steps_per_epoch), total - 1)
    if name == "onecycle":
        return onecycle_shape(total, warmup or max(1, round(ONECYCLE_WARMUP * total)), final)
    return optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, total, end_value=final)


def onecycle_shape(total: int, warmup: int, final: float) -> Schedule:
    """The one-cycle shape over `total` steps: a half cosine from 1/ONECYCLE_DIV up to 1 over `warmup`
    steps, then a half cosine from 1 down to `final`."""
    warmup = min(warmup, total - 1) if total > 1 else 1
    start = 1.0 / ONECYCLE_DIV
    falling = optax.cosine_decay_schedule(1.0, warmup)  # 1 -> 0 over the warmup
    rising = lambda step: start + (1.0 - start) * (1.0 - falling(step))  # noqa: E731
    return optax.join_schedules([rising, optax.cosine_decay_schedule(1.0, max(total - warmup, 1), alpha=final)],
                                [warmup])


def check_optimizer_config(config: ml_collections.ConfigDict) -> None:
    check_choice("config.optimizer.name", config.name, OPTIMIZERS)
    check_choice("config.optimizer.schedule", config.schedule, SCHEDULES)
    check_range("config.optimizer.learning_rate", config.learning_rate, **HYPERPARAMETER_RANGES["learning_rate"])
    for name in ("weight_decay", "l1"):
        check_range(f"config.optimizer.{name}", config.get(name, 0.0), **HYPERPARAMETER_RANGES[name])
    check_choice("config.optimizer.weight_decay_on", config.get("weight_decay_on", "kernels"), WEIGHT_DECAY_TARGETS)
    check_range("config.optimizer.clip_norm", config.get("clip_norm", 0.0), low=0)
    check_range("config.optimizer.momentum", config.get("momentum", 0.9), low=0, high=1, high_inclusive=False)
    check_range("config.optimizer.warmup_epochs", config.get("warmup_epochs", 0), low=0)
    check_range("config.optimizer.final_lr_ratio", config.get("final_lr_ratio", 0.0), low=0, high=1)
    check_pattern_list("config.optimizer.freeze", config.get("freeze", ()))
    parse_lr_multipliers(config.get("lr_multipliers", ()))


def build_optimizer(config: ml_collections.ConfigDict, *, steps_per_epoch: int,
                    epochs: int, ema: float = 0.0) -> optax.GradientTransformation:
    """The optimizer that `config` (the `optimizer` section) describes.

    Keys: `name`, `learning_rate` (peak), `schedule`, `warmup_epochs`, `final_lr_ratio`,
    `momentum` (beta1 for Adam-style rules), `weight_decay` (L2: decoupled for adamw, added to the
    gradient otherwise), `weight_decay_on` ("kernels", the default: only parameters with ndim >= 2;
    "all": biases and normalisation scales and offsets too), `l1` (optional key: L1 regularisation,
    `l1 * sign(params)` added to the gradient of every parameter; without the key there is no L1
    term and no `l1` hyperparameter), `clip_norm`
    (global-norm clipping, 0 = off), and optionally `freeze` and `lr_multipliers` (see `grouped`).
    `ema` (`train.ema`): 0, or the decay of a moving average of the weights kept in the optimizer
    state (`jaxdl.train.ema`); without it the optimizer state is the plain one.
    """
    check_optimizer_config(config)
    check_range("config.train.ema", ema, low=0, high=1, high_inclusive=False)
    shape = schedule_shape(config, steps_per_epoch * epochs, steps_per_epoch)
    rule = OPTIMIZERS[config.name]
    momentum = config.get("momentum", 0.9)
    decoupled = config.name == "adamw"
    decay_mask = None if config.get("weight_decay_on", "kernels") == "all" else kernels_mask
    clip_norm = config.get("clip_norm", 0.0)
    freeze = tuple(config.get("freeze", ()))
    multipliers = parse_lr_multipliers(config.get("lr_multipliers", ()))

    def make(learning_rate: float, weight_decay: float, l1: float | None = None) -> optax.GradientTransformation:
        def update_rule(factor: float) -> list[optax.GradientTransformation]:
            rate = lambda step: learning_rate * factor * shape(step)  # noqa: E731
            if decoupled:
                return [optax.adamw(rate, b1=momentum, weight_decay=weight_decay, mask=decay_mask)]
            return [optax.add_decayed_weights(weight_decay, mask=decay_mask), rule(rate, momentum)]

        before = [optax.clip_by_global_norm(clip_norm)] if clip_norm > 0 else []
        if l1 is not None:
            before.append(add_l1_subgradient(l1))
        if not freeze and not multipliers:
            core = optax.chain(*before, *update_rule(1.0))
        else:
            core = grouped(update_rule, before, freeze, multipliers)
        return optax.chain(core, params_ema(ema)) if ema else core

    hyperparams = {"learning_rate": config.learning_rate, "weight_decay": config.get("weight_decay", 0.0)}
    if "l1" in config:
        hyperparams["l1"] = config.l1
    return optax.inject_hyperparams(make)(**hyperparams)


def kernels_mask(params):
    """True for the parameters weight decay acts on by default: those with ndim >= 2.

    Called on one model's params: inside a vmapped sweep the member axis is not seen, and under
    `grouped` the leaves of other groups are empty nodes, which `jax.tree.map` passes over.
    """
    return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def add_l1_subgradient(rate: float | jax.Array) -> optax.GradientTransformation:
    """Adds `rate * sign(params)` to the updates: the subgradient of the L1 penalty `rate * sum |w|`.

    Like `optax.add_decayed_weights` (L2) it acts on every parameter, before the update rule.
    """

    def update(updates, state, params):
        if params is None:
            raise ValueError("add_l1_subgradient needs the params passed to update")
        return jax.tree.map(lambda g, p: g + rate * jnp.sign(p).astype(g.dtype), updates, params), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


FROZEN = "frozen"


def grouped(update_rule: Callable[[float], list[optax.GradientTransformation]],
            before: list[optax.GradientTransformation], freeze: tuple[str, ...],
            multipliers: tuple[tuple[str, float], ...]) -> optax.GradientTransformation:
    """The update rule applied per group of parameters.

    `freeze`: path patterns of parameters that get no update at all: their updates are -0.0,
    the additive identity of IEEE floats (`p + -0.0` is `p` bit for bit, also for `p = -0.0`,
    which `p + 0.0` is not), so no weight decay, momentum or clipping reaches them, and no
    optimizer state is kept for them. Their gradients are zeroed before the `before` transforms
    (global-norm clipping, L1), so the clipping norm is that of the trained parameters.
    `multipliers`: (pattern, factor) pairs; a parameter's rate is the peak rate times the factor of
    the last pattern that matches it (1 when none does). Each distinct factor is one group.
    """
    factors = sorted({1.0, *(factor for _, factor in multipliers)})
    groups = {f"group_{i}": factor for i, factor in enumerate(factors)}

    def labels(tree):
        leaves = paths.leaves_by_path(tree)
        names = list(leaves)
        paths.check_patterns("config.optimizer.freeze", freeze, names)
        paths.check_patterns("config.optimizer.lr_multipliers", tuple(p for p, _ in multipliers), names)
        frozen = {name for name in names if paths.selected(name, freeze)}
        if len(frozen) == len(names):
            raise InputError("config.optimizer.freeze", "freezes every parameter", got=freeze,
                             expected="patterns that leave some parameters to train")
        label = {}
        for name in names:
            factor = next((f for p, f in reversed(multipliers) if paths.selected(name, (p,))), 1.0)
            label[name] = FROZEN if name in frozen else f"group_{factors.index(factor)}"
        return paths.tree_from_paths(tree, label)

    def frozen_mask(tree):
        return jax.tree.map(lambda label: label == FROZEN, labels(tree))

    transforms = {FROZEN: freeze_updates(), **{name: optax.chain(*update_rule(factor))
                                             for name, factor in groups.items()}}
    zero_frozen = [optax.masked(freeze_updates(), frozen_mask)] if before else []
    return optax.chain(*zero_frozen, *before, optax.partition(transforms, labels))


def freeze_updates() -> optax.GradientTransformation:
    """Replaces every update by -0.0: applied, it leaves the parameter bit for bit as it was."""

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda u: jnp.full_like(u, -0.0), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def check_pattern_list(where: str, patterns) -> tuple[str, ...]:
    """A tuple of non-empty pattern strings (what they match is checked against the parameters)."""
    if isinstance(patterns, str) or not isinstance(patterns, (tuple, list)) or not all(
            isinstance(p, str) and p.lstrip("!") for p in patterns):
        raise InputError(where, "wrong type", got=patterns, expected='a tuple of path patterns such as ("conv_*",)')
    return tuple(patterns)


def parse_lr_multipliers(entries) -> tuple[tuple[str, float], ...]:
    """`("conv_*=0.1", "dense_*=0.5")` -> (("conv_*", 0.1), ("dense_*", 0.5)), checked."""
    where = "config.optimizer.lr_multipliers"
    if isinstance(entries, str) or not isinstance(entries, (tuple, list)):
        raise InputError(where, "wrong type", got=entries, expected='a tuple such as ("conv_*=0.1",)')
    parsed = []
    for entry in entries:
        pattern, _, factor = str(entry).rpartition("=")
        try:
            value = float(factor)
        except ValueError:
            value = None
        if not pattern or pattern.startswith("!") or value is None:
            raise InputError(where, "bad entry", got=entry, expected="PATTERN=FACTOR, e.g. conv_*=0.1")
        check_range(where, value, low=0, low_inclusive=False, high=100)
        parsed.append((pattern, value))
    return tuple(parsed)
