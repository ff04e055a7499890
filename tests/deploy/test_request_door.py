"""The request door of `python -m jaxdl.serve` (jaxdl.deploy.serve_requests), explored with generated
requests against one real server on a localhost socket, and with real sockets for clients that abort
or stall."""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
import time

import numpy as np
import pytest
import uvicorn
from deploy_runs import finished_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_serve import Client, Server

import jaxdl
from jaxdl.deploy.serve import create_app, listen, serve_command
from jaxdl.deploy.serve_requests import numeric_inputs
from jaxdl.errors import InputError

ALLOWED = "http://allowed.example"
FLAGS = ("--body_timeout_s", "2", "--max_inputs", "100", "--drift_window", "30", "--allow_origin", ALLOWED)
GOOD_ROW = [0.5, -1.0, 2.0, 0.0, 1.5, -0.25]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module: the float-input run (6 features), flags FLAGS; its stderr in server.log."""
    workdir = finished_run("arrays", tmp_path_factory)
    log = open(tmp_path_factory.mktemp("request-door") / "server.log", "w")
    started = Server(workdir, *FLAGS, log=log)
    yield started
    code = started.close()
    log.close()
    assert code == 130


def post(server, path: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    """(status, JSON answer) of a POST over a fresh connection."""
    import http.client
    connection = http.client.HTTPConnection(server.host, server.port, timeout=60)
    connection.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    text = response.read().decode()
    connection.close()
    return response.status, json.loads(text)


def drift_window(server) -> float:
    """The drift window's count, once the monitor has seen what was answered (it runs after the answers)."""
    time.sleep(0.3)
    return server.metrics()["jaxdl_drift_window"]


@pytest.mark.slow
@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e39", "-1e39"])
def test_non_finite_inputs_are_422_naming_the_input_and_the_drift_window_never_sees_them(server, value):
    before = drift_window(server)
    status, answer = post(server, "/predict", json.dumps({"inputs": [GOOD_ROW] * 3}).encode())
    assert status == 200 and len(answer["predictions"]) == 3
    assert drift_window(server) == min(before + 3, 30)
    bad = f'{{"inputs": [{GOOD_ROW}, {GOOD_ROW}, [1, 2, {value}, 4, 5, 6]]}}'.encode()
    for path in ("/predict", "/activations"):
        status, answer = post(server, path, bad)
        assert status == 422 and "input 2 holds a value that is not a finite float32 number" in answer["error"], answer
    status, answer = post(server, "/activations", f'{{"inputs": [[1, 2, {value}, 4, 5, 6]]}}'.encode())
    assert status == 422 and "input 0 holds a value that is not a finite" in answer["error"]
    assert drift_window(server) == min(before + 3, 30)


def test_inputs_whose_model_output_overflows_are_422_and_unseen_by_the_drift_window(server):
    before = drift_window(server)
    huge = [3e38, -3e38, 3e38, -3e38, 3e38, 3e38]  # finite float32, but the model's sums overflow
    status, answer = post(server, "/predict", json.dumps({"inputs": [GOOD_ROW, huge]}).encode())
    assert status == 422 and "input 1 gives a model output that is not finite" in answer["error"], answer
    status, answer = post(server, "/activations", json.dumps({"inputs": [huge]}).encode())
    assert status == 422 and "input 0 gives a model output that is not finite" in answer["error"], answer
    assert drift_window(server) == before
    assert server.request("GET", "/health")[0] == 200


def test_a_post_must_be_json_from_this_server_or_an_allowed_origin(server):
    body = json.dumps({"inputs": [GOOD_ROW]}).encode()
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""):
        status, answer = post(server, "/predict", body, {"Content-Type": kind})
        assert status == 415 and "Content-Type: expected application/json" in answer["error"], (kind, answer)
    assert post(server, "/predict", body, {"Content-Type": "application/json; charset=utf-8"})[0] == 200
    status, answer = post(server, "/predict", body, {"Origin": "http://evil.example"})
    assert status == 403 and "--allow_origin" in answer["error"]
    assert post(server, "/activations", body, {"Origin": "null"})[0] == 403
    assert post(server, "/predict", body, {"Origin": ALLOWED})[0] == 200
    assert post(server, "/predict", body, {"Origin": f"http://{server.host}:{server.port}"})[0] == 200
    metrics = server.metrics()
    assert metrics['jaxdl_errors_total{kind="unsupported_media"}'] >= 4
    assert metrics['jaxdl_errors_total{kind="forbidden_origin"}'] >= 2


