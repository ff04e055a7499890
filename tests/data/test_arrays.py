"""`npz:PATH`: arrays written with numpy (a .npz file or a folder of .npy files)."""

from __future__ import annotations

import json
import os

import ml_collections
import numpy as np
import pytest
from conftest import run_cli

import jaxdl
from jaxdl.data import sources
from jaxdl.errors import InputError


def data_config(name: str, data_dir, **overrides) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"name": name, "data_dir": str(data_dir), "validation_fraction": 0.1,
                                      "split_seed": 0, "download": False, "label": "", "task": "auto", **overrides})


def blobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three separable classes of 4-number inputs: x float64 (n, 4), y int64 (n,)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    return rng.normal(0, 0.3, (n, 4)) + y[:, None], y


def test_npz_with_a_test_split_is_classification_and_keeps_that_test_set(tmp_path):
    x, y = blobs(60)
    x_test, y_test = blobs(9, seed=1)
    path = tmp_path / "blobs.npz"
    np.savez(path, x=x, y=y, x_test=x_test, y_test=y_test)
    splits = jaxdl.load_data(data_config(f"npz:{path}", tmp_path / "tfds"))
    info = splits.info
    assert (info.task, info.num_classes, info.class_names, info.input_shape) == (
        "classification", 3, ("0", "1", "2"), (4,))
    assert splits.sizes() == {"train": 54, "validation": 6, "test": 9}
    # The given test set as it was (float32), not a carve of train.
    order = np.lexsort(splits.test["x"].T)
    np.testing.assert_allclose(splits.test["x"][order], x_test.astype(np.float32)[np.lexsort(x_test.T)], rtol=1e-6)
    assert splits.train["x"].dtype == np.float32 and splits.train["y"].dtype == np.int32


def test_uint8_images_stay_uint8_on_disk_and_load_scaled(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "images.npz"
    np.savez(path, x=rng.integers(0, 256, (30, 5, 5, 1), dtype=np.uint8), y=np.arange(30) % 2)
    config = data_config(f"npz:{path}", tmp_path / "tfds")
    assert sources.get_source_builder(config.name, config, config.data_dir).info.features["x"].np_dtype == np.uint8
    splits = jaxdl.load_data(config)
    assert splits.info.input_shape == (5, 5, 1)
    assert 0.0 <= splits.train["x"].min() and splits.train["x"].max() <= 1.0 and splits.train["x"].max() > 0.9


def test_float_targets_are_regression_with_their_shape(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(40, 3)).astype(np.float32))
    np.save(tmp_path / "y.npy", rng.normal(size=(40, 2)))
    np.save(tmp_path / "x_validation.npy", rng.normal(size=(5, 3)))
    np.save(tmp_path / "y_validation.npy", rng.normal(size=(5, 2)))
    splits = jaxdl.load_data(data_config(f"npz:{tmp_path}", tmp_path / "tfds"))
    assert (splits.info.task, splits.info.target_shape) == ("regression", (2,))
    assert splits.sizes() == {"train": 32, "validation": 5, "test": 8}  # test carved (20%), validation given


def test_task_classification_takes_whole_number_floats(tmp_path):
    x, y = blobs(30)
    np.savez(tmp_path / "a.npz", x=x, y=y.astype(np.float64))
    assert jaxdl.load_data(data_config(f"npz:{tmp_path / 'a.npz'}", tmp_path / "tfds")).info.task == "regression"
    info = jaxdl.load_data(data_config(f"npz:{tmp_path / 'a.npz'}", tmp_path / "tfds", task="classification")).info
    assert (info.task, info.num_classes) == ("classification", 3)


def test_a_changed_file_is_prepared_again(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, x=blobs(30)[0], y=blobs(30)[1])
    config = data_config(f"npz:{path}", tmp_path / "tfds")
    assert sum(jaxdl.load_data(config).sizes().values()) == 30
    np.savez(path, x=blobs(45)[0], y=blobs(45)[1])
    assert sum(jaxdl.load_data(config).sizes().values()) == 45
    assert len(os.listdir(tmp_path / "tfds" / "npz_arrays")) == 2


