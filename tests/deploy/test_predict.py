"""load_run and `python -m jaxdl.predict`: a finished workdir answers on new inputs as it did on its test split."""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil

import numpy as np
import pytest
from conftest import run_cli
from deploy_runs import finished_run, run_splits
from PIL import Image

import jaxdl
from jaxdl.deploy.run_loader import encode_table
from jaxdl.errors import InputError


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    return finished_run("mlp", tmp_path_factory)


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    return finished_run("cnn", tmp_path_factory)


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    return finished_run("table", tmp_path_factory)


def summary(workdir: str) -> dict:
    with open(os.path.join(workdir, "summary.json")) as f:
        return json.load(f)


def stored_pixels(x: np.ndarray) -> np.ndarray:
    """Loaded images (float32 = uint8 / 255) back in the uint8 form the dataset stores."""
    pixels = np.round(x * 255).astype(np.uint8)
    assert np.array_equal(pixels.astype(np.float32) / 255.0, x)
    return pixels


def table_rows(workdir: str) -> tuple[list[str], list[list[str]]]:
    with open(json.load(open(os.path.join(workdir, "preprocessing.json")))["source"].partition(":")[2]) as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def stored_table(workdir: str, splits) -> np.ndarray:
    """The test split's rows as the prepared dataset stores them, found by the `row` column."""
    header, rows = table_rows(workdir)
    row = splits.info.preprocessing["columns"][0]
    index = np.rint(splits.test["x"][:, 0] / np.float32(1 / row["std"]) + row["mean"]).astype(int)
    return encode_table(splits.info.preprocessing, header, [rows[i] for i in index])


