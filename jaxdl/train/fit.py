"""`fit`: epochs of training, validation, early stopping and checkpoints.

An epoch is compiled calls of K training steps (`steps_per_call`: 1, K, the whole epoch, or "auto",
timed; `jaxdl.train.calls`), then one end-of-epoch program (`finish_epoch`: epoch means, a scan over
the validation batches, the early-stopping update), all on device. The host syncs once per epoch to
read a handful of scalars, report them, and maybe checkpoint. A streamed training split
(`jaxdl.data.stream.StreamSplit`) runs the same calls on pieces of chunks read while the devices
train (`jaxdl.train.feed`). `fit_epoch` is the same epoch as one function (one `lax.scan`), for
callers that jit a whole epoch themselves.

Early stopping is state too (`EarlyStopping`), updated with `jnp.where` rather than Python
branches, so a stack of runs can be `vmap`-ed and each member stops on its own: a member that
has stopped keeps its state unchanged while the others train (`freeze_stopped`). `fit(..., members=M)`
trains such a stack (see `jaxdl.train.sweep`) with the same host loop, checkpoints and metrics records as one run.

Divergence (a non-finite loss or gradient that `nan_policy` does not allow, see
`jaxdl.train.nonfinite`) ends a solo run with NonFiniteError. In a stack it ends only the member
that diverged: the member is marked `diverged` and frozen with its state from before that epoch,
while the others train on; the run fails only when every member has diverged.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import Mesh

from jaxdl import parallel
from jaxdl.data.splits import size
from jaxdl.data.stream import StreamSplit
from jaxdl.errors import InputError, check_choice, check_range
from jaxdl.train import calls, feed, nonfinite
from jaxdl.train import scores as scores_lib
from jaxdl.train.checkpoint import Checkpointer
from jaxdl.train.early_stopping import EarlyStopping, update_early_stopping
from jaxdl.train.ema import with_ema
from jaxdl.train.monitor import OUTPUTS, EpochScores
from jaxdl.train.progress import Progress
from jaxdl.train.state import TrainState
from jaxdl.train.step import epoch_means, eval_batches, evaluate_batches, evaluate_with_outputs, train_steps

PyTree = Any


class FitState(struct.PyTreeNode):
    """A run in progress: the train state, early stopping, epochs completed (() int32), the run of
    consecutive non-finite steps that ended the last epoch (() int32, see jaxdl.train.nonfinite),
    and whether the run diverged (() bool: an epoch broke `nan_policy`; set by `fit_epoch`)."""

    train: TrainState
    early: EarlyStopping
    epoch: jax.Array
    nonfinite_streak: jax.Array = struct.field(default_factory=lambda: jnp.zeros((), jnp.int32))
    diverged: jax.Array = struct.field(default_factory=lambda: jnp.zeros((), bool))


def init_fit_state(state: TrainState) -> FitState:
    """A fresh FitState; the best-model slots get their own buffers (the state is donated each epoch)."""
    early = EarlyStopping(best_loss=jnp.array(jnp.inf, jnp.float32), best_epoch=jnp.zeros((), jnp.int32),
                          bad_epochs=jnp.zeros((), jnp.int32), stopped=jnp.zeros((), bool),
                          best_params=jax.tree.map(jnp.copy, state.params),
                          best_batch_stats=jax.tree.map(jnp.copy, state.batch_stats))
    return FitState(train=state, early=early, epoch=jnp.zeros((), jnp.int32),
                    nonfinite_streak=jnp.zeros((), jnp.int32), diverged=jnp.zeros((), bool))


def fit_epoch(fit_state: FitState, train_data: dict, val_batches: dict, *, batch_size: int, patience: int,
              batch_sharding=None, eval_sharding=None, freeze_stopped: bool = False, skip_nonfinite: bool = False,
              max_consecutive_nonfinite: int = 20) -> tuple[FitState, dict[str, jax.Array]]:
    """One epoch: train, validate, update early stopping -> (fit state, scalars).

    The scalars are "train_*", "val_*", "nonfinite_steps" (steps with a NaN or infinite loss or
    gradient), "nonfinite_longest" (the longest run of them in a row, counting the run carried in
    from the previous epoch) and "first_nonfinite_step" (1-based step number, -1 if none).
    `skip_nonfinite` drops those steps' updates (jaxdl.train.nonfinite).

    The epoch diverges (`diverged` is set) when it had a non-finite step, or with `skip_nonfinite`,
    when a run of `max_consecutive_nonfinite` of them in a row reached into it.

    With `freeze_stopped`, a fit state that had already stopped or diverged is returned unchanged,
    and one that diverges in this epoch keeps its state from before the epoch (only `epoch` and
    `diverged` advance): stacked, vmapped runs need it, since members stop at different epochs. A
    solo run's host loop simply stops, so it leaves this off and skips a select over the whole
    state each epoch.
    """
    state, step_metrics = train_steps(fit_state.train, train_data, batch_size, batch_sharding,
                                      skip_nonfinite=skip_nonfinite)
    return finish_epoch(fit_state, state, step_metrics, val_batches, patience=patience, eval_sharding=eval_sharding,
                        freeze_stopped=freeze_stopped, skip_nonfinite=skip_nonfinite,
                        max_consecutive_nonfinite=max_consecutive_nonfinite)


def finish_epoch(fit_state: FitState, state: TrainState, step_metrics: dict, val_batches: dict, *, patience: int,
                 eval_sharding=None, freeze_stopped: bool = False, skip_nonfinite: bool = False,
                 max_consecutive_nonfinite: int = 20, monitor: str | None = "loss", sign: float = 1.0,
                 keep_outputs: bool = False) -> tuple[FitState, dict[str, jax.Array]]:
    """The end of an epoch whose steps took `fit_state` to `state` with `step_metrics` (steps,): epoch
    means, non-finite runs, validation, early stopping (see `fit_epoch`). `fit_state.train` is read only
    with `freeze_stopped` (the state to keep).

    Early stopping minimises `sign * val_<monitor>` (a per-example metric); with `monitor=None` it is
    left as it was, for the host to update (`jaxdl.train.monitor`: a score). `keep_outputs` adds the
    validation outputs (num_batches, B, ...) to the metrics, as "val_outputs".
    """
    train_metrics = epoch_means(step_metrics, state)
    bad = train_metrics.pop("nonfinite")
    runs = nonfinite.streaks(bad, fit_state.nonfinite_streak)
    judged = with_ema(state)  # the moving average of the weights, when the optimizer keeps one (train.ema)
    if keep_outputs:
        val_metrics, val_outputs = evaluate_with_outputs(judged, val_batches, eval_sharding)
    else:
        val_metrics = evaluate_batches(judged, val_batches, eval_sharding)
    epoch = fit_state.epoch + 1
    early = fit_state.early if monitor is None else update_early_stopping(
        fit_state.early, val_metrics[monitor] * sign, epoch, judged, patience)  # x * 1.0 is x, bit for bit
    diverges = runs["longest"] >= max_consecutive_nonfinite if skip_nonfinite else runs["count"] > 0
    new = FitState(train=state, early=early, epoch=epoch, nonfinite_streak=runs["trailing"],
                   diverged=fit_state.diverged | diverges)
    if freeze_stopped:
        halted = fit_state.early.stopped | fit_state.diverged
        kept = jax.tree.map(lambda new, old: jnp.where(halted | diverges, old, new), new, fit_state)
        new = kept.replace(epoch=jnp.where(halted, fit_state.epoch, epoch),
                           diverged=jnp.where(halted, fit_state.diverged, diverges))
    metrics = {f"train_{k}": v for k, v in train_metrics.items()}
    metrics.update({f"val_{k}": v for k, v in val_metrics.items() if k != "count"})
    start_step = state.step - bad.shape[-1]
    metrics.update(nonfinite_steps=runs["count"], nonfinite_longest=runs["longest"],
                   first_nonfinite_step=jnp.where(runs["first"] >= 0, start_step + runs["first"] + 1, -1))
    if keep_outputs:
        metrics[OUTPUTS] = val_outputs
    return new, metrics


def final_state(fit_state: FitState, patience: int) -> TrainState:
    """The model to keep: the best one when early stopping is on, else the last one (its moving
    average of the weights, when the optimizer keeps one: `jaxdl.train.ema`).

    For a stack (`fit_state.epoch` of shape (M,)) the choice is made per member, on device.
    """
    if patience == 0:
        return with_ema(fit_state.train)
    if fit_state.epoch.ndim:
        return jax.jit(jax.vmap(best_or_last))(fit_state)
    if int(fit_state.early.best_epoch) > 0:
        return fit_state.train.replace(params=fit_state.early.best_params,
                                       batch_stats=fit_state.early.best_batch_stats)
    return with_ema(fit_state.train)


def best_or_last(fit_state: FitState) -> TrainState:
    """Traceable form of `final_state`: the best model if an epoch improved, else the last."""
    pick = functools.partial(jax.tree.map, functools.partial(jnp.where, fit_state.early.best_epoch > 0))
    last = with_ema(fit_state.train)
    return fit_state.train.replace(params=pick(fit_state.early.best_params, last.params),
                                   batch_stats=pick(fit_state.early.best_batch_stats, fit_state.train.batch_stats))


@dataclasses.dataclass
class FitResult:
    """What `fit` returns.

    Attributes:
      state: the model to keep (best by validation loss when patience > 0, else the last); for a
        stack, the stacked models, chosen per member (a diverged member's from before it diverged).
      fit_state: the full final FitState (train state, early stopping, epoch, non-finite streak,
        diverged).
      history: one record per epoch run in this call: epoch, train_*, val_*, nonfinite_steps,
        seconds. For a stack, {"epoch", "seconds", "members": [that record plus "member", for each
        member that trained]}; the epoch a member diverged is its last record.
      epochs_run: epochs run in total (including any before a resume, and the epoch a member
        diverged in); per member for a stack.
      best_epoch: the epoch with the best monitored value (`monitor`: the lowest validation loss by default;
        0: none was finite); per member for a stack.
      stopped_early: patience ran out before `epochs`; per member for a stack.
      resumed_from: the checkpoint epoch this call started from (0: a fresh start).
      train_seconds: wall time of the epochs run in this call, compilation included.
      interrupted: `stop_requested` stopped the run before `epochs` (its last epoch is checkpointed).
      diverged: per member for a stack: the member broke `nan_policy` and stopped there (the others
        went on). A solo run that diverges raises NonFiniteError instead, so it is always False.
      pipeline: "memory" (the training split was on the devices) or "stream" (read in chunks).
      data_wait_seconds: streamed: per epoch run in this call, the time the loop waited for chunks to
        be read (an upper bound of the time the devices waited on data); [] in memory.
      steps_per_call: {"chosen": K or "epoch", "ms_per_step": {candidate: median ms per step}} ("auto"
        measured them; {} when K was given); None when no epoch was left to run.
    """

    state: TrainState
    fit_state: FitState
    history: list[dict]
    epochs_run: int | list[int]
    best_epoch: int | list[int]
    stopped_early: bool | list[bool]
    resumed_from: int
    train_seconds: float
    interrupted: bool = False
    diverged: bool | list[bool] = False
    pipeline: str = "memory"
    data_wait_seconds: list[float] = dataclasses.field(default_factory=list)
    steps_per_call: dict | None = None


def fit(state: TrainState, train: dict[str, np.ndarray], validation: dict[str, np.ndarray], *, epochs: int,
        batch_size: int, patience: int = 0, eval_batch_size: int = 1024, mesh: Mesh | None = None,
        checkpointer: Checkpointer | None = None, checkpoint_meta: dict | None = None,
        on_epoch: Callable[[dict], None] | None = None, nan_policy: str = "halt",
        max_consecutive_nonfinite: int = 20, stop_requested: Callable[[], bool] | None = None,
        members: int = 0, chunk_steps: int = 0, steps_per_call: int | str = "auto", quiet: bool = True,
        progress: bool = False, metrics: tuple[str, ...] = (), monitor: str = "val_loss",
        monitor_mode: str = "auto") -> FitResult:
    """Trains `state` on `train` for up to `epochs`, validating after each epoch.

    Args:
      state: a TrainState from `create_state`, or with `members`, a stack of them (every leaf with
        a leading axis of size `members`, e.g. from `jaxdl.train.sweep.create_states`). It is
        copied, never donated: the caller's arrays stay valid and unchanged.
      train, validation: host arrays {"x": (N, ...), "y": (N, ...)}; both are put on the devices once.
        `train` may instead be a StreamSplit (`jaxdl.data.stream`): it is read chunk by chunk
        (`jaxdl.train.feed`), with the same batches in the same order, for one run (not a stack).
      epochs: the most epochs to run (a resumed run counts the epochs already done).
      batch_size: global training batch; must divide by the device count. The last partial batch
        of each epoch is dropped; validation covers every example (padded and masked).
      patience: stop after this many epochs without a lower validation loss and keep the best
        model (0: run all epochs, keep the last model).
      eval_batch_size: validation batch (rounded to the device count, capped at the set size).
      mesh: the device mesh (default: all devices).
      checkpointer: if given, the run resumes from its latest checkpoint and saves on its schedule;
        a resumed run judges early stopping by this call's `patience` (so more patience trains on).
      checkpoint_meta: JSON-able facts saved beside each checkpoint (e.g. the config).
      on_epoch: called on the host after each epoch with that epoch's record.
      nan_policy: "halt" or "skip" a NaN or infinite loss or gradient (jaxdl.train.nonfinite); either
        way NonFiniteError ends a run that diverges (after the epoch's record, without its
        checkpoint). In a stack, a member that diverges stops alone (`FitResult.diverged`), keeping
        its state from before that epoch; NonFiniteError comes only when every member has diverged.
      max_consecutive_nonfinite: under "skip", this many non-finite steps in a row end the run (the member).
      stop_requested: polled after each epoch (e.g. set by SIGTERM); when it returns True the
        epoch is checkpointed and fit returns with `interrupted=True`. With several processes, a
        request of any one stops them all after the same epoch (and a checkpoint due by any one's
        clock is saved by all).
      members: 0 for one run; M to train a stack of M runs as one vmapped program, each member
        with its own data order and early stopping (the loop ends when all have stopped).
      chunk_steps: streamed: steps per chunk read from disk (0: chunks of about `feed.CHUNK_BYTES` of
        inputs); a multiple of the steps per call is used.
      steps_per_call: training steps per compiled call (`jaxdl.train.calls`): an int K >= 1 (1: one
        jitted step per call), "epoch" (the whole epoch as one loop), or "auto": the fastest of
        `calls.AUTO_CANDIDATES`, timed on copies of the state before the first epoch. The trained
        bits are the same whatever it is; `FitResult.steps_per_call` says what ran.
      quiet: no stderr line saying what "auto" chose.
      progress: show the command line's progress bar over epochs on stderr (process 0 only).
      metrics: scores of the validation split to compute each epoch with scikit-learn (`jaxdl.train.scores`:
        "f1_macro", "roc_auc", "r2", ...), from the outputs of the validation pass; each epoch's record
        gains "val_<name>".
      monitor: what early stopping and the best epoch follow: "val_loss", "val_" + another per-example
        metric of the state's metrics function ("val_accuracy"), or "val_" + a score ("val_f1_macro",
        computed even when not in `metrics`).
      monitor_mode: "auto" (lower is better for loss, mse, mae and error, higher for the others), "min" or "max".

    The checkpoint meta holds "input": the position of the data feed after the saved epoch
    ({"epoch", "step", "examples"}), where a resumed run's feed starts.
    """
    mesh = mesh or parallel.make_mesh()
    check_range("epochs", epochs, low=1, integer=True)
    check_range("batch_size", batch_size, low=1, integer=True)
    check_range("patience", patience, low=0, integer=True)
    check_choice("nan_policy", nan_policy, nonfinite.POLICIES)
    steps_per_call = calls.check_steps_per_call("steps_per_call", steps_per_call)
    parallel.check_batch_size("batch_size", batch_size, mesh)
    eval_batch_size = eval_batch_size_for(len(validation["y"]), eval_batch_size, mesh)
    streamed = isinstance(train, StreamSplit)
    if streamed and members:
        raise InputError("train", "a stack of runs trains on the split in memory", got="a StreamSplit",
                         expected="arrays {'x', 'y'}")
    steps_per_epoch = size(train) // batch_size
    if steps_per_epoch == 0:
        raise InputError("batch_size", "is larger than the training set",
                         got=batch_size, expected=f"at most {size(train)}")
    replicated = parallel.replicated(mesh)
    host_val_batches = eval_batches(validation, eval_batch_size)
    score_names = scores_lib.check_names("metrics", metrics, scores_lib.task_of(validation["y"]))
    watch = scores_lib.monitor_of("monitor", monitor, monitor_mode, val_metric_names(state, host_val_batches, members))
    if watch.score and watch.key not in score_names:
        score_names += (watch.key,)
    watching = dict(monitor=None if watch.score else watch.key, sign=watch.sign, keep_outputs=bool(score_names))
    scorer = (EpochScores(score_names, validation["y"], watch, patience=patience, members=members, mesh=mesh)
              if score_names else None)
    val_batches = jax.device_put(host_val_batches, replicated)
    fit_state = place_fit_state(state, mesh, members)
    resumed_from = 0
    if checkpointer is not None and checkpointer.latest_epoch() is not None:
        fit_state, meta = checkpointer.restore(fit_state)
        resumed_from = int(np.max(fit_state.epoch))
        fit_state = restop(fit_state, patience)
        check_position(meta.get("input"), resumed_from, host_step(fit_state))
    # The data epoch (which permutation) follows the step, as in `epoch_order`: a state that arrives
    # having trained already (a second phase, a fine-tuned model) goes on with the next permutation.
    start_step = int(np.max(host_step(fit_state)))
    data_epoch = start_step // steps_per_epoch

    skip_nonfinite = nan_policy == "skip"
    if streamed:
        finish = functools.partial(finish_epoch, patience=patience, eval_sharding=parallel.batch_sharded(mesh),
                                   skip_nonfinite=skip_nonfinite, max_consecutive_nonfinite=max_consecutive_nonfinite,
                                   **watching)
        epochs_fed = feed.StreamedEpochs(train, mesh=mesh, batch_size=batch_size,
                                         chunk_steps=feed.chunk_steps_for(train, batch_size, chunk_steps),
                                         first_epoch=data_epoch, epochs=data_epoch + epochs - resumed_from,
                                         order_key=feed.order_key_of(fit_state.train), finish=finish,
                                         skip_nonfinite=skip_nonfinite, steps_per_call=steps_per_call)
    else:
        epochs_fed = epochs_in_memory(jax.device_put(train, replicated), mesh, batch_size=batch_size,
                                      patience=patience, members=members, skip_nonfinite=skip_nonfinite,
                                      max_consecutive_nonfinite=max_consecutive_nonfinite,
                                      steps_per_call=steps_per_call, watching=watching)
    choice = (epochs_fed.prepare(fit_state.train, epochs=epochs - resumed_from, quiet=quiet)
              if resumed_from < epochs else None)

    def epoch_fn(fit_state):
        return epochs_fed.run(fit_state, val_batches)
    bar = Progress(epochs, initial=resumed_from, enabled=progress and parallel.is_leader())
    on_epoch = shown_by(bar, on_epoch)
    history = []
    start = time.perf_counter()
    halted = parallel.host_get(fit_state.early.stopped | fit_state.diverged)
    epoch, stopped, interrupted = resumed_from, bool(np.all(halted)), False
    while epoch < epochs and not stopped and not interrupted:
        tick = time.perf_counter()
        fit_state, metrics = epoch_fn(fit_state)
        if scorer is not None:
            fit_state, metrics = scorer(fit_state, metrics)
        metrics, epochs_done, stopped_flags, diverged = parallel.host_get(
            (metrics, fit_state.epoch, fit_state.early.stopped, fit_state.diverged))
        epoch, stopped = int(np.max(epochs_done)), bool(np.all(stopped_flags | diverged))
        trained = epochs_done == epoch  # the members that ran this epoch (the others were frozen)
        longest = int(np.max(metrics.pop("nonfinite_longest")[trained]))
        firsts = metrics.pop("first_nonfinite_step")[trained]
        first_step = int(np.min(firsts[firsts >= 0])) if np.any(firsts >= 0) else -1
        count = int(np.sum(metrics["nonfinite_steps"][trained]))
        record = epoch_record(metrics, epochs_done, time.perf_counter() - tick)
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if np.all(diverged):
            nonfinite.check_epoch(epoch, count, longest, first_step, policy=nan_policy,
                                  max_consecutive=max_consecutive_nonfinite, members=members,
                                  last_checkpoint=checkpointer.latest_epoch() if checkpointer is not None else None)
        asked = stop_requested is not None and stop_requested()
        due = checkpointer is not None and checkpointer.due(epoch, final=stopped or epoch >= epochs)
        asked, due = parallel.agree([asked, due])  # a signal or a clock of one process: all stop and save alike
        interrupted = asked and epoch < epochs and not stopped
        if checkpointer is not None and (due or interrupted):
            steps_done = start_step + (epoch - resumed_from) * steps_per_epoch
            position = {"epoch": epoch, "step": steps_done, "examples": steps_done * batch_size}
            checkpointer.save(epoch, fit_state, {**(checkpoint_meta or {}), "input": position})
    train_seconds = time.perf_counter() - start
    bar.close()
    host = parallel.host_get((fit_state.epoch, fit_state.early.best_epoch, fit_state.early.stopped, fit_state.diverged))
    epochs_run, best_epoch, stopped_early, diverged = (value.tolist() for value in host)
    return FitResult(state=final_state(fit_state, patience), fit_state=fit_state, history=history,
                     epochs_run=epochs_run, best_epoch=best_epoch, stopped_early=stopped_early,
                     resumed_from=resumed_from, train_seconds=train_seconds, interrupted=interrupted,
                     diverged=diverged, pipeline="stream" if streamed else "memory",
                     data_wait_seconds=epochs_fed.waits if streamed else [],
                     steps_per_call=choice.summary() if choice is not None else None)


def shown_by(bar: Progress, on_epoch: Callable[[dict], None] | None) -> Callable[[dict], None]:
    """`on_epoch`, then the bar's update."""
    def both(record: dict) -> None:
        if on_epoch is not None:
            on_epoch(record)
        bar.update(record)

    return both


