"""The learning-rate range test (`train.lr_find`), as one compiled program, confirmed by a vmapped sweep.

The range test (Smith 2015, fastai's `lr_find`): starting from the run's initial state, train `steps`
steps at a rate that grows exponentially from `start` to `end`, and record the loss of each step. The
rate is an injected hyperparameter of the optimizer (`jaxdl.train.optimizer`), so the whole test is
one `lax.scan` of the run's own `train_step`: one compile, no host round trip per step. The loss is
smoothed (an exponential moving average, bias-corrected); the test stops at divergence, the first step
whose smoothed loss exceeds `DIVERGENCE` times its lowest so far or whose loss is not finite (inside
the program a mask: later steps change nothing and are not reported).

The suggestion (`RULE`): the rate where the smoothed loss falls fastest against log(rate), among the
steps before the smoothed loss's minimum (so it lies below the divergence point); `min_rate / 10`
(the rate of the minimum over ten) is reported too.

Then, what JAX gives for free: the rates `suggestion * CONFIRM_FACTORS` train side by side, from the
same initial state, as one vmapped stack (`jaxdl.fit(..., members=M)`, `jaxdl.train.sweep`) for
`confirm_epochs`; the rate with the lowest validation loss is the one to train at (`rate`).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.errors import InputError, check_range
from jaxdl.train.fit import fit
from jaxdl.train.state import TrainState, stream_keys
from jaxdl.train.step import permutation, train_step
from jaxdl.train.sweep import Member, set_hyperparameters

DIVERGENCE = 4.0  # the test stops once the smoothed loss exceeds this many times its minimum
SMOOTHING = 0.9  # weight of the past in the smoothed loss (a time constant of about 10 steps)
RULE = "steepest descent of the smoothed loss against log(rate), before its minimum"  # see `suggest`
CONFIRM_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)  # the rates of the confirming sweep, times the suggestion


@dataclasses.dataclass
class LrFindResult:
    """What `lr_find` found.

    Attributes:
      rates, losses, smoothed: (n,) the rates tried, each step's loss and the smoothed loss, up to
        the divergence point (n <= steps).
      suggestion: the range test's rate (`RULE`); min_rate: the rate of the smoothed minimum.
      diverged_at: the rate at which the test stopped (None: it ran to `end`).
      confirm: the sweep's {"rates": [...], "val_loss": [...], "chosen": rate} (None: not run).
      rate: the rate to train at: the sweep's choice, or the suggestion without a sweep.
    """

    rates: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    min_rate: float
    diverged_at: float | None
    confirm: dict | None = None

    @property
    def rate(self) -> float:
        return self.confirm["chosen"] if self.confirm else self.suggestion

    def record(self) -> dict:
        """The JSON form kept in summary.json (`lr_find`)."""
        return {"rates": self.rates, "losses": self.losses, "smoothed": self.smoothed, "rule": RULE,
                "suggestion": self.suggestion, "min_rate_over_10": self.min_rate / 10, "min_rate": self.min_rate,
                "diverged_at": self.diverged_at, "confirm": self.confirm, "rate": self.rate}


def range_test(state: TrainState, data: dict[str, jax.Array], rates: jax.Array, batch_size: int) -> dict:
    """The range test's program: step i trains at `rates[i]` on the i-th batch of the run's data order
    (epochs after the first continue with their own permutations) -> {"loss", "smoothed": (steps,),
    "valid": (steps,) bool, False from the divergence point on}."""
    num_examples = data["y"].shape[0]
    per_epoch = num_examples // batch_size
    order_key = stream_keys(state)[1]

    def body(carry, inputs):
        state, average, lowest, stopped = carry
        index, rate = inputs
        epoch, position = index // per_epoch, index % per_epoch
        rows = jax.lax.dynamic_slice(permutation(order_key, epoch, num_examples), (position * batch_size,),
                                     (batch_size,))
        batch = jax.tree.map(lambda a: a[rows], data)
        hyper = {**state.opt_state.hyperparams, "learning_rate": jnp.asarray(rate, jnp.float32)}
        given = state.replace(opt_state=state.opt_state._replace(hyperparams=hyper))
        stepped, metrics = train_step(given, batch)
        loss = metrics["loss"]
        average = SMOOTHING * average + (1 - SMOOTHING) * loss
        smoothed = average / (1 - SMOOTHING ** (index + 1).astype(jnp.float32))
        lowest = jnp.minimum(lowest, smoothed)
        diverges = ~jnp.isfinite(loss) | (smoothed > DIVERGENCE * lowest)
        stopped_now = stopped | diverges
        state = jax.tree.map(lambda new, old: jnp.where(stopped_now, old, new), stepped, state)
        return (state, average, lowest, stopped_now), {"loss": loss, "smoothed": smoothed, "valid": ~stopped_now}

    start = (state, jnp.zeros((), jnp.float32), jnp.array(jnp.inf, jnp.float32), jnp.zeros((), bool))
    _, out = jax.lax.scan(body, start, (jnp.arange(rates.shape[0]), rates))
    return out


# The one program of the range test: compiled once per state structure and data shape.
range_test_program = jax.jit(range_test, static_argnums=(3,))


def exponential_rates(start: float, end: float, steps: int) -> np.ndarray:
    """(steps,) float32 rates from `start` to `end`, each the same factor above the last."""
    return np.geomspace(start, end, steps).astype(np.float32)


def suggest(rates: np.ndarray, smoothed: np.ndarray) -> tuple[float, float]:
    """(suggestion by `RULE`, rate of the smoothed minimum) from the valid part of the curve.

    The slope at step i is taken over steps i - w .. i + w (w: 1/20 of the steps, about 0.4 of a
    decade either side over the default range), skipping the first tenth of the steps, where the
    smoothed loss is still mostly the first few batches' noise.
    """
    lowest = int(np.argmin(smoothed))
    width = max(1, len(rates) // 20)
    first = max(width, len(rates) // 10)
    if lowest - first < 1:
        return float(rates[lowest]), float(rates[lowest])
    logs = np.log(rates)
    steps = np.arange(first, lowest + 1)
    before, after = np.maximum(steps - width, 0), np.minimum(steps + width, lowest)
    slopes = (smoothed[after] - smoothed[before]) / (logs[after] - logs[before])
    return float(rates[steps[int(np.argmin(slopes))]]), float(rates[lowest])


def lr_find(state: TrainState, train: dict[str, np.ndarray], validation: dict[str, np.ndarray] | None = None, *,
            batch_size: int, steps: int = 100, start: float = 1e-7, end: float = 10.0,
            confirm_factors: tuple[float, ...] = CONFIRM_FACTORS, confirm_epochs: int = 1,
            mesh=None) -> LrFindResult:
    """The range test from `state` on `train` ({"x": (N, ...), "y": (N, ...)} arrays), then the sweep
    over `suggestion * confirm_factors` for `confirm_epochs`, judged on `validation` (None, or no
    factors: no sweep). `state` must come from an optimizer with an injected `learning_rate`
    (`jaxdl.build_optimizer`) and a constant schedule (the schedule's shape multiplies the rate). The
    caller's state is not changed.

    Example:
      found = jaxdl.lr_find(state, splits.train, splits.validation, batch_size=64)
      found.suggestion, found.rate   # the range test's rate, the rate the sweep confirmed
    """
    check_range("steps", steps, low=2, integer=True)
    check_range("start", start, low=0, low_inclusive=False)
    check_range("end", end, low=start, low_inclusive=False)
    hyperparams = getattr(state.opt_state, "hyperparams", None)
    if hyperparams is None or "learning_rate" not in hyperparams:
        raise InputError("state", "its optimizer has no injected learning_rate",
                         hint="build the optimizer with jaxdl.build_optimizer (optax.inject_hyperparams)")
    if len(train["y"]) < batch_size:
        raise InputError("batch_size", "is larger than the training set", got=batch_size,
                         expected=f"at most {len(train['y'])}")
    rates = exponential_rates(start, end, steps)
    data = {key: jnp.asarray(train[key]) for key in ("x", "y")}
    out = jax.device_get(range_test_program(state, data, jnp.asarray(rates), batch_size))
    valid = int(np.sum(out["valid"]))
    if valid < 2:
        raise InputError("start", "the loss diverged at the first steps of the range test", got=start,
                         expected="a smaller start rate")
    smoothed = out["smoothed"][:valid]
    suggestion, min_rate = suggest(rates[:valid], smoothed)
    found = LrFindResult(rates=rates[:valid].tolist(), losses=out["loss"][:valid].tolist(),
                         smoothed=smoothed.tolist(), suggestion=suggestion, min_rate=min_rate,
                         diverged_at=float(rates[valid]) if valid < steps else None)
    if validation is not None and confirm_factors:
        found.confirm = confirm(state, train, validation, [suggestion * f for f in confirm_factors],
                                batch_size=batch_size, epochs=confirm_epochs, mesh=mesh)
    return found


def confirm(state: TrainState, train: dict, validation: dict, rates: list[float], *, batch_size: int, epochs: int,
            mesh) -> dict:
    """Trains `state` at each of `rates` side by side (one vmapped stack, the same initial weights and data
    order) for `epochs`; {"rates", "val_loss" (each member's last), "chosen": the rate of the lowest}."""
    members = [Member(index=i, seed=0, hyperparameters={"learning_rate": rate}) for i, rate in enumerate(rates)]
    stack = jax.tree.map(lambda leaf: jnp.stack([leaf] * len(rates)), state)
    stack = set_hyperparameters(stack, members)
    result = fit(stack, train, validation, epochs=epochs, batch_size=batch_size, members=len(rates), mesh=mesh,
                 steps_per_call="epoch")
    last = {line["member"]: line["val_loss"] for record in result.history for line in record["members"]}
    losses = [last.get(i, math.inf) for i in range(len(rates))]
    finite = [loss if math.isfinite(loss) else math.inf for loss in losses]
    chosen = rates[int(np.argmin(finite))]
    return {"rates": rates, "val_loss": losses, "chosen": chosen, "epochs": epochs}
