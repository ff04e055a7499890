"""Runs many `experiments.mlp` command lines in one process, so JAX is imported once for all of them.

    python tests/cli_driver.py     # then one JSON case per line on stdin, one JSON result per line on stdout

A case is {"argv": [...], "offline": bool}; the result is {"code", "stderr", "stdout"}, where code
is what `jaxdl.run.cli.main` returned (the process's exit code under `python -m experiments.mlp`).
"offline" makes every network connection fail, as on a machine without network. The test-only
`bad_data` builder is registered. Start it with XLA_FLAGS to simulate several devices.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import sys
import traceback
from collections.abc import Iterator
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bad_datasets  # noqa: E402

from experiments import mlp  # noqa: E402
from jaxdl.run import cli  # noqa: E402


@contextlib.contextmanager
def offline(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return

    def unreachable(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with mock.patch.object(socket, "create_connection", unreachable), mock.patch.object(socket, "getaddrinfo",
                                                                                          unreachable):
        yield


def run_case(case: dict) -> dict:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), offline(case.get("offline", False)):
        try:
            code = cli.main(mlp.run, mlp.DEFAULT_CONFIG, case["argv"])
        except BaseException:  # noqa: BLE001 (a crash is a result the test reports)
            traceback.print_exc()
            code = 1
    return {"code": code, "stderr": err.getvalue(), "stdout": out.getvalue()}


def main() -> None:
    bad_datasets.register()
    real_stdout = sys.stdout
    for line in sys.stdin:
        if line.strip():
            real_stdout.write(json.dumps(run_case(json.loads(line))) + "\n")
            real_stdout.flush()


if __name__ == "__main__":
    main()
