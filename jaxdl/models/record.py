"""The record of a run's own Flax module (config.json's `model_source`), and the module rebuilt from it.

A Linen module is a dataclass: its class (import path `module.__class__.__module__` and
`__qualname__`) and its field values say what it is. `module_record(MyNet(width=64))` gives

    {"module": "mypackage.nets", "qualname": "MyNet", "fields": {"width": 64},
     "rebuildable": true}

and `rebuild(record)` imports the class and calls it with the fields again. A module that cannot be
rebuilt that way (its class defined in `__main__` or in a module that cannot be imported, or a field
whose value JSON cannot hold: a function, a submodule, an array) gets `"rebuildable": false` and a
`"reason"`; then `jaxdl.load_run(RUN, model=MyNet(...))` takes the module from the caller.
Field values keep their JSON form: tuples become lists and are turned back into tuples, dtypes
(`jnp.float32`) are recorded as {"dtype": "float32"}.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxdl.errors import InputError

SPECIAL_FIELDS = ("parent", "name")  # Linen's own dataclass fields: not part of what the module is


def field_value(value: Any) -> Any:
    """A field value in JSON form; TypeError when JSON cannot hold it."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        return [field_value(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: field_value(item) for key, item in value.items()}
    try:
        dtype = np.dtype(value) if isinstance(value, (np.dtype, type)) else None
    except TypeError:
        dtype = None
    if dtype is not None and dtype != np.dtype(object):
        return {"dtype": dtype.name}
    raise TypeError(f"{type(value).__name__} value")


def from_field_value(value: Any) -> Any:
    """The inverse of `field_value`: lists back to tuples, {"dtype": name} back to the jnp dtype."""
    if isinstance(value, (list, tuple)):  # a config read back may hold tuples already
        return tuple(from_field_value(item) for item in value)
    if isinstance(value, dict):
        if set(value) == {"dtype"}:
            return jnp.dtype(value["dtype"]).type
        return {key: from_field_value(item) for key, item in value.items()}
    return value


def module_record(model: nn.Module) -> dict:
    """config.json's `model_source` for `model` (see the module docstring)."""
    cls = type(model)
    record: dict[str, Any] = {"module": cls.__module__, "qualname": cls.__qualname__, "fields": {}}
    problems = []
    if cls.__module__ == "__main__":
        problems.append("its class is defined in __main__, which a later process cannot import")
    elif "<locals>" in cls.__qualname__:
        problems.append("its class is defined inside a function")
    else:
        try:
            found = find_class(cls.__module__, cls.__qualname__)
        except (ImportError, AttributeError) as error:
            problems.append(f"its class cannot be imported ({type(error).__name__})")
        else:
            if found is not cls:
                problems.append(f"{cls.__module__}.{cls.__qualname__} imports as another class")
    for field in dataclasses.fields(model):
        if field.name in SPECIAL_FIELDS or not field.init:
            continue
        value = getattr(model, field.name)
        try:
            record["fields"][field.name] = field_value(value)
            json.dumps(record["fields"][field.name])
        except (TypeError, ValueError) as error:
            record["fields"].pop(field.name, None)
            problems.append(f"field {field.name!r} holds a {error} JSON cannot record")
    record["rebuildable"] = not problems
    if problems:
        record["reason"] = "; ".join(problems)
    return record


def find_class(module: str, qualname: str) -> type:
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def describe(record: dict) -> str:
    return f"{record.get('module')}.{record.get('qualname')}"


def rebuild(record: dict, where: str = "--workdir") -> nn.Module:
    """The module `record` describes; InputError naming `load_run(RUN, model=...)` when it cannot be rebuilt."""
    name = describe(record)
    usage = f"jaxdl.load_run(RUN, model={record.get('qualname', 'MyNet')}(...)) in Python, with the module " \
            "the run was trained with"
    if not record.get("rebuildable", False):
        raise InputError(where, f"the run was trained with its own model {name}, which config.json's model_source "
                         f"cannot rebuild: {record.get('reason', 'not recorded')}", expected=usage)
    try:
        cls = find_class(record["module"], record["qualname"])
        return cls(**{key: from_field_value(value) for key, value in record["fields"].items()})
    except Exception as error:  # noqa: BLE001 (an import or a constructor can fail in any way)
        message = " ".join(str(error).split())[:160]
        raise InputError(where, f"the run's own model {name} cannot be rebuilt from config.json's model_source "
                         f"({type(error).__name__}: {message})", expected=usage) from error


__all__ = ["describe", "module_record", "rebuild"]
