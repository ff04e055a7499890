"""`python -m jaxdl.serve`: a real server process on a localhost socket answers as `jaxdl.load_run` does."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http.client
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import uvicorn
from conftest import REPO, chromium_path, run_cli
from deploy_runs import finished_run, run_splits
from test_explain import asgi_session
from test_predict import stored_pixels, stored_table, table_rows

import jaxdl
from jaxdl.deploy.predict import prediction_rows
from jaxdl.deploy.run_loader import encode_table
from jaxdl.deploy.serve import create_app, listen
from jaxdl.evaluate.activations import capture
from jaxdl.train.state import TrainState


class Client:
    """Requests to a server on host:port over real sockets (http.client)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    def request(self, method: str, path: str, body: bytes | dict | None = None, connection=None):
        """(status, parsed JSON or text) of one request; a new connection unless one is given."""
        own = connection is None
        connection = connection or http.client.HTTPConnection(self.host, self.port, timeout=60)
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        text = response.read().decode()
        if own:
            connection.close()
        kind = response.getheader("Content-Type", "")
        return response.status, json.loads(text) if kind.startswith("application/json") else text

    def metrics(self) -> dict[str, float]:
        """/metrics as {'name{labels}': value}."""
        status, text = self.request("GET", "/metrics")
        assert status == 200
        return {line.rpartition(" ")[0]: float(line.rpartition(" ")[2]) for line in text.splitlines()
                if line and not line.startswith("#")}


class Server(Client):
    """`python -m jaxdl.serve --workdir RUN --port 0 FLAGS...` as a subprocess, ready when it prints its URL."""

    def __init__(self, workdir: str, *flags: str, log=None):
        self.log = log
        self.process = subprocess.Popen([sys.executable, "-m", "jaxdl.serve", "--workdir", workdir, "--port", "0",
                                         *flags], cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True)
        deadline, line = time.monotonic() + 180, ""
        while not line.startswith("serving "):
            ready, _, _ = select.select([self.process.stdout], [], [], max(deadline - time.monotonic(), 0))
            assert ready and self.process.poll() is None, f"the server did not start: {self.stderr()}"
            line = self.process.stdout.readline()
        host, port = re.match(r"serving http://([\d.]+):(\d+)", line).groups()
        super().__init__(host, int(port))

    def stderr(self) -> str:
        if self.log is None:
            return ""
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()[-3000:]

    def close(self) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=60)
        self.process.stdout.close()
        return code


@contextlib.contextmanager
def serving(workdir: str, *flags: str, tmp_path=None):
    log = open(os.path.join(str(tmp_path), "server.log"), "w") if tmp_path is not None else None
    server = Server(workdir, *flags, log=log)
    try:
        yield server
    finally:
        code = server.close()
        stderr = server.stderr()
        if log is not None:
            log.close()
        assert code == 130, stderr  # Ctrl-C: uvicorn answers what is in flight, then the usual exit code 130


# The tests that need no flags of their own and read no counters (each kind, the drift gauges, the pages) ask
# one server process per run: the mlp's and the table's start once for the module. --drift_window 200 is
# the drift gauges test's: it fills the window with 200 inputs of its own before each reading.
SHARED_FLAGS = {"mlp": ("--drift_window", "200"), "table": ()}


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """`shared_server(name)`: the module's server of finished run `name` (SHARED_FLAGS), started on first use;
    each is stopped with Ctrl-C at the end and exits with 130."""
    started: dict[str, Server] = {}
    folder = tmp_path_factory.mktemp("shared-servers")

    def server(name: str) -> Server:
        if name not in started:
            started[name] = Server(finished_run(name, tmp_path_factory), *SHARED_FLAGS[name],
                                   log=open(folder / f"{name}.log", "w"))
        return started[name]

    yield server
    for running in started.values():
        code = running.close()
        stderr = running.stderr()
        running.log.close()
        assert code == 130, stderr


def expected_rows(predictor, x: np.ndarray, top_k: int) -> list[dict]:
    return prediction_rows(predictor, list(range(len(x))), predictor(x), None, top_k)


def assert_same_rows(got: list[dict], expected: list[dict]):
    """Same classes in the same order; probabilities equal up to 1e-6: the server runs each input in a
    batch of another size than `predictor(x)` here, and XLA's CPU dot products may round the last bit
    differently per batch shape (docs/deploy.md)."""
    assert len(got) == len(expected)
    for row, want in zip(got, expected, strict=True):
        assert row.keys() == want.keys()
        for key, value in want.items():
            if isinstance(value, float):
                assert abs(row[key] - value) <= 1e-6, (key, row[key], value)
            else:
                assert row[key] == value, (key, row, want)


