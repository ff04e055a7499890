"""A plain (not editable) `pip install` of the repository, used from an empty folder: the `jaxdl`
console script, `python -m` forms, and configs named by experiment and variant."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def installed(tmp_path_factory, data_dir):
    """(venv bin folder, an empty folder to work in, env): jaxdl installed from a copy of the repository
    into a fresh venv that sees this interpreter's packages (no download, no build isolation)."""
    root = tmp_path_factory.mktemp("installed")
    source = root / "source"  # pip builds in the tree (build/, *.egg-info): a copy keeps the repository clean
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", "runs", "build", "*.egg-info", "__pycache__",
                                                                 ".venv", "venv", "tests", "benchmarks"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # The venv sees this interpreter's packages (jax, flax, ...) as plain paths: their .pth files, such
    # as an editable install of jaxdl, are not run.
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    with open(os.path.join(site, "parent_packages.pth"), "w") as f:
        f.write("\n".join(sorted(ours)) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                    "--no-build-isolation", "--no-index", "-q", str(source)], check=True, capture_output=True)
    work = root / "empty"
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(TFDS_DATA_DIR=data_dir, PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")
    return bin_dir, work, env, site


def run(installed, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
    bin_dir, work, env, _ = installed
    program = [str(bin_dir / argv[0]), *argv[1:]]
    return subprocess.run(program, cwd=work, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.slow
def test_the_installed_package_is_the_one_imported(installed):
    _, _, _, site = installed
    done = run(installed, "python", "-c", "import jaxdl, experiments, configs; "
               "print(jaxdl.__file__); print(experiments.__file__); print(configs.__file__)")
    assert done.returncode == 0, done.stderr[-2000:]
    files = done.stdout.split()
    assert len(files) == 3 and all(path.startswith(site) for path in files), (files, site)


@pytest.mark.slow
def test_every_command_from_an_empty_folder(installed):
    _, work, _, _ = installed
    done = run(installed, "jaxdl", "train", "mlp", "--config", "mlp:tiny", "--workdir", "w")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test accuracy" in done.stdout and (work / "w" / "summary.json").is_file()

    done = run(installed, "python", "-m", "experiments.mlp", "--config", "configs/mlp.py:tiny", "--workdir", "w2",
               "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (work / "w2" / "summary.json").read_text() and not (work / "configs").exists()

    x = np.random.default_rng(0).integers(0, 256, size=(5, 8, 8, 1), dtype=np.uint8)
    np.savez(work / "inputs.npz", x=x)
    done = run(installed, "jaxdl", "predict", "--workdir", "w", "inputs.npz")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "predicted" in done.stdout and sum("inputs.npz[" in line for line in done.stdout.splitlines()) == 5

    done = run(installed, "jaxdl", "experiments")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mlp:tiny" in done.stdout and "cnn:signals" in done.stdout and "rnn:adding" in done.stdout

    done = run(installed, "python", "-m", "experiments.cnn", "--help")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "model.channels = (32, 64)" in done.stdout and "# per conv block" in done.stdout

    done = run(installed, "jaxdl", "train", "mlp", "--config", "configs/nope.py:tiny")
    assert done.returncode == 2 and done.stderr.startswith("error: --config: no such config file")
    assert "tried configs/nope.py and " in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (work / "runs").exists()  # nothing left behind
