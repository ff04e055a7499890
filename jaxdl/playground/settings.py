"""What a person sets on the page, checked at the door: one `Settings` from a JSON object or URL query.

Every field has a default (the TensorFlow playground's where it has one), so `{}` is a setting and
a URL only needs what differs. A bad field is an InputError naming it (the server answers 422).

    dataset             circle | xor | gaussian | spiral (classification), plane | multi_gaussian (regression)
    noise               0 .. 50 (percent)
    train_percent       10 .. 90, the share of the points used for training; the rest are the test points
    batch_size          1 .. 30
    features            names among x1, x2, x1_squared, x2_squared, x1_times_x2, sin_x1, sin_x2 (at least one)
    hidden              0 to 6 widths of 1 .. 8
    activation          relu | tanh | sigmoid | linear
    learning_rate       (0, 10]
    regularization      none | L1 | L2
    regularization_rate 0 .. 10
    optimizer           sgd (the playground's) | adam
    seed                0 .. 2**31 - 1: the points and the initial weights
"""

from __future__ import annotations

import dataclasses
import math
from urllib.parse import parse_qsl, urlencode

from jaxdl.data.playground import GENERATORS, REGRESSION_GENERATORS
from jaxdl.errors import InputError, check_choice, check_range
from jaxdl.playground.network import ACTIVATION_NAMES, FEATURE_NAMES, MAX_LAYERS, MAX_WIDTH

DATASETS = (*GENERATORS, *REGRESSION_GENERATORS)
REGULARIZATIONS = ("none", "L1", "L2")
OPTIMIZERS = ("sgd", "adam")
MAX_BATCH = 30
COMPARABLE = ("learning_rate", "activation", "regularization_rate", "batch_size")  # what "compare" may vary
MAX_MEMBERS = 8


@dataclasses.dataclass(frozen=True)
class Settings:
    dataset: str = "circle"
    noise: int = 0
    train_percent: int = 50
    batch_size: int = 10
    features: tuple[str, ...] = ("x1", "x2")
    hidden: tuple[int, ...] = (4, 2)
    activation: str = "tanh"
    learning_rate: float = 0.03
    regularization: str = "none"
    regularization_rate: float = 0.0
    optimizer: str = "sgd"
    seed: int = 0

    @property
    def regression(self) -> bool:
        return self.dataset in REGRESSION_GENERATORS

    def query(self) -> str:
        """The URL query that gives these settings back through `from_query`."""
        fields = dataclasses.asdict(self)
        fields["features"] = ",".join(self.features)
        fields["hidden"] = ",".join(map(str, self.hidden))
        return urlencode({k: v for k, v in fields.items()})

    def as_json(self) -> dict:
        return {**dataclasses.asdict(self), "features": list(self.features), "hidden": list(self.hidden)}


def as_number(where: str, value, *, integer: bool = False) -> float:
    """A JSON number or a URL's text -> a finite number; InputError naming `where` otherwise."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InputError(where, "not a number", got=value[:40]) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(where, "not a finite number", got=str(value)[:40])
    if integer:
        if value != int(value):
            raise InputError(where, "not an integer", got=value)
        return int(value)
    return float(value)


def as_list(where: str, value) -> list:
    """A JSON list or a URL's comma-separated text -> a list."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if not isinstance(value, list):
        raise InputError(where, "not a list", got=str(value)[:40], expected="a list, or items joined by ','")
    return value


def check_field(name: str, value):
    """One field's value, checked and in its Python type."""
    if name in ("dataset", "activation", "regularization", "optimizer"):
        choices = {"dataset": DATASETS, "activation": ACTIVATION_NAMES, "regularization": REGULARIZATIONS,
                   "optimizer": OPTIMIZERS}[name]
        if not isinstance(value, str):
            raise InputError(name, "not a name", got=str(value)[:40], expected="one of " + ", ".join(choices))
        return check_choice(name, value, choices)
    if name == "features":
        names = as_list(name, value)
        if not names:
            raise InputError(name, "no input feature", expected="at least one of " + ", ".join(FEATURE_NAMES))
        for item in names:
            if not isinstance(item, str):
                raise InputError(name, "not a name", got=str(item)[:40])
            check_choice(name, item, FEATURE_NAMES)
        return tuple(n for n in FEATURE_NAMES if n in names)  # the page's order, once each
    if name == "hidden":
        widths = [as_number(name, w, integer=True) for w in as_list(name, value)]
        if len(widths) > MAX_LAYERS:
            raise InputError(name, "too many hidden layers", got=len(widths), expected=f"0 to {MAX_LAYERS}")
        for width in widths:
            check_range(name, width, low=1, high=MAX_WIDTH, integer=True)
        return tuple(widths)
    bounds = {"noise": (0, 50, True), "train_percent": (10, 90, True), "batch_size": (1, MAX_BATCH, True),
              "learning_rate": (0, 10, False), "regularization_rate": (0, 10, False), "seed": (0, 2**31 - 1, True)}
    low, high, integer = bounds[name]
    number = as_number(name, value, integer=integer)
    check_range(name, number, low=low, high=high, integer=integer, low_inclusive=name != "learning_rate")
    return number


def from_fields(fields: dict, base: Settings | None = None) -> Settings:
    """Settings from a JSON object (any subset of the fields; the rest from `base` or the defaults)."""
    if not isinstance(fields, dict):
        raise InputError("settings", "not an object", got=str(fields)[:40], expected='{"dataset": "spiral", ...}')
    known = {field.name for field in dataclasses.fields(Settings)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise InputError("settings", f"unknown field {unknown[0]!r}",
                         expected="fields among " + ", ".join(sorted(known)))
    return dataclasses.replace(base or Settings(), **{name: check_field(name, v) for name, v in fields.items()})


def from_query(query: str) -> Settings:
    """Settings from a URL query such as `dataset=spiral&hidden=8,8&features=x1,x2`."""
    return from_fields(dict(parse_qsl(query.lstrip("?#"), keep_blank_values=True)))


def check_compare(vary, values) -> tuple[str, list]:
    """(field, 2..8 checked values) of a "compare" request."""
    if not isinstance(vary, str):
        raise InputError("vary", "not a name", got=str(vary)[:40], expected="one of " + ", ".join(COMPARABLE))
    check_choice("vary", vary, COMPARABLE)
    items = as_list("values", values)
    if not 2 <= len(items) <= MAX_MEMBERS:
        raise InputError("values", "wrong count", got=len(items), expected=f"2 to {MAX_MEMBERS} values")
    return vary, [check_field(vary, item) for item in items]
