"""The request door of `python -m jaxdl.serve`: what a request must be before the model sees it.

In the order the server checks (each refusal is a 4xx with {"error": ...}, counted at /metrics by kind):
  403 forbidden_origin   an `Origin` header other than the server's own (a page on another site driving
                         the server) unless --allow_origin names it;
  415 unsupported_media  a POST whose Content-Type is not application/json (what an HTML form or a
                         cross-site `text/plain` fetch sends);
  413 too_large          a body over --max_body_mb (told by Content-Length, or counted as it arrives);
  408 body_timeout       a body not complete within --body_timeout_s (a stalled or very slow upload);
  503 shutting_down      a body still arriving when a stopping server's grace period (5 s) ends;
  499 client_abort       the client went away before its body was complete (nobody reads the answer; counted
                         apart from the server's own errors, so an alert on 500s does not fire on them);
  400 malformed_json / bad_request   not JSON, or not {"inputs": [...]};
  413 too_many_inputs    more than --max_inputs inputs in one request;
  422 bad_input          inputs of the wrong shape or dtype, or values that are not finite: NaN, Infinity,
                         or beyond float32 (the error names the first such input's index); also inputs
                         whose model output is not finite (e.g. 3e38 in a float run).

A body is parsed straight into a numpy array when its "inputs" are plain nested lists of numbers
(`numeric_inputs`: a few passes in C over the text, no Python list per row), else by `json.loads`;
at most PARSERS bodies are parsed at once (`Parsers`), so what parsing costs in memory is bounded
whatever the number of clients (docs/deploy.md has the measured numbers).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import warnings

import numpy as np
from starlette.requests import ClientDisconnect, Request

from jaxdl.errors import InputError

JSON = "application/json"
PARSERS = 2  # bodies parsed at once (each in a worker thread)
FLOAT32_MAX = float(np.finfo(np.float32).max)
INPUTS_KEY = re.compile(rb'"inputs"\s*:\s*\[')
NOT_NUMERIC = re.compile(rb"[^\s\d.eE+\-,\[\]]")
LOOSE = re.compile(rb"[,\[]\s*(?:\+|0\d|[\],])")  # +1, 01, [], [1,], [,1]
SLICE = 1 << 20  # regular expressions hold the GIL (and so the event loop) for the whole text they search
SENTINEL = "\u0000jaxdl-inputs"


class RequestError(Exception):
    """A request the server refuses: HTTP `status`, the error `kind` counted at /metrics, a message."""

    def __init__(self, status: int, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def check_headers(request: Request, allowed_origins: frozenset[str]) -> None:
    """403 for a foreign Origin, 415 for a POST that is not application/json."""
    origin = request.headers.get("origin")
    if origin is not None:
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin.rstrip("/") != own and origin.rstrip("/") not in allowed_origins and "*" not in allowed_origins:
            raise RequestError(403, "forbidden_origin", f"Origin: {origin[:100]!r} is not this server ({own}); "
                               "start the server with --allow_origin ORIGIN to let that site call it")
    if request.method == "POST":
        kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if kind != JSON:
            raise RequestError(415, "unsupported_media", f"Content-Type: expected {JSON}, got {kind[:60]!r}")


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request's body; RequestError 413 past `limit` bytes, 408 after `timeout_s`, 499 on a client abort."""
    too_large = RequestError(413, "too_large", f"body: more than {limit} bytes (--max_body_mb); "
                             "send fewer inputs per request")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large
    chunks, size = [], 0

    async def receive() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)

    try:
        await asyncio.wait_for(receive(), timeout_s)
    except asyncio.TimeoutError:
        raise RequestError(408, "body_timeout", f"body: not complete after {timeout_s:g} s (--body_timeout_s; "
                           f"{size} bytes came)") from None
    except ClientDisconnect:
        raise RequestError(499, "client_abort", f"body: the client went away after {size} bytes") from None
    except asyncio.CancelledError:  # the server stops (SIGTERM) and this upload outlived the graceful shutdown
        raise RequestError(503, "shutting_down", f"body: the server is stopping ({size} bytes came)") from None
    return b"".join(chunks)


class Parsers:
    """At most `count` bodies parsed at once, each in a worker thread (off the event loop)."""

    def __init__(self, count: int = PARSERS):
        self.slots = threading.BoundedSemaphore(count)

    def __call__(self, function, *args):
        with self.slots:
            return function(*args)


