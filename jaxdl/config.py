"""Config files, command-line overrides, and the checks every experiment shares.

A config file is a Python file with `get_config(arg=None) -> ml_collections.ConfigDict`. It is
named as `path/to/file.py` or `path/to/file.py:ARG`, where ARG selects a variant. Overrides come
as `--config.a.b=value` and are parsed against the type of the value they replace.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from typing import Any

import ml_collections

from jaxdl.errors import InputError, check_range, did_you_mean


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Loads `path.py[:ARG]` and returns its locked ConfigDict."""
    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        folder = os.path.dirname(path) or "."
        siblings = [f for f in os.listdir(folder) if f.endswith(".py")] if os.path.isdir(folder) else []
        suggestion = did_you_mean(os.path.basename(path), siblings)
        raise InputError("--config", "no such config file", got=path,
                         hint=f"did you mean {os.path.join(folder, suggestion)!r}?" if suggestion else None)
    module_spec = importlib.util.spec_from_file_location(f"_jaxdl_config_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise InputError("--config", "config file has no get_config() function", got=path)
    try:
        config = module.get_config(arg) if arg else module.get_config()
    except InputError:
        raise
    except (KeyError, ValueError) as e:
        raise InputError("--config", "unknown config variant", got=arg, hint=str(e)) from e
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
        if not isinstance(value, tuple):
            raise InputError(where, "wrong type", got=text, expected="a tuple such as (64,64) or ()")
        return value
    if current is not None and not isinstance(value, type(current)):
        raise InputError(where, "wrong type", got=text, expected=type(current).__name__)
    return value


def apply_override(config: ml_collections.ConfigDict, key: str, text: str) -> None:
    """Sets `config.<key>` (dotted) from command-line text; unknown keys get a "did you mean"."""
    where = f"--config.{key}"
    node = config
    parts = key.split(".")
    for depth, part in enumerate(parts):
        keys = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
        if part not in keys:
            close = did_you_mean(part, keys)
            suggestion = ".".join([*parts[:depth], close, *parts[depth + 1:]]) if close else None
            raise InputError(where, "unknown config key", got=key,
                             hint=f"did you mean --config.{suggestion}?" if suggestion else None)
        if depth < len(parts) - 1:
            node = node[part]
    current = node[parts[-1]]
    if isinstance(current, ml_collections.ConfigDict):
        raise InputError(where, "is a section, not a value", got=key,
                         expected="a key inside it, e.g. " + f"--config.{key}.{next(iter(current.keys()), '')}")
    with node.unlocked():
        node[parts[-1]] = parse_value(text, current, where)


def split_overrides(argv: list[str]) -> tuple[dict[str, str | None], dict[str, str]]:
    """Splits argv into plain flags {name: value} and config overrides {key: text}.

    Accepts `--flag=value`, `--flag value`, and bare `--debug`.
    """
    flags: dict[str, str | None] = {}
    overrides: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise InputError("command line", "unexpected argument", got=arg,
                             expected="--config, --config.KEY=VALUE, --workdir or --debug")
        name, eq, value = arg[2:].partition("=")
        if not eq and name != "debug":
            if i + 1 >= len(argv):
                raise InputError(f"--{name}", "missing value")
            value = argv[i + 1]
            i += 1
        if name.startswith("config."):
            overrides[name[len("config."):]] = value
        else:
            flags[name] = value if (eq or name != "debug") else None
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
