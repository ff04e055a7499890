"""The supervised-learning cycle that every experiment shares, wired from a config.

data -> model -> optimizer -> state -> fit (checkpoints, metrics.jsonl) -> test evaluation ->
summary.json. Experiments call `train_and_evaluate`, passing their own data or model when the
config alone does not describe them. A config whose `sweep` section asks for several members
trains them all at once (`jaxdl.train.sweep`) through the same steps.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxdl import data as data_lib
from jaxdl import parallel, paths
from jaxdl.deploy import drift_features
from jaxdl.errors import InputError, check_range
from jaxdl.evaluate import questions
from jaxdl.evaluate.analysis import check_eval_config
from jaxdl.evaluate.members import sweep_summary
from jaxdl.evaluate.passes import count_params
from jaxdl.evaluate.review import review_run
from jaxdl.models import build_model
from jaxdl.models import summary as summary_lib
from jaxdl.models.dtypes import DEFAULT as DEFAULT_DTYPE
from jaxdl.models.record import module_record
from jaxdl.models.train_argument import with_train_argument
from jaxdl.report import console, log
from jaxdl.report.build import write_report
from jaxdl.report.curves import plot_curves
from jaxdl.report.scalars import ScalarLog
from jaxdl.run import config as config_lib
from jaxdl.run import rate_finder
from jaxdl.train import calls, preemption
from jaxdl.train import scores as scores_lib
from jaxdl.train import sweep as sweep_lib
from jaxdl.train.build import build_state
from jaxdl.train.checkpoint import Checkpointer
from jaxdl.train.digest import params_sha256
from jaxdl.train.fit import FitResult, fit
from jaxdl.train.losses import MetricsFn
from jaxdl.train.optimizer import LENGTH_DEPENDENT_SCHEDULES, check_optimizer_config
from jaxdl.train.state import TrainState


def prepare_workdir(workdir: str) -> str:
    """Creates `workdir` if needed and checks it is writable; returns it absolute (a URL as it is)."""
    path = paths.as_path(workdir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write_test.{jax.process_index()}"  # processes may share the workdir
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise InputError("--workdir", f"cannot write there ({error.strerror or error})", got=workdir,
                         expected="a writable folder") from error
    return os.fspath(path)


# What the pipeline writes into a workdir before its first checkpoint; a failed run that saved no
# checkpoint takes back those of them it added (see `WorkdirGuard`).
EARLY_FILES = ("checkpoints", "config.json", "data_info.json", "preprocessing.json", "metrics.jsonl", "lr_find.json")


class WorkdirGuard:
    """Takes back what a failed run put into its workdir before any checkpoint was saved.

    Made before `prepare_workdir`: remembers which folders up to the workdir did not exist (so
    without --workdir, a failed attempt leaves no `runs/<experiment>-<timestamp>/`) and which of
    EARLY_FILES the workdir held. `undo()` (process 0 only; never once a checkpoint exists or an
    epoch was recorded in metrics.jsonl, as by a run that diverged before its first checkpoint): a
    workdir this run created is removed with the folders made for it; in a workdir that existed,
    only the entries this run added are removed, so a workdir that held a run is never touched.
    """

    def __init__(self, workdir: str):
        path = paths.as_path(workdir)
        self.path = path
        self.created: list = []  # the workdir and its new parents, innermost first
        while not path.exists() and path.parent != path:
            self.created.append(path)
            path = path.parent
        self.held = set() if self.created else {name for name in EARLY_FILES if self.path.joinpath(name).exists()}

    def saved_checkpoint(self) -> bool:
        folder = self.path.joinpath("checkpoints")
        return folder.is_dir() and any(child.name.isdigit() for child in folder.iterdir())

    def trained(self) -> bool:
        """Whether an epoch was recorded (a run that diverged in its first epoch keeps that record)."""
        log_file = self.path.joinpath("metrics.jsonl")
        return log_file.is_file() and bool(log_file.read_text().strip())

    def undo(self) -> None:
        if not parallel.is_leader():
            return
        try:
            if self.saved_checkpoint() or self.trained():
                return
            if self.created:
                if self.path.exists():
                    self.path.rmtree()
                for parent in self.created[1:]:
                    if parent.exists() and not any(parent.iterdir()):
                        parent.rmdir()
                return
            for name in EARLY_FILES:
                entry = self.path.joinpath(name)
                if name not in self.held and entry.exists():
                    entry.rmtree() if entry.is_dir() else entry.unlink()
        except OSError:  # the original error matters more than what could not be tidied
            pass


def check_resumable(checkpointer: Checkpointer, config: ml_collections.ConfigDict) -> None:
    """Refuses to resume a checkpoint saved with another config (keys of RESUMABLE_KEYS may differ),
    or with another `train.epochs` under a schedule that is stretched over the run's length."""
    found = checkpointer.latest_meta()
    if found is None or "config" not in found[1]:
        return
    epoch, meta = found
    differences = config_lib.config_differences(meta["config"], json.loads(config.to_json()))
    if differences:
        more = f" and {len(differences) - 3} more" if len(differences) > 3 else ""
        raise InputError("--workdir", f"its checkpoint {checkpointer.path(epoch)} was saved with a different config: "
                         + "; ".join(differences[:3]) + more,
                         expected="the saved config (only " + ", ".join(config_lib.RESUMABLE_KEYS)
                                  + " may change) or a new --workdir")
    check_epochs_keep_schedule(config_lib.flatten(meta["config"]).get("train.epochs"), config)