x3, y3 = blobs(12)
BAD_ARRAYS = {
    "missing path": (None, "config.data.name: no such file or folder"),
    "no x or y": ({"inputs": x3, "labels": y3}, r"needs arrays 'x' and 'y' \(got 'inputs, labels'"),
    "lengths": ({"x": x3, "y": y3[:-1]}, "'x' and 'y' differ in length"),
    "one class": ({"x": x3, "y": np.zeros(12, int)}, "'y' holds one class only"),
    "test class unseen": ({"x": x3, "y": y3 % 2, "x_test": x3[:3], "y_test": y3[:3]},
                          "class 2 of the test labels never occurs in train"),
    "strings": ({"x": np.array(["a"] * 12), "y": y3}, "array 'x' is not numbers"),
    "objects": ({"x": x3, "y": np.array([{"a": 1}] * 12, dtype=object)}, "array 'y' holds Python objects"),
    "x_test alone": ({"x": x3, "y": y3, "x_test": x3}, "'x_test' and 'y_test' come together"),
    "nan": ({"x": np.full((12, 4), np.nan), "y": y3}, "'x' holds NaN"),
}


@pytest.mark.parametrize("case", BAD_ARRAYS)
def test_bad_arrays_are_one_error_and_write_nothing(tmp_path, case):
    arrays, message = BAD_ARRAYS[case]
    path = tmp_path / "a.npz"
    if arrays is not None:
        np.savez(path, **arrays)  # savez pickles object arrays; jaxdl must refuse to unpickle them
    with pytest.raises(InputError, match=message):
        jaxdl.load_data(data_config(f"npz:{path}", tmp_path / "tfds"))
    assert not os.path.exists(tmp_path / "tfds")


@pytest.mark.slow
def test_command_line_trains_on_arrays_and_a_bad_file_exits_2(tmp_path):
    x, y = blobs(90)
    np.savez(tmp_path / "blobs.npz", x=x, y=y)
    args = ["--config", "configs/mlp.py:tiny", "--config.eval.report=false", "--quiet"]
    result = run_cli("experiments.mlp", *args, f"--config.data.name=npz:{tmp_path / 'blobs.npz'}",
                     f"--config.data.data_dir={tmp_path / 'tfds'}", "--workdir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["task"] == "classification" and summary["data"]["train"] + summary["data"]["validation"] == 72
    assert not (tmp_path / "run" / "preprocessing.json").exists()  # arrays are used as they are
    np.savez(tmp_path / "bad.npz", inputs=x, y=y)
    bad = run_cli("experiments.mlp", *args, f"--config.data.name=npz:{tmp_path / 'bad.npz'}",
                  f"--config.data.data_dir={tmp_path / 'tfds2'}", "--workdir", str(tmp_path / "run2"))
    assert bad.returncode == 2
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "config.data.name" in errors[0] and "'inputs, y'" in errors[0], bad.stderr
    assert not (tmp_path / "tfds2").exists()


def test_a_set_too_large_to_sort_in_memory_without_tensorflow_is_one_error_and_writes_nothing(tmp_path, monkeypatch):
    """TFDS spills a split over its in-memory limit (about 1 GB) through TensorFlow, which the default
    install leaves out; the limit is lowered here so a small set takes that path."""
    pytest.importorskip("tensorflow_datasets")
    try:
        import tensorflow  # noqa: F401, PLC0415
        pytest.skip("TensorFlow is installed: the spill works")
    except ImportError:
        pass
    from tensorflow_datasets.core import shuffle  # noqa: PLC0415

    monkeypatch.setattr(shuffle, "MAX_MEM_BUFFER_SIZE", 1000)
    x, y = blobs(300)
    path = tmp_path / "big.npz"
    np.savez(path, x=x, y=y)
    with pytest.raises(InputError, match=r"config.data.name: preparing .* needs 'tensorflow'") as raised:
        jaxdl.load_data(data_config(f"npz:{path}", tmp_path / "tfds"))
    assert "jaxdl[catalog]" in str(raised.value)
    assert not any(files for _, _, files in os.walk(tmp_path / "tfds"))
