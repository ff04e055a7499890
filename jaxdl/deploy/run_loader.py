"""`load_run`: a finished workdir in, a `Predictor` of new inputs out.

A workdir written by `jaxdl.run.pipeline.train_and_evaluate` describes itself: config.json (the
model and optimizer), data_info.json (the `DataInfo` and how the source stores one input),
preprocessing.json (a table's training statistics) and checkpoints/ (the whole `FitState`).
`load_run` rebuilds the train state the run started from, restores the newest checkpoint into it
(SHA-256 checked), keeps the model the run kept (`final_state` with the run's patience; for a
sweep, the best member) and checks it against summary.json's `params_sha256`.

Inputs are taken as the data source stores them, and turned into the model's inputs inside the
compiled function (`model_input`), exactly as `jaxdl.data.load` did in training:
  - images (`stored.kind` "image" or "folder"): uint8 pixels 0..255 (N, height, width, channels),
    scaled by 1/255;
  - a `csv:` table ("table"): (N, F) float32 rows as the prepared dataset holds them: numeric
    columns raw (NaN where missing), categorical columns one-hot (`encode_table` makes them from
    CSV cells); each numeric column is standardised with the training split's mean and std, a
    missing value becomes 0;
  - anything else ("array", "text" byte tokens, data an experiment built): float32 as stored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxdl import paths
from jaxdl.data import DataInfo
from jaxdl.data import table as table_lib
from jaxdl.deploy import run_model
from jaxdl.deploy.input_check import check_inputs, stored_dtype
from jaxdl.errors import InputError
from jaxdl.report import run_schema
from jaxdl.train.build import build_state
from jaxdl.train.checkpoint import CheckpointReader, CorruptCheckpoint, NoCompleteCheckpoint
from jaxdl.train.digest import leaf_specs, params_sha256
from jaxdl.train.fit import final_state, init_fit_state
from jaxdl.train.sweep import members_of, take_member

WHERE = "--workdir"
# Larger inputs run in chunks of this many rows; smaller ones are padded to a power of two, so at
# most log2(MAX_BUCKET) + 1 batch shapes are ever compiled.
MAX_BUCKET = 1024
# uint8 pixel -> float32, exactly as `jaxdl.data.loader.to_arrays` scales them.
PIXELS = np.arange(256, dtype=np.uint8).astype(np.float32) / 255.0


def read_json(path: str, what: str) -> Any:
    """Workdir file `what` at `path`, read and checked through the run door (`jaxdl.deploy.run_schema`)."""
    return run_schema.read_file(path, what)


def as_tuples(value: Any) -> Any:
    """JSON lists back to the tuples the config held (model sizes, kernel shapes)."""
    if isinstance(value, dict):
        return {key: as_tuples(item) for key, item in value.items()}
    if isinstance(value, list):
        return tuple(as_tuples(item) for item in value)
    return value


def config_dict(record: dict) -> ml_collections.ConfigDict:
    """config.json's record (checked by the run door) as the ConfigDict the run held; an InputError
    naming the first key a ConfigDict cannot hold (one with a dot, or one of its own dunder names)."""
    try:
        return ml_collections.ConfigDict(as_tuples(record))
    except (ValueError, AttributeError) as error:
        path = unholdable_key(record)
        what = f"{path}: not a config key" if path else f"not a config ({str(error).splitlines()[0]})"
        raise InputError(WHERE, f"config.json: {what}", expected="keys as jaxdl writes them: no dots, no __names__") \
            from None


def unholdable_key(value: Any, prefix: str = "") -> str | None:
    """The dotted path of the first key under `value` that a ConfigDict refuses, or None."""
    if not isinstance(value, dict):
        return None
    for key, item in value.items():
        if "." in key or (key.startswith("__") and key.endswith("__")):
            return f"{prefix}{key!r}"
        found = unholdable_key(item, f"{prefix}{key}.")
        if found:
            return found
    return None


@dataclasses.dataclass(frozen=True)
class RunFiles:
    """What a finished workdir holds, read and checked (no arrays yet)."""

    workdir: str
    config: ml_collections.ConfigDict
    summary: dict
    info: DataInfo
    preprocessing: dict
    sizes: dict


def read_run(workdir: str, *, allow_training: bool = False) -> RunFiles:
    """Reads config.json, summary.json, data_info.json and preprocessing.json of a finished run (of a
    run still training with `allow_training`: its summary is then {} until summary.json is written)."""
    folder = paths.as_path(workdir, expanduser=True)
    workdir = os.fspath(folder)
    if not folder.is_dir():
        raise InputError(WHERE, "no such folder", got=workdir, expected="the workdir of a finished run")
    if not folder.joinpath("config.json").is_file():
        raise InputError(WHERE, "not a run folder (no config.json)", got=workdir,
                         expected="the workdir of a finished run")
    if not folder.joinpath("summary.json").is_file() and not (allow_training and
                                                              folder.joinpath("data_info.json").is_file()):
        raise still_training(workdir)  # (data_info.json is written just after config.json when a run starts)
    if not folder.joinpath("data_info.json").is_file():
        summary = read_json(paths.join(workdir, "summary.json"), "summary.json")
        if "drift_reference" in summary:  # a field this version writes: the file went missing, not a version
            raise InputError(WHERE, "the run has no data_info.json, which its training wrote beside summary.json",
                             got=workdir, expected="the workdir as the run left it",
                             hint="restore data_info.json, or train the run again")
        raise InputError(WHERE, "the run has no data_info.json (written by an older jaxdl)", got=workdir,
                         expected="a run trained with this version", hint="train the run again")
    config = config_dict(read_json(paths.join(workdir, "config.json"), "config.json"))
    summary = (read_json(paths.join(workdir, "summary.json"), "summary.json")
               if folder.joinpath("summary.json").is_file() else {})
    record = read_json(paths.join(workdir, "data_info.json"), "data_info.json")
    preprocessing_path = paths.join(workdir, "preprocessing.json")
    preprocessing = (read_json(preprocessing_path, "preprocessing.json")
                     if paths.as_path(preprocessing_path).is_file() else {})
    run_schema.check_run(config, summary, record, preprocessing)
    info = DataInfo(name=record["name"], task=record["task"], input_shape=tuple(record["input_shape"]),
                    num_classes=record["num_classes"], target_shape=tuple(record["target_shape"]),
                    class_names=tuple(record["class_names"]), preprocessing=preprocessing,
                    stored=record["stored"])
    return RunFiles(workdir=workdir, config=config, summary=summary, info=info, preprocessing=preprocessing,
                    sizes=record["sizes"])


TRAINING_HINT = ("summary.json is written when it finishes; a stopped run goes on with its own command; "
                 "jaxdl.load_run(workdir, allow_training=True) reads the newest complete checkpoint")


def still_training(workdir: str, epoch: int | None = None) -> InputError:
    """The one-line error for a run whose training has not finished: with its newest complete
    checkpoint's `epoch` (found when not given), or saying that none is complete yet."""
    if epoch is None:
        epochs = CheckpointReader(paths.join(workdir, "checkpoints")).epochs()
        epoch = epochs[-1] if epochs else None
    state = f"its newest complete checkpoint is epoch {epoch}" if epoch is not None else "no checkpoint is complete yet"
    return InputError(WHERE, f"the run is training (or was stopped before it finished): {state}", got=workdir,
                      expected="the workdir of a finished run", hint=TRAINING_HINT)