def check_epochs_keep_schedule(saved_epochs: int | None, config: ml_collections.ConfigDict) -> None:
    """Refuses a resume whose `train.epochs` differs from the checkpoint's `saved_epochs` when
    `optimizer.schedule` decays over the run's length: the schedule would be rebuilt over the new
    length, so the resumed run would follow neither the saved run's rates nor a fresh run's."""
    schedule = config.optimizer.get("schedule", "constant")
    if saved_epochs is None or saved_epochs == config.train.epochs or schedule not in LENGTH_DEPENDENT_SCHEDULES:
        return
    raise InputError("--config.train.epochs", "changing the number of epochs on resume would change the "
                     f"optimizer.schedule {schedule!r} (saved with train.epochs={saved_epochs})",
                     got=config.train.epochs, expected=f"{saved_epochs}, or a new --workdir",
                     hint="only a run with optimizer.schedule='constant' can be resumed with another number of epochs")


def check_model_fits_data(model: nn.Module, info: data_lib.DataInfo) -> bool:
    """Traces the model (no compiling) on one input of the data's shape; checks the output shape.

    The output is one vector (1, num_outputs), or, for a regression target (time, ...), one per
    step (1, time, prod(target_shape[1:])). Returns whether it is per step.
    """
    dummy = jax.ShapeDtypeStruct((1, *info.input_shape), jnp.float32)
    key = jax.random.PRNGKey(0)
    try:
        outputs, _ = jax.eval_shape(lambda x: model.init_with_output({"params": key, "dropout": key}, x,
                                                                     train=False), dummy)
    except (TypeError, ValueError, flax.errors.FlaxError) as error:
        message = " ".join(str(error).split())[:200]
        raise InputError("config.model", f"the model does not accept the data's inputs ({type(error).__name__}: "
                         f"{message})", got=f"inputs of shape {info.input_shape}",
                         expected=f"a model for inputs of shape {info.input_shape}") from error
    expected = (1, info.num_outputs)
    shape = getattr(outputs, "shape", None)
    target = info.target_shape
    per_step = (1, target[0], int(np.prod(target[1:]))) if info.task == "regression" and target else None
    if shape == per_step:
        return True
    if shape != expected:
        raise InputError("config.model", "the model's output does not match the data",
                         got=f"outputs of shape {shape or type(outputs).__name__}",
                         expected=f"{expected} for {info.num_outputs} {'classes' if info.num_classes else 'targets'}"
                         + (f", or {per_step} per step" if per_step else ""))
    return False


