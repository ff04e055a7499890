"""A finished run answering over HTTP.

    python -m jaxdl.serve --workdir RUN [--host 127.0.0.1] [--port 8000] [--max_batch 64] [--max_wait_ms 5]
                          [--max_body_mb 16] [--drift_window 1000] [--debug]

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
malformed JSON or a body that is not {"inputs": [...]}, 422 inputs of the wrong shape or values,
413 a body over --max_body_mb, 404 an unknown route, 405 a wrong method.

Ready: the line `serving http://HOST:PORT` on stdout (--port 0 picks a free port). Ctrl-C (SIGINT)
or SIGTERM stop it after the requests in flight are answered, with exit code 130 or 143 (as every
jaxdl command stopped by a signal); 2 for bad flags or a bad run (one `error:` line).
"""

from __future__ import annotations

import contextlib
import gc
import json
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
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from jaxdl import paths
from jaxdl.deploy import drift_features
from jaxdl.deploy.batcher import Batcher
from jaxdl.deploy.command import parse_flags, run_command
from jaxdl.deploy.drift import MIN_EXAMPLES, WINDOW, DriftMonitor
from jaxdl.deploy.predict import prediction_rows
from jaxdl.deploy.run_loader import Predictor, bucket, encode_table, load_run, model_input
from jaxdl.deploy.serve_metrics import Instrument, ServeMetrics
from jaxdl.deploy.serve_page import PAGE
from jaxdl.errors import InputError, check_range
from jaxdl.evaluate.activations import model_intermediates, named_layers

USAGE = ("usage: python -m jaxdl.serve --workdir RUN [--host 127.0.0.1] [--port 8000] [--max_batch 64] "
         "[--max_wait_ms 5] [--max_body_mb 16] [--drift_window 1000] [--debug]")
ROUTES = ("/", "/info", "/health", "/metrics", "/predict", "/activations")
ROUTE_LIST = "GET /, /info, /health, /metrics; POST /predict, /activations"
# Bodies above this are parsed in a thread, so one large request does not hold up the event loop.
INLINE_BODY = 1 << 16
# The page shows at most this many feature maps of a layer, and this many values of a vector.
MAX_MAPS, MAX_VALUES = 16, 1024


class Monitor(Protocol):
    """A drift monitor: fed every served batch (in the model's worker thread), read at /metrics."""

    def observe(self, raw_inputs: np.ndarray, probabilities: np.ndarray) -> None: ...

    def gauges(self) -> dict[str, float]: ...


