"""Shared test setup: strict JAX options, one prepared copy of the digits data per session."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

# One persistent XLA compilation cache for the whole suite: both xdist workers and every subprocess a
# test starts (they inherit the environment). Tests build the same small programs over and over
# (fresh jit wrappers, fresh processes); the cache keys on the compiled program itself, so the numbers
# are the same bits, only the compile is skipped. Set before jax is imported: jax reads these at import.
# No size limit (JAX_COMPILATION_CACHE_MAX_SIZE): with one, JAX's eviction expects an "-atime" file beside
# every entry, and a process writing to the same folder without the limit (a command run by hand with the
# same JAX_COMPILATION_CACHE_DIR) writes none: eviction then failed with FileNotFoundError, a warning that
# a warnings-as-errors test turned into a failure. The suite's own folder is bounded in pytest_configure.
SUITE_CACHE = os.path.join(tempfile.gettempdir(), f"jaxdl-tests-xla-cache-{os.getuid()}")
SUITE_CACHE_MAX_BYTES = 2 * 1024**3
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", SUITE_CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.05")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# On a GPU, XLA's default kernels sum in an order that can change from run to run (a CNN fitted twice with
# the same steps_per_call ended 1e-6 apart on an H200); its deterministic kernels made every K the same bits
# there too. The suite's bit-equality tests hold on either backend with them. No effect on a CPU.
if "xla_gpu_deterministic_ops" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_gpu_deterministic_ops=true".strip()

import jax  # noqa: E402
import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (Also when a plugin imported jax before this file: then the environment above came too late.)
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", float(os.environ[
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

# Implicit rank promotion hides shape bugs; tests fail on it instead.
jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_configure(config):
    """Empties the suite's own compilation cache (not one the environment named) when it has grown past
    SUITE_CACHE_MAX_BYTES over many runs; once, in the controlling process, before any worker starts."""
    if (hasattr(config, "workerinput") or os.environ["JAX_COMPILATION_CACHE_DIR"] != SUITE_CACHE
            or not os.path.isdir(SUITE_CACHE)):
        return
    if sum(entry.stat().st_size for entry in os.scandir(SUITE_CACHE) if entry.is_file()) > SUITE_CACHE_MAX_BYTES:
        shutil.rmtree(SUITE_CACHE, ignore_errors=True)


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


def devices_env(count: int) -> dict:
    """The environment for a subprocess with `count` simulated CPU devices (and any XLA flags already set)."""
    flags = os.environ.get("XLA_FLAGS", "")
    return {"XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={count}".strip()}


@pytest.fixture(scope="session")
def imported_folder_run(tmp_path_factory) -> dict:
    """One `experiments.transfer` run from the command line fine-tuning ResNet-18 weights (random values,
    torchvision's names) on a folder of 32x32 images, head only and fine-tuned, two epochs:
    {"workdir", "weights", "photos", "result"}. Shared by the tests of tests/transfer/test_imported_source.py
    (one file: `--dist loadfile` runs it on one worker); ResNet-18 is the suite's largest model."""
    from imported_folder import image_folder, resnet18_safetensors

    root = tmp_path_factory.mktemp("imported_folder")
    weights = resnet18_safetensors(root / "resnet18.safetensors")
    photos = image_folder(root / "photos")
    workdir = root / "work"
    result = run_cli("experiments.transfer", "--config", "configs/transfer.py:folder",
                     f"--config.source=resnet18:{weights}", f"--config.data.name=folder:{photos}",
                     f"--config.data.data_dir={root / 'tfds'}", "--config.data.image_size=(32, 32)",
                     "--config.train.epochs=2", "--config.transfer.head_epochs=1", "--config.train.batch_size=8",
                     # simpler_methods fits scikit-learn models on 3,072 raw pixels (2 s of the run; generic:
                     # tests/evaluate/test_questions.py); the why section (ResNet attributions) stays
                     "--config.eval.questions=good_enough,data",
                     "--workdir", str(workdir), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return {"workdir": workdir, "weights": weights, "photos": photos, "result": result}


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


def chromium_path() -> str:
    """The system's chromium for playwright; skipped where missing, unless JAXDL_REQUIRE_CHROMIUM is set."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    missing = "chromium is not installed (apt-get install chromium)" if chromium is None else None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "playwright is not installed (pip install -e '.[test]')"
    if missing:
        if os.environ.get("JAXDL_REQUIRE_CHROMIUM"):
            pytest.fail(f"the browser test is required here (JAXDL_REQUIRE_CHROMIUM is set) but {missing}")
        pytest.skip(f"{missing}; CI installs it and runs this test")
    return chromium