def numeric_inputs(body: bytes) -> tuple[dict, np.ndarray] | None:
    """(payload without its inputs, inputs as a float64 or int64 array) when the body's "inputs" are regular
    nested lists of plain numbers; None otherwise (the caller then parses the body with json.loads)."""
    match = INPUTS_KEY.search(body)
    if match is None:
        return None
    start = match.end() - 1
    stop = search_in_slices(NOT_NUMERIC, body, start)  # the inputs end before the first other character
    end = body.rfind(b"]", start, len(body) if stop is None else stop) + 1
    inputs = body[start:end]
    if search_in_slices(LOOSE, inputs, 0) is not None:
        return None  # "+1", "01": not JSON numbers; "[]", "1,]": json.loads and the shape check say so
    try:
        rest = json.loads(body[:start] + json.dumps(SENTINEL).encode() + body[end:])
    except (ValueError, RecursionError):
        return None
    if not isinstance(rest, dict) or rest.get("inputs") != SENTINEL:
        return None  # "inputs" was a nested key, or given twice
    skeleton = inputs.translate(None, b"0123456789.eE+- \t\r\n")
    shape = skeleton_shape(skeleton)
    if shape is None or skeleton != regular_skeleton(shape):
        return None  # ragged
    flat = inputs.translate(None, b"[] \t\r\n")
    integers = re.search(rb"[.eE]|\d{19}", flat) is None  # int64 holds every integer of up to 18 digits
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy warns, and stops, at a token that is not a number ("1..2")
        try:
            values = np.fromstring(flat, dtype=np.int64 if integers else np.float64, sep=",")
        except (ValueError, DeprecationWarning):
            return None
    if values.size != math.prod(shape):
        return None
    return rest, values.reshape(shape)


def search_in_slices(pattern: re.Pattern, data: bytes, start: int) -> int | None:
    """The position of `pattern`'s first match in data[start:], searched a SLICE at a time (matches are
    at most 64 bytes long), so that another thread runs in between; None if there is none."""
    for begin in range(start, len(data), SLICE):
        found = pattern.search(data[begin:begin + SLICE + 64])
        if found is not None:
            return begin + found.start()
    return None


def skeleton_shape(skeleton: bytes) -> tuple[int, ...] | None:
    """The shape of nested lists, read from their brackets and commas along the first elements (b"[[,],[,],[,]]"
    -> (3, 2)); whether the lists are regular is checked by comparing with `regular_skeleton`."""
    if len(skeleton) < 2 or skeleton[0] != 91 or skeleton[-1] != 93:
        return None
    inside = skeleton[1:-1]  # b"" is a list of one number (empty lists were refused before)
    if not inside.startswith(b"["):
        return (inside.count(b",") + 1,)
    depth = 0
    for i, char in enumerate(inside):  # the end of the first element (short: one input's brackets)
        depth += (char == 91) - (char == 93)
        if depth == 0:
            inner = skeleton_shape(inside[:i + 1])
            if inner is None:
                return None
            return ((len(inside) + 1) // (i + 2), *inner)
    return None


def regular_skeleton(shape: tuple[int, ...]) -> bytes:
    """The brackets and commas of regular nested lists of `shape`: (2, 3) -> b"[[,,],[,,]]"."""
    inner = b""
    for size in reversed(shape):
        inner = b"[" + b",".join([inner] * size) + b"]"
    return inner


def parse_payload(body: bytes, max_inputs: int) -> tuple[dict, np.ndarray | list]:
    """(payload, inputs) of a body {"inputs": [...], ...}: inputs a numpy array when they are plain numbers,
    else the parsed JSON list; RequestError 400 / 413 otherwise."""
    fast = numeric_inputs(body)
    if fast is not None:
        payload, inputs = fast
    else:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise RequestError(400, "malformed_json", f"body: not JSON ({error})") from None
        if not isinstance(payload, dict) or "inputs" not in payload:
            raise RequestError(400, "bad_request", 'body: expected a JSON object {"inputs": [input, ...]}, got '
                               + (f"an object with keys {sorted(payload)[:10]}" if isinstance(payload, dict)
                                  else f"a JSON {type(payload).__name__}"))
        inputs = payload["inputs"]
        if not isinstance(inputs, list) or not inputs:
            raise RequestError(400, "bad_request", "inputs: expected a non-empty list of inputs, got "
                               + json.dumps(inputs)[:80])
    if len(inputs) > max_inputs:
        raise RequestError(413, "too_many_inputs", f"inputs: {len(inputs)} in one request, more than --max_inputs "
                           f"{max_inputs}; send them in several requests")
    return payload, inputs


def check_finite(x: np.ndarray, where: str = "inputs", allow_nan: bool = False) -> np.ndarray:
    """x unchanged if every value is finite and within float32 (NaN allowed if `allow_nan`: a table's missing
    cell); InputError naming the first input that is not."""
    if x.dtype.kind != "f" or not x.size:
        return x
    rows = x.reshape(len(x), -1)
    with np.errstate(invalid="ignore"):
        bad = np.abs(rows) > FLOAT32_MAX
        bad |= np.isinf(rows) if allow_nan else np.isnan(rows)
    if bad.any():
        index = int(np.argmax(bad.any(axis=1)))
        value = rows[index][bad[index]][0]
        raise InputError(where, f"input {index} holds a value that is not a finite float32 number",
                         got=str(value), expected="finite numbers of at most ±3.4e38" + (" (NaN or null for a missing "
                                                                                      "cell)" if allow_nan else ""))
    return x


def check_outputs(outputs: np.ndarray) -> None:
    """InputError naming the first input whose model output is not finite (its values overflow the model)."""
    flat = np.asarray(outputs).reshape(len(outputs), -1)
    finite = np.isfinite(flat).all(axis=1)
    if not finite.all():
        index = int(np.argmin(finite))
        raise InputError("inputs", f"input {index} gives a model output that is not finite (its values are "
                         "too large for the model)", expected="values of the size the run was trained on")
