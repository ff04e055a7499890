"""`python -m jaxdl.serve` under load: requests/s and latency with and without batching, side by side.

    python benchmarks/serve.py [--workdir RUN] [--experiment mlp|cnn] [--clients 32] [--requests 4000] [--repeats 3]

One server process per setting, all on the same finished run (without --workdir: the experiment's
default config trained for 2 epochs into a temporary folder; mlp is the 64-512-512-10 digits MLP):
  max_batch 1                  no batching: one compiled call per request;
  max_batch 64, max_wait_ms 5  batching, waiting up to 5 ms for a batch to fill;
  max_batch 64, max_wait_ms 0  batching only what is already queued when the model is free.
`--clients` clients (asyncio, one keep-alive HTTP connection each) send one input per request
(random uint8 pixels: the figures do not depend on them) to `POST /predict`, back to back; a
setting's pass is `--requests` requests, after 200 warm-up requests. Passes alternate between
settings (1, 2, 3, 1, 2, 3, ...) so machine noise hits all alike; each figure is the median over
the repeats. Latency is measured by the client, from sending a request to reading its answer.
The mean batch is the server's
own count (jaxdl_batch_size at /metrics). The clients run in this process beside the servers: on a
small machine they compete with them for the CPU, which the figures include.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import h11
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = (("max_batch 1", ["--max_batch", "1"]),
            ("max_batch 64, max_wait_ms 5", ["--max_batch", "64", "--max_wait_ms", "5"]),
            ("max_batch 64, max_wait_ms 0", ["--max_batch", "64", "--max_wait_ms", "0"]))


def start_server(workdir: str, flags: list[str]) -> tuple[subprocess.Popen, str, int]:
    process = subprocess.Popen([sys.executable, "-m", "jaxdl.serve", "--workdir", workdir, "--port", "0", *flags],
                               cwd=REPO, stdout=subprocess.PIPE, text=True)
    line = ""
    while not line.startswith("serving "):
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            raise SystemExit(f"the server did not start ({flags})")
    host, port = re.match(r"serving http://([\d.]+):(\d+)", line).groups()
    return process, host, int(port)


def batch_counts(host: str, port: int) -> tuple[float, float]:
    """(batches, rows) served so far, from /metrics."""
    connection = http.client.HTTPConnection(host, port)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return float(values["jaxdl_batch_size_count"]), float(values["jaxdl_batch_size_sum"])


async def client(host: str, port: int, bodies: list[bytes]) -> list[float]:
    """Latencies of `bodies` sent one after another on one keep-alive connection (h11, uvicorn's own
    HTTP/1.1 library, on asyncio streams: no client threads to wait for the GIL)."""
    reader, writer = await asyncio.open_connection(host, port)
    connection, latencies = h11.Connection(h11.CLIENT), []
    for body in bodies:
        start = time.perf_counter()
        headers = [("Host", host), ("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        writer.write(connection.send(h11.Request(method="POST", target="/predict", headers=headers))
                     + connection.send(h11.Data(data=body)) + connection.send(h11.EndOfMessage()))
        status = None
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                break
        latencies.append(time.perf_counter() - start)
        assert status == 200, status
        connection.start_next_cycle()
    writer.close()
    await writer.wait_closed()
    return latencies


def load(host: str, port: int, bodies: list[bytes], clients: int) -> tuple[float, np.ndarray]:
    """(seconds for all bodies, latency of each in seconds) with `clients` concurrent connections."""
    async def all_clients():
        return await asyncio.gather(*(client(host, port, bodies[c::clients]) for c in range(clients)))

    start = time.perf_counter()
    latencies = [t for part in asyncio.run(all_clients()) for t in part]
    return time.perf_counter() - start, np.asarray(latencies)


def finished_run(experiment: str, root: str) -> str:
    workdir = os.path.join(root, "run")
    command = [sys.executable, "-m", f"experiments.{experiment}", "--workdir", workdir, "--config.train.epochs=2",
               "--config.eval.baseline=false", "--config.eval.report=false", "--quiet",
               f"--config.data.data_dir={os.path.join(root, 'tfds')}"]
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return workdir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="", help="a finished run (default: train one)")
    parser.add_argument("--experiment", default="mlp", choices=("mlp", "cnn"))
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        workdir = args.workdir or finished_run(args.experiment, root)
        rng = np.random.default_rng(0)
        with open(os.path.join(workdir, "data_info.json")) as f:
            shape = json.load(f)["input_shape"]
        digits = rng.integers(0, 256, size=(args.requests, *shape), dtype=np.uint8)
        bodies = [json.dumps({"inputs": [x.tolist()]}).encode() for x in digits]
        servers = [start_server(workdir, flags) for _, flags in SETTINGS]
        results = {name: [] for name, _ in SETTINGS}
        try:
            for _, host, port in servers:
                load(host, port, bodies[:200], args.clients)
            for _ in range(args.repeats):
                for (name, _), (_, host, port) in zip(SETTINGS, servers, strict=True):
                    batches, rows = batch_counts(host, port)
                    seconds, latencies = load(host, port, bodies, args.clients)
                    batches_after, rows_after = batch_counts(host, port)
                    results[name].append((len(bodies) / seconds, np.percentile(latencies, 50) * 1e3,
                                          np.percentile(latencies, 99) * 1e3,
                                          (rows_after - rows) / (batches_after - batches)))
        finally:
            for process, _, _ in servers:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=60)
    print(f"jaxdl.serve on {workdir if args.workdir else args.experiment + ' (2 epochs)'}: {args.clients} clients, "
          f"{args.requests} requests of one input per pass, median of {args.repeats} passes, CPU "
          f"({os.cpu_count()} cores)")
    print(f"{'setting':<30}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'mean batch':>12}")
    for name, runs in results.items():
        rps, p50, p99, batch = (statistics.median(column) for column in zip(*runs, strict=True))
        print(f"{name:<30}{rps:>12.0f}{p50:>10.2f}{p99:>10.2f}{batch:>12.1f}")


if __name__ == "__main__":
    main()
