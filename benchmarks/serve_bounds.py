"""What one request can cost `python -m jaxdl.serve` (docs/deploy.md, "Slow, aborting and oversized clients").

    python benchmarks/serve_bounds.py --workdir RUN [--code DIR]

RUN: a finished run of 8x8x1 uint8 digits (e.g. `python -m experiments.mlp --config configs/mlp.py:tiny
--workdir runs/tiny`). --code: the folder of the jaxdl to measure (default this checkout; give an
older checkout, e.g. from `git archive`, for the "before" column). Prints:
  memory: the server's peak resident memory minus its idle one while 3 clients POST ~14 MiB bodies at once;
  event loop: the slowest GET /health while one client asks for 30,000 inputs with top_k 10;
  shutdown: how long after SIGTERM the server exits with a stalled upload open.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import psutil

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start(code: str, workdir: str) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen([sys.executable, "-m", "jaxdl.serve", "--workdir", workdir, "--port", "0",
                                "--drift_window", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "PYTHONPATH": code}, cwd=code)
    return process, int(re.search(r":(\d+) ", process.stdout.readline()).group(1))


def post(port: int, body: bytes) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    connection.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status


def memory(code: str, workdir: str) -> str:
    process, port = start(code, workdir)
    body = json.dumps({"inputs": np.random.default_rng(0).integers(0, 256, (34000, 8, 8, 1)).tolist()}).encode()
    server = psutil.Process(process.pid)
    time.sleep(1)
    idle = peak = server.memory_info().rss
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, server.memory_info().rss)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    clients = [threading.Thread(target=post, args=(port, body)) for _ in range(3)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    done.set()
    watcher.join()
    process.terminate()
    process.wait()
    return (f"memory: 3 concurrent bodies of {len(body) / 2**20:.1f} MiB: idle {idle / 2**20:.0f} MiB, "
            f"peak {peak / 2**20:.0f} MiB (+{(peak - idle) / 2**20:.0f} MiB)")


def health(port: int) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start_time = time.perf_counter()
    connection.request("GET", "/health")
    connection.getresponse().read()
    connection.close()
    return time.perf_counter() - start_time


def event_loop(code: str, workdir: str) -> str:
    process, port = start(code, workdir)
    body = json.dumps({"inputs": np.random.default_rng(0).integers(0, 256, (30000, 8, 8, 1)).tolist(),
                       "top_k": 10}).encode()
    idle = sorted(health(port) for _ in range(20))[10]
    times, done = [], threading.Event()

    def poll() -> None:
        while not done.is_set():
            times.append(health(port))
            time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    status = post(port, body)
    done.set()
    poller.join()
    process.terminate()
    process.wait()
    return (f"event loop: 30,000 inputs, top_k 10 (status {status}): /health {idle * 1000:.0f} ms idle, "
            f"slowest {max(times) * 1000:.0f} ms meanwhile ({len(times)} polls)")


def shutdown(code: str, workdir: str) -> str:
    process, port = start(code, workdir)
    stalled = socket.create_connection(("127.0.0.1", port))
    stalled.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 1000\r\n\r\n" + b'{"inputs": [[1, 2, 3')
    time.sleep(0.5)
    start_time = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=120)
        said = f"exits after {time.monotonic() - start_time:.1f} s"
    except subprocess.TimeoutExpired:
        process.kill()
        said = "still running after 120 s (killed)"
    stalled.close()
    return f"shutdown: SIGTERM with a stalled upload open: {said}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--code", default=HERE)
    args = parser.parse_args()
    for measure in (memory, event_loop, shutdown):
        print(measure(os.path.abspath(args.code), os.path.abspath(args.workdir)), flush=True)


if __name__ == "__main__":
    main()
