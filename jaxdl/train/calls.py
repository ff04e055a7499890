"""Compiled calls of K training steps: how `fit` runs an epoch (`train.steps_per_call`).

An epoch of S steps runs as ceil(S / K) calls of one compiled program. With K = 1 the program is one
`train_step` (no loop); with K > 1 it is a `lax.fori_loop` of min(K, S - position) steps, so the
epoch's last, shorter call runs the same program (K itself is an argument: every K > 1 is one
program); "epoch" is K = S. Both pipelines use these programs: in memory a step gathers its batch
from the training set on the devices by the epoch's order, streamed it takes it from a piece of K
steps read from disk (`jaxdl.train.feed`; the epoch's last piece padded to K).

The position within the epoch and the per-step metrics ((S,) per name) live on the devices, carried
from call to call (donated, like the state): the host passes no value and reads none per call. It
reads scalars once per epoch, from the end-of-epoch program (`jaxdl.train.fit.finish_epoch`).

Which K is fastest depends on the model and the backend, so "auto" measures: it times each
candidate of `AUTO_CANDIDATES` on copies of the run's state, on the run's own first batches
(interleaved rounds, median ms per step), and keeps the fastest. The copies are thrown away: every
K trains the same bits (the step is the same function; tests/train/test_steps_per_call.py), so the
choice changes only the time. With several processes the medians are averaged over them, so all
take the same K (their programs must match). A process remembers what it measured for each step
program (the lowered program's text, `signature`): a later `fit` of the same program (the transfer
experiment trains 90 models of three kinds) takes the choice without timing again (`Choice.remembered`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import parallel
from jaxdl.errors import InputError
from jaxdl.train.state import TrainState
from jaxdl.train.step import constrain, device_inputs, epoch_order, train_step

PyTree = Any

AUTO = "auto"
EPOCH = "epoch"
AUTO_CANDIDATES = (EPOCH, 8, 1)  # the first is kept unmeasured against the others in a short run
AUTO_STEPS = 32  # steps each candidate trains per timed trial (fewer if the epoch is shorter)
AUTO_ROUNDS = 3  # timed trials per candidate, interleaved, after one untimed trial that compiles


def check_steps_per_call(where: str, value: Any) -> int | str:
    """An int >= 1 (or its digits, as a config's string holds it), "epoch" or "auto"; anything else is
    an InputError naming `where`."""
    if value in (AUTO, EPOCH):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1:
        return int(value)
    raise InputError(where, "is not a number of steps per compiled call", got=value,
                     expected='an integer >= 1, "epoch" or "auto"')


def steps_of(value: int | str, steps: int) -> int:
    """K of a choice (an int or "epoch") for an epoch of `steps` steps: at least 1, at most `steps`."""
    return steps if value == EPOCH else max(1, min(int(value), steps))


# The step inside every step program (one step or a loop, in memory or streamed), jitted so that its trace
# is JAX's to cache: `metric_dtypes` traces it on abstract arguments placed as the programs' own (the same
# cache key), and the step programs then take that trace instead of tracing the model a second time. A
# fit traces anew (a fresh optimizer is a fresh static part of the state), so this halves the tracing of
# each fit (the transfer experiment trains 90 models). XLA inlines the nested call: the same bits.
step_program = jax.jit(train_step, static_argnames=("skip_nonfinite",))


def advance(state: TrainState, metrics: dict, position: jax.Array, batch_at: Callable, count: jax.Array | None, *,
            skip_nonfinite: bool) -> tuple[TrainState, dict, jax.Array]:
    """Steps from epoch `position`: step p trains on `batch_at(p)` and writes its metrics at row p of
    `metrics` ({name: (steps,)}). One step (no loop) when `count` is None, else a loop of `count`."""

    def one(carry):
        state, metrics, position = carry
        state, step = step_program(state, batch_at(position), skip_nonfinite=skip_nonfinite)
        return state, {name: value.at[position].set(step[name]) for name, value in metrics.items()}, position + 1

    if count is None:
        return one((state, metrics, position))
    return jax.lax.fori_loop(0, count, lambda _, carry: one(carry), (state, metrics, position))


def memory_call(state: TrainState, metrics: dict, position: jax.Array, order: jax.Array, data: dict,
                k: jax.Array, *, single: bool, batch_sharding=None, skip_nonfinite: bool = False):
    """Up to `k` steps (exactly 1 with `single`) over `data` on the devices -> (state, metrics, position,
    order). At position 0 (or S: the previous epoch's end) it draws the epoch's order ((S, batch)
    indices, `epoch_order`) from the state, and carries it to the epoch's later calls."""
    steps, batch_size = order.shape
    position = jnp.where(position >= steps, 0, position)
    order = jax.lax.cond(position == 0, lambda: order_of(state, data["y"].shape[0], batch_size), lambda: order)

    def batch_at(p):
        return constrain(jax.tree.map(lambda a: a[order[p]], data), batch_sharding)

    count = None if single else jnp.minimum(k, steps - position)
    return (*advance(state, metrics, position, batch_at, count, skip_nonfinite=skip_nonfinite), order)


def stream_call(state: TrainState, metrics: dict, position: jax.Array, piece: dict, *, single: bool,
                batch_sharding=None, skip_nonfinite: bool = False):
    """The steps of a streamed `piece` {"x": (K, B, ...) stored dtype, "y": (K, B, ...)} from epoch
    `position` (a padded last piece: only the steps left in the epoch) -> (state, metrics, position)."""
    steps = next(iter(metrics.values())).shape[-1]
    start = position = jnp.where(position >= steps, 0, position)

    def batch_at(p):
        return piece_batch(piece, p - start, batch_sharding)

    count = None if single else jnp.minimum(piece["y"].shape[0], steps - position)
    return advance(state, metrics, position, batch_at, count, skip_nonfinite=skip_nonfinite)


def piece_batch(piece: dict, index, batch_sharding=None) -> dict:
    """Step `index` of a streamed piece {"x": (K, B, ...) stored dtype, "y": (K, B, ...)} as the step takes it."""
    batch = jax.tree.map(lambda a: a[index], piece)
    return constrain({**batch, "x": device_inputs(batch["x"])}, batch_sharding)


@dataclasses.dataclass
class Choice:
    """What `auto` chose: `value` (an int or "epoch") and the median ms per step of each candidate measured
    (`remembered`: by an earlier `fit` of the same program in this process, not timed again)."""

    value: int | str
    ms_per_step: dict[str, float] = dataclasses.field(default_factory=dict)
    remembered: bool = False

    def summary(self) -> dict:
        return {"chosen": self.value, "ms_per_step": self.ms_per_step,
                **({"remembered": True} if self.remembered else {})}


# signature -> (choice, None) measured over every candidate, or (choice, total steps) of a short run's
_REMEMBERED: dict[str, tuple[Choice, int | None]] = {}


def signature(lowered: jax.stages.Lowered) -> str:
    """A step program's identity for remembering its choice: its lowered text (shapes, shardings, the
    model, the optimizer's constants) and the backend."""
    return hashlib.sha256(f"{jax.default_backend()}\n{lowered.as_text()}".encode()).hexdigest()


def choose(trial: Callable[[int | str], float], candidates: tuple, *, total_steps: int,
           quiet: bool = True, program: str | None = None) -> Choice:
    """Times `trial(candidate) -> seconds per step` for each candidate: one untimed round (it compiles),
    then `AUTO_ROUNDS` interleaved rounds; keeps the lowest median (the first on a tie).

    The first candidate is timed first; when the whole run (`total_steps` at its speed) would take less
    time than compiling it did, measuring the others cannot pay for itself: it is kept, timed once.
    Several processes decide all of it alike (`parallel.agree`, `parallel.mean_over_processes`).
    With `program` (a `signature`), what this process chose for that program before is taken as it is
    (one process only): a choice over every candidate always, a short run's for runs no longer.
    """
    known = _REMEMBERED.get(program) if program is not None and jax.process_count() == 1 else None
    if known is not None and (known[1] is None or total_steps <= known[1]):
        if not quiet:
            print(f"steps_per_call auto: {known[0].value} (chosen earlier in this process for this program)",
                  file=sys.stderr)
        return dataclasses.replace(known[0], remembered=True)
    tick = time.perf_counter()
    trial(candidates[0])
    compile_seconds = time.perf_counter() - tick
    first = trial(candidates[0])
    short = parallel.agree([total_steps * first < compile_seconds])[0]
    if short:
        choice = Choice(candidates[0], {str(candidates[0]): round(1000 * parallel.mean_over_processes([first])[0], 4)})
        if not quiet:
            print(f"steps_per_call auto: {candidates[0]} (a short run: the others not measured)", file=sys.stderr)
        if program is not None:
            _REMEMBERED[program] = (choice, total_steps)
        return choice
    for candidate in candidates[1:]:
        trial(candidate)
    times = {candidate: [] for candidate in candidates}
    for _ in range(AUTO_ROUNDS):
        for candidate in candidates:
            times[candidate].append(trial(candidate))
    medians = parallel.mean_over_processes([float(np.median(times[candidate])) for candidate in candidates])
    ms = {str(candidate): round(1000 * median, 4) for candidate, median in zip(candidates, medians, strict=True)}
    best = min(candidates, key=lambda candidate: ms[str(candidate)])
    if not quiet:
        print("steps_per_call auto: " + ", ".join(f"{name} {value:.3g} ms/step" for name, value in ms.items())
              + f" -> {best}", file=sys.stderr)
    choice = Choice(best, ms)
    if program is not None:
        _REMEMBERED[program] = (choice, None)
    return choice


def timed(run: Callable[[], Any]) -> float:
    """Wall seconds of `run()` until its result is ready."""
    tick = time.perf_counter()
    jax.block_until_ready(run())
    return time.perf_counter() - tick


def trial_steps(steps: int) -> int:
    return min(steps, AUTO_STEPS)


def calls_for(steps: int, k: int) -> int:
    return math.ceil(steps / k)


def order_of(state: TrainState, num_examples: int, batch_size: int) -> jax.Array:
    """`epoch_order` as int32, the form the memory calls take."""
    return epoch_order(state, num_examples, batch_size).astype(jnp.int32)


def piece_metric_dtypes(state: TrainState, piece: dict, *, batch_sharding, skip_nonfinite: bool) -> dict:
    """`metric_dtypes` for the streamed programs: the step traced on a piece's batch (abstract `piece`, as
    `stream_call` takes it), so that `stream_call` takes this trace from JAX's cache (`step_program`)."""
    step = functools.partial(step_program, skip_nonfinite=skip_nonfinite)
    index = jax.ShapeDtypeStruct((), jnp.int32)  # traced, as stream_call's index is
    shapes = jax.eval_shape(lambda s, p, i: step(s, piece_batch(p, i, batch_sharding)), state, piece, index)[1]
    return {name: shape.dtype for name, shape in shapes.items()}


def metric_dtypes(state: TrainState, batch: dict, *, members: int, skip_nonfinite: bool) -> dict:
    """{name: dtype} of the per-step metrics `train_step` returns for `state` (a stack with `members`) on
    `batch` (abstract; placed as the data it is gathered from, as `MemoryEpochs.batch` is: the step
    programs then take this trace from JAX's cache, `step_program`)."""
    step = functools.partial(step_program, skip_nonfinite=skip_nonfinite)
    step = jax.vmap(step, in_axes=(0, None)) if members else step
    return {name: shape.dtype for name, shape in jax.eval_shape(step, state, batch)[1].items()}


def solo_finish(finish: Callable) -> Callable:
    """`finish` for one run, as its program: the same outputs less the train state, which the host puts
    back (`finish_epoch` leaves one run's state as it is). A donated state passed through a program
    comes back copied (XLA pairs donated inputs with outputs by shape, not by name): for a 512-512 MLP
    that was 2 of the 5 ms of the end of epoch (`python benchmarks/fit_throughput.py`)."""

    def without_state(rest, state, step_metrics, val_batches):
        fit_state, metrics = finish(rest, state, step_metrics, val_batches)
        return fit_state.replace(train=None), metrics

    named = finish
    while isinstance(named, functools.partial):
        named = named.func
    without_state.__name__ = without_state.__qualname__ = getattr(named, "__name__", "finish")  # the program's name
    return without_state


def copy_state(tree: PyTree) -> PyTree:
    """Fresh buffers of `tree` (a program's donated inputs must not be someone else's)."""
    return jax.tree.map(jnp.copy, tree)


class MemoryEpochs:
    """The epochs of a training set on the devices: `run(fit_state, val_batches) -> (fit_state, metrics)`.

    Programs: the step calls (`memory_call`, one step or a loop: whichever `steps_per_call` needs),
    `finish` (the caller's end of epoch: `finish(fit_state, state, step_metrics, val_batches)`), and for a
    stack a copy of the state at each epoch's start (a member that stops or diverges keeps its state
    from before the epoch). The metrics, position and order buffers are placed once, in `prepare`.
    """

    def __init__(self, data: dict, *, batch_size: int, members: int, batch_sharding, finish: Callable,
                 skip_nonfinite: bool, steps_per_call: int | str, replicated, stacked):
        self.data, self.members, self.replicated, self.stacked = data, members, replicated, stacked
        self.steps, self.batch_size = data["y"].shape[0] // batch_size, batch_size
        # with the data's sharding: the abstract batch `metric_dtypes` traces the step on is then the one the
        # step programs gather from `data`, and they take that trace from JAX's cache (`step_program`)
        self.batch = {key: jax.ShapeDtypeStruct((batch_size, *value.shape[1:]), value.dtype, sharding=value.sharding)
                      for key, value in data.items()}
        self.skip_nonfinite, self.steps_per_call = skip_nonfinite, steps_per_call
        self.call = functools.partial(memory_call, batch_sharding=batch_sharding, skip_nonfinite=skip_nonfinite)
        # a stack's end of epoch picks one of two states for each member; one run's leaves it as it is
        self.finish = jax.jit(finish, donate_argnums=(0,)) if members else jax.jit(solo_finish(finish),
                                                                                    donate_argnums=(0,))
        self.copy = jax.jit(copy_state)
        self.programs, self.choice, self.k = {}, None, None

    def buffers(self):
        """Fresh (metrics, position, order) for `memory_call`; every row is written before it is read."""
        lead = (self.members,) if self.members else ()
        where = self.stacked if self.members else self.replicated
        metrics = {name: jax.device_put(np.zeros((*lead, self.steps), dtype), where)
                   for name, dtype in self.dtypes.items()}
        order = jax.device_put(np.zeros((*lead, self.steps, self.batch_size), np.int32), where)
        return metrics, jax.device_put(np.int32(0), self.replicated), order

    def prepare(self, state: TrainState, *, epochs: int, quiet: bool = True) -> Choice:
        """Compiles lazily and settles K (timing the candidates when "auto"), before the first epoch."""
        self.dtypes = metric_dtypes(state, self.batch, members=self.members, skip_nonfinite=self.skip_nonfinite)
        where = self.stacked if self.members else self.replicated
        shardings = (jax.tree.map(lambda a: a.sharding, state), where, self.replicated, where)
        for single in (True, False):
            fn = functools.partial(self.call, single=single)
            fn = jax.vmap(fn, in_axes=(0, 0, None, 0, None, None), out_axes=(0, 0, None, 0)) if self.members else fn
            self.programs[single] = jax.jit(fn, donate_argnums=(0, 1, 3), out_shardings=shardings)
        self.metrics, self.position, self.order = self.buffers()  # the trials train on buffers of their own
        if self.steps_per_call == AUTO:
            k = self.position  # the loop's count: any int32 scalar, for the program's shape
            program = signature(self.programs[False].lower(state, self.metrics, self.position, self.order,
                                                           self.data, k))
            self.choice = choose(functools.partial(self.trial, state), AUTO_CANDIDATES, quiet=quiet,
                                 total_steps=epochs * self.steps, program=program)
        else:
            self.choice = Choice(self.steps_per_call)
        self.k = steps_of(self.choice.value, self.steps)
        self.k_device = jax.device_put(np.int32(self.k), self.replicated)
        return self.choice

    def steps_calls(self, state, metrics, position, order, k: int, k_device, steps: int):
        program = self.programs[k == 1]
        for _ in range(calls_for(steps, k)):
            state, metrics, position, order = program(state, metrics, position, order, self.data, k_device)
        return state, metrics, position, order

    def trial(self, state: TrainState, candidate: int | str) -> float:
        """Seconds per step of `candidate` over the epoch's first steps, trained on a copy of `state`."""
        steps = trial_steps(self.steps)
        k = steps_of(candidate, steps)
        k_device = jax.device_put(np.int32(k), self.replicated)
        copy, (metrics, position, order) = self.copy(state), self.buffers()
        ran = min(calls_for(steps, k) * k, self.steps)
        return timed(lambda: self.steps_calls(copy, metrics, position, order, k, k_device, steps)[2]) / ran

    def run(self, fit_state, val_batches):
        state, rest = ((self.copy(fit_state.train), fit_state) if self.members
                       else (fit_state.train, fit_state.replace(train=None)))
        state, self.metrics, self.position, self.order = self.steps_calls(
            state, self.metrics, self.position, self.order, self.k, self.k_device, self.steps)
        fit_state, metrics = self.finish(rest, state, self.metrics, val_batches)
        return (fit_state, metrics) if self.members else (fit_state.replace(train=state), metrics)
