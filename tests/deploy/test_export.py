"""`python -m jaxdl.export`: the exported file runs where jaxdl and flax cannot even be imported,
and gives the bits `jaxdl.load_run(RUN)(x)` gives."""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import run_cli
from deploy_runs import finished_run, run_splits
from test_predict import stored_pixels, stored_table

import jaxdl
from jaxdl.deploy.export import export_predictor

# A process in which `import jaxdl` and `import flax` fail, that loads an exported file with jax
# and numpy only: argv = [FILE, INPUTS.npy, OUTPUTS.npy, INPUTS.npy, OUTPUTS.npy, ...].
WITHOUT_JAXDL = '''
import sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("jaxdl", "flax"):
            raise ImportError(f"{name} is not installed here")

sys.meta_path.insert(0, Refuse())
for name in ("jaxdl", "flax"):
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"{name} was importable")

import jax
import numpy as np

model = jax.export.deserialize(open(sys.argv[1], "rb").read())
for inputs, outputs in zip(sys.argv[2::2], sys.argv[3::2]):
    np.save(outputs, np.asarray(model.call(np.load(inputs))))
print(" ".join(sorted({m.partition(".")[0] for m in sys.modules} & {"jaxdl", "flax", "optax", "orbax"})) or "none")
'''


def run_without_jaxdl(path: str, batches: list[np.ndarray], tmp_path) -> list[np.ndarray]:
    """The exported model's outputs on each batch, computed in a process without jaxdl and flax."""
    files = []
    for i, x in enumerate(batches):
        np.save(tmp_path / f"x{i}.npy", x)
        files += [str(tmp_path / f"x{i}.npy"), str(tmp_path / f"y{i}.npy")]
    result = subprocess.run([sys.executable, "-c", WITHOUT_JAXDL, path, *files], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "none"  # no jaxdl, flax, optax or orbax module was loaded
    return [np.load(tmp_path / f"y{i}.npy") for i in range(len(batches))]


def stored_test_inputs(name: str, workdir: str) -> np.ndarray:
    splits = run_splits(workdir)
    return stored_table(workdir, splits) if name == "table" else stored_pixels(splits.test["x"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp", pytest.param("cnn", marks=pytest.mark.slow), "table",
                                  pytest.param("rnn", marks=pytest.mark.slow)])
def test_the_exported_model_runs_without_jaxdl_and_matches_the_predictor(name, tmp_path_factory, tmp_path):
    workdir = finished_run(name, tmp_path_factory)
    path = str(tmp_path / "model.jaxexport")
    result = run_cli("jaxdl.export", "--workdir", workdir, "--output", path)
    assert result.returncode == 0, result.stderr
    predictor = jaxdl.load_run(workdir)
    x = np.resize(stored_test_inputs(name, workdir), (37, *predictor.info.input_shape))
    sixteen, all_37 = run_without_jaxdl(path, [x[:16], x], tmp_path)
    # At the batch size the predictor ran at (a power of two), the same program: the same bits.
    assert np.array_equal(sixteen, predictor(x[:16]))
    # At another batch size (37 rows there, padded to 64 by the predictor) XLA's CPU kernels may
    # round the last bit differently.
    np.testing.assert_allclose(all_37, predictor(x), rtol=0, atol=1e-6)
    exported = jax.export.deserialize(open(path, "rb").read())
    assert exported.platforms == ("cpu", "cuda", "tpu")
    assert str(exported.in_avals[0].shape[0]) == "b" and exported.in_avals[0].shape[1:] == predictor.info.input_shape
    assert exported.in_avals[0].dtype == (np.float32 if name == "table" else np.uint8)
    described = json.loads(open(path + ".json").read())
    assert described["class_names"] == list(predictor.class_names)
    assert described["input"]["shape"] == ["batch", *predictor.info.input_shape]
    assert ("table_columns" in described) == (name == "table")


def test_a_wrong_input_is_refused_by_call(tmp_path_factory, tmp_path):
    workdir = finished_run("mlp", tmp_path_factory)
    exported = jax.export.deserialize(export_predictor(jaxdl.load_run(workdir)).serialize())
    with pytest.raises(ValueError, match=r"Rank mismatch for args\[0\]: expected \(b, 8, 8, 1\)"):
        exported.call(np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="Dtype mismatch for args\\[0\\]: expected uint8 and called with float32"):
        exported.call(np.zeros((2, 8, 8, 1), np.float32))


def test_export_command_bad_input_is_one_error_line(tmp_path):
    result = run_cli("jaxdl.export", "--workdir", str(tmp_path), "--output", str(tmp_path / "m.jaxexport"))
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: --workdir: not a run folder (no config.json) (got '{tmp_path}', expected the workdir of a "
        "finished run)"]
    result = run_cli("jaxdl.export", "--workdir", str(tmp_path), "--output", "m", "--platforms", "cpu,gpu")
    assert result.returncode == 2 and result.stderr.startswith("error: --platforms: unknown platform (got 'gpu'")
