"""Small typed checkers of JSON values, what `jaxdl.report.run_schema` builds its schemas from.

Each checker is a callable `(value, field) -> value` that returns the value (a copy for objects)
or raises `SchemaError(field, what, got, expected)`; `field` is the dotted path of the value in
its file (`columns[0].inputs`). Named like the types they check: `Obj`, `List`, `Int`, `Num`,
`Float`, `Str`, `Bool`, `OneOf`, `Hex`, `Optional`, `Any_`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

Check = Callable[[Any, str], Any]


class SchemaError(Exception):
    """A field that does not fit its schema: `field` (a dotted path), `what`, `got`, `expected`."""

    def __init__(self, field: str, what: str, got: Any, expected: str):
        self.field, self.what, self.got, self.expected = field, what, got, expected
        super().__init__(f"{field}: {what}")


def shown(value: Any) -> Any:
    """A short form of a JSON value for an error line."""
    text = json.dumps(value)
    return value if len(text) <= 60 else text[:57] + "..."


def Any_(value: Any, field: str) -> Any:  # noqa: N802 (a checker, named like a type)
    return value


def Str(value: Any, field: str) -> str:  # noqa: N802
    if not isinstance(value, str):
        raise SchemaError(field, "wrong type", shown(value), "a string")
    return value


def Bool(value: Any, field: str) -> bool:  # noqa: N802
    if not isinstance(value, bool):
        raise SchemaError(field, "wrong type", shown(value), "true or false")
    return value


def Int(low: int | None = None, high: int | None = None) -> Check:  # noqa: N802
    """An integer (not a boolean) in [low, high]."""
    bounds = "an integer" + (f" >= {low}" if low is not None else "") + (f" <= {high}" if high is not None else "")

    def check(value: Any, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError(field, "wrong type", shown(value), bounds)
        if (low is not None and value < low) or (high is not None and value > high):
            raise SchemaError(field, "out of range", value, bounds)
        return value
    return check


def Num(low: float | None = None) -> Check:  # noqa: N802
    """A finite number (int or float, not a boolean), at least `low`."""
    expected = "a finite number" + (f" >= {low}" if low is not None else "")

    def check(value: Any, field: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SchemaError(field, "wrong type", shown(value), expected)
        if not math.isfinite(value) or (low is not None and value < low):
            raise SchemaError(field, "out of range", value, expected)
        return value
    return check


def Float(value: Any, field: str) -> float:  # noqa: N802
    """Any JSON number, NaN and infinities included (a diverged run's loss)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError(field, "wrong type", shown(value), "a number")
    return value


def OneOf(*choices: Any) -> Check:  # noqa: N802
    def check(value: Any, field: str) -> Any:
        if isinstance(value, bool) or value not in choices:
            raise SchemaError(field, "unknown value", shown(value), "one of " + ", ".join(map(json.dumps, choices)))
        return value
    return check


def Hex(digits: int) -> Check:  # noqa: N802
    pattern = re.compile(f"[0-9a-f]{{{digits}}}")

    def check(value: Any, field: str) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise SchemaError(field, "wrong type" if not isinstance(value, str) else "not a digest", shown(value),
                              f"{digits} hex digits")
        return value
    return check


def Optional(check: Check) -> Check:  # noqa: N802
    """`check`, or JSON null."""
    return lambda value, field: None if value is None else check(value, field)


def List(item: Check, *, length: int | None = None, min_length: int = 0) -> Check:  # noqa: N802
    def check(value: Any, field: str) -> list:
        if not isinstance(value, list):
            raise SchemaError(field, "wrong type", shown(value), "a list")
        if (length is not None and len(value) != length) or len(value) < min_length:
            raise SchemaError(field, "wrong length", len(value),
                              f"{length} items" if length is not None else f"at least {min_length} items")
        return [item(element, f"{field}[{i}]") for i, element in enumerate(value)]
    return check


def Obj(required: dict[str, Check] | None = None, optional: dict[str, Check] | None = None, *,
        values: Check | None = None, rule: Callable[[dict, str], None] | None = None) -> Check:  # noqa: N802
    """A JSON object with `required` and `optional` fields (others kept unchecked, or all checked
    by `values`); `rule(record, field)` checks what spans fields (raises SchemaError)."""
    required, optional = required or {}, optional or {}

    def check(value: Any, field: str) -> dict:
        if not isinstance(value, dict):
            raise SchemaError(field, "wrong type", shown(value), "a JSON object")
        out = dict(value)
        for name, item in required.items():
            if name not in value:
                raise SchemaError(join(field, name), "missing", None, "a field the run writes")
            out[name] = item(value[name], join(field, name))
        for name, item in optional.items():
            if name in value:
                out[name] = item(value[name], join(field, name))
        if values is not None:
            out = {name: values(item, join(field, name)) for name, item in out.items()}
        if rule is not None:
            rule(out, field)
        return out
    return check


def join(field: str, name: str) -> str:
    return f"{field}.{name}" if field else name


__all__ = ["Any_", "Bool", "Check", "Float", "Hex", "Int", "List", "Num", "Obj", "OneOf", "Optional", "SchemaError",
           "Str", "join", "shown"]