def newer_than_summary(run: RunFiles, reader: CheckpointReader, epoch: int) -> bool:
    """Whether checkpoint `epoch` was saved after the run wrote summary.json (it trains again, resumed).

    A finished run's last checkpoint is its last epoch: `epochs_run` (a sweep's: its members' longest).
    A summary without `epochs_run` is compared by time: a finished run writes summary.json after its
    last checkpoint.
    """
    counts = [run.summary.get("epochs_run")] + [m.get("epochs_run") for m in run.summary.get("members", [])]
    counts = [count for count in counts if isinstance(count, int)]
    if counts:
        return epoch > max(counts)
    try:
        written = os.stat(paths.join(reader.path(epoch), "meta", "metadata")).st_mtime_ns
        summarized = os.stat(paths.join(run.workdir, "summary.json")).st_mtime_ns
    except OSError:  # deleted meanwhile by a training run's `keep` (or on a bucket, which os.stat cannot see)
        return True
    return written > summarized


def restore_kept_state(run: RunFiles, model=None, *, allow_training: bool = False):
    """(kept TrainState, checkpoint epoch, sweep member or None, the kept model's epoch) of a finished run.

    `model`: the run's own Flax module when config.json cannot rebuild it (see `jaxdl.deploy.run_model`).
    Reads the run's checkpoints with a `CheckpointReader` (read-only: a run still training on the
    same workdir is not disturbed), the newest complete one. A checkpoint whose optimizer state is
    not the one config.json describes (an own optimizer, transfer phases) is read by its model arrays
    alone. The kept model must be the one summary.json describes (`params_sha256`); when the
    checkpoint is newer than summary.json (the run is training again) or there is no summary.json
    yet, the run is still training: InputError saying so, or with `allow_training` that checkpoint's
    kept model (a sweep's needs summary.json's best member: InputError until the sweep has finished).
    """
    directory = paths.join(run.workdir, "checkpoints")
    reader = CheckpointReader(directory)
    training = not run.summary  # read_run gives {} only with allow_training, when there is no summary.json
    epochs = reader.epochs()
    if not epochs:
        if training or reader.unfinished():
            raise still_training(run.workdir)
        raise NoCompleteCheckpoint(directory, [])  # "the run has no checkpoint"
    config = run.config
    members = members_of(config)
    if members and training:
        raise InputError(WHERE, "a sweep has no best member before it finishes", got=run.workdir,
                         expected="the workdir of a finished sweep", hint=TRAINING_HINT.split("; ", maxsplit=1)[0])
    steps_per_epoch = max(run.sizes["train"] // config.train.batch_size, 1)
    model, source = run_model.model_of_run(config, run.info, model)
    state = build_state(config, run.info, steps_per_epoch, model, members=members)
    template = jax.vmap(init_fit_state)(state) if members else init_fit_state(state)
    whole, epoch = True, epochs[-1]
    with contextlib.suppress(CorruptCheckpoint):  # a corrupted one is reported by `read_newest` below
        saved = reader.read_meta(epoch).get("state_leaves")
        whole = run_model.restore_whole(saved, leaf_specs(template), reader.path(epoch), source)
    fit_state = None
    if whole:
        try:
            fit_state, _, epoch = reader.read_newest(template)
        except NoCompleteCheckpoint as error:  # a finished run has one: someone deleted them while we read
            raise still_training(run.workdir) if training else error from error
        except CorruptCheckpoint as error:
            raise InputError(WHERE, f"its newest checkpoint {error.path} cannot be used: checkpoint is corrupted",
                             got=error.reason, expected="the checkpoint as the run wrote it",
                             hint="the run's files were changed after training; restore them or train again") \
                from error
        except InputError as error:  # a differently shaped state
            raise InputError(WHERE, f"its newest checkpoint {error.where} cannot be used: {error.what}",
                             got=error.got, expected="the checkpoint as the run wrote it",
                             hint="the run's files were changed after training; restore them or train again") \
                from error
    member = int(run.summary["best_member"]) if members else None
    if fit_state is None:  # another optimizer state than config.json's: the model's arrays alone
        kept = run_model.restore_model_only(directory, epoch, state, bool(members))
        kept_epoch = run_model.kept_epoch(run.summary, config.train.patience)
    else:
        kept = final_state(fit_state, config.train.patience)
        if members:
            kept, fit_state = take_member(kept, member), take_member(fit_state, member)
        kept_epoch = run_model.kept_epoch(run.summary, config.train.patience, int(fit_state.early.best_epoch),
                                          int(fit_state.epoch))
    expected = run.summary.get("params_sha256")
    if expected is not None and params_sha256(kept.params) != expected:
        if newer_than_summary(run, reader, epoch):
            if not allow_training:
                raise still_training(run.workdir, epoch)
            return kept, epoch, member, kept_epoch
        raise InputError(WHERE, "the restored model differs from the one summary.json describes",
                         got=f"params_sha256 {params_sha256(kept.params)[:12]}...",
                         expected=f"{expected[:12]}...",
                         hint="the run's files were changed after training; restore them or train again")
    return kept, epoch, member, kept_epoch


def table_statistics(preprocessing: dict, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, 1 / std), each (F,) float32: the training statistics of a table's numeric inputs; 0 and 1
    for one-hot inputs, which standardising then leaves as they are."""
    mean, scale = np.zeros(width, np.float32), np.ones(width, np.float32)
    for column in preprocessing["columns"]:
        if column["kind"] == "numeric":
            start = column["inputs"][0]
            mean[start], scale[start] = np.float32(column["mean"]), table_lib.inverse_std(column["std"])
    return mean, scale


def model_input(x: jax.Array, info: DataInfo) -> jax.Array:
    """Stored inputs (N, *input_shape) -> the float32 inputs the model was trained on (see the module
    docstring); the same operations, in the same order, as `jaxdl.data.load` did in numpy."""
    stored = info.stored
    if stored.get("dtype") == "uint8":
        # A lookup, not `/ 255`: XLA divides by multiplying with the reciprocal, which is 1 ulp off
        # numpy's division for some pixel values; the table holds numpy's own quotients.
        return jnp.asarray(PIXELS)[x.astype(jnp.int32)]
    x = x.astype(jnp.float32)
    if stored.get("kind") == "table":
        mean, scale = table_statistics(info.preprocessing, info.input_shape[0])
        x = (x - mean[None]) * scale[None]  # (N, F) rows, (F,) statistics
        return jnp.where(jnp.isfinite(x), x, 0.0)
    return x


def inference_function(apply_fn: Callable, info: DataInfo) -> Callable[[Any, jax.Array], jax.Array]:
    """(variables, stored inputs (N, *input_shape)) -> class probabilities (N, K) float32 for
    classification, outputs (N, *target_shape) for regression."""
    def infer(variables, x):
        outputs = apply_fn(variables, model_input(x, info), train=False)
        if info.task == "classification":
            return jax.nn.softmax(outputs.astype(jnp.float32), axis=-1)
        target = info.target_shape or (1,)
        if math.prod(outputs.shape[1:]) == math.prod(target):
            return outputs.reshape((outputs.shape[0], *target))
        return outputs
    return infer


def bucket(n: int) -> int:
    """The batch size `n` rows run at: the next power of two, at most MAX_BUCKET."""
    return min(1 << max(n - 1, 0).bit_length(), MAX_BUCKET)


class Predictor:
    """The model a finished run kept, on new inputs in the form the dataset stores them.

    `predictor(x)` with x (N >= 1, *info.input_shape) -> class probabilities (N, K) float32
    (classification) or outputs (N, *target_shape) (regression). See the module docstring for the
    stored forms, and `jaxdl.deploy.input_check.check_inputs` for what is refused (InputError).
    Attributes: `info`, `class_names`, `workdir`, `epoch` (of the checkpoint), `kept_epoch` (the
    epoch of the model that answers: the best one when early stopping kept it), `model_description`
    (that model in words: "epoch 19 (best of 39)", a sweep's member, a transfer run's strategy),
    `member` (a sweep's best member, else None), `variables` (the Flax variables), `apply_fn`,
    `batched` ((variables, stored inputs) -> outputs, jitted: what `predictor(x)` runs), `jitted`
    (stored inputs -> outputs, the parameters constants; what `jaxdl.export` writes),
    `compiled_batch_sizes` (the batch sizes compiled so far: powers of two up to MAX_BUCKET).
    """

    def __init__(self, run: RunFiles, state, epoch: int, member: int | None, kept_epoch: int | None = None):
        self.info, self.workdir, self.epoch, self.member = run.info, run.workdir, epoch, member
        self.kept_epoch = epoch if kept_epoch is None else kept_epoch
        last = int(run.summary.get("epochs_run") or epoch)  # the kept model's own run (a sweep member's)
        self.model_description = run_model.describe_kept(run.config, run.summary, self.kept_epoch, last, member)
        self.config, self.summary = run.config, run.summary
        self.class_names = run.info.class_names
        self.variables = state.variables()
        self.apply_fn = state.apply_fn
        self.function = inference_function(state.apply_fn, run.info)
        # The parameters are arguments of the compiled program, so every batch size compiled shares one
        # copy of them (as constants, each compiled size held its own: +100 MB for a 16.6 MB model
        # compiled at 7 sizes). `jitted` (what `jaxdl.deploy.export` writes) holds them as constants
        # behind an optimization barrier: XLA cannot fold them (batch norm's scale) into other
        # constants, so it computes what the argument form computes, and both give the same bits.
        self.batched = jax.jit(self.function)
        self.jitted = jax.jit(lambda x: self.function(jax.lax.optimization_barrier(self.variables), x))
        self.preprocess_jitted = jax.jit(lambda x: model_input(x, self.info))  # once, not per call
        self.compiled_batch_sizes: set[int] = set()

    @property
    def stored_dtype(self) -> np.dtype:
        return stored_dtype(self.info)

    def check(self, x: Any) -> np.ndarray:
        """x as a numpy array of the stored dtype; InputError for a wrong shape or values (the input
        door, `jaxdl.deploy.input_check.check_inputs`; a table run also takes rows of CSV cells)."""
        if self.info.stored.get("kind") == "table" and np.asarray(x).dtype.kind in "USO":
            names = [c["name"] for c in self.info.preprocessing["columns"]]
            if np.ndim(x) != 2 or np.shape(x)[1] != len(names):
                raise InputError("x", "wrong input shape", got=np.shape(x),
                                 expected=f"(N, {len(names)}) cells of the columns " + ", ".join(names))
            x = encode_table(self.info.preprocessing, [c["name"] for c in self.info.preprocessing["columns"]],
                             np.asarray(x, dtype=object).tolist())
        return check_inputs(x, self.info)

    def preprocess(self, x: Any) -> np.ndarray:
        """The model's float32 inputs (N, *input_shape) for stored inputs x (what training fed the model)."""
        return np.asarray(self.preprocess_jitted(self.check(x)))

    def __call__(self, x: Any) -> np.ndarray:
        x = self.check(x)
        n = len(x)
        parts = []
        for start in range(0, n, MAX_BUCKET):  # n >= 1 (check_inputs)
            chunk = x[start:start + MAX_BUCKET]
            size = bucket(len(chunk))
            padded = np.concatenate([chunk, np.zeros((size - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            self.compiled_batch_sizes.add(size)
            parts.append(np.asarray(self.batched(self.variables, padded))[:len(chunk)])
        return np.concatenate(parts)


def encode_table(preprocessing: dict, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> np.ndarray:
    """CSV cells -> (N, F) float32 rows as a `csv:` run's prepared dataset holds them.

    `header` names the cells of each row; every feature column of the run must be there (other
    columns, such as the label, are ignored). Numeric columns: numbers, NaN where missing;
    categorical ones: one-hot over the run's categories, all zero where missing or unseen.
    """
    columns = preprocessing["columns"]
    width = columns[-1]["inputs"][1]
    header = [str(name).strip() for name in header]
    out = np.zeros((len(rows), width), np.float32)
    for column in columns:
        if column["name"] not in header:
            raise InputError("inputs", f"the CSV has no column {column['name']!r}",
                             got=", ".join(header[:10]), expected="the feature columns the run was trained on")
        index = header.index(column["name"])
        start = column["inputs"][0]
        for row, cells in enumerate(rows):
            cell = cells[index]
            text = "" if cell is None else str(cell).strip()
            if column["kind"] == "numeric":
                if table_lib.is_missing(text):
                    out[row, start] = np.nan
                    continue
                number = table_lib.as_number(text)
                if number is None:
                    raise InputError("inputs", f"row {row + 1}, column {column['name']!r}: not a number",
                                     got=text, expected="a number or a missing cell")
                out[row, start] = number
            elif not table_lib.is_missing(text) and text in column["categories"]:
                out[row, start + column["categories"].index(text)] = 1.0
    return out


def load_run(workdir: str, model=None, *, allow_training: bool = False) -> Predictor:
    """The `Predictor` of the finished run in `workdir` (see the module docstring).

    A sweep's workdir gives its best member (summary.json's `best_member`); a transfer run's, the
    model its summary.json names in `kept_model`. `model`: the run's own Flax module, for a run trained
    with one that config.json's `model_source` cannot rebuild (defined in `__main__`, fields JSON
    cannot hold); `load_run` says so when it is needed. Raises InputError for a folder without a
    finished run, a run without checkpoint, and a checkpoint that fails its SHA-256 integrity check or
    differs from summary.json's `params_sha256`.

    Reading never disturbs a run that is training on the same workdir (nothing is created, cleaned,
    deleted or locked). Such a run is not finished: by default InputError says so in one line ("the
    run is training (or was stopped before it finished): its newest complete checkpoint is epoch
    N", or "no checkpoint is complete yet"). With `allow_training=True` the Predictor is the model
    of the newest complete checkpoint instead (what the run would keep if it stopped there: the best
    model so far with early stopping), `predictor.epoch` its epoch, `predictor.summary` {} until
    the run has finished (not for a sweep, whose best member is chosen when it finishes).
    """
    run = read_run(workdir, allow_training=allow_training)
    state, epoch, member, kept_epoch = restore_kept_state(run, model, allow_training=allow_training)
    return Predictor(run, state, epoch, member, kept_epoch)


__all__ = ["Predictor", "encode_table", "load_run", "model_input", "read_run"]