@pytest.mark.slow
def test_the_command_refuses_bad_flags_with_one_error_line():
    result = run_cli("jaxdl.serve", "--port", "8000")
    assert result.returncode == 2 and result.stderr.strip() == \
        "error: --workdir: missing (expected the workdir of a finished run)"
    result = run_cli("jaxdl.serve", "--workdir", "nowhere", "--max_batch", "0")
    assert result.returncode == 2 and "error: --max_batch: out of range (got '0', expected an integer in [1, 1,024])" \
        in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# The CNN's and the RNN's warm-up compiles (7 batch sizes) plus their training take 30-40 s on 2 cores.
@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp", pytest.param("cnn", marks=pytest.mark.slow),
                                  pytest.param("rnn", marks=pytest.mark.slow), "table"])
def test_each_kind_of_run_answers_predict_as_load_run_does(name, tmp_path_factory, tmp_path, shared_server):
    workdir = finished_run(name, tmp_path_factory)
    predictor = jaxdl.load_run(workdir)
    splits = run_splits(workdir)
    if name == "table":
        x = stored_table(workdir, splits)[:6]
        header, rows = table_rows(workdir)
        columns = [column["name"] for column in predictor.info.preprocessing["columns"]]
        index = np.rint(splits.test["x"][:6, 0] / np.float32(1 / predictor.info.preprocessing["columns"][0]["std"])
                        + predictor.info.preprocessing["columns"][0]["mean"]).astype(int)
        # One object per row with the CSV's cells, keyed by column (the label and unknown columns left out).
        inputs = [{c: rows[i][header.index(c)] for c in columns} for i in index]
    else:
        x = stored_pixels(splits.test["x"][:6])
        inputs = x.tolist()
    shared = name in SHARED_FLAGS
    with contextlib.nullcontext(shared_server(name)) if shared else serving(workdir, tmp_path=tmp_path) as server:
        status, answer = server.request("POST", "/predict", {"inputs": inputs, "top_k": 3})
        assert status == 200, answer
        assert_same_rows(answer["predictions"], expected_rows(predictor, x, 3))
        status, explained = server.request("POST", "/activations", {"inputs": inputs[:1]})
        assert status == 200 and explained["layers"], explained
        assert explained["predictions"][0]["predicted"] == answer["predictions"][0]["predicted"]
        status, health = server.request("GET", "/health")
        assert status == 200 and health["compiled_batch_sizes"] == [1, 2, 4, 8, 16, 32, 64]


def test_hidden_layers_at_activations_are_the_models_own(tmp_path_factory):
    """The MLP sows each hidden layer: /activations gives exactly `jaxdl.evaluate.activations.capture`'s values.
    (The route of the app the command serves, called in-process; the tests above and below go through the
    server process.)"""
    workdir = finished_run("mlp", tmp_path_factory)
    predictor = jaxdl.load_run(workdir)
    x = stored_pixels(run_splits(workdir).test["x"][:1])
    state = TrainState(step=0, params=predictor.variables["params"], opt_state=(), rng=0, batch_stats={},
                       apply_fn=predictor.apply_fn, tx=None, metrics_fn=None)
    want = capture(state, predictor.preprocess(x))
    [(status, answer)] = asyncio.run(asgi_session(create_app(predictor, max_batch=4),
                                                  [("/activations", {"inputs": x.tolist()})]))
    assert status == 200
    assert [layer["name"] for layer in answer["layers"]] == list(want)
    for layer in answer["layers"]:
        assert layer["kind"] == "vector" and layer["shape"] == list(want[layer["name"]].shape[1:])
        np.testing.assert_allclose(layer["values"], want[layer["name"]][0], atol=1e-5)