def data_info_record(splits: data_lib.Splits) -> dict:
    """data_info.json: the `DataInfo` (its preprocessing is preprocessing.json) and the split sizes, so that
    `jaxdl.load_run` rebuilds the model and reads new inputs in the form the data source stores them."""
    info = splits.info
    return {"name": info.name, "task": info.task, "input_shape": list(info.input_shape),
            "num_classes": info.num_classes, "target_shape": list(info.target_shape),
            "class_names": list(info.class_names), "stored": info.stored or {"kind": "array", "dtype": "float32"},
            "sizes": splits.sizes()}


def complete_run(config: ml_collections.ConfigDict, workdir: str, splits: data_lib.Splits, kept: TrainState, *,
                 summary: dict, history: list[dict], mesh, review_splits: data_lib.Splits | None = None) -> dict:
    """Writes what makes `workdir` a complete run, for an experiment with its own training loop
    (`experiments.transfer`): data_info.json (and a table's preprocessing.json), metrics.jsonl
    (`history`: the epochs of the kept model), report.html with the review of `kept` (`review_splits`:
    the splits its baseline trains on, default `splits`), drift_reference.json, and summary.json last
    (`summary` plus `params_sha256` and the review's findings). Returns that summary.

    config.json, and a checkpoint from which `jaxdl.load_run` reads `kept`, are the caller's.
    """
    leader = parallel.is_leader()
    if leader:
        if splits.info.preprocessing:
            log.write_json(paths.join(workdir, "preprocessing.json"), splits.info.preprocessing)
        log.write_json(paths.join(workdir, "data_info.json"), data_info_record(splits))
        metrics_log = log.MetricsLog(paths.join(workdir, "metrics.jsonl"))
        for record in history:
            metrics_log.append(record)
    review = review_run(config, review_splits or splits, kept, mesh, history)
    summary = {**summary, **review.fields, "params_sha256": params_sha256(kept.params)}
    summary["questions"] = questions.after_training(config, review_splits or splits, kept, review, mesh,
                                                    summary=summary, history=history)
    if config.eval.get("report", True):
        summary["report"] = paths.join(workdir, "report.html")
        if leader:
            summary["files"] = write_report(workdir, config, summary, history=history, review=review,
                                            splits=review_splits or splits)
    reference = drift_features.reference_of_run(splits, kept, mesh=mesh, batch_size=config.eval.batch_size)
    summary["drift_reference"] = paths.join(workdir, drift_features.FILE)
    if leader:
        drift_features.write_reference(workdir, reference)
        log.write_json(paths.join(workdir, "summary.json"), summary)
    return summary


def check_config(config: ml_collections.ConfigDict, mesh) -> None:
    """Host-side checks of everything the pipeline reads, before data loading or compiling."""
    config_lib.check_common(config)
    check_optimizer_config(config.optimizer)
    parallel.check_batch_size("config.train.batch_size", config.train.batch_size, mesh)
    checkpoint = config.get("checkpoint", ml_collections.ConfigDict())
    check_range("config.checkpoint.every_epochs", checkpoint.get("every_epochs", 0), low=0, integer=True)
    check_range("config.checkpoint.every_seconds", checkpoint.get("every_seconds", 30.0), low=0)
    check_range("config.checkpoint.keep", checkpoint.get("keep", 2), low=1, integer=True)
    check_eval_config(config.get("eval", ml_collections.ConfigDict()))
    questions.asked(config.get("eval", ml_collections.ConfigDict()))


