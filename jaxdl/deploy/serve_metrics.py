"""What `python -m jaxdl.serve` reports at GET /metrics (Prometheus text format, prometheus_client).

  jaxdl_requests_total{route, status}       every HTTP request (route: a known path, else "other")
  jaxdl_errors_total{kind}                  4xx/5xx answers by kind (malformed_json, bad_request,
                                            bad_input, too_large, too_many_inputs, unsupported_media,
                                            forbidden_origin, body_timeout, client_abort (status 499:
                                            the client left; not the server's fault), shutting_down,
                                            not_found, method_not_allowed, internal), and monitor (a
                                            drift monitor that failed)
  jaxdl_request_latency_seconds{route}      histogram, from the request's arrival to its answer
  jaxdl_batch_size                          histogram of the rows of each compiled call
  jaxdl_predictions_total                   inputs answered
  jaxdl_compilations_total                  XLA compilations in the process (jax.monitoring);
  jaxdl_compilations_at_ready               ... of which during start-up and warm-up
  jaxdl_drift_<name>                        the gauges of the drift monitor, when one is given

Each app has its own registry, so two apps in one process do not mix their counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class DriftGauges:
    """A collector asking the monitor for its gauges at every scrape: jaxdl_drift_<name>."""

    def __init__(self, gauges: Callable[[], dict[str, float]]):
        self.gauges = gauges

    def collect(self):
        for name, value in sorted(self.gauges().items()):
            clean = "".join(c if c.isalnum() or c == "_" else "_" for c in str(name))
            yield GaugeMetricFamily(f"jaxdl_drift_{clean}", f"drift monitor: {name}", value=float(value))


class ServeMetrics:
    """The counters and histograms above, in `registry`."""

    def __init__(self, max_batch: int, routes: tuple[str, ...]):
        self.registry, self.routes = CollectorRegistry(), routes
        self.requests = Counter("jaxdl_requests", "HTTP requests", ["route", "status"], registry=self.registry)
        self.errors = Counter("jaxdl_errors", "error answers by kind", ["kind"], registry=self.registry)
        self.latency = Histogram("jaxdl_request_latency_seconds", "time from a request's arrival to its answer",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        sizes = [1 << i for i in range(max(max_batch - 1, 0).bit_length() + 1)]
        self.batch_size = Histogram("jaxdl_batch_size", "rows of each compiled call", buckets=sizes,
                                    registry=self.registry)
        self.predictions = Counter("jaxdl_predictions", "inputs answered", registry=self.registry)
        self.compilations = Counter("jaxdl_compilations", "XLA compilations in this process",
                                    registry=self.registry)
        self.compilations_at_ready = Gauge("jaxdl_compilations_at_ready",
                                           "XLA compilations before the server was ready (start-up, warm-up)",
                                           registry=self.registry)
        self.compiled = 0
        jax.monitoring.register_event_duration_secs_listener(self.on_event)

    def on_event(self, event: str, duration: float, **kwargs) -> None:
        if event == COMPILE_EVENT:
            self.compiled += 1
            self.compilations.inc()

    def watch(self, gauges: Callable[[], dict[str, float]]) -> None:
        self.registry.register(DriftGauges(gauges))

    def route(self, path: str) -> str:
        return path if path in self.routes else "other"


class Instrument:
    """ASGI middleware: counts every HTTP request by route and status and times it."""

    def __init__(self, app, metrics: ServeMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = self.metrics.route(scope["path"])
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