def test_more_inputs_than_max_inputs_are_413(server):
    status, answer = post(server, "/predict", json.dumps({"inputs": [GOOD_ROW] * 101}).encode())
    assert status == 413 and "more than --max_inputs 100" in answer["error"]
    assert post(server, "/predict", json.dumps({"inputs": [GOOD_ROW] * 100}).encode())[0] == 200


def raw_request(server, head: bytes, body: bytes) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=30)
    sock.sendall(head + body)
    return sock


def test_clients_that_abort_their_upload_are_counted_as_client_aborts_without_a_traceback(server):
    before = server.metrics()
    sock = raw_request(server, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 1000\r\n\r\n", b'{"inputs": [[1, 2, 3')  # 20 of 1,000 bytes
    time.sleep(0.2)
    sock.close()
    sock = raw_request(server, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n", b'10\r\n{"inputs": [[1, 2\r\n')  # half a chunked upload
    time.sleep(0.2)
    sock.close()
    deadline = time.monotonic() + 30
    while server.metrics().get('jaxdl_errors_total{kind="client_abort"}', 0) < before.get(
            'jaxdl_errors_total{kind="client_abort"}', 0) + 2:
        assert time.monotonic() < deadline, server.metrics()
        time.sleep(0.1)
    after = server.metrics()
    assert after.get('jaxdl_errors_total{kind="internal"}', 0) == 0
    assert not [k for k in after if 'status="500"' in k]
    assert "Traceback" not in server.stderr()
    assert server.request("GET", "/health")[0] == 200


def test_a_stalled_upload_gets_408_after_the_body_timeout(server):
    sock = raw_request(server, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 1000\r\n\r\n", b'{"inputs": [[1, 2, 3')
    answer = b""
    while b"}" not in answer:
        chunk = sock.recv(4096)  # the socket's 30 s timeout bounds the wait (--body_timeout_s is 2)
        assert chunk, answer
        answer += chunk
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408") and b"--body_timeout_s" in answer, answer
    assert server.request("GET", "/health")[0] == 200


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=7) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=40)
ROWS = hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=7),
                  elements=st.floats(allow_nan=True, allow_infinity=True, width=64))
BODIES = st.one_of(
    st.binary(max_size=200),                                                   # not JSON at all
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),                         # any JSON
    JSON_VALUES.map(lambda v: json.dumps({"inputs": v}).encode()),             # odd inputs
    ROWS.map(lambda a: json.dumps({"inputs": a.tolist()}).encode()),           # odd shapes, odd values
    st.tuples(ROWS, JSON_VALUES).map(lambda t: json.dumps({"inputs": t[0].tolist(), "top_k": t[1]}).encode()),
    st.lists(st.sampled_from([b"[", b"]", b",", b"1", b"-", b"e", b".", b" ", b"NaN"]), max_size=40).map(
        lambda parts: b'{"inputs": ' + b"".join(parts) + b"}"),                # bracket soup
)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=BODIES, path=st.sampled_from(["/predict", "/activations"]))
def test_generated_bodies_get_a_4xx_with_an_error_or_a_right_answer_and_the_server_goes_on(server, body, path):
    status, answer = post(server, path, body)
    assert status != 500 and status < 500, (body[:200], status, answer)
    if status == 200:
        inputs = np.asarray(json.loads(body)["inputs"], dtype=np.float64)
        assert inputs.shape[1:] == (6,) and np.isfinite(inputs).all()
        assert len(answer["predictions"]) == len(inputs)
        assert all(math.isfinite(row["probability"]) for row in answer["predictions"])
    else:
        assert 400 <= status < 500 and isinstance(answer.get("error"), str) and answer["error"], answer
    assert server.request("GET", "/health")[0] == 200


SHAPES = hnp.array_shapes(min_dims=1, max_dims=4, max_side=5)


@settings(max_examples=60, deadline=None)
@given(array=hnp.arrays(np.int64, SHAPES, elements=st.integers(-2**53 + 1, 2**53 - 1))
       | hnp.arrays(np.float64, SHAPES, elements=st.floats(allow_nan=False, allow_infinity=False)),
       indent=st.sampled_from([None, 1]))