BAD_REQUESTS = [
    # (method, path, body, status, kind, words in the error)
    ("POST", "/predict", b'{"inputs": [[1, 2', 400, "malformed_json", "body: not JSON"),
    ("POST", "/predict", b"\xff\xfe", 400, "malformed_json", "body: not JSON"),
    ("POST", "/predict", {"x": [1]}, 400, "bad_request", 'expected a JSON object {"inputs"'),
    ("POST", "/predict", {"inputs": []}, 400, "bad_request", "non-empty list"),
    ("POST", "/predict", {"inputs": [[1, 2, 3]]}, 422, "bad_input",
     "wrong input shape (got (1, 3), expected (N, 8, 8, 1))"),
    ("POST", "/predict", {"inputs": [[[[0.5]] * 8] * 8]}, 422, "bad_input", "uint8 pixels 0..255"),
    ("POST", "/predict", {"inputs": [[[[300]] * 8] * 8]}, 422, "bad_input", "uint8 pixels 0..255"),
    ("POST", "/predict", {"inputs": [[[[1]] * 8] * 8, [[1]]]}, 422, "bad_input", "not all of one shape"),
    ("POST", "/predict", {"inputs": [[[["a"]] * 8] * 8]}, 422, "bad_input", "not numeric"),
    ("POST", "/predict", {"inputs": [[[[0]] * 8] * 8], "top_k": 0}, 400, "bad_request", "top_k: out of range"),
    ("POST", "/activations", {"inputs": [[[[0]] * 8] * 8] * 2}, 422, "bad_input", "exactly one input"),
    ("POST", "/predict", {"inputs": [[[[0]] * 8] * 8] * 400}, 413, "too_large", "more than 20971 bytes"),
    ("GET", "/nowhere", None, 404, "not_found", "no route '/nowhere'"),
    ("GET", "/predict", None, 405, "method_not_allowed", "/predict takes POST, not GET"),
    ("DELETE", "/health", None, 405, "method_not_allowed", "not DELETE"),
]


@pytest.mark.slow
def test_each_bad_request_gets_its_4xx_and_the_server_goes_on(tmp_path_factory, tmp_path):
    workdir = finished_run("mlp", tmp_path_factory)
    good = {"inputs": [[[[16 * ((i + j) % 16)] for j in range(8)] for i in range(8)]]}
    with serving(workdir, "--max_body_mb", "0.02", tmp_path=tmp_path) as server:
        status, first = server.request("POST", "/predict", good)
        assert status == 200
        for method, path, body, want_status, _, words in BAD_REQUESTS:
            status, answer = server.request(method, path, body)
            assert status == want_status and words in answer["error"], (path, body if body is None else
                                                                       str(body)[:60], status, answer)
            assert server.request("POST", "/predict", good) == (200, first)
        metrics = server.metrics()
    kinds = {}
    for *_, kind, _ in BAD_REQUESTS:
        kinds[kind] = kinds.get(kind, 0) + 1
    for kind, count in kinds.items():
        assert metrics[f'jaxdl_errors_total{{kind="{kind}"}}'] == count
    assert metrics['jaxdl_requests_total{route="/predict",status="200"}'] == len(BAD_REQUESTS) + 1


@pytest.mark.slow
def test_2000_requests_of_32_clients_are_batched_all_answered_right_and_nothing_compiles(tmp_path_factory,
                                                                                        tmp_path):
    workdir = finished_run("mlp", tmp_path_factory)
    predictor = jaxdl.load_run(workdir)
    pool = stored_pixels(run_splits(workdir).test["x"])
    clients, per_client = 32, 63  # 2,016 requests
    # Request k: 1, 2 or 3 test inputs, from test input 3 k on.
    sizes = [1 + (k % 3) for k in range(clients * per_client)]
    requests = [np.take(pool, [(k * 3 + j) % len(pool) for j in range(size)], axis=0) for k, size in enumerate(sizes)]
    expected = [expected_rows(predictor, x, 2) for x in requests]

    with serving(workdir, "--max_batch", "64", "--max_wait_ms", "5", tmp_path=tmp_path) as server:
        before = server.metrics()

        def client(c: int) -> list:
            connection = http.client.HTTPConnection(server.host, server.port, timeout=120)
            answers = []
            for k in range(c * per_client, (c + 1) * per_client):
                answers.append((k, server.request("POST", "/predict", {"inputs": requests[k].tolist(), "top_k": 2},
                                                  connection)))
            connection.close()
            return answers

        with concurrent.futures.ThreadPoolExecutor(clients) as threads:
            answers = [answer for part in threads.map(client, range(clients)) for answer in part]
        after = server.metrics()
        status, health = server.request("GET", "/health")

    assert len(answers) == clients * per_client == 2016
    assert sorted(k for k, _ in answers) == list(range(2016))  # none lost, none twice
    for k, (status, answer) in answers:
        assert status == 200, answer
        assert_same_rows(answer["predictions"], expected[k])
    assert after['jaxdl_requests_total{route="/predict",status="200"}'] == 2016
    assert after["jaxdl_predictions_total"] - before["jaxdl_predictions_total"] == sum(sizes)
    batches = after["jaxdl_batch_size_count"] - before["jaxdl_batch_size_count"]
    single = after['jaxdl_batch_size_bucket{le="1.0"}'] - before['jaxdl_batch_size_bucket{le="1.0"}']
    assert batches < 2016 and single < batches, (batches, single)  # concurrent requests shared calls
    assert after["jaxdl_batch_size_sum"] - before["jaxdl_batch_size_sum"] == sum(sizes)
    # Every batch shape was compiled at start-up: nothing compiled under load.
    assert after["jaxdl_compilations_total"] == before["jaxdl_compilations_total"] == after[
        "jaxdl_compilations_at_ready"]
    assert health["compiled_batch_sizes"] == health["warmed_up_batch_sizes"]


