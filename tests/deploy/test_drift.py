"""Drift: a finished run keeps a reference of its inputs and predictions; new data is compared with it.

The run's own test split shows no drift; real shifts (noise, brightness, contrast, shifted and
rotated images, a class that no longer comes, a column on the wrong scale) are each flagged, by
the component they move.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import threading

import numpy as np
import pytest
from conftest import run_cli
from deploy_runs import finished_run, run_splits
from scipy import ndimage
from test_predict import stored_pixels, stored_table, table_rows

import jaxdl
from jaxdl.data import DataInfo
from jaxdl.deploy import drift_features
from jaxdl.deploy.drift import MIN_EXAMPLES, PSI_SHIFTED, DriftMonitor, Summaries, check_drift, psi
from jaxdl.deploy.inputs import read_inputs
from jaxdl.errors import InputError


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    """The shared MLP on digits (tests/deploy/deploy_runs.py): early stopping kept its best epoch, a
    model that predicts every class."""
    return finished_run("mlp", tmp_path_factory)


@pytest.fixture(scope="module")
def mlp(mlp_run):
    """(predictor, test pixels uint8 (N, 8, 8, 1), test labels)."""
    splits = run_splits(mlp_run)
    return jaxdl.load_run(mlp_run), stored_pixels(splits.test["x"]), splits.test["y"]


def reference(workdir: str) -> dict:
    with open(os.path.join(workdir, "drift_reference.json")) as f:
        return json.load(f)


def shifted_names(record: dict) -> set[str]:
    return set(record["inputs"]["shifted"])


def noisy(x: np.ndarray, scale: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, scale, x.shape)
    return np.clip(np.rint(x + noise), 0, 255).astype(np.uint8)


def rotated(x: np.ndarray, degrees: float) -> np.ndarray:
    turned = ndimage.rotate(x.astype(np.float64), degrees, axes=(1, 2), reshape=False, order=1)
    return np.clip(np.rint(turned), 0, 255).astype(np.uint8)


@pytest.mark.slow
def test_a_finished_run_keeps_its_drift_reference(mlp_run, tmp_path_factory):
    record = reference(mlp_run)
    summary = json.load(open(os.path.join(mlp_run, "summary.json")))
    assert summary["drift_reference"] == os.path.join(mlp_run, "drift_reference.json")
    sizes = summary["data"]
    # digits: all 1,295 training images summarised (fewer than the 2,000 of a sample)
    assert record["train"] == {"examples": sizes["train"], "sampled": sizes["train"], "seed": 0}
    names = record["features"]["names"]
    assert len(names) == 8 * 8 + 3 and names[0] == "x[0, 0, 0]" and names[-3:] == [
        "mean of gray", "std of gray", "roughness of gray"]
    counts = np.asarray(record["features"]["counts"][0])
    assert counts.sum() == sizes["train"] and len(counts) == len(record["features"]["edges"][0]) + 1
    predictions = record["predictions"]
    assert predictions["split"] == "validation" and predictions["examples"] == sizes["validation"]
    assert sum(predictions["class_counts"]) == sizes["validation"] and min(predictions["class_counts"]) > 0
    # the predictions are the kept model's on the validation split
    splits = run_splits(mlp_run)
    probabilities = jaxdl.load_run(mlp_run)(stored_pixels(splits.validation["x"]))
    assert predictions["class_counts"] == np.bincount(probabilities.argmax(axis=1), minlength=10).tolist()
    assert predictions["confidence"]["mean"] == pytest.approx(float(probabilities.max(axis=1).mean()), rel=1e-5)
    assert record["pooled"]["edges"] == [list(range(15, 255, 16))] and record["pooled"]["channels"] == ["gray"]
    assert sum(record["pooled"]["counts"][0]) == sizes["train"] * 64
    cnn = reference(finished_run("cnn", tmp_path_factory))
    assert len(cnn["features"]["names"]) == 8 * 8 * 3 + 9 and cnn["pooled"]["channels"] == ["red", "green", "blue"]


@pytest.mark.slow
def test_a_sweep_keeps_the_reference_of_its_best_member(tmp_path_factory):
    workdir = finished_run("sweep", tmp_path_factory)
    predictor = jaxdl.load_run(workdir)  # the best member
    probabilities = predictor(stored_pixels(run_splits(workdir).validation["x"]))
    counts = reference(workdir)["predictions"]["class_counts"]
    assert counts == np.bincount(probabilities.argmax(axis=1), minlength=10).tolist()


def test_a_32x32x3_reference_is_compact():
    info = DataInfo(name="images", task="classification", input_shape=(32, 32, 3), num_classes=10,
                    class_names=tuple("abcdefghij"), stored={"kind": "image", "dtype": "uint8"})
    rng = np.random.default_rng(0)
    record = drift_features.build_reference(rng.integers(0, 256, (2000, 32, 32, 3), np.uint8),
                                            rng.dirichlet(np.ones(10), 500), info)
    assert len(record["features"]["names"]) == 8 * 8 * 3 + 9  # 4x4-pixel blocks per channel, and 3 per channel
    assert len(json.dumps(record, separators=(",", ":"))) < 60_000


def test_psi_of_known_fractions():
    assert psi(np.array([50, 50]), np.array([50, 50])) == 0.0
    # 50/50 -> 90/10: (0.9 - 0.5) ln(0.9 / 0.5) + (0.1 - 0.5) ln(0.1 / 0.5), counts smoothed by 0.5
    p, q = np.array([500.5, 500.5]) / 1001, np.array([900.5, 100.5]) / 1001
    assert psi(np.array([500, 500]), np.array([900, 100])) == pytest.approx(float(np.sum((q - p) * np.log(q / p))))


@pytest.mark.slow
def test_the_command_line_passes_the_test_split_and_fails_shifted_images(mlp_run, mlp, tmp_path):
    _, x, _ = mlp
    np.save(tmp_path / "test.npy", x)
    np.save(tmp_path / "shifted.npy", np.roll(x, 2, axis=2))  # two pixels to the right
    same = run_cli("jaxdl.drift", "--workdir", mlp_run, str(tmp_path / "test.npy"), "--output", str(tmp_path / "same"))
    assert same.returncode == 0, same.stderr
    assert same.stdout.startswith("no drift: score ") and f"over {len(x)} inputs" in same.stdout
    record = json.load(open(tmp_path / "same" / "drift.json"))
    assert record["verdict"] == "no drift" and not record["drifted"] and record["score"] < 1
    assert record["inputs"]["features_shifted"] == 0 and record["reasons"] == []
    moved = run_cli("jaxdl.drift", "--workdir", mlp_run, str(tmp_path / "shifted.npy"), "--output",
                    str(tmp_path / "moved"))
    assert moved.returncode == 1, moved.stderr
    assert moved.stdout.startswith("drift: score ")
    record = json.load(open(tmp_path / "moved" / "drift.json"))
    assert record["verdict"] == "drift" and record["drifted"] and record["score"] > 1
    assert record["examples"] == len(x) and record["thresholds"]["psi_shifted"] == PSI_SHIFTED
    # the leftmost columns are empty now, and the ink moved right
    assert "x[4, 7, 0]" in shifted_names(record)  # the ink moved right, into the last column
    assert record["inputs"]["most_shifted"][0]["shifted"] and "mean of gray" not in shifted_names(record)
    most = record["inputs"]["most_shifted"][0]
    assert sum(most["new"]) == len(x) and len(most["reference"]) == len(most["edges"]) + 1
    page = open(tmp_path / "moved" / "drift.html").read()
    for figure in ("drift_features.png", "drift_predictions.png", "drift_channels.png", "drift_map.png"):
        assert f'src="{figure}"' in page and os.path.getsize(tmp_path / "moved" / figure) > 1000
    assert "Drift check: drift" in page and most["name"] in page


@pytest.mark.parametrize(("change", "moved"), [
    ("noise", "roughness of gray"),        # Gaussian noise of 25 pixel levels
    ("brightness", "mean of gray"),        # +40 pixel levels
    ("contrast", "std of gray"),           # x 0.6
    ("rotation", "x[1, 6, 0]"),            # 15 degrees
    ("rotation_90", "x[3, 1, 0]"),
])
def test_image_changes_are_flagged_by_what_they_move(change, moved, mlp):
    predictor, x, _ = mlp
    new = {"noise": lambda: noisy(x, 25.0),
           "brightness": lambda: np.clip(x.astype(np.int32) + 40, 0, 255).astype(np.uint8),
           "contrast": lambda: np.rint(x * 0.6).astype(np.uint8),
           "rotation": lambda: rotated(x, 15.0),
           "rotation_90": lambda: np.rot90(x, 1, axes=(1, 2))}[change]()
    record = check_drift(predictor, new)
    assert record["drifted"] and record["verdict"] == "drift" and record["score"] > 1
    assert moved in shifted_names(record), record["reasons"]


def test_the_test_split_and_a_little_noise_are_not_drift(mlp):
    predictor, x, _ = mlp
    for new in (x, x[::-1], noisy(x, 1.5)):  # a pixel level or two: rounding, not drift
        record = check_drift(predictor, new)
        assert not record["drifted"] and record["score"] < 1, record["reasons"]
        assert record["predictions"]["class_mix"]["psi"] < record["predictions"]["class_mix"]["threshold"]


def test_a_class_that_no_longer_comes_is_flagged_by_the_class_mix(mlp):
    predictor, x, y = mlp
    record = check_drift(predictor, x[y != 3])
    mix = record["predictions"]["class_mix"]
    assert record["drifted"] and mix["shifted"] and mix["vanished"] == ["3"]
    assert mix["new"][3] == 0 and sum(mix["new"]) == int(np.sum(y != 3))
    assert any("no 3 predicted any more" in reason for reason in record["reasons"])


@pytest.mark.slow
def test_cnn_on_a_folder_of_rgb_images(tmp_path_factory):
    workdir = finished_run("cnn", tmp_path_factory)
    predictor = jaxdl.load_run(workdir)
    x = stored_pixels(run_splits(workdir).test["x"])
    assert not check_drift(predictor, x)["drifted"]
    darker_red = x.copy()
    darker_red[..., 0] //= 2
    record = check_drift(predictor, darker_red)
    assert record["drifted"] and "mean of red" in shifted_names(record) and "mean of blue" not in shifted_names(record)
    assert [c["name"] for c in record["pooled"] if c["shifted"]] == ["red"]
    assert check_drift(predictor, np.roll(x, 3, axis=1))["drifted"]  # three rows down
    assert "roughness of green" in shifted_names(check_drift(predictor, noisy(x, 20.0)))


@pytest.mark.slow
def test_a_table_column_on_the_wrong_scale(tmp_path_factory, tmp_path):
    workdir = finished_run("table", tmp_path_factory)
    splits = run_splits(workdir)
    header, rows = table_rows(workdir)
    stored = stored_table(workdir, splits)
    assert len(stored) >= MIN_EXAMPLES
    index = {int(round(r)) for r in stored[:, 0]}  # the `row` column names the CSV row
    own = [row for row in rows if int(row[0]) in index]
    write = lambda path, table: csv.writer(open(path, "w", newline="")).writerows([header, *table])  # noqa: E731
    write(tmp_path / "same.csv", own)
    centimetres = [[row[0], f"{float(row[1]) * 100:.1f}" if row[1] else "", *row[2:]] for row in own]
    write(tmp_path / "cm.csv", centimetres)
    predictor = jaxdl.load_run(workdir)
    assert not check_drift(predictor, read_inputs([str(tmp_path / "same.csv")], predictor.info).x)["drifted"]
    moved = run_cli("jaxdl.drift", "--workdir", workdir, str(tmp_path / "cm.csv"), "--output", str(tmp_path / "b"))
    assert moved.returncode == 1, moved.stdout + moved.stderr
    record = json.load(open(tmp_path / "b" / "drift.json"))
    assert shifted_names(record) == {"size"} and record["inputs"]["most_shifted"][0]["name"] == "size"
    assert record["inputs"]["most_shifted"][0]["new_mean"] > 50 * record["inputs"]["most_shifted"][0]["reference_mean"]


@pytest.mark.slow
def test_rnn_on_signals(tmp_path_factory):
    workdir = finished_run("signals", tmp_path_factory)
    record = reference(workdir)
    assert len(record["features"]["names"]) == 128 + 3 and record["layout"]["grid"] == [128]
    predictor = jaxdl.load_run(workdir)
    x = run_splits(workdir).test["x"]
    assert not check_drift(predictor, x)["drifted"]
    noise = x + np.random.default_rng(0).normal(0, 0.3, x.shape).astype(np.float32)
    assert {"std of channel 0", "roughness of channel 0"} <= shifted_names(check_drift(predictor, noise))
    louder = check_drift(predictor, x * 3)  # another unit
    assert louder["drifted"] and louder["inputs"]["features_shifted"] > 100


def test_the_monitor_stays_quiet_on_the_test_split_and_turns_on_shifted_inputs(mlp):
    predictor, x, _ = mlp
    monitor = DriftMonitor(predictor.workdir, predictor, window=200)
    assert monitor.gauges()["window"] == 0 and monitor.gauges()["drifted"] == 0
    for start in range(0, len(x), 20):
        batch = x[start:start + 20]
        monitor.observe(batch, predictor(batch))
        gauges = monitor.gauges()
        assert gauges["drifted"] == 0 and gauges["window"] == min(start + len(batch), 200), gauges
    # the window's figures are those of check_drift on its last 200 examples
    assert gauges["score"] == pytest.approx(check_drift(predictor, x[-200:])["score"])
    shifted = np.roll(x, 2, axis=2)
    turned = None
    for i, start in enumerate(range(0, 200, 20)):
        batch = shifted[start:start + 20]
        monitor.observe(batch, predictor(batch))
        if monitor.gauges()["drifted"]:
            turned = i + 1
            break
    assert turned is not None and turned <= 10
    gauges = monitor.gauges()
    assert gauges["score"] > 1 and gauges["features_shifted"] > 0 and gauges["window"] == 200


def test_the_monitor_takes_batches_from_many_threads(mlp):
    predictor, x, _ = mlp
    probabilities = predictor(x[:160])
    monitor = DriftMonitor(reference(predictor.workdir), predictor.info, window=100)

    def serve(part):
        for start in range(part * 40, part * 40 + 40, 5):
            monitor.observe(x[start:start + 5], probabilities[start:start + 5])
            monitor.gauges()

    threads = [threading.Thread(target=serve, args=(part,)) for part in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert monitor.seen == 160 and monitor.gauges()["window"] == 100
    # each slot of the window holds one whole example (its features, pixel counts and prediction), none torn
    whole = Summaries(monitor.reference, x[:160], probabilities)
    examples = {(whole.feature_bins[i].tobytes(), whole.pooled[i].tobytes(), int(whole.predicted[i]))
                for i in range(160)}
    held = {(monitor.buffers["bins"][i].tobytes(), monitor.buffers["pooled"][i].tobytes(),
             int(monitor.buffers["predicted"][i])) for i in range(100)}
    assert held <= examples
    with pytest.raises(InputError, match=r"window: out of range \(got 5, expected an integer in \[30, 1,000,000\]\)"):
        DriftMonitor(reference(predictor.workdir), predictor.info, window=5)
    with pytest.raises(InputError, match="window: out of range"):
        DriftMonitor(reference(predictor.workdir), predictor.info, window=10**11)
    with pytest.raises(InputError, match=r"x: wrong input shape"):
        monitor.observe(x[:2, :4], probabilities[:2])


@pytest.mark.slow
def test_bad_input_is_one_error_line(mlp_run, mlp, tmp_path):
    _, x, _ = mlp
    np.save(tmp_path / "x.npy", x)
    result = run_cli("jaxdl.drift", "--workdir", str(tmp_path), str(tmp_path / "x.npy"))
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: --workdir: not a run folder (no config.json) (got '{tmp_path}', expected the workdir of a "
        "finished run)"]
    older = shutil.copytree(mlp_run, tmp_path / "older")
    os.remove(older / "drift_reference.json")
    result = run_cli("jaxdl.drift", "--workdir", str(older), str(tmp_path / "x.npy"))
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: --workdir: the run has no drift_reference.json (got '{older}', expected a run trained by this "
        "version of jaxdl); train the run again (the pipeline writes it at the end of training)"]
    predictor = jaxdl.load_run(mlp_run)
    with pytest.raises(InputError, match=rf"x: wrong input shape \(got \({len(x)}, 64\)"):
        check_drift(predictor, x.reshape(len(x), -1))
    with pytest.raises(InputError, match=rf"inputs: too few inputs to tell drift from chance \(got 5, expected at "
                                         rf"least {MIN_EXAMPLES}\)"):
        check_drift(predictor, x[:5])
    assert not os.path.exists(os.path.join(mlp_run, "drift"))  # nothing written for bad input


@pytest.mark.slow
def test_a_regression_run_compares_its_outputs(tmp_path_factory):
    workdir = finished_run("regression", tmp_path_factory)  # float inputs (N, 4), target x @ (1, 2, -1, 0.5)
    record = reference(workdir)
    assert record["task"] == "regression" and [o["name"] for o in record["predictions"]["outputs"]] == ["output 0"]
    predictor = jaxdl.load_run(workdir)
    x = drift_features.stored_form(run_splits(workdir).test["x"], predictor.info)  # the raw test rows
    same = check_drift(predictor, x)
    assert not same["drifted"]
    shifted = x + np.array([0.0, 3.0, 0.0, 0.0], np.float32)  # the second input three standard deviations higher
    moved = check_drift(predictor, shifted)
    assert moved["drifted"] and shifted_names(moved) == {"x[1]"}, shifted_names(moved)
    # the model learned a target that grows with the second input (weight 2): its outputs moved with it
    output, before = moved["predictions"]["outputs"][0], same["predictions"]["outputs"][0]
    assert output["shifted"] and not before["shifted"] and output["ks"] > 0.5, (output, before)