def test_the_numeric_fast_path_reads_what_json_reads(array, indent):
    body = json.dumps({"inputs": array.tolist(), "top_k": 2}, indent=indent).encode()
    parsed = numeric_inputs(body)
    assert parsed is not None
    payload, inputs = parsed
    assert payload["top_k"] == 2
    np.testing.assert_array_equal(inputs, np.asarray(json.loads(body)["inputs"]))


@pytest.mark.parametrize("body", [b'{"inputs": [[1, 2], [3]]}', b'{"inputs": [[1, 2], 3]}', b'{"inputs": [[]]}',
                                  b'{"inputs": [+1]}', b'{"inputs": [01]}', b'{"inputs": [1..2]}',
                                  b'{"meta": {"inputs": [1]}, "inputs": "x"}', b'{"inputs": [1], "inputs": [2, 3]}',
                                  b'{"inputs": [1, 2,]}', b'{"inputs": [NaN]}'])
def test_the_fast_path_leaves_anything_irregular_to_json(body):
    assert numeric_inputs(body) is None


class FailingMonitor:
    def observe(self, raw_inputs, probabilities):
        raise RuntimeError("window too large")

    def gauges(self):
        return {}


def test_a_failing_drift_monitor_says_so_once_and_at_health(tmp_path_factory):
    predictor = jaxdl.load_run(finished_run("arrays", tmp_path_factory))
    app = create_app(predictor, max_batch=4, max_wait_ms=1, monitor=FailingMonitor())
    sock = listen("127.0.0.1", 0)
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]})
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("jaxdl").addHandler(handler)  # the commands print its records as `warning:` lines
    thread.start()
    try:
        while not uvicorn_server.started:
            time.sleep(0.01)
        client = Client(*sock.getsockname()[:2])
        assert client.request("GET", "/health")[1]["drift_monitor"] == "ok"
        for _ in range(3):
            assert client.request("POST", "/predict", {"inputs": [GOOD_ROW]})[0] == 200
        deadline = time.monotonic() + 30
        while client.metrics().get('jaxdl_errors_total{kind="monitor"}', 0) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        health = client.request("GET", "/health")[1]
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=30)
        logging.getLogger("jaxdl").removeHandler(handler)
    assert health["drift_monitor"] == "failing: RuntimeError: window too large"
    said = [record.getMessage() for record in records if "drift monitor" in record.getMessage()]
    assert len(said) == 1 and "RuntimeError: window too large" in said[0]


@pytest.mark.slow
def test_sigterm_stops_the_server_within_its_grace_period_even_with_a_stalled_upload(tmp_path_factory, tmp_path):
    import signal
    workdir = finished_run("arrays", tmp_path_factory)
    log = open(tmp_path / "server.log", "w")
    server = Server(workdir, log=log)  # the default --body_timeout_s (30 s) would outlast the grace period (5 s)
    sock = raw_request(server, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 1000\r\n\r\n", b'{"inputs": [[1, 2, 3')
    time.sleep(0.5)
    server.process.send_signal(signal.SIGTERM)
    start = time.monotonic()
    code = server.process.wait(timeout=60)
    took = time.monotonic() - start
    answer = sock.recv(4096)
    sock.close()
    log.close()
    stderr = (tmp_path / "server.log").read_text()
    assert code == -signal.SIGTERM and took < 30, (code, took)  # 5 s grace; a generous bound on a loaded machine
    assert answer.startswith(b"HTTP/1.1 503") and b"the server is stopping" in answer
    assert "Traceback" not in stderr and stderr.strip().splitlines() == [
        "warning: stopping: 1 request(s) still running after 5 s were cut off (stalled uploads or long answers)"]


@pytest.mark.parametrize("flags, words", [
    (("--max_inputs", "0"), "--max_inputs: out of range"),
    (("--body_timeout_s", "inf"), "--body_timeout_s: out of range"),
    (("--allow_origin", "evil"), "--allow_origin: not an origin"),
    (("--drift_window", "10"), "too small to judge drift"),
    (("--allow_origin", "https://a.example", "--allow_origin", "ftp://b"), "--allow_origin: not an origin (got 'ftp://b'"),
])
def test_the_request_door_flags_are_bounded(flags, words):
    """In-process (the command's `error:` line and exit code 2 for these are checked in tests/run/test_flag_door.py)."""
    with pytest.raises(InputError) as raised:
        serve_command(["--workdir", "nowhere", *flags])
    assert words in str(raised.value)
