"""The input door: new inputs and labels for a finished run, checked once, before any compiling.

`jaxdl.predict`, `jaxdl.drift`, `load_run(...)(x)` (`Predictor.check`) and the server's requests
all pass through these two functions, so that a run refuses on new data exactly what its training
refused (`jaxdl.data.splits.check_arrays`):

  - `check_inputs(x, info)`: x (N >= 1, *info.input_shape) numbers, returned in the stored dtype
    (uint8 pixels for image runs, float32 otherwise). Refused: a scalar, strings or objects,
    complex numbers, 0 rows, the wrong shape; for image runs anything but integers 0..255; for
    float runs NaN, +-inf and values beyond float32's range (they would become inf), naming the
    first such row. A `csv:` table run stores a missing cell as NaN, so NaN passes there (inf not).
  - `check_labels(y, info, n)`: class indices (n,) for classification, finite float32 targets
    (n, *target_shape) for regression (any shape of as many values per example).

`bad_rows(x, info)` gives the indices of every row the value checks refuse (for a caller that
answers the good rows and refuses the rest, e.g. a server); x must already have the right shape.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jaxdl.data import DataInfo
from jaxdl.errors import InputError

FLOAT32_MAX = float(np.finfo(np.float32).max)


def stored_dtype(info: DataInfo) -> np.dtype:
    """The dtype a run's dataset stores inputs in: uint8 for images, float32 for everything else."""
    return np.dtype(np.uint8 if info.stored.get("dtype") == "uint8" else np.float32)


def missing_allowed(info: DataInfo) -> bool:
    """True when NaN is a stored value (a `csv:` table's missing cell), not a bad input."""
    return info.stored.get("kind") == "table"


def as_array(value: Any, where: str, expected: str) -> np.ndarray:
    """`value` as a numpy array of real numbers (or booleans); InputError for anything else."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:  # ragged nested lists
        raise InputError(where, "not an array of one shape", got=type(value).__name__, expected=expected) from error
    if array.dtype.kind not in "biuf":
        raise InputError(where, "not numeric", got=f"{array.dtype} array", expected=expected)
    return array


def shape_text(shape: tuple[int, ...]) -> str:
    return "(N" + "".join(f", {d}" for d in shape) + ")"


def bad_rows(x: np.ndarray, info: DataInfo) -> np.ndarray:
    """Indices (int64, ascending) of the rows of x (N, *input_shape) whose values the run refuses:
    for image runs values outside 0..255 or not whole; for float runs NaN (unless a table's missing
    cell), +-inf, or beyond float32's range."""
    x = np.asarray(x)
    flat = x.reshape(len(x), -1)
    if flat.dtype == np.bool_ or not flat.size:
        return np.zeros((0,), np.int64)
    if stored_dtype(info) == np.uint8:
        if flat.dtype == np.uint8:
            return np.zeros((0,), np.int64)
        with np.errstate(invalid="ignore"):
            bad = (flat < 0) | (flat > 255)
            if flat.dtype.kind == "f":
                bad |= ~np.isfinite(flat) | (np.mod(flat, 1) != 0)
        return np.flatnonzero(bad.any(axis=1))
    if flat.dtype.kind != "f":
        return np.zeros((0,), np.int64)  # integers of any width fit float32's range
    with np.errstate(invalid="ignore", over="ignore"):
        bad = np.isinf(flat) | (np.abs(flat) > FLOAT32_MAX)
        if not missing_allowed(info):
            bad |= np.isnan(flat)
    return np.flatnonzero(bad.any(axis=1))


def first_bad_value(row: np.ndarray, info: DataInfo) -> float:
    """The first value of one refused row (see `bad_rows`) that the run refuses."""
    values = row.reshape(1, -1)
    for j in range(values.shape[1]):
        if bad_rows(values[:, j:j + 1], info).size:
            return values[0, j].item()
    return values[0, 0].item()