def monitor_of_config(config: ml_collections.ConfigDict, task: str | None = None,
                      own_metrics: bool = False) -> scores_lib.Monitor:
    """`train.monitor` and `train.monitor_mode`, checked against the task's per-example metrics and the
    scores (an own metrics function's names are checked by `fit`)."""
    name, mode = config.train.get("monitor", "val_loss"), config.train.get("monitor_mode", "auto")
    names = {"classification": ("loss", "accuracy"), "regression": ("loss", "mse")}.get(task,
                                                                                       ("loss", "accuracy", "mse"))
    if own_metrics and isinstance(name, str):
        names = (name.removeprefix("val_"),)
    monitor = scores_lib.monitor_of("config.train.monitor", name, mode, names)
    if monitor.score and task is not None:
        scores_lib.check_names("config.train.monitor", (monitor.key,), task)
    return monitor


def with_scores(config: ml_collections.ConfigDict, names: tuple[str, ...]) -> ml_collections.ConfigDict:
    """A copy of `config` whose `eval.metrics` also holds `names` (scores passed as `metrics=`)."""
    copy = ml_collections.ConfigDict(config.to_dict())
    copy.eval.metrics = tuple(dict.fromkeys((*copy.eval.get("metrics", ()), *names)))
    copy.lock()
    return copy


def check_pipeline(config: ml_collections.ConfigDict, *, given_splits: bool, members: list) -> None:
    """`data.pipeline=stream` needs a training split in ArrayRecord files, and one run (not a sweep)."""
    if config.data.get("pipeline", "memory") != "stream":
        return
    if given_splits:
        raise InputError("config.data.pipeline", f"the {config.get('experiment', '') or 'experiment'!s} experiment "
                         "builds its splits in memory: there are no ArrayRecord files to stream from",
                         got="stream", expected="memory or auto")
    if members:
        raise InputError("config.data.pipeline", "a sweep trains its members on the training split in memory",
                         got="stream", expected="memory or auto")


def make_checkpointer(config: ml_collections.ConfigDict, workdir: str) -> Checkpointer:
    checkpoint = config.get("checkpoint", ml_collections.ConfigDict())
    return Checkpointer(paths.join(workdir, "checkpoints"), every_epochs=checkpoint.get("every_epochs", 0),
                        every_seconds=checkpoint.get("every_seconds", 30.0), keep=checkpoint.get("keep", 2))


