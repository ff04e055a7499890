"""The flag, cluster and bucket doors: every numeric flag through one bounded parser
(`jaxdl.errors.parse_number`), --coordinator resolved up front, a gs:// workdir checked up front, and
library warnings kept off stderr unless --debug. Each bad input: one `error:` line, exit code 2."""

from __future__ import annotations

import math
import subprocess
import sys
import types

import pytest
from conftest import REPO, CliDriver, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxdl import paths
from jaxdl.errors import InputError, parse_number

NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**30, 10**30).map(str),
    st.sampled_from(["inf", "-inf", "nan", "NaN", "1e999", "-1e999", "", " ", "1_000", "0x10", "1e3", "9" * 5000,
                     "٣", "+5", "5.", ".5", "1,5", "infinity"]),
    st.text(max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(text=NUMBER_TEXT, integer=st.booleans(),
       bounds=st.tuples(st.floats(-1e6, 1e6), st.floats(0, 1e6)).map(lambda t: (t[0], t[0] + t[1])))
def test_the_one_parser_gives_a_finite_number_within_bounds_or_an_error_naming_the_flag(text, integer, bounds):
    low, high = bounds
    try:
        value = parse_number("--some_flag", text, low=low, high=high, integer=integer)
    except InputError as error:
        message = str(error)
        assert message.startswith("--some_flag: ") and "\n" not in message and len(message) < 200
        assert ("an integer in [" if integer else "a number in [") in message
        return
    assert math.isfinite(value) and low <= value <= high
    assert isinstance(value, int) if integer else isinstance(value, float)
    assert value == (int(text) if integer else float(text))


# Every numeric flag of every command, with a value each must refuse. The experiment commands' flags
# run in one driver process (tests/cli_driver.py); the others as real subprocesses, a few of them.
EXPERIMENT_CASES = [
    (["--coordinator", "localhost:23456", "--num_processes", "inf", "--process_id", "0"], "--num_processes"),
    (["--coordinator", "localhost:23456", "--num_processes", "2", "--process_id", "-1"], "--process_id"),
    (["--coordinator", "localhost:23456", "--num_processes", "99999999999999999999", "--process_id", "0"],
     "--num_processes"),
    (["--coordinator", "localhost:23456", "--num_processes", "2", "--process_id", "0",
      "--distributed_timeout", "nan"], "--distributed_timeout"),
    (["--config.optimizer.learning_rate=1e999"], "--config.optimizer.learning_rate: not a finite number"),
    (["--config.train.epochs=99999999999999999999999"], "--config.train.epochs: too large an integer"),
    (["--config.model.hidden_sizes=(32, 1e999)"], "--config.model.hidden_sizes: not a finite number"),
    (["--config.train.batch_size=-5"], "config.train.batch_size: out of range"),
    # The cluster door: a host name that does not resolve is said at once, for process 0 and the others.
    (["--coordinator", "nosuchhost.invalid:23459", "--num_processes", "2", "--process_id", "0"],
     "--coordinator: cannot resolve host 'nosuchhost.invalid'"),
    (["--coordinator", "nosuchhost.invalid:23459", "--num_processes", "2", "--process_id", "1"],
     "--coordinator: cannot resolve host 'nosuchhost.invalid'"),
    # The bucket door without the gcs extra (gcsfs is not installed in this environment).
    (["--workdir", "gs://some-bucket/run"], "--workdir: a gs:// workdir needs gcsfs"),
]


@pytest.fixture(scope="module")
def driver():
    started = CliDriver()
    yield started
    started.close()


@pytest.mark.parametrize("argv, words", EXPERIMENT_CASES)
def test_each_experiment_flag_refuses_a_bad_number_with_one_error_line(driver, tmp_path, argv, words):
    if "--workdir" not in argv:
        argv = [*argv, "--workdir", str(tmp_path / "run")]
    result = driver.run(["--config", f"{REPO}/configs/mlp.py:tiny", *argv])
    assert result["code"] == 2, result
    lines = result["stderr"].strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result["stderr"]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("module, argv, words", [
    ("jaxdl.serve", ["--max_wait_ms", "inf"], "error: --max_wait_ms: out of range (got 'inf', expected a number "
                                              "in [0, 10,000])"),
    ("jaxdl.serve", ["--max_body_mb", "inf"], "error: --max_body_mb: out of range (got 'inf'"),
    ("jaxdl.predict", ["x.npy", "--top_k", "nan"], "error: --top_k: not an integer (got 'nan'"),
    ("jaxdl.export", ["--output", "/tmp/never.jaxexport"], "error: --workdir: a gs:// workdir needs gcsfs"),
])
def test_the_after_training_commands_refuse_bad_numbers_with_one_error_line(module, argv, words):
    workdir = "gs://some-bucket/run" if module == "jaxdl.export" else "nowhere"
    result = run_cli(module, "--workdir", workdir, *argv)
    assert result.returncode == 2 and result.stderr.startswith(words), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def fake_google_auth(monkeypatch, credentials: bool) -> None:
    """google.auth as if installed: default() finds credentials or raises DefaultCredentialsError."""
    exceptions = types.ModuleType("google.auth.exceptions")
    exceptions.DefaultCredentialsError = type("DefaultCredentialsError", (Exception,), {})
    auth = types.ModuleType("google.auth")
    auth.exceptions = exceptions

    def default():
        if not credentials:
            raise exceptions.DefaultCredentialsError("Your default credentials were not found")
        return object(), "project"

    auth.default = default
    google = sys.modules.get("google") or types.ModuleType("google")
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setattr(google, "auth", auth, raising=False)
    monkeypatch.setitem(sys.modules, "google.auth", auth)
    monkeypatch.setitem(sys.modules, "google.auth.exceptions", exceptions)
    real_find_spec = paths.importlib.util.find_spec
    monkeypatch.setattr(paths.importlib.util, "find_spec",
                        lambda name, *a: object() if name == "gcsfs" else real_find_spec(name, *a))


def test_a_bucket_without_credentials_is_one_error(monkeypatch):
    fake_google_auth(monkeypatch, credentials=False)
    with pytest.raises(InputError, match=r"^--workdir: no credentials \(run `gcloud auth application-default login`"):
        paths.check_storage("gs://some-bucket/run")


def test_a_bucket_that_cannot_be_reached_is_one_error(monkeypatch):
    fake_google_auth(monkeypatch, credentials=True)

    def unreachable(address, timeout=None):
        assert address == ("storage.googleapis.com", 443) and timeout <= paths.STORAGE_SECONDS
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(paths.socket, "create_connection", unreachable)
    with pytest.raises(InputError, match=r"^--workdir: cannot reach storage \(storage.googleapis.com: Network is "):
        paths.check_storage("gs://some-bucket/run")
    paths.check_storage("/a/local/folder")  # nothing to check
    paths.check_storage("memory://somewhere")  # another scheme: etils says what is wrong, if anything


LIBRARY_WARNINGS = """
import logging, sys, warnings
import numpy as np
from jaxdl.report.console import configure_logging
configure_logging(debug=sys.argv[1] == "debug")
np.float32(3e38) * np.float32(10)                          # numpy: overflow encountered
from PIL import Image
Image.MAX_IMAGE_PIXELS = 10
Image.new("L", (5, 4)).save(sys.argv[2])
Image.open(sys.argv[2])                                    # Pillow: DecompressionBombWarning
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
figure, axes = plt.subplots()
axes.set_title("\\u732b")                                  # a class named 猫: missing glyph
figure.savefig(sys.argv[2] + ".png")
from absl import logging as absl_logging
absl_logging.warning("Using custom data configuration default")
logging.getLogger("tensorflow_datasets").warning("Using custom data configuration")
logging.getLogger("jaxdl").warning("one of jaxdl's own")
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["quiet", "debug"])
def test_library_warnings_reach_stderr_only_with_debug(mode, tmp_path):
    result = subprocess.run([sys.executable, "-c", LIBRARY_WARNINGS, mode, str(tmp_path / "image.png")], cwd=REPO,
                            capture_output=True, text=True, timeout=120, check=True)
    lines = result.stderr.strip().splitlines()
    if mode == "quiet":
        assert lines == ["warning: one of jaxdl's own"]
    else:
        for words in ("overflow encountered", "DecompressionBombWarning", "Glyph", "Using custom data configuration",
                      "warning: one of jaxdl's own"):
            assert any(words in line for line in lines), (words, result.stderr)
