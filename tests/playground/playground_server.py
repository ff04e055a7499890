"""A playground server in a thread on a free localhost port, and a small JSON client for it."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time

import uvicorn

from jaxdl.deploy.serve import listen
from jaxdl.playground.app import create_app


@contextlib.contextmanager
def serving(**options):
    """(host, port) of `create_app(**options)` served by uvicorn in a thread until the block ends."""
    sock = listen("127.0.0.1", 0)
    app = create_app(**options)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield sock.getsockname()[:2]
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def request(address, method: str, path: str, body=None, *, raw: bytes | None = None) -> tuple[int, dict]:
    """(status, JSON answer) of one request; `raw` sends those bytes as the body instead of JSON."""
    connection = http.client.HTTPConnection(*address, timeout=120)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    connection.request(method, path, body=data, headers={"content-type": "application/json"})
    response = connection.getresponse()
    status, text = response.status, response.read()
    connection.close()
    return status, json.loads(text)