def own_parts(model: nn.Module | None, optimizer, metrics) -> dict:
    """What config.json adds when the caller passed its own model, optimizer or metrics function: what
    rebuilds the model (`model_source`), and that the optimizer or metrics are not the config's."""
    own = {}
    if model is not None:
        own["model_source"] = module_record(model)
    if optimizer is not None:
        own["optimizer_source"] = ("own: an optax optimizer passed to train_and_evaluate; config.optimizer does "
                                   "not describe it (predicting needs only the parameters)")
    if metrics is not None:
        name = getattr(metrics, "__qualname__", type(metrics).__qualname__)
        own["metrics_source"] = f"{getattr(metrics, '__module__', '?')}.{name}"
    return own


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *, splits: data_lib.Splits | None = None,
                       model: nn.Module | None = None, optimizer: optax.GradientTransformation | None = None,
                       metrics: MetricsFn | None = None, progress: bool = True,
                       return_state: bool = False) -> dict | tuple[dict, TrainState]:
    """Runs the whole cycle and returns the summary (also written to `workdir/summary.json`).

    For a sweep, the summary's top-level figures are the best member's, and it adds `members`,
    `best_member` and `ensemble` (see `jaxdl.evaluate.members.sweep_summary`); metrics.jsonl holds one line
    per member and epoch (with a `member` field) and `validation_curves.png` shows them.

    Args:
      config: the experiment's config (shared keys of DESIGN.md plus `model.*`).
      workdir: where config.json, metrics.jsonl, summary.json and checkpoints/ go; a workdir with
        checkpoints is resumed.
      splits: data to use instead of loading `config.data` (e.g. data an experiment built itself).
      model: a module to use instead of building `config.model`; config.json records what rebuilds it
        (`model_source`, see `jaxdl.models.record`), so that `jaxdl.load_run` can.
      optimizer: an optax optimizer to use instead of building `config.optimizer` (not for a sweep);
        config.json says so (`optimizer_source`). Predicting needs only the parameters.
      metrics: a metrics function `(outputs, labels) -> {"loss": (batch,), ...}` to use instead of the
        task's (`jaxdl.metrics_for_task`); config.json names it (`metrics_source`). Or score names
        (`jaxdl.train.scores`: "f1_macro", ...) added to `eval.metrics`, or a tuple of both:
        `metrics=(my_metrics, "f1_macro")`.
      progress: show the per-epoch progress bar on stderr.
      return_state: also return the kept model: (summary, state); a stack for a sweep.

    Raises InputError for bad input (before compiling) and for a diverged run (NonFiniteError),
    and RunInterrupted when SIGTERM or SIGINT stopped the run after a checkpointed epoch.
    """
    started = time.perf_counter()
    mesh = parallel.make_mesh()
    leader = parallel.is_leader()  # with many processes, process 0 alone writes the run's files
    metrics, score_names = scores_lib.split_metrics(metrics)
    if score_names:
        config = with_scores(config, score_names)
    check_config(config, mesh)
    monitor_of_config(config, own_metrics=metrics is not None)
    members = sweep_lib.members_of(config)
    check_pipeline(config, given_splits=splits is not None, members=members)
    if optimizer is not None and members:
        raise InputError("optimizer", "a sweep builds each member's optimizer from config.optimizer (its own rates)",
                         got=type(optimizer).__name__, expected="optimizer=None for a config with a sweep section")
    rate_finder.check_lr_find(config, members=members, own_optimizer=optimizer is not None)
    own = own_parts(model, optimizer, metrics)
    if config.model.get("summary_only", False):
        return model_summary_only(config, splits, model)
    guard = WorkdirGuard(workdir)
    workdir = prepare_workdir(workdir)
    checkpointer = None
    try:
        checkpointer = make_checkpointer(config, workdir)
        rate_finder.keep_saved_rate(config, checkpointer)
        check_resumable(checkpointer, config)
        given_splits = splits is not None
        if splits is None:
            data_config = config.data
            if members and data_config.get("pipeline", "memory") == "auto":
                data_config = ml_collections.ConfigDict({**data_config.to_dict(), "pipeline": "memory"})
            splits, _ = data_lib.load_for_pipeline(data_config)
        else:
            data_lib.check_splits(splits)
        steps_per_epoch = data_lib.size(splits.train) // config.train.batch_size
        if steps_per_epoch == 0:
            raise InputError("config.train.batch_size", "batch size is larger than the training set",
                             got=config.train.batch_size, expected=f"at most {data_lib.size(splits.train)}")
        check_eval_config(config.get("eval", ml_collections.ConfigDict()), splits.info.task)
        monitor = monitor_of_config(config, splits.info.task, own_metrics=metrics is not None)
        model = with_train_argument(model) if model is not None else build_model(config.model, splits.info)
        per_step = check_model_fits_data(model, splits.info)
        model_summary = summary_lib.layers(model, splits.info.input_shape)
        found_rate = rate_finder.find_rate(config, splits, model, steps_per_epoch=steps_per_epoch, per_step=per_step,
                                           metrics=metrics, mesh=mesh, workdir=workdir, quiet=not progress,
                                           resumed=checkpointer.latest_epoch() is not None)
        if leader:
            log.write_json(paths.join(workdir, "config.json"), {**json.loads(config.to_json()), **own})
            if splits.info.preprocessing:  # what prediction on new data must repeat (a table's training statistics)
                log.write_json(paths.join(workdir, "preprocessing.json"), splits.info.preprocessing)
            log.write_json(paths.join(workdir, "data_info.json"), data_info_record(splits))
        state = build_state(config, splits.info, steps_per_epoch, model, members, per_step=per_step, tx=optimizer,
                            metrics_fn=metrics)
        before = questions.before_training(config, splits, state, mesh, members=len(members),
                                           data_config=None if given_splits else config.data)
        if "compute" in before and progress and leader:
            print(f"compute: {before['compute'].get('answer', before['compute'].get('reason'))}", file=sys.stderr)
        result, stop = run_fit(config, state, splits, mesh=mesh, checkpointer=checkpointer, workdir=workdir,
                               progress=progress, members=members)
    except BaseException as error:
        if checkpointer is not None:
            checkpointer.close()
        if isinstance(error, Exception):
            guard.undo()
        raise
    checkpointer.close()
    if result.interrupted:
        # With many processes, one that got no signal itself stops because another did (as if SIGTERM).
        raise preemption.RunInterrupted(stop.signum or signal.SIGTERM, result.epochs_run, workdir)
    history = run_history(workdir, result)
    kept = result.state
    if members:
        outcome = sweep_summary(members, result, splits, mesh=mesh, batch_size=config.eval.batch_size,
                                metrics=scores_lib.of_config(config), monitor=monitor)
        best = outcome["best_member"]
        kept = sweep_lib.take_member(result.state, best)
        summary = summarize(config, workdir, splits, sweep_lib.member_result(result, best),
                            outcome["members"][best]["test"], mesh=mesh, total_seconds=time.perf_counter() - started,
                            member=best, history=history)
        summary.update(outcome)
        if leader:
            plot_curves(history, paths.join(workdir, "validation_curves.png"),
                        labels=dict(enumerate(sweep_lib.member_labels(members))), title=f"{len(members)} members")
        # The report of the model the run kept: the best member, with its own epochs.
        own_history = [{k: v for k, v in r.items() if k != "member"} for r in history if r.get("member") == best]
    else:
        summary = summarize(config, workdir, splits, result, None, mesh=mesh,
                            total_seconds=time.perf_counter() - started, history=history)
        own_history = history
    if "model_source" in own:
        summary["model"] = own["model_source"]["qualname"]
    summary["model_summary"] = model_summary
    if found_rate is not None:
        summary["lr_find"] = found_rate
    review = review_run(config, splits, kept, mesh, own_history)
    if not members:
        summary["test"] = review.test
    summary.update(review.fields)
    summary["questions"] = questions.after_training(config, splits, kept, review, mesh, before=before,
                                                    summary=summary, history=own_history)
    if config.eval.get("report", True):
        summary["report"] = paths.join(workdir, "report.html")
        if leader:
            summary["files"] = write_report(workdir, config, summary, history=own_history, review=review,
                                            splits=splits)
    # Before summary.json: a run that counts as finished always has its drift reference. Every process
    # takes part in its prediction pass; process 0 writes it.
    reference = drift_features.reference_of_run(splits, kept, mesh=mesh, batch_size=config.eval.batch_size)
    summary["drift_reference"] = paths.join(workdir, drift_features.FILE)
    if leader:
        drift_features.write_reference(workdir, reference)
        log.write_json(paths.join(workdir, "summary.json"), summary)
        ScalarLog(workdir).final(summary)
    return (summary, result.state) if return_state else summary