class CountingMonitor:
    """The drift monitor's interface: counts what it is shown."""

    def __init__(self):
        self.batches, self.rows, self.shapes, self.threads, self.first = 0, 0, set(), set(), []

    def observe(self, raw_inputs: np.ndarray, probabilities: np.ndarray) -> None:
        self.batches += 1
        self.rows += len(raw_inputs)
        self.shapes.add((raw_inputs.dtype.name, raw_inputs.shape[1:], probabilities.shape[1:]))
        self.threads.add(threading.current_thread().name)
        self.first.append(probabilities[0])

    def gauges(self) -> dict[str, float]:
        return {"rows": float(self.rows), "batches": float(self.batches)}


def test_a_monitor_sees_every_served_batch_off_the_event_loop_and_its_gauges_reach_metrics(tmp_path_factory):
    workdir = finished_run("mlp", tmp_path_factory)
    predictor = jaxdl.load_run(workdir)
    x = stored_pixels(run_splits(workdir).test["x"][:5])
    monitor = CountingMonitor()
    app = create_app(predictor, max_batch=8, max_wait_ms=1, monitor=monitor)
    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        client = Client(*sock.getsockname()[:2])
        for i in range(len(x)):
            assert client.request("POST", "/predict", {"inputs": x[i:i + 1].tolist()})[0] == 200
        assert client.request("POST", "/predict", {"inputs": x.tolist()})[0] == 200
        while monitor.rows < 2 * len(x):  # observe runs after the answers are sent
            time.sleep(0.01)
        metrics = client.metrics()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert monitor.rows == 10 and monitor.batches == 6
    assert monitor.shapes == {("uint8", (8, 8, 1), (10,))}
    assert monitor.threads and all(name.startswith("jaxdl-model") for name in monitor.threads)
    np.testing.assert_allclose(monitor.first[0], predictor(x[:1])[0], atol=1e-6)
    assert metrics["jaxdl_drift_rows"] == 10 and metrics["jaxdl_drift_batches"] == 6


@pytest.mark.slow
def test_the_served_drift_gauges_stay_quiet_on_the_test_split_and_turn_on_shifted_inputs(tmp_path_factory,
                                                                                         shared_server):
    """The command wires the run's drift reference into /metrics over a rolling window of served inputs."""
    workdir = finished_run("mlp", tmp_path_factory)
    x = stored_pixels(run_splits(workdir).test["x"])
    assert SHARED_FLAGS["mlp"] == ("--drift_window", "200")
    with contextlib.nullcontext(shared_server("mlp")) as server:
        for start in range(0, 200, 20):
            assert server.request("POST", "/predict", {"inputs": x[start:start + 20].tolist()})[0] == 200
        time.sleep(0.5)  # observe runs after the answers are sent
        quiet = server.metrics()
        shifted = np.roll(x, 2, axis=2)  # two pixels to the right, as in tests/deploy/test_drift.py
        for start in range(0, 200, 20):
            assert server.request("POST", "/predict", {"inputs": shifted[start:start + 20].tolist()})[0] == 200
        time.sleep(0.5)
        loud = server.metrics()
    assert quiet["jaxdl_drift_window"] == 200 and quiet["jaxdl_drift_drifted"] == 0, quiet
    assert loud["jaxdl_drift_window"] == 200 and loud["jaxdl_drift_drifted"] == 1
    assert loud["jaxdl_drift_score"] > 1 > quiet["jaxdl_drift_score"]


