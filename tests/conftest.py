"""Shared test setup: strict JAX options, one prepared copy of the digits data per session."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Implicit rank promotion hides shape bugs; tests fail on it instead.
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> str:
    """A TFDS data_dir with `digits` prepared once for the whole session."""
    from jaxdl.data import get_builder

    path = str(tmp_path_factory.mktemp("tfds"))
    get_builder("digits", path).download_and_prepare(file_format="array_record")
    return path


@pytest.fixture(scope="session")
def digits(data_dir):
    """The digits Splits with the default validation carve."""
    import ml_collections

    from jaxdl.data import load

    return load(ml_collections.ConfigDict({"name": "digits", "data_dir": data_dir, "validation_fraction": 0.1,
                                           "split_seed": 0, "download": False}))


def run_cli(module: str, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs `python -m <module> <args>` from the repository root in a real subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=timeout, check=False)


class CliDriver:
    """One tests/cli_driver.py process (`python -m experiments.mlp`'s code, JAX imported once): a case
    {"argv": [...], "offline": bool} in, {"code", "stderr", "stdout"} out."""

    def __init__(self, env: dict | None = None):
        self.process = subprocess.Popen([sys.executable, os.path.join(REPO, "tests", "cli_driver.py")], cwd=REPO,
                                        env={**os.environ, **(env or {})}, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)

    def run(self, argv: list[str], offline: bool = False) -> dict:
        self.process.stdin.write(json.dumps({"argv": argv, "offline": offline}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, "the driver process died"
        return json.loads(line)

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)

