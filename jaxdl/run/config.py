"""Config files, command-line overrides, and the checks every experiment shares.

A config file is a Python file with `get_config(arg=None) -> ml_collections.ConfigDict`. It is
named as `path/to/file.py` or `path/to/file.py:ARG`, where ARG selects a variant. Overrides come
as `--config.a.b=value` and are parsed against the type of the value they replace.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import math
import os
from typing import Any

import ml_collections

from jaxdl.data import loader as data_loader
from jaxdl.data.stream import PIPELINES
from jaxdl.errors import InputError, check_choice, check_range, did_you_mean
from jaxdl.models.augment import AUGMENT_DEFAULTS
from jaxdl.models.dtypes import DEFAULT as DEFAULT_DTYPE
from jaxdl.models.dtypes import DTYPES
from jaxdl.train import calls, nonfinite, sweep

# Flags that take no value.
BARE_FLAGS = ("debug", "quiet", "help")

# Keys a resumed run may change: how long to train and when to stop, how to evaluate and
# checkpoint, where the data lives and how it is fed (both pipelines give the same bits). Everything
# else must match the checkpoint's config. train.epochs may change only under a schedule that does
# not decay over the run (`jaxdl.run.pipeline.check_epochs_keep_schedule`).
RESUMABLE_KEYS = ("train.epochs", "train.patience", "train.nan_policy", "train.max_consecutive_nonfinite",
                  "train.steps_per_call",
                  "eval.*", "checkpoint.*", "data.data_dir", "data.download", "data.pipeline", "data.memory_budget_mb",
                  "data.chunk_steps")
# Keys added to the configs after runs were saved without them, with the value such a run had
# implicitly: a config (saved or given) that lacks one reads as having this value when resuming.
IMPLIED_KEYS = {"model.dtype": DEFAULT_DTYPE, "train.monitor": "val_loss", "train.monitor_mode": "auto",
                "sweep.seeds": 1, "sweep.learning_rate": [], "sweep.weight_decay": [], "model.summary_only": False,
                "train.accumulate_steps": 1, "train.ema": 0.0, "train.lr_find": False,
                **{f"train.augment.{key}": value for key, value in AUGMENT_DEFAULTS.items()}}
# Tuple keys whose items are words: `--config.eval.metrics=f1_macro,roc_auc` needs no quotes or brackets.
WORD_TUPLE_KEYS = ("eval.metrics",)
# The config files that come with jaxdl: the repository's configs/ folder, installed beside the package.
CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")


def packaged_configs() -> dict[str, str]:
    """{experiment name: path} of the config files that come with jaxdl (configs/*.py beside the package)."""
    if not os.path.isdir(CONFIGS):
        return {}
    return {name[:-3]: os.path.join(CONFIGS, name) for name in sorted(os.listdir(CONFIGS))
            if name.endswith(".py") and not name.startswith("_")}


def resolve_config(spec: str) -> tuple[str, str]:
    """`spec` -> (path of the config file, variant).

    `spec` is `PATH.py[:VARIANT]` or `NAME[:VARIANT]`. A path that exists is used as it is; a
    relative `configs/NAME.py` or `NAME.py` that does not exist here, or a bare `NAME`, is the
    config file of that name that comes with jaxdl (so `--config mlp:tiny` works from any folder).
    """
    path, _, arg = spec.partition(":")
    if os.path.isfile(path):
        return path, arg
    tried = [path]
    normal = os.path.normpath(path)
    if not os.path.isabs(path) and os.path.dirname(normal) in ("", "configs"):
        name = os.path.basename(normal)
        name = name[:-3] if name.endswith(".py") else name
        packaged = packaged_configs()
        if name in packaged:
            return packaged[name], arg
        tried.append(os.path.join(CONFIGS, f"{name}.py"))
        suggestion = did_you_mean(name, packaged)
        if suggestion and normal.endswith(".py"):  # in the form given: configs/mpl.py -> configs/mlp.py
            suggestion = os.path.join(os.path.dirname(normal), f"{suggestion}.py")
        mean = f"did you mean {suggestion!r}?" if suggestion else None
    else:
        folder = os.path.dirname(path) or "."
        siblings = [f for f in os.listdir(folder) if f.endswith(".py")] if os.path.isdir(folder) else []
        suggestion = did_you_mean(os.path.basename(path), siblings)
        mean = f"did you mean {os.path.join(folder, suggestion)!r}?" if suggestion else None
    raise InputError("--config", "no such config file", got=path,
                     expected="FILE.py[:VARIANT], or an experiment's config by name NAME[:VARIANT] of "
                              + ", ".join(packaged_configs()),
                     hint="; ".join(filter(None, ["tried " + " and ".join(tried), mean])))


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Loads `path.py[:ARG]` (or a packaged config by name, see `resolve_config`) and returns its
    locked ConfigDict."""
    path, arg = resolve_config(spec)
    module_spec = importlib.util.spec_from_file_location(f"_jaxdl_config_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 (a config file is user input: any failure in it is bad input)
        raise InputError("--config", f"cannot load the config file ({type(e).__name__}: {e})", got=path) from e
    if not hasattr(module, "get_config"):
        raise InputError("--config", "config file has no get_config() function", got=path)
    try:
        config = module.get_config(arg) if arg else module.get_config()
    except InputError:
        raise
    except (KeyError, ValueError) as e:
        raise InputError("--config", "unknown config variant", got=arg, hint=str(e)) from e
    except Exception as e:  # noqa: BLE001
        raise InputError("--config", f"get_config() failed ({type(e).__name__}: {e})", got=spec) from e
    if not isinstance(config, ml_collections.ConfigDict):
        raise InputError("--config", "get_config() must return an ml_collections.ConfigDict",
                         got=type(config).__name__)
    config.lock()
    return config


def parse_value(text: str, current: Any, where: str) -> Any:
    """Parses command-line `text` into the type of the `current` value it replaces."""
    if isinstance(current, bool):
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise InputError(where, "wrong type", got=text, expected="true or false")
    if isinstance(current, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(current, (tuple, list)):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = (value,)
        if isinstance(value, list):
            value = tuple(value)
        for item in value if isinstance(value, tuple) else ():
            check_finite_number(where, item, text)
        if not isinstance(value, tuple):
            raise InputError(where, "wrong type", got=text, expected="a tuple such as (64,64) or ()")
        return value
    if current is not None and not isinstance(value, type(current)):
        raise InputError(where, "wrong type", got=text, expected=type(current).__name__)
    check_finite_number(where, value, text)
    return value


def check_finite_number(where: str, value: Any, text: str) -> None:
    """A number given on the command line is finite (1e999 reads as inf) and an int fits in int64."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(where, "not a finite number", got=text, expected="a finite number")
    if isinstance(value, int) and not isinstance(value, bool) and not -2**63 <= value < 2**63:
        raise InputError(where, "too large an integer", got=text[:40], expected="an integer of at most 19 digits")


def apply_override(config: ml_collections.ConfigDict, key: str, text: str) -> None:
    """Sets `config.<key>` (dotted) from command-line text; unknown keys get a "did you mean"."""
    where = f"--config.{key}"
    node = config
    parts = key.split(".")
    for depth, part in enumerate(parts):
        keys = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
        if part not in keys:
            raise InputError(where, "unknown config key", got=key, hint=suggest_key(config, parts, depth))
        if depth < len(parts) - 1:
            node = node[part]
    current = node[parts[-1]]
    if isinstance(current, ml_collections.ConfigDict):
        raise InputError(where, "is a section, not a value", got=key,
                         expected="a key inside it, e.g. " + f"--config.{key}.{next(iter(current.keys()), '')}")
    if key in WORD_TUPLE_KEYS and not text.lstrip().startswith(("(", "[", "'", '"')):
        text = repr(tuple(word.strip() for word in text.split(",") if word.strip()))
    with node.unlocked():
        node[parts[-1]] = parse_value(text, current, where)


def close_key(name: str, keys: list[str]) -> str | None:
    """The key of `keys` that a misspelled or abbreviated `name` means, or None: a close spelling
    (`learnig_rate`), the initials of its words (`lr`: learning_rate, `bs`: batch_size), or the one
    key it begins (`learn`)."""
    found = did_you_mean(name, keys)
    if found:
        return found
    lowered = name.lower()
    for candidates in ([k for k in keys if "_" in k and "".join(w[:1] for w in k.split("_")) == lowered],
                       [k for k in keys if len(lowered) >= 3 and k.startswith(lowered)]):
        if len(candidates) == 1:
            return candidates[0]
    return None


def suggest_key(config: ml_collections.ConfigDict, parts: list[str], depth: int) -> str | None:
    """"did you mean --config.KEY?" for the unknown `parts[depth]`, from the same section only: a
    misspelled key among its section's keys, a misspelled section among the sections that hold the
    rest of the key. A key given without its section (`epochs`) is found by its name."""
    node = config
    for part in parts[:depth]:
        node = node[part]
    here, last = parts[depth], depth == len(parts) - 1
    if last:
        fixed = close_key(here, [k for k in node.keys() if not isinstance(node[k], ml_collections.ConfigDict)])
    else:
        rest = ".".join(parts[depth + 1:])
        sections = [k for k in node.keys() if isinstance(node[k], ml_collections.ConfigDict)
                    and rest in flatten(node[k].to_dict())]
        fixed = close_key(here, sections)
    if fixed:
        return f"did you mean --config.{'.'.join([*parts[:depth], fixed, *parts[depth + 1:]])}?"
    if len(parts) == 1:  # a key given without its section: --config.epochs
        by_name = {name.rsplit(".", 1)[-1]: name for name in flatten(config.to_dict())}
        close = close_key(here, list(by_name))
        if close:
            return f"did you mean --config.{by_name[close]}?"
    if not last:
        sections = [k for k in node.keys() if isinstance(node[k], ml_collections.ConfigDict)]
        return "sections here: " + (", ".join(sections) or "none")
    return None


def split_overrides(argv: list[str]) -> tuple[dict[str, str | None], dict[str, str]]:
    """Splits argv into plain flags {name: value} and config overrides {key: text}.

    Accepts `--flag=value`, `--flag value`, and the bare flags `--debug`, `--quiet`, `--help`.
    """
    flags: dict[str, str | None] = {}
    overrides: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise InputError("command line", "unexpected argument", got=arg,
                             expected="--config, --config.KEY=VALUE, --workdir, --debug or --quiet")
        name, eq, value = arg[2:].partition("=")
        bare = not eq and name in BARE_FLAGS
        if not eq and not bare:
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise InputError(f"--{name}", "missing value")
            value = argv[i + 1]
            i += 1
        if name.startswith("config."):
            overrides[name[len("config."):]] = value
        else:
            flags[name] = None if bare else value
        i += 1
    return flags, overrides


def check_common(config: ml_collections.ConfigDict) -> None:
    """Checks the keys every experiment shares (DESIGN.md), before anything is compiled."""
    check_range("config.seed", config.seed, low=0, integer=True)
    check_range("config.train.epochs", config.train.epochs, low=1, integer=True)
    check_range("config.train.batch_size", config.train.batch_size, low=1, integer=True)
    check_range("config.train.patience", config.train.patience, low=0, integer=True)
    check_range("config.optimizer.learning_rate", config.optimizer.learning_rate,
                low=0, low_inclusive=False, high=10)
    if "eval" in config:
        check_range("config.eval.batch_size", config.eval.batch_size, low=1, integer=True)
    if "validation_fraction" in config.data:
        check_range("config.data.validation_fraction", config.data.validation_fraction,
                    low=0, high=1, low_inclusive=False, high_inclusive=False)
    if "task" in config.data:
        check_choice("config.data.task", config.data.task, ("auto", "classification", "regression"))
    if "model" in config:
        check_choice("config.model.dtype", config.model.get("dtype", DEFAULT_DTYPE), DTYPES)
    check_choice("config.data.pipeline", config.data.get("pipeline", "memory"), PIPELINES)
    check_range("config.data.memory_budget_mb", config.data.get("memory_budget_mb", 1024.0), low=0)
    check_range("config.data.chunk_steps", config.data.get("chunk_steps", 0), low=0, integer=True)
    check_choice("config.train.nan_policy", config.train.get("nan_policy", "halt"), nonfinite.POLICIES)
    check_range("config.train.max_consecutive_nonfinite", config.train.get("max_consecutive_nonfinite", 20),
                low=1, integer=True)
    calls.check_steps_per_call("config.train.steps_per_call", config.train.get("steps_per_call", calls.AUTO))
    check_range("config.train.ema", config.train.get("ema", 0.0), low=0, high=1, high_inclusive=False)
    accumulate = check_range("config.train.accumulate_steps", config.train.get("accumulate_steps", 1), low=1,
                             integer=True)
    if config.train.batch_size % accumulate:
        raise InputError("config.train.accumulate_steps", "does not divide train.batch_size", got=accumulate,
                         expected=f"a divisor of {config.train.batch_size}")


def add_training_sections(config: ml_collections.ConfigDict, *, epochs: int, batch_size: int, patience: int = 0,
                          eval_batch_size: int = 1024) -> ml_collections.ConfigDict:
    """Adds the `train`, `eval`, `checkpoint` and `sweep` sections every experiment shares; returns `config`.

    train.epochs: the most epochs to train.
    train.batch_size: the global training batch (a multiple of the device count).
    train.patience: epochs without a better validation loss before stopping (0: off, keep the last model).
    train.nan_policy: "halt" (stop at a NaN or infinite loss or gradient) or "skip" (drop that update).
    train.max_consecutive_nonfinite: under "skip", stop after this many non-finite steps in a row.
    train.steps_per_call: training steps per compiled call: "auto" (time the candidates on the run's
    first steps, keep the fastest), "epoch" (the whole epoch as one loop), or a number K as a string
    ("1": one jitted step per call). The same bits whatever it is (`jaxdl.train.calls`).
    train.monitor: what early stopping and the best epoch (and best sweep member) follow: val_loss,
    val_accuracy, val_mse, or val_ + a score (val_f1_macro, val_roc_auc, val_r2, ...).
    train.monitor_mode: auto (lower is better for loss, mse and mae, higher for the rest) | min | max.
    train.accumulate_steps: gradient accumulation: each optimizer step sums the gradients of this many
    micro-batches of batch_size / accumulate_steps examples (the result of one step on the whole
    batch, in a fraction of its activation memory; docs/knobs.md).
    train.ema: decay of a moving average of the weights (0 = off, e.g. 0.999): validation, the kept
    model and predict/serve/export use the average (jaxdl.train.ema).
    train.lr_find: run the learning-rate range test first and train at the rate it suggests
    (jaxdl.train.lr_find; docs/lr_find.md).
    eval.batch_size: evaluation batch (rounded to the device count, capped at the split size).
    eval.metrics: scores computed with scikit-learn on validation (each epoch) and test, e.g.
    f1_macro,roc_auc: f1_macro, f1_micro, precision, recall, roc_auc, average_precision (classification),
    r2, mae (regression).
    eval.questions: which of the questions before trusting a network the run answers (docs/questions.md):
    "all", "none", or names joined by commas: simpler_methods, why, good_enough, data, compute.
    eval.learning_curve: also train on 10, 25, 50% of train (a few seeds each) to say whether more data would help.
    checkpoint.every_epochs: save every this many epochs (0: by time only).
    checkpoint.every_seconds: save when this many seconds passed since the last save (0: off).
    checkpoint.keep: how many of the latest checkpoints to keep (each holds the best model too).

    The `sweep` section is `jaxdl.train.sweep.default_config()`: one member (no sweep) until a field is set.
    """
    config.train = ml_collections.ConfigDict({
        "epochs": epochs, "batch_size": batch_size, "patience": patience,
        "nan_policy": "halt", "max_consecutive_nonfinite": 20, "steps_per_call": "auto",
        "monitor": "val_loss", "monitor_mode": "auto",
        "accumulate_steps": 1, "ema": 0.0, "lr_find": False,
    })
    config.eval = ml_collections.ConfigDict({"batch_size": eval_batch_size, "metrics": (), "questions": "all",
                                             "learning_curve": False})
    config.checkpoint = ml_collections.ConfigDict({"every_epochs": 0, "every_seconds": 30.0, "keep": 2})
    config.sweep = sweep.default_config()
    return config


def add_augment_keys(train: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Adds `train.augment` (image configs: cnn, resnet, transfer): augmentation of each training batch
    on device, in the compiled step (`jaxdl.models.augment.augmenter`); everything off by default.

    train.augment.crop_padding: random crop with padding: pad this many pixels on each side, crop back.
    train.augment.flip: mirror each image left-right with probability 1/2.
    train.augment.rotation: turn each image by up to this many degrees either way.
    train.augment.colour_jitter: scale brightness, contrast and saturation by up to this fraction.
    train.augment.mixup: mixup's Beta(alpha, alpha) parameter (0 = off, e.g. 0.2).
    train.augment.cutmix: cutmix's Beta(alpha, alpha) parameter (0 = off, e.g. 1.0); with mixup, each batch
    takes one of the two.
    """
    with train.unlocked():
        train.augment = ml_collections.ConfigDict(AUGMENT_DEFAULTS)
    return train


def add_data_section(config: ml_collections.ConfigDict, name: str = "digits",
                     sequence_length: int = 0) -> ml_collections.ConfigDict:
    """Adds the `data` section of experiments that read a TFDS set through `jaxdl.data.load`.

    data.name: a project builder (digits, adding, digit_sequences, ...), a TFDS catalog name, or the
    user's own files: folder:PATH, csv:PATH, npz:PATH (see jaxdl.data.sources).
    data.data_dir: "" = $TFDS_DATA_DIR or ~/tensorflow_datasets.
    data.validation_fraction: carved from train (seeded by data.split_seed) when the set has none.
    data.split_seed: the seed of that carve.
    data.download: prepare an unprepared catalog set (needs the network).
    data.sequence_length: 0 = the set's own; the length of a project sequence set, or the bytes
    kept of each text of a text set.
    data.label: the label column of a csv: table ("" = the last column).
    data.task: auto | classification | regression: how a csv: or npz: label is read ("auto": from
    its values; see jaxdl.data.table and jaxdl.data.arrays).
    data.image_size: (height, width) that the images of `folder:PATH` are resized to; () = their own
    size (which must then be the same for all).
    data.pipeline, data.memory_budget_mb, data.chunk_steps: see `add_pipeline_keys`.
    """
    config.data = ml_collections.ConfigDict({"name": name, **data_loader.DEFAULTS, "sequence_length": sequence_length})
    return add_pipeline_keys(config.data)


def add_pipeline_keys(data: ml_collections.ConfigDict, pipeline: str = "auto") -> ml_collections.ConfigDict:
    """Adds how the training split reaches the devices (see `jaxdl.data.stream`) to a data section.

    data.pipeline: memory (read whole into host memory as float32, put on the devices once: the
    fastest for small sets) | stream (read chunk by chunk from its ArrayRecord files, in its stored
    dtype, while the devices train: for sets larger than memory) | auto (memory when the training
    split, in its stored dtype, fits data.memory_budget_mb, else stream). Both give the same bits.
    Validation and test are held in memory either way.
    data.memory_budget_mb: the budget of auto.
    data.chunk_steps: stream: training steps per compiled chunk (0: chunks of about 16 MB of inputs).
    """
    with data.unlocked():
        data.pipeline = pipeline
        data.memory_budget_mb = 1024.0
        data.chunk_steps = 0
    return data


def add_optimizer_section(config: ml_collections.ConfigDict, *, learning_rate: float, name: str = "adam",
                          schedule: str = "constant", clip_norm: float = 0.0) -> ml_collections.ConfigDict:
    """Adds the `optimizer` section (see `jaxdl.train.optimizer.build_optimizer`); returns `config`.

    optimizer.name: the update rule (adam, adamw, sgd, momentum, ...: jaxdl.train.optimizer.OPTIMIZERS).
    optimizer.learning_rate: the peak learning rate.
    optimizer.schedule: constant | linear | cosine | warmup_cosine | onecycle (the rate over the run).
    optimizer.warmup_epochs: warmup_cosine: epochs of linear warmup from 0; onecycle: epochs of rise
    to the peak (0: a quarter of the run).
    optimizer.final_lr_ratio: the last rate of a decaying schedule, as a fraction of the peak.
    optimizer.momentum: momentum, or beta1 for Adam-style rules.
    optimizer.weight_decay: L2 (decoupled for adamw, added to the gradient otherwise).
    optimizer.weight_decay_on: "kernels" (only parameters with ndim >= 2, not biases or
    normalisation scales and offsets) or "all".
    optimizer.clip_norm: clip the gradient to this global norm (0 = off).
    """
    config.optimizer = ml_collections.ConfigDict({
        "name": name, "learning_rate": learning_rate, "schedule": schedule, "warmup_epochs": 0.0,
        "final_lr_ratio": 0.0, "momentum": 0.9, "weight_decay": 0.0, "weight_decay_on": "kernels",
        "clip_norm": clip_norm,
    })
    return config


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def config_differences(saved: dict, current: dict, may_change: tuple[str, ...] = RESUMABLE_KEYS) -> list[str]:
    """The keys where two JSON-form configs differ, outside the `may_change` patterns, as
    "key (saved X, now Y)" strings. A key of IMPLIED_KEYS that one of them lacks has its implied value."""
    saved, current = flatten(saved), flatten(current)
    for key, value in IMPLIED_KEYS.items():
        if key in saved or key in current:
            saved.setdefault(key, value)
            current.setdefault(key, value)
    absent = "<absent>"
    return [f"{key} (saved {saved.get(key, absent)!r}, now {current.get(key, absent)!r})"
            for key in sorted(set(saved) | set(current))
            if saved.get(key, absent) != current.get(key, absent)
            and not any(fnmatch.fnmatchcase(key, pattern) for pattern in may_change)]