def model_summary_only(config: ml_collections.ConfigDict, splits: data_lib.Splits | None,
                       model: nn.Module | None) -> dict:
    """`model.summary_only`: a dry run that builds the model for the data, lists its layers and trains
    nothing; no workdir is made. Returns {"summary_only": True, "model", "model_summary", "num_params"}."""
    if splits is None:
        splits, _ = data_lib.load_for_pipeline(config.data)
    model = with_train_argument(model) if model is not None else build_model(config.model, splits.info)
    check_model_fits_data(model, splits.info)
    rows = summary_lib.layers(model, splits.info.input_shape)
    return {"summary_only": True, "model": rows[0]["module"], "model_summary": rows, "num_params": rows[0]["params"]}


def run_fit(config: ml_collections.ConfigDict, state: TrainState, splits: data_lib.Splits, *, mesh,
            checkpointer: Checkpointer, workdir: str, progress: bool,
            members: list) -> tuple[FitResult, preemption.StopRequest]:
    """`fit` with metrics.jsonl, the progress bar, and SIGTERM / SIGINT turned into a clean stop."""
    metrics_log = log.MetricsLog(paths.join(workdir, "metrics.jsonl"))
    leader = parallel.is_leader()
    bar = console.Progress(config.train.epochs, initial=checkpointer.latest_epoch() or 0, enabled=progress and leader)
    scalars = ScalarLog(workdir, resumed_epoch=checkpointer.latest_epoch() or 0)

    def on_epoch(record: dict) -> None:
        if not leader:
            return
        for line in record.get("members", [record]):
            metrics_log.append(line)
            scalars.epoch(line)
        bar.update(sweep_lib.progress_record(record) if members else record)

    try:
        with preemption.stop_on_signals() as stop:
            result = fit(state, splits.train, splits.validation, epochs=config.train.epochs,
                         batch_size=config.train.batch_size, patience=config.train.patience,
                         eval_batch_size=config.eval.batch_size, mesh=mesh, checkpointer=checkpointer,
                         checkpoint_meta={"config": json.loads(config.to_json())}, on_epoch=on_epoch,
                         nan_policy=config.train.get("nan_policy", "halt"),
                         max_consecutive_nonfinite=config.train.get("max_consecutive_nonfinite", 20),
                         stop_requested=stop, members=len(members),
                         chunk_steps=config.data.get("chunk_steps", 0),
                         steps_per_call=calls.check_steps_per_call("config.train.steps_per_call",
                                                                   config.train.get("steps_per_call", calls.AUTO)),
                         quiet=not (progress and leader), metrics=tuple(config.eval.get("metrics", ())),
                         monitor=config.train.get("monitor", "val_loss"),
                         monitor_mode=config.train.get("monitor_mode", "auto"))
    finally:
        bar.close()
        scalars.close()
    return result, stop