def check_inputs(x: Any, info: DataInfo, *, where: str = "x") -> np.ndarray:
    """x as a numpy array (N, *info.input_shape) of the stored dtype; InputError(where, ...) otherwise.

    Contract (the same for the library, the commands and the server):
      - x: anything `np.asarray` makes an array of real numbers or booleans, of shape
        (N, *info.input_shape) with N >= 1;
      - image runs (stored uint8): uint8, or whole numbers 0..255 of any numeric dtype;
      - other runs (stored float32): finite numbers within float32's range; a `csv:` table run also
        takes NaN (a missing cell);
      - returns a new or the same array, cast to `stored_dtype(info)`; never warns.
    Raises InputError whose `where` is `where`, naming the first bad row.
    """
    shape = tuple(info.input_shape)
    expected = shape_text(shape)
    x = as_array(x, where, f"numbers of shape {expected}")
    if x.ndim != len(shape) + 1 or x.shape[1:] != shape:
        raise InputError(where, "wrong input shape", got=x.shape, expected=expected)
    if len(x) == 0:
        raise InputError(where, "no inputs", got=x.shape, expected=f"at least one input of shape {expected}")
    rows = bad_rows(x, info)
    if rows.size:
        first = int(rows[0])
        value = first_bad_value(x[first], info)
        if stored_dtype(info) == np.uint8:
            raise InputError(where, f"row {first}: images are read as uint8 pixels 0..255, as the dataset "
                                    "stores them", got=f"{x.dtype} value {value:g}",
                             expected="uint8 (or integers 0..255)")
        raise InputError(where, f"row {first} of {len(x)} is not finite (or beyond float32's range)",
                         got=value, expected=f"finite numbers within +-{FLOAT32_MAX:.4g}"
                         + (", or NaN for a missing cell" if missing_allowed(info) else ""))
    return x.astype(stored_dtype(info))


def check_labels(y: Any, info: DataInfo, n: int, *, where: str = "y") -> np.ndarray:
    """Labels of n inputs: int64 class indices (n,) (classification) or float32 targets
    (n, *target_shape) (regression); InputError(where, ...) for a scalar, strings, the wrong
    length or shape, non-whole or out-of-range classes, non-finite or float32-overflowing targets."""
    if info.task == "classification":
        expected = f"integers 0..{info.num_classes - 1} of shape ({n},)"
        y = as_array(y, where, expected)
        if y.ndim != 1 or len(y) != n:
            raise InputError(where, "labels are not one class index per input", got=y.shape, expected=expected)
        if y.dtype.kind == "f":
            whole = np.isfinite(y) & (np.mod(np.where(np.isfinite(y), y, 0), 1) == 0)
            if not whole.all():
                first = int(np.flatnonzero(~whole)[0])
                raise InputError(where, f"label {first} is not a class index", got=float(y[first]), expected=expected)
        outside = np.flatnonzero((y < 0) | (y >= info.num_classes))
        if outside.size:
            first = int(outside[0])
            raise InputError(where, f"label {first} is out of range", got=y[first].item(), expected=expected)
        return y.astype(np.int64)
    target = tuple(info.target_shape) or (1,)
    per_example = math.prod(target)
    expected = f"{per_example} finite number{'s' if per_example > 1 else ''} per input, shape " \
               + str((n, *tuple(info.target_shape)))
    y = as_array(y, where, expected)
    if y.ndim == 0 or len(y) != n or math.prod(y.shape[1:]) != per_example:
        raise InputError(where, "labels of the wrong shape", got=y.shape, expected=expected)
    with np.errstate(invalid="ignore", over="ignore"):
        bad = np.flatnonzero(~(np.isfinite(y) & (np.abs(y) <= FLOAT32_MAX)).reshape(n, -1).all(axis=1)) \
            if y.dtype.kind == "f" else np.zeros((0,), np.int64)
    if bad.size:
        raise InputError(where, f"label {int(bad[0])} is not finite (or beyond float32's range)",
                         got=str(y[int(bad[0])].tolist())[:40], expected=expected)
    return y.astype(np.float32).reshape((n, *tuple(info.target_shape)))


__all__ = ["bad_rows", "check_inputs", "check_labels", "stored_dtype"]
