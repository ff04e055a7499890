"""Many processes on localhost (jax.distributed, gloo): 2 processes x 4 CPU devices train as 1 process x 8.

Each process is a real `python -m experiments.<name>` with --coordinator/--num_processes/--process_id.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO, CliDriver, devices_env, run_cli

from jaxdl.run import output_guard

FOUR = devices_env(4)
EIGHT = devices_env(8)
# Many short epochs, of 5 steps (a two-process step is ~20 ms of gloo, whatever its size): the SIGTERM
# test's signal, sent once epoch 1 is logged, has 13 epochs to arrive before training ends.
EPOCHS = 15
BATCH = ["--config.train.batch_size=256"]
# One compiled call per epoch. `auto` (the default) is left to the streamed CNN's two processes, which must
# choose alike (jaxdl.train.calls.choose); elsewhere timing the candidates would only cost time: every
# choice trains the same bits (tests/train/test_steps_per_call.py).
ONE_CALL = ["--config.train.steps_per_call=epoch"]
NO_REPORT = ["--config.eval.report=false"]  # where no test reads it (the MLP's two processes write one)
# Checkpoints only at the end (or on a stop), not by time: the SIGTERM test counts them.
MLP = ["--config", "configs/mlp.py:tiny", "--quiet", f"--config.train.epochs={EPOCHS}", *BATCH,
       "--config.checkpoint.every_seconds=0", *ONE_CALL]
# The CNN without pooling: a pooling layer's gradient doubles its compile time (XLA CPU; process 1 compiles
# every program of every run, its cache key differs from process 0's), and pooling is per example: nothing
# of it crosses devices. Convolution, batch norm (global statistics) and dropout stay.
CNN = ["--config", "configs/cnn.py:tiny", "--quiet", *BATCH, "--config.model.pooling=none", *NO_REPORT]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def start(module: str, args: list[str], workdir: str, data_dir: str, *, timeout: int = 30) -> list[subprocess.Popen]:
    """Two processes of one run, joined through a free localhost port."""
    port = free_port()
    common = [sys.executable, "-m", module, *args, f"--config.data.data_dir={data_dir}", f"--workdir={workdir}",
              f"--coordinator=localhost:{port}", "--num_processes=2", f"--distributed_timeout={timeout}"]
    return [subprocess.Popen([*common, f"--process_id={index}"], cwd=REPO, env={**os.environ, **FOUR},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for index in range(2)]


def finish(processes: list[subprocess.Popen], timeout: float = 400) -> list[tuple[int, str, str]]:
    """(exit code, stdout, stderr) of each process."""
    results = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        results.append((process.returncode, out, err))
    return results


def wait_for_epochs(workdir: str, count: int, processes: list[subprocess.Popen]) -> None:
    """Until process 0 logged `count` epochs (fails if a process ended before)."""
    path = os.path.join(workdir, "metrics.jsonl")
    while not (os.path.exists(path) and sum(1 for _ in open(path)) >= count):
        assert all(p.poll() is None for p in processes), "a process ended before training started"
        time.sleep(0.05)


def records(workdir: str) -> tuple[list[dict], dict]:
    lines = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    return lines, json.load(open(os.path.join(workdir, "summary.json")))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    """{name: (metrics records, summary, per-process results, process 0's pid)} for 1 x 8 and 2 x 4 devices."""
    root = tmp_path_factory.mktemp("multiprocess")
    found = {}
    for name, module, args in [("mlp", "experiments.mlp", [*MLP, *NO_REPORT]),
                               ("cnn", "experiments.cnn", [*CNN, *ONE_CALL])]:
        one = str(root / f"{name}-one")
        result = run_cli(module, *args, f"--config.data.data_dir={data_dir}", f"--workdir={one}", env=EIGHT)
        assert result.returncode == 0, result.stderr
        found[f"{name}-one"] = (*records(one), None, None)
    # In memory, the MLP (with its report); the CNN streamed: each process reads only its own rows of each
    # global batch (Grain over the ArrayRecord files) and feeds them as its part of one global array.
    # (The in-memory path of two processes is the same code for every model: one model of it is enough.)
    for name, module, args in [("mlp", "experiments.mlp", MLP),
                               ("cnn-stream", "experiments.cnn", [*CNN, "--config.data.pipeline=stream"])]:
        two = str(root / f"{name}-two")
        processes = start(module, args, two, data_dir)
        pid = processes[0].pid
        results = finish(processes)
        assert [code for code, _, _ in results] == [0, 0], results
        found[f"{name}-two"] = (*records(two), results, pid)
        found[f"{name}-two-workdir"] = two
    return found


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp", "cnn-stream"])
def test_two_processes_give_the_numbers_of_one(runs, name):
    """2 x 4 devices against 1 x 8 (in memory): "cnn-stream" streams in the two processes."""
    one, two = runs[f"{name.partition('-')[0]}-one"], runs[f"{name}-two"]
    assert two[1]["data"]["pipeline"] == ("stream" if name.endswith("stream") else "memory")
    assert (one[1]["processes"], two[1]["processes"]) == (1, 2)
    assert one[1]["devices"]["count"] == two[1]["devices"]["count"] == 8
    assert [r["epoch"] for r in two[0]] == [r["epoch"] for r in one[0]]  # each epoch logged once
    for key in ("train_loss", "val_loss"):
        np.testing.assert_allclose([r[key] for r in two[0]], [r[key] for r in one[0]], rtol=1e-5)
    assert two[1]["test"]["accuracy"] == one[1]["test"]["accuracy"]
    np.testing.assert_allclose(two[1]["test"]["loss"], one[1]["test"]["loss"], rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp", "cnn-stream"])
def test_only_process_zero_writes_and_talks(runs, name):
    _, summary, results, pid = runs[f"{name}-two"]
    (_, out0, err0), (_, out1, err1) = results
    assert "test accuracy" in out0 and out1 == ""  # one final table
    assert err0 == err1 == ""  # gloo's and the runtime's chatter is filtered out
    workdir = runs[f"{name}-two-workdir"]
    events = [f for f in os.listdir(workdir) if f.startswith("events.out.tfevents")]
    assert events and all(f".{pid}." in f for f in events)  # TensorBoard files name the writer's pid
    if name == "mlp":
        assert os.path.exists(os.path.join(workdir, "report.html"))
        assert summary["report"] == os.path.join(workdir, "report.html")


@pytest.mark.slow
def test_sigterm_to_one_process_stops_both_and_the_resumed_run_is_bit_identical(runs, data_dir, tmp_path):
    # The config of runs["mlp-two"] less its report: evaluation only (a run resumes under other eval.* keys).
    args = [*MLP, *NO_REPORT]
    workdir = str(tmp_path / "run")
    processes = start("experiments.mlp", args, workdir, data_dir)
    wait_for_epochs(workdir, 1, processes)
    processes[1].send_signal(signal.SIGTERM)
    results = finish(processes)
    assert [code for code, _, _ in results] == [143, 143], results
    stopped = {int(re.search(r"stopped by SIGTERM after epoch (\d+)", err).group(1)) for _, _, err in results}
    assert len(stopped) == 1  # the same epoch on both
    epoch = stopped.pop()
    assert epoch < EPOCHS
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == [str(epoch)]

    results = finish(start("experiments.mlp", args, workdir, data_dir))  # the same commands again
    assert [code for code, _, _ in results] == [0, 0], results
    lines, summary = records(workdir)
    assert summary["resumed_from"] == epoch
    assert [r["epoch"] for r in lines] == list(range(1, EPOCHS + 1))
    assert summary["params_sha256"] == runs["mlp-two"][1]["params_sha256"]


@pytest.mark.slow
@pytest.mark.parametrize("victim", [0, 1])
def test_a_process_killed_without_warning_ends_the_other_with_an_error_line(data_dir, tmp_path, victim):
    workdir = str(tmp_path / "run")
    processes = start("experiments.mlp", [*MLP, *NO_REPORT, "--config.train.epochs=5000"], workdir, data_dir,
                      timeout=10)
    wait_for_epochs(workdir, 1, processes)
    processes[victim].kill()
    survivor = processes[1 - victim]
    code, _, err = finish([survivor], timeout=90)[0]  # the heartbeat timeout is 10 s (--distributed_timeout)
    processes[victim].wait()
    assert code != 0
    assert err.strip() == output_guard.MESSAGE


def test_relay_drops_the_runtime_noise_and_ends_in_one_error_line():
    relay_out, relay_err = [], []

    class Sink:
        def __init__(self, parts):
            self.parts = parts

        def write(self, data):
            self.parts.append(data)

        def flush(self):
            pass

    read, write = os.pipe()
    os.write(write, b"[Gloo] Rank 1 is connected to 1 peer ranks. Expected number of connected peer ranks is : 1\n"
                    b"[Gloo] Rank [Gloo] Rank 3 is connected to 7 peer ranks. Expected number of connected peer ranks\n"
                    b"epoch 1\r" + output_guard.JOINED.encode() + b"\n"
                    b"E1129 22:06:12.160406    2395 coordination_service.cc:1549] Use error polling: UNAVAILABLE:\n1\n"
                    b"The tasks have crashed. Check the task logs.\n"
                    b"F1129 22:06:12.160890    2406 client.h:80] " + output_guard.FATAL[0].encode() + b"\n"
                    b"*** Check failure stack trace: ***\n    @     0x7f3304afcd5b  (unknown)\n")
    os.close(write)
    errors = Sink(relay_err)
    output_guard.Relay(errors, joining="error: never joined").run({read: Sink(relay_out)})
    assert b"".join(relay_out) == b"epoch 1\r"
    assert b"".join(relay_err) == (output_guard.MESSAGE + "\n").encode()


TERMINATED_AFTER_JOINING = """
import os, signal, sys, time
from jaxdl.run import cli
cli.start_distributed({"coordinator_address": sys.argv[1], "num_processes": 1, "process_id": 0}, False)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(5)
print("still running")
"""


def test_a_sigterm_after_joining_and_before_fit_ends_the_process():
    # jax.distributed.initialize's preemption service used to catch SIGTERM process-wide: a signal between
    # joining and fit (data, compilation) was logged and ignored, and the run went on to exit 0.
    done = subprocess.run([sys.executable, "-c", TERMINATED_AFTER_JOINING, f"localhost:{free_port()}"], check=False,
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGTERM, (done.returncode, done.stdout, done.stderr)
    assert "still running" not in done.stdout


@pytest.fixture(scope="module")
def driver():
    """`python -m experiments.mlp`'s command line in one process (tests/cli_driver.py): these commands stop at
    their flags, before joining any process, so JAX is imported once for all of them."""
    started = CliDriver(FOUR)
    yield started
    started.close()


BAD = [(["--coordinator=localhost:1", "--num_processes=2", "--process_id=2"],
        "error: --process_id: is out of range for --num_processes=2 (got 2, expected 0 .. 1)"),
       (["--coordinator=localhost:1", "--num_processes=0", "--process_id=0"],
        "error: --num_processes: out of range (got '0', expected an integer in [1, 65,536])"),
       (["--coordinator=localhost", "--num_processes=2", "--process_id=1"],
        "error: --coordinator: must be HOST:PORT (got 'localhost', expected e.g. localhost:12355 (process 0's host "
        "and a free port))")]


@pytest.mark.parametrize("flags,message", BAD)
def test_bad_process_flags_are_one_error_line(driver, tmp_path, flags, message):
    workdir = tmp_path / "run"
    result = driver.run([*MLP, *flags, f"--workdir={workdir}"])
    assert (result["code"], result["stderr"].strip()) == (2, message)
    assert not workdir.exists()


def test_an_unreachable_coordinator_is_one_error_line(driver, tmp_path):
    workdir = tmp_path / "run"
    port = free_port()
    result = driver.run([*MLP, f"--workdir={workdir}", f"--coordinator=localhost:{port}", "--num_processes=2",
                         "--process_id=1", "--distributed_timeout=1"])
    assert result["code"] == 2
    assert result["stderr"].strip() == (
        f"error: --coordinator: nothing answers there within 1 s (Connection refused) (got 'localhost:{port}', "
        "expected process 0 started with the same --coordinator (its host and a free port), reachable from this host)")
    assert not workdir.exists()


@pytest.mark.slow
def test_a_batch_must_divide_over_the_devices_of_all_processes(data_dir, tmp_path):
    workdir = str(tmp_path / "run")
    results = finish(start("experiments.mlp", [*MLP, "--config.train.batch_size=60"], workdir, data_dir))
    message = ("error: config.train.batch_size: batch size must be divisible by the device count (8) "
               "(got 60, expected a multiple of 8)")
    assert [(code, err.strip()) for code, _, err in results] == [(2, message), (2, message)]
    assert not os.path.exists(workdir)