@pytest.mark.slow
def test_a_run_without_a_drift_reference_is_served_without_drift_gauges(tmp_path_factory, tmp_path):
    workdir = str(tmp_path / "old-run")
    shutil.copytree(finished_run("mlp", tmp_path_factory), workdir)
    os.remove(os.path.join(workdir, "drift_reference.json"))
    with serving(workdir, tmp_path=tmp_path) as server:
        x = stored_pixels(run_splits(workdir).test["x"][:4])
        assert server.request("POST", "/predict", {"inputs": x.tolist()})[0] == 200
        assert not [name for name in server.metrics() if name.startswith("jaxdl_drift_")]
    stderr = (tmp_path / "server.log").read_text()
    assert "warning:" in stderr and "drift_reference.json is missing" in stderr




@contextlib.contextmanager
def page_of(server: Server):
    """The page `server` serves, in headless Chromium (playwright), once the page says it is ready."""
    chromium = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(f"http://{server.host}:{server.port}/")
            page.wait_for_selector("body[data-ready='1']", timeout=30000)
            yield page
        finally:
            browser.close()


@pytest.mark.slow
def test_the_page_in_headless_chromium_predicts_a_drawn_stroke(tmp_path_factory, shared_server):
    workdir = finished_run("mlp", tmp_path_factory)
    predictor = jaxdl.load_run(workdir)
    with page_of(shared_server("mlp")) as page:
        assert page.inner_text("#predicted") == ""
        box = page.locator("#pad").bounding_box()
        # A "1": one vertical stroke down the middle of the pad, drawn with the mouse.
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.85, steps=12)
        page.mouse.up()
        # The answer to the finished stroke (each move sends the canvas; the last answer is shown).
        page.wait_for_function("window.lastInput !== null && window.idle()", timeout=30000)
        shown = page.inner_text("#predicted")
        drawn = np.asarray(page.evaluate("window.lastInput"), np.int64)
        bars = page.locator("#bars .bar").count()
        maps = page.locator("#layers canvas").count()
        message = page.inner_text("#message")
        page.check("#explain")  # why: the attribution map over the pad
        page.wait_for_function("window.lastWhy !== null && window.idle()", timeout=60000)
        why = page.evaluate("window.lastWhy")
        painted = page.evaluate("(() => { const c = document.getElementById('whymap'); let n = 0; const d = "
                                "c.getContext('2d').getImageData(0, 0, c.width, c.height).data; "
                                "for (let k = 3; k < d.length; k += 4) n += d[k] > 0; return n; })()")
    assert message == ""
    # The stroke straddles columns 3 and 4 (each about half covered), from row 1 to row 6; nothing else.
    assert drawn.shape == (8, 8, 1) and drawn[1:7, 3:5].min() >= 100 and drawn[1:7, 3:5].max() <= 255
    assert drawn[:, :2].sum() == drawn[:, 6:].sum() == 0
    probabilities = predictor(drawn[None].astype(np.uint8))[0]
    best = int(probabilities.argmax())
    assert shown == f"{predictor.class_names[best]} ({100 * probabilities[best]:.1f}%)"
    assert bars == 10 and maps >= 1
    assert why["predicted"] == predictor.class_names[best] and np.shape(why["attributions"]) == (8, 8, 1)
    assert 0 < painted <= np.count_nonzero(np.asarray(why["attributions"]))  # drawn where attributed, nowhere else


@pytest.mark.slow
def test_the_page_in_headless_chromium_predicts_a_filled_in_table_row(tmp_path_factory, shared_server):
    workdir = finished_run("table", tmp_path_factory)
    predictor = jaxdl.load_run(workdir)
    with page_of(shared_server("table")) as page:
        fields = page.eval_on_selector_all("#features [name]", "nodes => nodes.map(n => n.name)")
        page.fill("[name='row']", "7")
        page.fill("[name='size']", "5.2")
        page.select_option("[name='shade']", "light")
        page.wait_for_function("window.lastInput !== null && window.idle() && "
                               "window.lastInput.shade === 'light'", timeout=30000)
        sent = page.evaluate("window.lastInput")
        shown = page.inner_text("#predicted")
        bars = page.locator("#bars .bar").count()
    assert fields == ["row", "size", "shade"]  # the run's feature columns; the label `kind` is not asked
    assert sent == {"row": "7", "size": "5.2", "shade": "light"}
    x = encode_table(predictor.info.preprocessing, list(sent), [list(sent.values())])
    probabilities = predictor(x)[0]
    best = int(probabilities.argmax())
    assert shown == f"{predictor.class_names[best]} ({100 * probabilities[best]:.1f}%)" and bars == 3