def check_position(position: dict | None, epoch: int, step: np.ndarray) -> None:
    """A checkpoint's input position must be where its state is (a checkpoint saved without one is
    taken to be): after epoch `epoch`, at train step `step`. The feed of a resumed run starts there,
    at the first chunk of the next epoch."""
    if position is None or np.ndim(step):
        return
    if position.get("epoch") != epoch or position.get("step") != int(step):
        raise InputError("checkpoint", "its input position does not match its state", got=position,
                         expected=f"epoch {epoch}, step {int(step)}")


def host_step(fit_state: FitState) -> np.ndarray:
    """The train step on the host: () for one run, (M,) for a stack (a collective with many processes)."""
    return np.asarray(parallel.host_get(fit_state.train.step))


def restop(fit_state: FitState, patience: int) -> FitState:
    """`early.stopped` recomputed from `bad_epochs` and this call's `patience` (per member for a stack).

    `train.patience` may change on resume: a run that had stopped early trains on when given more
    patience, and one given less stops at once.
    """
    early = fit_state.early
    stopped = (patience > 0) & (early.bad_epochs >= patience)
    return fit_state.replace(early=early.replace(stopped=jax.device_put(stopped, early.stopped.sharding)))


def place_fit_state(state: TrainState, mesh: Mesh, members: int) -> FitState:
    """A fresh FitState on the devices: replicated for one run; for a stack, see `parallel.stacked`.

    Always a copy of `state`, on one device as on many: the epoch program donates the FitState,
    and `device_put` may hand back the caller's own buffers (on one device, and even device 0's
    shard of a replicated array with `may_alias=False`), which donation would delete.
    """
    if members and np.shape(state.step) != (members,):
        raise ValueError(f"fit(members={members}) needs a stack of {members} states; "
                         f"got a step of shape {np.shape(state.step)}")
    init = jax.vmap(init_fit_state) if members else init_fit_state
    sharding = parallel.stacked(mesh, members) if members else parallel.replicated(mesh)
    return jax.jit(lambda given: init(jax.tree.map(jnp.copy, given)), out_shardings=sharding)(state)