class RequestError(Exception):
    """A request the server refuses: HTTP `status`, the error `kind` counted at /metrics, a message."""

    def __init__(self, status: int, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body; RequestError 413 past `limit` bytes (told by Content-Length, or counted)."""
    too_large = RequestError(413, "too_large", f"body: more than {limit} bytes (--max_body_mb); "
                             "send fewer inputs per request")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def parse_payload(body: bytes) -> dict:
    """The JSON object {"inputs": [...], ...} of a body; RequestError 400 otherwise."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RequestError(400, "malformed_json", f"body: not JSON ({error})") from None
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise RequestError(400, "bad_request", 'body: expected a JSON object {"inputs": [input, ...]}, got '
                           + (f"an object with keys {sorted(payload)[:10]}" if isinstance(payload, dict)
                              else f"a JSON {type(payload).__name__}"))
    if not isinstance(payload["inputs"], list) or not payload["inputs"]:
        raise RequestError(400, "bad_request", "inputs: expected a non-empty list of inputs, got "
                           + json.dumps(payload["inputs"])[:80])
    return payload


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
    if info.stored.get("kind") == "table" and isinstance(inputs[0], dict):
        return table_rows(predictor, inputs)
    try:
        x = np.asarray(inputs)
    except ValueError:
        raise InputError("inputs", "the inputs are not all of one shape (ragged lists)",
                         expected=f"each input of shape {tuple(info.input_shape)}") from None
    if x.dtype == object:
        raise InputError("inputs", "not numbers", got=json.dumps(inputs)[:80],
                         expected=f"numbers, each input of shape {tuple(info.input_shape)}")
    if info.stored.get("kind") == "table" and x.dtype.kind == "U":
        width = len(info.preprocessing["columns"])
        if x.ndim != 2 or x.shape[1] != width:
            raise InputError("inputs", "wrong input shape", got=x.shape,
                             expected=f"(N, {width}) cells of the feature columns in order, or objects by column")
    try:
        return predictor.check(x)
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
        self.batcher = Batcher(self.run_batch, max_batch, max_wait_s,
                               after_batch=None if monitor is None else monitor.observe,
                               on_error=lambda error: metrics.errors.labels("monitor").inc())

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
               max_body_bytes: int = 16 << 20, monitor: Monitor | None = None,
               ready: Callable[[], None] | None = None) -> Starlette:
    """The Starlette app serving `predictor` (routes in the module docstring), warmed up on return.

    monitor: optional, with `.observe(raw_inputs (B, *input_shape), probabilities (B, K)) -> None`,
      called once per served batch in the model's worker thread (off the event loop), and
      `.gauges() -> {name: float}`, exported at /metrics as `jaxdl_drift_<name>`.
    ready: called once the app is started and serving (the command prints its URL there).
    """
    check_range("max_batch", max_batch, low=1, high=1024, integer=True)
    check_range("max_wait_ms", max_wait_ms, low=0)
    metrics = ServeMetrics(max_batch, ROUTES)
    if monitor is not None:
        metrics.watch(monitor.gauges)
    service = Service(predictor, metrics, max_batch, max_wait_ms / 1000.0, monitor)
    sizes = service.warm_up()

    async def parsed(request: Request) -> tuple[dict, np.ndarray]:
        body = await read_body(request, max_body_bytes)
        if len(body) <= INLINE_BODY:
            payload = parse_payload(body)
            return payload, stored_inputs(predictor, payload["inputs"])
        payload = await run_in_threadpool(parse_payload, body)
        return payload, await run_in_threadpool(stored_inputs, predictor, payload["inputs"])

    async def predict(request: Request) -> Response:
        payload, x = await parsed(request)
        top_k = top_k_of(payload, predictor)
        outputs = await service.batcher.submit(x)
        return JSONResponse({"predictions": prediction_rows(predictor, list(range(len(x))), outputs, None, top_k)})

    async def activations(request: Request) -> Response:
        payload, x = await parsed(request)
        if len(x) != 1:
            raise InputError("inputs", "/activations takes exactly one input", got=f"{len(x)} inputs")
        outputs, layers = await service.batcher.run_in_worker(service.explain, x)
        top_k = predictor.info.num_classes if predictor.info.task == "classification" else 1
        return JSONResponse({"predictions": prediction_rows(predictor, [0], outputs, None, top_k), "layers": layers})

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)

    async def info(request: Request) -> Response:
        return JSONResponse(run_description(predictor, max_batch))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "workdir": predictor.workdir, "warmed_up_batch_sizes": sizes,
                             "compiled_batch_sizes": sorted(predictor.compiled_batch_sizes),
                             "max_batch": max_batch, "max_wait_ms": max_wait_ms})

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
                            Route("/activations", activations, methods=["POST"])],
                    exception_handlers={RequestError: on_request_error, InputError: on_input_error,
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


def integer_flag(flags: dict, name: str, default: int, low: int, high: int | None = None) -> int:
    text = flags.get(name, str(default))
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"--{name}", "not an integer", got=text) from None
    return check_range(f"--{name}", value, low=low, high=high, integer=True)


def number_flag(flags: dict, name: str, default: float, low: float) -> float:
    text = flags.get(name, str(default))
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"--{name}", "not a number", got=text) from None
    return check_range(f"--{name}", value, low=low)


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
                                                  "max_body_mb", "drift_window"), switches=(), usage=USAGE)
    if positional:
        raise InputError("arguments", "unexpected", got=" ".join(positional), expected=USAGE)
    if "workdir" not in flags:
        raise InputError("--workdir", "missing", expected="the workdir of a finished run")
    host = flags.get("host", "127.0.0.1")
    port = integer_flag(flags, "port", 8000, 0, 65535)
    max_batch = integer_flag(flags, "max_batch", 64, 1, 1024)
    max_wait_ms = number_flag(flags, "max_wait_ms", 5.0, 0.0)
    max_body = int(number_flag(flags, "max_body_mb", 16.0, 0.001) * (1 << 20))
    drift_window = integer_flag(flags, "drift_window", WINDOW, 0)
    if 0 < drift_window < MIN_EXAMPLES:
        raise InputError("--drift_window", "too small to judge drift", got=drift_window,
                         expected=f"0 (off) or at least {MIN_EXAMPLES} inputs")
    sock = listen(host, port)  # before loading: a taken port is said at once; early clients wait in the backlog
    predictor = load_run(flags["workdir"])
    bound = sock.getsockname()
    url = f"http://{f'[{bound[0]}]' if ':' in bound[0] else bound[0]}:{bound[1]}"

    def ready() -> None:
        print(f"serving {url}  (run {predictor.workdir}, model {predictor.model_description}; max_batch {max_batch}, "
              f"max_wait_ms {max_wait_ms:g}; Ctrl-C stops)", flush=True)

    monitor = drift_monitor(predictor, drift_window)
    app = create_app(predictor, max_batch=max_batch, max_wait_ms=max_wait_ms, max_body_bytes=max_body, ready=ready,
                     monitor=monitor)
    # Everything made so far (JAX, the model, the compiled programs) lives as long as the process: out
    # of the collector's sight, a full collection no longer stalls every request in flight for ~0.2 s.
    gc.freeze()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    server.run(sockets=[sock])
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(serve_command, argv, USAGE, __doc__)


__all__ = ["Monitor", "create_app", "main"]


if __name__ == "__main__":
    sys.exit(main())