def run_history(workdir: str, result: FitResult) -> list[dict]:
    """The metrics.jsonl records of the whole run. Only process 0 writes that file; another process
    (whose summary is never written) takes the records of this call's epochs instead of reading
    a file process 0 may still be writing."""
    if parallel.is_leader():
        return log.MetricsLog(paths.join(workdir, "metrics.jsonl")).read()
    return [line for record in result.history for line in record.get("members", [record])]


def summarize(config, workdir: str, splits: data_lib.Splits, result: FitResult, test: dict, *, mesh,
              total_seconds: float, member: int | None = None, history: list[dict] | None = None) -> dict:
    """The summary.json record of a finished run (of sweep member `member`, whose result is given);
    `history`: the metrics.jsonl records (default: read from the workdir)."""
    if history is None:
        history = log.MetricsLog(paths.join(workdir, "metrics.jsonl")).read()
    own = [r for r in history if r.get("member") == member]
    epoch_seconds = {r["epoch"]: r["seconds"] for r in history}  # a sweep logs each epoch once per member
    return {
        "experiment": config.get("experiment", ""),
        "workdir": workdir,
        "task": splits.info.task,
        "data": {"name": splits.info.name, **splits.sizes(), "pipeline": result.pipeline,
                 **({"wait_seconds": sum(result.data_wait_seconds)} if result.pipeline == "stream" else {})},
        "steps_per_call": result.steps_per_call,
        "model": config.model.name,
        "model_dtype": config.model.get("dtype", DEFAULT_DTYPE),
        "num_params": count_params(result.state.params),
        "test": test,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "resumed_from": result.resumed_from,
        "best_val_loss": min((r["val_loss"] for r in own), default=None),
        "train_seconds": sum(epoch_seconds.values()),
        "total_seconds": total_seconds,
        "params_sha256": params_sha256(result.state.params),
        "devices": parallel.describe_devices(mesh),
        "processes": parallel.describe_processes(),
        "jax_version": jax.__version__,
    }