def epochs_in_memory(train_data: dict, mesh: Mesh, *, batch_size: int, patience: int, members: int,
                     skip_nonfinite: bool = False, max_consecutive_nonfinite: int = 20,
                     steps_per_call: int | str = calls.AUTO, watching: dict | None = None) -> calls.MemoryEpochs:
    """The epochs `fit` runs over `train_data` (on the devices): `run(fit_state, val_batches)`.

    One run shards each batch over the devices. A stack runs the steps and `finish_epoch` vmapped over
    the members: when the members are split over the devices, each device trains its own members on
    whole batches; when they are replicated, batches are split as for one run.
    """
    batch_sharding = None if members and parallel.splits_members(mesh, members) else parallel.batch_sharded(mesh)
    finish = functools.partial(finish_epoch, patience=patience, eval_sharding=batch_sharding,
                               freeze_stopped=bool(members), skip_nonfinite=skip_nonfinite,
                               max_consecutive_nonfinite=max_consecutive_nonfinite, **(watching or {}))
    return calls.MemoryEpochs(train_data, batch_size=batch_size, members=members, batch_sharding=batch_sharding,
                              finish=jax.vmap(finish, in_axes=(0, 0, 0, None)) if members else finish,
                              skip_nonfinite=skip_nonfinite, steps_per_call=steps_per_call,
                              replicated=parallel.replicated(mesh), stacked=parallel.stacked(mesh, members))