def test_the_workdir_describes_its_data(mlp_run, cnn_run, table_run):
    info = json.load(open(os.path.join(mlp_run, "data_info.json")))
    assert info["stored"] == {"kind": "image", "dtype": "uint8"} and info["input_shape"] == [8, 8, 1]
    assert info["class_names"] == [str(i) for i in range(10)]
    assert info["sizes"]["test"] == summary(mlp_run)["data"]["test"]
    folder = json.load(open(os.path.join(cnn_run, "data_info.json")))["stored"]
    assert folder == {"kind": "folder", "dtype": "uint8", "image_size": [8, 8], "mode": "RGB"}
    table = json.load(open(os.path.join(table_run, "data_info.json")))
    assert table["stored"] == {"kind": "table", "dtype": "float32"} and table["class_names"] == ["a", "b", "c"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp", "cnn", "table", pytest.param("rnn", marks=pytest.mark.slow)])
def test_predictions_on_the_test_split_give_the_runs_test_accuracy(name, tmp_path_factory):
    workdir = finished_run(name, tmp_path_factory)
    predictor = jaxdl.load_run(workdir)
    splits = run_splits(workdir)
    stored = stored_table(workdir, splits) if name == "table" else stored_pixels(splits.test["x"])
    # The model sees exactly the inputs training evaluated (pixels / 255; (value - mean) * (1 / std)).
    assert np.array_equal(predictor.preprocess(stored), splits.test["x"])
    probabilities = predictor(stored)
    assert probabilities.shape == (len(stored), predictor.info.num_classes)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    right = int(np.sum(probabilities.argmax(axis=1) == splits.test["y"]))
    test = summary(workdir)["test"]
    assert right == round(test["accuracy"] * test["count"]) and test["count"] == len(stored)
    assert predictor.class_names == splits.info.class_names and predictor.member is None


@pytest.mark.slow
def test_a_sweep_predicts_with_its_best_member(tmp_path_factory):
    workdir = finished_run("sweep", tmp_path_factory)
    predictor = jaxdl.load_run(workdir)  # checks the kept model against summary.json's params_sha256
    assert predictor.member == summary(workdir)["best_member"] == 1  # the larger rate learns in 3 epochs
    splits = run_splits(workdir)
    right = int(np.sum(predictor(stored_pixels(splits.test["x"])).argmax(axis=1) == splits.test["y"]))
    test = summary(workdir)["test"]
    assert right == round(test["accuracy"] * test["count"])


def test_batch_sizes_are_bucketed_to_powers_of_two(mlp_run):
    predictor = jaxdl.load_run(mlp_run)
    x = stored_pixels(run_splits(mlp_run).test["x"][:40])
    small, larger = predictor(x[:3]), predictor(x[:5])
    predictor(x[:4])
    assert predictor.compiled_batch_sizes == {4, 8}
    np.testing.assert_allclose(small, larger[:3], atol=1e-6)
    predictor(x[:33])
    assert predictor.compiled_batch_sizes == {4, 8, 64}


def test_bad_inputs_and_workdirs_are_input_errors(mlp_run, tmp_path):
    predictor = jaxdl.load_run(mlp_run)
    with pytest.raises(InputError, match=r"x: wrong input shape \(got \(2, 8, 8\), expected \(N, 8, 8, 1\)\)"):
        predictor(np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(InputError, match="images are read as uint8 pixels 0..255"):
        predictor(np.full((2, 8, 8, 1), 0.5, np.float32))
    with pytest.raises(InputError, match="--workdir: not a run folder"):
        jaxdl.load_run(str(tmp_path))
    unfinished = shutil.copytree(mlp_run, tmp_path / "unfinished")
    os.remove(unfinished / "summary.json")
    newest = max(int(name) for name in os.listdir(unfinished / "checkpoints") if name.isdigit())
    with pytest.raises(InputError, match=r"the run is training \(or was stopped before it finished\): its newest "
                                         f"complete checkpoint is epoch {newest} "):
        jaxdl.load_run(str(unfinished))
    assert jaxdl.load_run(str(unfinished), allow_training=True).summary == {}
    no_checkpoint = shutil.copytree(mlp_run, tmp_path / "no_checkpoint")
    shutil.rmtree(no_checkpoint / "checkpoints")
    with pytest.raises(InputError, match="the run has no checkpoint"):
        jaxdl.load_run(str(no_checkpoint))


def test_a_damaged_checkpoint_is_refused_not_replaced_by_an_older_one(mlp_run, tmp_path):
    damaged = shutil.copytree(mlp_run, tmp_path / "damaged")
    newest = max(int(name) for name in os.listdir(damaged / "checkpoints") if name.isdigit())
    for path in glob.glob(str(damaged / "checkpoints" / str(newest) / "state" / "ocdbt.process_0" / "d" / "*")):
        data = bytearray(open(path, "rb").read())
        data[len(data) // 2] ^= 0xFF  # Orbax reads this back without error; only the SHA-256 check notices
        open(path, "wb").write(bytes(data))
    with pytest.raises(InputError, match=f"its newest checkpoint .*/{newest} cannot be used: checkpoint is corrupted"):
        jaxdl.load_run(str(damaged))
    assert os.path.isdir(damaged / "checkpoints" / str(newest))  # left where it was


def test_predict_command_on_an_npz_file(mlp_run, tmp_path):
    splits = run_splits(mlp_run)
    x, y = stored_pixels(splits.test["x"][:12]), splits.test["y"][:12]
    np.savez(tmp_path / "new.npz", x=x, y=y)
    result = run_cli("jaxdl.predict", "--workdir", mlp_run, str(tmp_path / "new.npz"), "--output",
                     str(tmp_path / "out.csv"), "--top_k", "3")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(tmp_path / "out.csv")))
    probabilities = jaxdl.load_run(mlp_run)(x)
    assert [r["input"] for r in rows] == [f"{tmp_path / 'new.npz'}[{i}]" for i in range(12)]
    assert [r["predicted"] for r in rows] == [str(c) for c in probabilities.argmax(axis=1)]
    assert [r["label"] for r in rows] == [str(c) for c in y]
    np.testing.assert_allclose([float(r["probability"]) for r in rows], probabilities.max(axis=1), rtol=1e-6)
    assert list(rows[0]) == ["input", "predicted", "probability", "class_2", "probability_2", "class_3",
                             "probability_3", "label"]
    right = int(np.sum(probabilities.argmax(axis=1) == y))
    assert f"accuracy {right / 12:.4f} ({right} of 12)" in result.stdout and "confusion counts:" in result.stdout


def test_predict_command_on_a_folder_of_pngs(mlp_run, tmp_path):
    splits = run_splits(mlp_run)
    x, y = stored_pixels(splits.test["x"][:10]), splits.test["y"][:10]
    paths = []
    for i, (image, label) in enumerate(zip(x, y, strict=True)):
        os.makedirs(tmp_path / "new" / str(label), exist_ok=True)
        paths.append(str(tmp_path / "new" / str(label) / f"{i}.png"))
        Image.fromarray(image[..., 0]).save(paths[-1])
    result = run_cli("jaxdl.predict", "--workdir", mlp_run, str(tmp_path / "new"), "--output",
                     str(tmp_path / "out.jsonl"))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in open(tmp_path / "out.jsonl")]
    probabilities = jaxdl.load_run(mlp_run)(x)
    expected = {path: str(c) for path, c in zip(paths, probabilities.argmax(axis=1), strict=True)}
    assert {row["input"]: row["predicted"] for row in rows} == expected
    assert {row["input"]: row["label"] for row in rows} == {p: p.split(os.sep)[-2] for p in paths}
    assert "accuracy" in result.stdout


def test_predict_command_on_a_csv_table(table_run, tmp_path):
    header, rows = table_rows(table_run)
    path = tmp_path / "new.csv"
    with open(path, "w", newline="") as f:  # the label column last of all, a row with a missing size
        csv.writer(f).writerows([header[::-1], *[row[::-1] for row in rows[:6]]])
    result = run_cli("jaxdl.predict", "--workdir", table_run, str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["input", "predicted", "probability", "label"]
    predictor = jaxdl.load_run(table_run)
    probabilities = predictor(encode_table(predictor.info.preprocessing, header, rows[:6]))
    assert [line.split()[1] for line in lines[1:7]] == ["abc"[c] for c in probabilities.argmax(axis=1)]
    assert [line.split()[-1] for line in lines[1:7]] == [row[-1] for row in rows[:6]]
    assert lines[7].startswith("accuracy ")


@pytest.mark.slow
def test_predict_command_bad_input_is_one_error_line(mlp_run, tmp_path):
    result = run_cli("jaxdl.predict", "--workdir", str(tmp_path), "x.npy")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: --workdir: not a run folder (no config.json) (got '{tmp_path}', expected the workdir of a "
        "finished run)"]
    np.save(tmp_path / "flat.npy", np.zeros((2, 64), np.uint8))
    result = run_cli("jaxdl.predict", "--workdir", mlp_run, str(tmp_path / "flat.npy"))
    assert result.returncode == 2 and result.stderr.startswith(
        f"error: inputs: {tmp_path / 'flat.npy'}: wrong input shape (got (2, 64)")
