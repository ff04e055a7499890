"""A finished run answering over HTTP.

    python -m jaxdl.serve --workdir RUN [--host 127.0.0.1] [--port 8000] [--max_batch 64] [--max_wait_ms 5]
                          [--max_body_mb 16] [--max_inputs 65536] [--body_timeout_s 30]
                          [--allow_origin ORIGIN ...] [--drift_window 1000] [--debug]

Flags and their bounds (anything else, inf and nan included, is one `error:` line, exit 2):
  --port 0..65535 (0: a free one); --max_batch 1..1024; --max_wait_ms 0..10,000; --max_body_mb
  0.001..1,024; --max_inputs 1..1,000,000 inputs per request; --body_timeout_s 0.01..3,600 for a
  request's body to arrive; --drift_window 0 (off) or 30..1,000,000; --allow_origin scheme://host[:port]
  (repeatable, or a comma list; * for any), the sites whose pages may POST to the server.

Routes (Starlette on uvicorn):
  POST /predict      {"inputs": [...], "top_k": K (optional, default 1)} -> {"predictions": [row, ...]},
                     one row per input with the fields of `jaxdl.predict` rows: `input` (its index in
                     the request), `predicted`, `probability`, `class_2`, `probability_2`, ... (top_k),
                     or `output` / `output_0`, ... for regression. Inputs are in the form the dataset
                     stores them (see `jaxdl.deploy.run_loader`): nested lists of uint8 pixel values
                     (height, width, channels) for images; for a `csv:` table, either an object per
                     row keyed by the feature columns (cells as in the CSV file; null for missing) or
                     a list of F numbers as the prepared dataset holds them; sequences as nested lists.
  POST /activations  one input -> {"predictions": [row with all classes], "layers": [{name, shape, kind,
                     values}]}: the hidden layers of that input (`jaxdl.evaluate.activations`), for the page.
  POST /explain      {"inputs": [...]} (at most MAX_EXPLAIN inputs) -> {"method", "steps", "baseline", "explained",
                     "explanations": [row, ...]}: why the model answers so, the rows of `python -m jaxdl.explain`
                     (`jaxdl.deploy.explainer`: attributions of the stored input's shape, completeness gap, a
                     table's top features). Its program compiles on the first /explain request, not at start.
  GET /              a page for a person: draw a digit (or upload a picture), fill in a table's
                     fields, or type a sequence; see the probabilities and the hidden layers.
  GET /info          the run: the model that answers (`model`: "epoch 19 (best of 39)", a sweep's member, a
                     transfer run's strategy; `kept_epoch`, `member`, `epoch` of the checkpoint), task, input
                     shape, stored form, class names, a table's columns.
  GET /health        {"status": "ok", ...} once warmed up.
  GET /metrics       Prometheus text format (`jaxdl.deploy.serve_metrics`), with the drift measure
                     of `python -m jaxdl.drift` over the last --drift_window served inputs as
                     `jaxdl_drift_*` gauges (`jaxdl.deploy.drift.DriftMonitor`; 0 turns it off).

Requests arriving together are answered by one compiled call (`jaxdl.deploy.batcher`: at most
--max_batch rows, waiting at most --max_wait_ms for more). Batch sizes are padded to powers of two
(`Predictor`'s buckets) and every one of them up to --max_batch is compiled before the server says
it is ready, so nothing compiles under load. Bad requests get a 4xx and `{"error": "..."}`: 400
malformed JSON or a body that is not {"inputs": [...]}, 422 inputs of the wrong shape or values (NaN,
Infinity, beyond float32), 413 a body over --max_body_mb or more than --max_inputs inputs, 415 a POST
that is not application/json, 403 a page of another site (Origin), 408 a body slower than
--body_timeout_s, 404 an unknown route, 405 a wrong method; a client that leaves before its body is
complete is counted as `client_abort` (see `jaxdl.deploy.serve_requests`).

Ready: the line `serving http://HOST:PORT` on stdout (--port 0 picks a free port). Ctrl-C (SIGINT)
or SIGTERM stop it after the requests in flight are answered (those still running after
SHUTDOWN_TIMEOUT_S = 5 s are cut off, a stalled upload included), with exit code 130 or 143 (as every
jaxdl command stopped by a signal); 2 for bad flags or a bad run (one `error:` line).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import re
import socket
import sys
from collections.abc import Callable
from typing import Protocol

import jax
import numpy as np
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from jaxdl import paths
from jaxdl.deploy import drift_features
from jaxdl.deploy.batcher import Batcher
from jaxdl.deploy.command import parse_flags, run_command
from jaxdl.deploy.drift import MAX_WINDOW as MAX_DRIFT_WINDOW
from jaxdl.deploy.drift import MIN_EXAMPLES, WINDOW, DriftMonitor
from jaxdl.deploy.explainer import Explainer
from jaxdl.deploy.predict import prediction_rows
from jaxdl.deploy.run_loader import Predictor, bucket, encode_table, load_run, model_input
from jaxdl.deploy.serve_metrics import Instrument, ServeMetrics
from jaxdl.deploy.serve_page import PAGE
from jaxdl.deploy.serve_requests import (
    Parsers,
    RequestError,
    check_finite,
    check_headers,
    check_outputs,
    parse_payload,
    read_body,
)
from jaxdl.errors import InputError, check_range, parse_number
from jaxdl.evaluate.activations import model_intermediates, named_layers
from jaxdl.evaluate.attributions import not_attributable

USAGE = ("usage: python -m jaxdl.serve --workdir RUN [--host 127.0.0.1] [--port 8000] [--max_batch 64] "
         "[--max_wait_ms 5] [--max_body_mb 16] [--max_inputs 65536] [--body_timeout_s 30] "
         "[--allow_origin ORIGIN ...] [--drift_window 1000] [--debug]")
ROUTES = ("/", "/info", "/health", "/metrics", "/predict", "/activations", "/explain")
ROUTE_LIST = "GET /, /info, /health, /metrics; POST /predict, /activations, /explain"
# /explain: inputs per request (each costs 65 passes of the model), and per compiled call.
MAX_EXPLAIN, EXPLAIN_CHUNK = 16, 4
# Bodies above this are parsed in a thread, so one large request does not hold up the event loop; answers of
# more than INLINE_ROWS rows x top_k are built there too.
INLINE_BODY, INLINE_ROWS = 1 << 16, 4096
# The flags' defaults and bounds (every numeric flag is parsed by `jaxdl.errors.parse_number`).
MAX_BATCH, MAX_WAIT_MS, MAX_BODY_MB = 1024, 10_000.0, 1024.0
MAX_INPUTS, MAX_INPUTS_LIMIT = 65_536, 1_000_000
BODY_TIMEOUT_S, MAX_BODY_TIMEOUT_S = 30.0, 3600.0
# On SIGINT / SIGTERM, requests in flight get this long to finish before their connections are closed.
SHUTDOWN_TIMEOUT_S = 5
# The page shows at most this many feature maps of a layer, and this many values of a vector.
MAX_MAPS, MAX_VALUES = 16, 1024


class Monitor(Protocol):
    """A drift monitor: fed every served batch (in the model's worker thread), read at /metrics."""

    def observe(self, raw_inputs: np.ndarray, probabilities: np.ndarray) -> None: ...

    def gauges(self) -> dict[str, float]: ...


def table_rows(predictor: Predictor, rows: list) -> np.ndarray:
    """Objects keyed by a `csv:` run's feature columns -> (N, F) float32 stored rows."""
    names = [column["name"] for column in predictor.info.preprocessing["columns"]]
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InputError("inputs", f"input {i} is not an object like the others", got=json.dumps(row)[:80])
        missing, unknown = [n for n in names if n not in row], [k for k in row if k not in names]
        if missing or unknown:
            raise InputError("inputs", f"input {i} has " + ("no " + ", ".join(map(repr, missing)) if missing
                                                             else "unknown keys " + ", ".join(map(repr, unknown))),
                             expected="the feature columns " + ", ".join(names) + " (null for a missing value)")
    return encode_table(predictor.info.preprocessing, names, [[row[n] for n in names] for row in rows])


def stored_inputs(predictor: Predictor, inputs: list) -> np.ndarray:
    """A request's inputs -> (N, *input_shape) in the stored dtype; InputError naming `inputs` if wrong."""
    info = predictor.info
    if info.stored.get("kind") == "table" and isinstance(inputs, list) and isinstance(inputs[0], dict):
        return check_finite(table_rows(predictor, inputs), allow_nan=True)  # a missing cell reads as NaN
    try:
        x = np.asarray(inputs)
    except ValueError:
        raise InputError("inputs", "the inputs are not all of one shape (ragged lists)",
                         expected=f"each input of shape {tuple(info.input_shape)}") from None
    if x.dtype == object:
        raise InputError("inputs", "not numbers", got=json.dumps(list(inputs[:2]))[:80],
                         expected=f"numbers, each input of shape {tuple(info.input_shape)}")
    if info.stored.get("kind") == "table" and x.dtype.kind == "U":
        width = len(info.preprocessing["columns"])
        if x.ndim != 2 or x.shape[1] != width:
            raise InputError("inputs", "wrong input shape", got=x.shape,
                             expected=f"(N, {width}) cells of the feature columns in order, or objects by column")
    # Before the cast to float32 (1e39 would become inf): a table's numbers form holds NaN for a missing
    # cell, as the prepared dataset does; nothing else may be NaN.
    table = info.stored.get("kind") == "table"
    check_finite(x, allow_nan=table)
    try:
        return check_finite(predictor.check(x), allow_nan=table) if table else predictor.check(x)
    except InputError as error:
        raise InputError("inputs", error.what, got=error.got, expected=error.expected, hint=error.hint) from None


def top_k_of(payload: dict, predictor: Predictor) -> int:
    value = payload.get("top_k", 1)
    try:
        check_range("top_k", value, low=1, integer=True)
    except InputError as error:
        raise RequestError(400, "bad_request", str(error)) from None
    return min(value, predictor.info.num_classes) if predictor.info.task == "classification" else 1


def layer_view(name: str, value: np.ndarray) -> dict:
    """One input's activations of one layer, for the page: `maps` (C, H, W) of a (H, W, C) layer (the
    first MAX_MAPS channels), a `matrix` of a (steps, units) layer, else a `vector` (at most MAX_VALUES)."""
    a = np.asarray(value[0], np.float32)
    shape = list(a.shape)
    if a.ndim == 3:
        kind, a = "maps", np.moveaxis(a, -1, 0)[:MAX_MAPS]
    elif a.ndim == 2:
        kind, a = "matrix", a[:256, :256]
    else:
        kind, a = "vector", a.reshape(-1)[:MAX_VALUES]
    a = np.where(np.isfinite(a), a, 0.0)
    return {"name": name, "shape": shape, "kind": kind, "values": np.round(a, 5).tolist()}


def run_description(predictor: Predictor, max_batch: int) -> dict:
    info = predictor.info
    described = {"workdir": predictor.workdir, "epoch": predictor.epoch, "kept_epoch": predictor.kept_epoch,
                 "member": predictor.member, "model": predictor.model_description, "task": info.task,
                 "input_shape": list(info.input_shape), "stored": info.stored, "class_names": list(info.class_names),
                 "max_batch": max_batch, "inputs_max": 255 if info.stored.get("dtype") == "uint8" else None}
    if info.stored.get("kind") == "table":
        described["columns"] = [{"name": c["name"], "kind": c["kind"], "categories": c.get("categories", [])}
                                for c in info.preprocessing["columns"]]
    return described


class Service:
    """The model side of the app: the batcher, warm-up, activations; the HTTP handlers call it."""

    def __init__(self, predictor: Predictor, metrics: ServeMetrics, max_batch: int, max_wait_s: float,
                 monitor: Monitor | None):
        self.predictor, self.metrics, self.max_batch, self.monitor = predictor, metrics, max_batch, monitor
        variables, info = predictor.variables, predictor.info
        self.activations_jitted = jax.jit(
            lambda x: model_intermediates(predictor.apply_fn, variables, model_input(x, info)))
        self.explainer = None if not_attributable(predictor.config.model) else \
            Explainer(predictor, max_chunk=EXPLAIN_CHUNK)
        self.monitor_error: str | None = None
        self.batcher = Batcher(self.run_batch, max_batch, max_wait_s,
                               after_batch=None if monitor is None else monitor.observe,
                               on_error=self.monitor_failed)

    def monitor_failed(self, error: BaseException) -> None:
        """A failing drift monitor is counted, said once on stderr, and shown at /health."""
        self.metrics.errors.labels("monitor").inc()
        if self.monitor_error is None:
            self.monitor_error = f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"
            logging.getLogger("jaxdl").warning(  # a `warning:` line on stderr (jaxdl.report.console)
                "the drift monitor failed (%s); /metrics' jaxdl_drift_* gauges stop following the served inputs "
                "(counted as jaxdl_errors_total{kind=\"monitor\"})", self.monitor_error)

    def warm_up(self) -> list[int]:
        """Compiles every batch size a batch can run at (1, 2, 4, ... bucket(max_batch)) and the activations."""
        sizes = sorted({bucket(n) for n in range(1, self.max_batch + 1)})
        shape, dtype = tuple(self.predictor.info.input_shape), self.predictor.stored_dtype
        for size in sizes:
            self.predictor(np.zeros((size, *shape), dtype))
        self.explain(np.zeros((1, *shape), dtype))
        return sizes

    def run_batch(self, x: np.ndarray) -> np.ndarray:
        outputs = self.predictor(x)
        self.metrics.batch_size.observe(len(x))
        self.metrics.predictions.inc(len(x))
        return outputs

    def explain(self, x: np.ndarray) -> tuple[np.ndarray, list[dict]]:
        """(outputs (1, ...), layer views) of one input x (1, *input_shape)."""
        outputs = self.predictor(x)
        layers = named_layers(jax.device_get(self.activations_jitted(x)), 1)
        return outputs, [layer_view(name, value) for name, value in layers.items()]


def create_app(predictor: Predictor, *, max_batch: int = 64, max_wait_ms: float = 5.0,
               max_body_bytes: int = 16 << 20, max_inputs: int = MAX_INPUTS, body_timeout_s: float = BODY_TIMEOUT_S,
               allow_origins: tuple[str, ...] = (), monitor: Monitor | None = None,
               ready: Callable[[], None] | None = None) -> Starlette:
    """The Starlette app serving `predictor` (routes in the module docstring), warmed up on return.

    monitor: optional, with `.observe(raw_inputs (B, *input_shape), probabilities (B, K)) -> None`,
      called once per served batch in the model's worker thread (off the event loop), and
      `.gauges() -> {name: float}`, exported at /metrics as `jaxdl_drift_<name>`.
    ready: called once the app is started and serving (the command prints its URL there).
    max_body_bytes, max_inputs, body_timeout_s, allow_origins: the bounds of the request door
      (`jaxdl.deploy.serve_requests`).
    """
    check_range("max_batch", max_batch, low=1, high=MAX_BATCH, integer=True)
    check_range("max_wait_ms", max_wait_ms, low=0, high=MAX_WAIT_MS)
    check_range("max_inputs", max_inputs, low=1, high=MAX_INPUTS_LIMIT, integer=True)
    check_range("body_timeout_s", body_timeout_s, low=0.01, high=MAX_BODY_TIMEOUT_S)
    metrics = ServeMetrics(max_batch, ROUTES)
    if monitor is not None:
        metrics.watch(monitor.gauges)
    service = Service(predictor, metrics, max_batch, max_wait_ms / 1000.0, monitor)
    sizes = service.warm_up()

    parsers, origins = Parsers(), frozenset(origin.rstrip("/") for origin in allow_origins)

    def parse(body: bytes) -> tuple[dict, np.ndarray]:
        payload, inputs = parse_payload(body, max_inputs)
        return payload, stored_inputs(predictor, inputs)

    async def parsed(request: Request) -> tuple[dict, np.ndarray]:
        check_headers(request, origins)
        body = await read_body(request, max_body_bytes, body_timeout_s)
        if len(body) <= INLINE_BODY:
            return parse(body)
        return await run_in_threadpool(parsers, parse, body)

    def answer(outputs: np.ndarray, top_k: int, extra: dict | None = None) -> Response:
        check_outputs(outputs)
        rows = prediction_rows(predictor, list(range(len(outputs))), outputs, None, top_k)
        if len(rows) <= INLINE_ROWS:
            return JSONResponse({"predictions": rows, **(extra or {})})
        # In slices: json's C encoder holds the GIL, and so the event loop, for the whole of one call.
        parts = [json.dumps(rows[i:i + 1024], ensure_ascii=False, allow_nan=False, separators=(",", ":"))[1:-1]
                 for i in range(0, len(rows), 1024)]
        return Response(('{"predictions":[' + ",".join(parts) + "]}").encode(), media_type="application/json")

    async def predict(request: Request) -> Response:
        payload, x = await parsed(request)
        top_k = top_k_of(payload, predictor)
        outputs = await service.batcher.submit(x)
        if len(x) * top_k <= INLINE_ROWS:
            return answer(outputs, top_k)
        return await run_in_threadpool(answer, outputs, top_k)  # 30,000 rows take ~1 s to build and encode

    async def activations(request: Request) -> Response:
        payload, x = await parsed(request)
        if len(x) != 1:
            raise InputError("inputs", "/activations takes exactly one input", got=f"{len(x)} inputs")
        outputs, layers = await service.batcher.run_in_worker(service.explain, x)
        top_k = predictor.info.num_classes if predictor.info.task == "classification" else 1
        return answer(outputs, top_k, {"layers": layers})

    async def explain(request: Request) -> Response:
        _, x = await parsed(request)
        if service.explainer is None:
            raise InputError("inputs", not_attributable(predictor.config.model))
        if len(x) > MAX_EXPLAIN:
            raise RequestError(413, "too_many_inputs", f"/explain takes at most {MAX_EXPLAIN} inputs per request, "
                               f"got {len(x)}")
        rows = await service.batcher.run_in_worker(service.explainer, x)
        header = {k: v for k, v in service.explainer.describe().items() if k != "workdir"}
        return JSONResponse({**header, "explanations": rows})

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)

    async def info(request: Request) -> Response:
        return JSONResponse(run_description(predictor, max_batch))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "workdir": predictor.workdir, "warmed_up_batch_sizes": sizes,
                             "compiled_batch_sizes": sorted(predictor.compiled_batch_sizes),
                             "max_batch": max_batch, "max_wait_ms": max_wait_ms,
                             "drift_monitor": "off" if monitor is None else
                             ("ok" if service.monitor_error is None else f"failing: {service.monitor_error}")})

    async def metrics_page(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def error(status: int, kind: str, message: str, headers: dict | None = None) -> Response:
        metrics.errors.labels(kind).inc()
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    async def on_request_error(request: Request, exc: RequestError) -> Response:
        return error(exc.status, exc.kind, exc.message)

    async def on_input_error(request: Request, exc: InputError) -> Response:
        return error(422, "bad_input", " ".join(str(exc).split()))

    async def on_http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404:
            return error(404, "not_found", f"no route {request.url.path!r}; the routes are {ROUTE_LIST}")
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            return error(405, "method_not_allowed", f"{request.url.path} takes {allowed or 'another method'}, "
                         f"not {request.method}", headers=exc.headers)
        return error(exc.status_code, "bad_request", str(exc.detail))

    async def on_client_abort(request: Request, exc: ClientDisconnect) -> Response:
        return error(499, "client_abort", "the client went away")  # nobody reads it

    async def on_crash(request: Request, exc: Exception) -> Response:
        return error(500, "internal", f"internal error ({type(exc).__name__}); the server goes on")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        service.batcher.start()
        metrics.compilations_at_ready.set(metrics.compiled)
        if ready is not None:
            ready()
        try:
            yield
        finally:
            await service.batcher.stop()

    app = Starlette(routes=[Route("/", page, methods=["GET"]), Route("/info", info, methods=["GET"]),
                            Route("/health", health, methods=["GET"]),
                            Route("/metrics", metrics_page, methods=["GET"]),
                            Route("/predict", predict, methods=["POST"]),
                            Route("/activations", activations, methods=["POST"]),
                            Route("/explain", explain, methods=["POST"])],
                    exception_handlers={RequestError: on_request_error, InputError: on_input_error,
                                        ClientDisconnect: on_client_abort,
                                        HTTPException: on_http_error, Exception: on_crash},
                    lifespan=lifespan)
    app.add_middleware(Instrument, metrics=metrics)
    app.state.service = service
    return app


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as error:
        raise InputError("--port", f"cannot listen there ({error.strerror or error})", got=f"{host}:{port}",
                         expected="a free port (0 picks one)") from None
    return sock


def number_flag(flags: dict, name: str, default: float, low: float, high: float, *, integer: bool = False):
    """--name's value (or `default`) through the one bounded parser of numeric flags."""
    return parse_number(f"--{name}", flags.get(name, str(default)), low=low, high=high, integer=integer)


def note_cut_off_requests(record: logging.LogRecord) -> bool:
    """uvicorn's ERROR line on requests cut off at shutdown, as one `warning:` line (a logging filter)."""
    if str(record.msg).startswith("Cancel %s running task(s)"):
        print(f"warning: stopping: {record.args[0]} request(s) still running after {SHUTDOWN_TIMEOUT_S} s were cut "
              "off (stalled uploads or long answers)", file=sys.stderr, flush=True)
        return False
    return True


def drift_monitor(predictor: Predictor, window: int) -> DriftMonitor | None:
    """The run's drift measure over the last `window` served inputs; None when off (0) or when the run
    has no drift_reference.json (trained before jaxdl wrote one: said on stderr, the server still serves)."""
    if window == 0:
        return None
    path = paths.join(predictor.workdir, drift_features.FILE)
    if not paths.as_path(path).is_file():
        print(f"warning: {path} is missing (a run trained before drift references were written): /metrics "
              "will have no jaxdl_drift_* gauges", file=sys.stderr, flush=True)
        return None
    return DriftMonitor(predictor.workdir, predictor, window=window)


def serve_command(argv: list[str]) -> int:
    flags, positional = parse_flags(argv, valued=("workdir", "host", "port", "max_batch", "max_wait_ms",
                                                  "max_body_mb", "max_inputs", "body_timeout_s", "drift_window",
                                                  "allow_origin"), switches=(), usage=USAGE, repeated=("allow_origin",))
    if positional:
        raise InputError("arguments", "unexpected", got=" ".join(positional), expected=USAGE)
    if "workdir" not in flags:
        raise InputError("--workdir", "missing", expected="the workdir of a finished run")
    host = flags.get("host", "127.0.0.1")
    port = number_flag(flags, "port", 8000, 0, 65535, integer=True)
    max_batch = number_flag(flags, "max_batch", 64, 1, MAX_BATCH, integer=True)
    max_wait_ms = number_flag(flags, "max_wait_ms", 5.0, 0.0, MAX_WAIT_MS)
    max_body = int(number_flag(flags, "max_body_mb", 16.0, 0.001, MAX_BODY_MB) * (1 << 20))
    max_inputs = number_flag(flags, "max_inputs", MAX_INPUTS, 1, MAX_INPUTS_LIMIT, integer=True)
    body_timeout_s = number_flag(flags, "body_timeout_s", BODY_TIMEOUT_S, 0.01, MAX_BODY_TIMEOUT_S)
    drift_window = number_flag(flags, "drift_window", WINDOW, 0, MAX_DRIFT_WINDOW, integer=True)
    if 0 < drift_window < MIN_EXAMPLES:
        raise InputError("--drift_window", "too small to judge drift", got=drift_window,
                         expected=f"0 (off) or an integer in [{MIN_EXAMPLES}, {MAX_DRIFT_WINDOW:,}]")
    origins = tuple(o.strip() for o in flags.get("allow_origin", "").split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not re.fullmatch(r"https?://[^/\s]+/?", origin):
            raise InputError("--allow_origin", "not an origin", got=origin,
                             expected="scheme://host[:port], e.g. https://example.org, or *")
    paths.check_storage(flags["workdir"])
    sock = listen(host, port)  # before loading: a taken port is said at once; early clients wait in the backlog
    predictor = load_run(flags["workdir"])
    bound = sock.getsockname()
    url = f"http://{f'[{bound[0]}]' if ':' in bound[0] else bound[0]}:{bound[1]}"

    def ready() -> None:
        print(f"serving {url}  (run {predictor.workdir}, model {predictor.model_description}; max_batch {max_batch}, "
              f"max_wait_ms {max_wait_ms:g}; Ctrl-C stops)", flush=True)

    monitor = drift_monitor(predictor, drift_window)
    app = create_app(predictor, max_batch=max_batch, max_wait_ms=max_wait_ms, max_body_bytes=max_body,
                     max_inputs=max_inputs, body_timeout_s=body_timeout_s, allow_origins=origins, ready=ready,
                     monitor=monitor)
    # Everything made so far (JAX, the model, the compiled programs) lives as long as the process: out
    # of the collector's sight, a full collection no longer stalls every request in flight for ~0.2 s.
    gc.freeze()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=SHUTDOWN_TIMEOUT_S)
    logging.getLogger("uvicorn.error").addFilter(note_cut_off_requests)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(serve_command, argv, USAGE, __doc__)


__all__ = ["Monitor", "create_app", "main"]


if __name__ == "__main__":
    sys.exit(main())