def epoch_record(metrics: dict[str, np.ndarray], epochs_done: np.ndarray, seconds: float) -> dict:
    """The host record of one epoch (see `FitResult.history`).

    For a stack, a member that had stopped before this epoch is left out: it did not train.
    """
    if np.ndim(epochs_done) == 0:
        return {"epoch": int(epochs_done), **{k: np.asarray(v).item() for k, v in metrics.items()}, "seconds": seconds}
    epoch = int(np.max(epochs_done))
    lines = [{"epoch": epoch, "member": member, **{k: v[member].item() for k, v in metrics.items()},
              "seconds": seconds} for member in np.flatnonzero(epochs_done == epoch).tolist()]
    return {"epoch": epoch, "seconds": seconds, "members": lines}


def val_metric_names(state: TrainState, batches: dict[str, np.ndarray], members: int) -> tuple[str, ...]:
    """The per-example metrics the state's metrics function gives on `batches` (traced, not run)."""
    evaluate = jax.vmap(evaluate_batches, in_axes=(0, None)) if members else evaluate_batches
    return tuple(name for name in jax.eval_shape(evaluate, state, batches) if name != "count")


def eval_batch_size_for(num_examples: int, requested: int, mesh: Mesh) -> int:
    """An evaluation batch no larger than needed, divisible by the device count."""
    count = mesh.devices.size
    size = min(requested, num_examples)
    return max(count, -(-size // count) * count)
