"""Errors a person can fix, and the one-line form they are printed in.

Anything a user can get wrong (a config value, a dataset name, a file) is checked on the host,
before compiling, and raised as `InputError`. The command line prints it as
`error: <where>: <what is wrong> (got X, expected Y)` and exits with code 2.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Any


class InputError(ValueError):
    """Bad input that the person running jaxdl can fix.

    Args:
      where: what the error is about, e.g. `--config.train.batch_size` or `data.name`.
      what: what is wrong, in a few words.
      got: the offending value (optional).
      expected: what would have been accepted (optional).
      hint: a closing sentence, e.g. how to fix it (optional).
    """

    def __init__(self, where: str, what: str, *, got: Any = None, expected: Any = None,
                 hint: str | None = None):
        self.where, self.what, self.got, self.expected, self.hint = where, what, got, expected, hint
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.where}: {self.what}"
        details = []
        if self.got is not None:
            details.append(f"got {self.got!r}")
        if self.expected is not None:
            details.append(f"expected {self.expected}")
        if details:
            text += f" ({', '.join(details)})"
        if self.hint:
            text += f"; {self.hint}"
        return text


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    """The closest choice to a misspelled `name`, or None when nothing is close."""
    matches = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def check_choice(where: str, value: Any, choices: Iterable[str]) -> str:
    """Returns `value` if it is one of `choices`; otherwise raises an InputError with a suggestion."""
    choices = sorted(choices)
    if value in choices:
        return value
    suggestion = did_you_mean(value, choices)
    raise InputError(where, "unknown name", got=value, expected="one of " + ", ".join(choices),
                     hint=f"did you mean {suggestion!r}?" if suggestion else None)


def check_range(where: str, value: Any, *, low: float | None = None, high: float | None = None,
                low_inclusive: bool = True, high_inclusive: bool = True,
                integer: bool = False) -> Any:
    """Raises an InputError unless `value` is a number (an integer if asked) within the bounds."""
    kind = "an integer" if integer else "a number"
    is_number = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not is_number:
        raise InputError(where, "wrong type", got=value, expected=kind)
    below = low is not None and (value < low if low_inclusive else value <= low)
    above = high is not None and (value > high if high_inclusive else value >= high)
    if math.isnan(value) or below or above:
        left = "" if low is None else ("[" if low_inclusive else "(") + f"{low}"
        right = "" if high is None else f"{high}" + ("]" if high_inclusive else ")")
        bounds = {(True, True): f"in {left}, {right}", (True, False): f">{'=' if low_inclusive else ''} {low}",
                  (False, True): f"<{'=' if high_inclusive else ''} {high}"}[(low is not None, high is not None)]
        raise InputError(where, "out of range", got=value, expected=f"{kind} {bounds}")
    return value


def parse_number(where: str, text: Any, *, low: float, high: float, integer: bool = False) -> Any:
    """The one parser of numeric flags: command-line `text` as a finite number (an int if `integer`)
    within [low, high]; an InputError naming `where` otherwise (inf, nan, 1e999, huge or negative ints)."""
    kind = "an integer" if integer else "a number"
    expected = f"{kind} in [{bound_text(low)}, {bound_text(high)}]"
    shown = str(text) if len(str(text)) <= 40 else str(text)[:37] + "..."
    try:
        value = int(str(text).strip(), 10) if integer else float(str(text).strip())
    except (TypeError, ValueError, OverflowError):  # int(): also strings of more than 4,300 digits
        raise InputError(where, f"not {kind}", got=shown, expected=expected) from None
    if not math.isfinite(value) or not low <= value <= high:
        raise InputError(where, "out of range", got=shown, expected=expected)
    return value


def bound_text(value: float) -> str:
    """1000000 -> "1,000,000", 0.001 -> "0.001"."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"
