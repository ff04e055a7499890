"""What a finished run leaves: figures, summary fields, report.html (rendered in Chromium), TensorBoard events."""

from __future__ import annotations

import fcntl
import glob
import json
import os
import pathlib
import re
import shutil
import struct
import subprocess

import flax.linen as nn
import ml_collections
import numpy as np
import pytest
from conftest import REPO, run_cli
from PIL import Image

from jaxdl.data import DataInfo, Splits
from jaxdl.errors import InputError
from jaxdl.run.config import load_config
from jaxdl.run.pipeline import train_and_evaluate

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tiny_config(data_dir: str, **eval_keys) -> ml_collections.ConfigDict:
    config = load_config(os.path.join(REPO, "configs", "mlp.py:tiny"))
    with config.unlocked():
        config.data.data_dir = data_dir
        config.checkpoint.every_epochs = 1
        config.eval.baseline = True
        for key, value in eval_keys.items():
            config.eval[key] = value
    return config


def assert_png(path: str) -> tuple[int, int]:
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE, path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.width > 100 and image.height > 100
        return image.size


def shared_run(tmp_path_factory, name: str, make) -> tuple[str, str]:
    """Runs `make(workdir) -> stdout` once for all pytest-xdist workers; returns (workdir, stdout).

    The workers share the parent of their temporary folders; a lock there makes the first worker
    run it and the others wait for and reuse its workdir.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    workdir, stdout_file = root / f"shared-{name}", root / f"shared-{name}.stdout"
    with open(root / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stdout_file.exists():
            stdout_file.write_text(make(str(workdir)))
    return str(workdir), stdout_file.read_text()


def read_summary(workdir: str) -> dict:
    with open(os.path.join(workdir, "summary.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, data_dir):
    """`python -m experiments.mlp` (tiny variant, a target) in a real subprocess: workdir, summary, stdout."""

    def make(workdir):
        result = run_cli("experiments.mlp", "--config", "configs/mlp.py:tiny", f"--config.data.data_dir={data_dir}",
                         "--config.eval.target_accuracy=0.99", "--config.eval.baseline=true", "--workdir", workdir)
        assert result.returncode == 0, result.stderr
        return result.stdout

    workdir, stdout = shared_run(tmp_path_factory, "mlp", make)
    return workdir, read_summary(workdir), stdout


@pytest.mark.slow
def test_classification_run_leaves_every_figure(cli_run):
    workdir, summary, stdout = cli_run
    for name in ("learning_curves.png", "confusion_matrix.png", "worst_errors.png",
                 "activations_hidden_0_out.png", "why_attributions.png"):
        assert_png(os.path.join(workdir, name))
    why = summary["questions"]["why"]  # the attributions of a few answers, complete within 1%
    assert why["completeness"]["within_1_percent"] and [e["role"] for e in why["examples"]][-1] == "right"
    assert re.search(rf"^  why +{len(why['examples'])} test answers attributed in the report \(completeness within "
                     r"1%\)$", stdout, re.M), stdout
    assert summary["files"][-1] == "report.html"
    for name in summary["files"]:
        assert os.path.isfile(os.path.join(workdir, name)), name


def test_confusion_matrix_diagonal_is_the_test_accuracy(cli_run):
    _, summary, _ = cli_run
    confusion = np.array(summary["confusion_matrix"])
    test = summary["test"]
    assert confusion.shape == (10, 10)
    assert confusion.sum() == test["count"] == summary["data"]["test"]
    assert np.float32(np.trace(confusion)) / np.float32(test["count"]) == np.float32(test["accuracy"])
    assert np.trace(confusion) < test["count"]  # three epochs of a tiny net: there are errors to look at


def test_per_class_figures_agree_with_the_confusion_matrix(cli_run):
    _, summary, _ = cli_run
    confusion = np.array(summary["confusion_matrix"])
    assert [row["class"] for row in summary["per_class"]] == [str(d) for d in range(10)]
    for k, row in enumerate(summary["per_class"]):
        hits, predicted, actual = confusion[k, k], confusion[:, k].sum(), confusion[k, :].sum()
        precision = hits / predicted if predicted else 0.0
        recall = hits / actual
        assert row["support"] == actual
        assert row["precision"] == pytest.approx(precision) and row["recall"] == pytest.approx(recall)
        assert row["f1"] == pytest.approx(2 * precision * recall / (precision + recall) if hits else 0.0)
    worst = max(((t, p) for t in range(10) for p in range(10) if t != p), key=lambda tp: confusion[tp])
    assert summary["most_confused"][0]["count"] == confusion[worst]


def test_summary_has_baseline_target_overfitting_worst_errors_and_activations(cli_run):
    _, summary, stdout = cli_run
    assert summary["baseline"]["model"] == "softmax regression"
    baseline = summary["baseline"]
    assert baseline["num_params"] == 650 and baseline["test"]["count"] == summary["data"]["test"]
    # Softmax regression on 8x8 digits: near 0.1 untrained, past 0.8 within a few epochs (test_baseline.py).
    assert baseline["test"]["accuracy"] > 0.8
    hits = baseline["test"]["accuracy"] * baseline["test"]["count"]
    assert abs(hits - round(hits)) < 1e-3  # a whole number of correct test examples: no padding counted
    assert summary["target"] == {"metric": "accuracy", "target": 0.99, "value": summary["test"]["accuracy"],
                                 "met": False}
    assert summary["overfitting"] is False  # three epochs: nothing to overfit yet
    assert len(summary["worst_errors"]) == 16
    losses = [w["loss"] for w in summary["worst_errors"]]
    assert losses == sorted(losses, reverse=True)
    assert summary["activations"]["hidden_0_out"]["shape"] == [10, 32]
    assert len(summary["activation_examples"]) == 10  # one test example per class
    # The final table says it too.
    assert "baseline test accuracy" in stdout and "target accuracy         0.99: NOT met" in stdout


def test_report_html_is_self_contained(cli_run):
    workdir, summary, _ = cli_run
    with open(os.path.join(workdir, "report.html"), encoding="utf-8") as f:
        page = f.read()
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", page)
    assert links and all(link.startswith("data:image/png;base64,") for link in links)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    for section in ("Learning curves", "Confusion matrix", "Per-class figures", "Worst errors", "Activations",
                    "Config", "softmax regression"):
        assert section in page
    assert "hidden_sizes" in page and "learning_rate" in page  # the config
    assert f"{summary['test']['accuracy']:.4f}" in page


@pytest.mark.slow
def test_report_renders_in_headless_chromium(cli_run, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("JAXDL_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is required here (JAXDL_REQUIRE_CHROMIUM is set) but not on PATH")
        pytest.skip("chromium is not installed (apt-get install chromium); CI installs it and runs this test")
    workdir, _, _ = cli_run
    screenshot = tmp_path / "report.png"
    result = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                             "--no-first-run", "--disable-background-networking", "--disable-component-update",
                             "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
                             f"--screenshot={screenshot}", "--window-size=1200,2000",
                             f"file://{os.path.join(workdir, 'report.html')}"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and screenshot.exists(), result.stderr[-2000:]
    assert assert_png(str(screenshot)) == (1200, 2000)
    pixels = np.asarray(Image.open(screenshot).convert("RGB")).astype(np.int32)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200  # text, tables and plots, not a blank page
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    assert np.mean(saturation > 60) > 0.01  # the coloured figures were decoded and drawn
    assert np.mean(pixels[:80, :700].sum(axis=2) < 200) > 0.002  # the dark title text at the top


def read_scalars(workdir: str) -> dict[str, list[tuple[int, float]]]:
    """Scalars from the TFRecord event files: {tag: [(step, value), ...]}."""
    from tensorboardX.proto import event_pb2  # noqa: PLC0415

    scalars: dict[str, list] = {}
    for path in sorted(glob.glob(os.path.join(workdir, "events.out.tfevents.*"))):
        with open(path, "rb") as f:
            data = f.read()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset: offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12: offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_tensorboard_event_files_hold_the_scalars(cli_run):
    workdir, summary, _ = cli_run
    scalars = read_scalars(workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        history = [json.loads(line) for line in f]
    assert [step for step, _ in scalars["val/accuracy"]] == [r["epoch"] for r in history]
    np.testing.assert_allclose([v for _, v in scalars["train/loss"]], [r["train_loss"] for r in history], rtol=1e-6)
    assert scalars["test/accuracy"] == [(summary["epochs_run"], pytest.approx(summary["test"]["accuracy"]))]
    assert "baseline/test_accuracy" in scalars


class TinyConv(nn.Module):
    """A CNN defined here (sows nothing): the report finds its feature maps through capture_intermediates."""

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        x = nn.relu(nn.Conv(6, (3, 3))(x))
        return nn.Dense(10)(nn.max_pool(x, (2, 2), (2, 2)).reshape((x.shape[0], -1)))


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory, data_dir):
    """The tiny digits config with a conv model passed in, the baseline turned off: (workdir, summary)."""

    def make(workdir):
        train_and_evaluate(tiny_config(data_dir, baseline=False), workdir, model=TinyConv(), progress=False)
        return ""

    workdir, _ = shared_run(tmp_path_factory, "conv", make)
    return pathlib.Path(workdir), read_summary(workdir)


@pytest.mark.slow
def test_conv_model_gets_feature_maps(conv_run):
    workdir, summary = conv_run
    assert summary["activations"]["Conv_0"]["shape"] == [10, 8, 8, 6]
    width, height = assert_png(str(workdir / "activations_Conv_0.png"))
    assert height > width / 2  # a tile per example and channel, not one flat strip
    assert summary["baseline"]["skipped"].startswith("turned off")
    assert "activations_Conv_0.png" in summary["files"]
    assert summary["confusion_matrix"] and (workdir / "worst_errors.png").exists()


@pytest.mark.slow
def test_compare_two_real_runs(cli_run, conv_run, tmp_path):
    plot = tmp_path / "curves.png"
    result = run_cli("jaxdl.compare", cli_run[0], str(conv_run[0]), "--out", str(plot))
    assert result.returncode == 0, result.stderr
    header, _, mlp, conv = result.stdout.splitlines()[:4]
    assert "eval.baseline" in header and "eval.target_accuracy" in header and "model.name" not in header
    assert mlp.startswith("shared-mlp ") and f"{cli_run[1]['test']['accuracy']:.4f}" in mlp
    assert conv.startswith("shared-conv ") and f"{conv_run[1]['test']['accuracy']:.4f}" in conv
    assert_png(str(plot))


def regression_splits(seed: int = 0) -> Splits:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(4, 1))

    def arrays(n):
        x = rng.normal(size=(n, 4)).astype(np.float32)
        return {"x": x, "y": (np.sin(x) @ w + 0.05 * rng.normal(size=(n, 1))).astype(np.float32)}

    info = DataInfo(name="sine", task="regression", input_shape=(4,), target_shape=(1,))
    return Splits(train=arrays(256), validation=arrays(64), test=arrays(100), info=info)


@pytest.mark.slow
def test_regression_run_gets_predicted_vs_true_and_residuals(tmp_path, data_dir):
    config = tiny_config(data_dir)
    summary = train_and_evaluate(config, str(tmp_path), splits=regression_splits(), progress=False)
    assert summary["test"]["mse"] > 0
    for name in ("learning_curves.png", "predicted_vs_true.png", "residuals.png", "report.html"):
        assert (tmp_path / name).exists(), name
    assert_png(str(tmp_path / "predicted_vs_true.png"))
    assert "confusion_matrix" not in summary and not (tmp_path / "confusion_matrix.png").exists()
    assert summary["residuals"]["mae"] > 0 and summary["baseline"]["model"] == "linear regression"
    assert summary["activations"]["hidden_0_out"]["shape"] == [10, 32]
    page = (tmp_path / "report.html").read_text()
    assert "Residuals" in page and "Predicted against true" in page


def test_a_target_accuracy_on_regression_data_is_an_input_error(tmp_path, data_dir):
    with pytest.raises(InputError, match="needs a classification task"):
        train_and_evaluate(tiny_config(data_dir, target_accuracy=0.9), str(tmp_path), splits=regression_splits(),
                           progress=False)
