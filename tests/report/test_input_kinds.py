"""The report shows each kind of input as it is: images as images, 1-D signals as line plots, tabular
features as table rows (decided by the data's shape and the model that reads it)."""

from __future__ import annotations

import os

import ml_collections
import numpy as np
import pytest
from conftest import REPO
from matplotlib.lines import Line2D

from jaxdl.data import DataInfo, Splits
from jaxdl.data.signals import CLASSES, signal_examples
from jaxdl.report import figures
from jaxdl.report.build import input_kind
from jaxdl.run.config import load_config
from jaxdl.run.pipeline import train_and_evaluate


@pytest.mark.parametrize(("shape", "model", "kind"), [
    ((8, 8, 1), {"name": "mlp"}, "image"),
    ((8, 8, 1), {"name": "cnn"}, "image"),
    ((8, 8, 1), {"name": "rnn"}, "image"),  # digits read row by row are still digits
    ((128,), {"name": "cnn"}, "signal"),
    ((50, 2), {"name": "rnn"}, "signal"),
    ((50, 2), {"name": "cnn"}, "signal"),
    ((512,), {"name": "rnn", "vocab_size": 257}, "other"),  # token ids are no curve
    ((64,), {"name": "mlp"}, "table"),
    ((2,), {"name": "playground"}, "table"),
    ((4, 6, 6, 1), {"name": "cnn"}, "other"),
])
def test_input_kind_follows_the_data_and_the_model(shape, model, kind):
    assert input_kind(shape, model) == kind


@pytest.fixture
def captured(monkeypatch):
    """The Figures the report draws, by file name (each still saved as a PNG)."""
    drawn, save = {}, figures.save

    def keep(fig, path):
        drawn[os.path.basename(path)] = fig
        return save(fig, path)

    monkeypatch.setattr(figures, "save", keep)
    return drawn


def test_worst_errors_of_signals_are_lines_one_per_channel(captured, tmp_path):
    rows = [{"true": "sine", "predicted": "square", "probability": 0.7}] * 5
    path = figures.worst_errors_signals(np.random.default_rng(0).normal(size=(5, 32, 2)), rows, str(tmp_path / "w.png"))
    ax = captured["w.png"].axes[0]
    assert len(ax.get_lines()) == len(curves(ax, 32)) == 5 * 2
    assert not ax.get_images()  # not the image mosaic
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def signal_splits(length: int = 48) -> Splits:
    def arrays(count, seed):
        x, y = signal_examples(length, count, seed)
        return {"x": x, "y": y.astype(np.int32)}

    info = DataInfo(name="signals", task="classification", input_shape=(length,), num_classes=4, class_names=CLASSES)
    return Splits(train=arrays(128, 0), validation=arrays(32, 1), test=arrays(40, 2), info=info)


def tiny(family: str, **model) -> ml_collections.ConfigDict:
    config = load_config(os.path.join(REPO, "configs", f"{family}.py:tiny"))
    with config.unlocked():
        config.train.epochs = 1
        config.checkpoint.every_epochs = 0
        config.eval.baseline = False
        config.model.update(model)
    return config


def curves_of(fig) -> list[Line2D]:
    """The curves of a figure's axes that hold lines (one per drawn signal)."""
    return [ax for ax in fig.axes if ax.get_lines()]


def curves(ax, steps: int) -> list[Line2D]:
    """The lines of `ax` that are curves over `steps` steps (not the separators between rows)."""
    return [line for line in ax.get_lines() if len(line.get_xdata()) == steps]


@pytest.mark.slow
def test_a_signal_run_draws_its_inputs_and_feature_maps_as_lines(captured, tmp_path):
    summary = train_and_evaluate(tiny("cnn"), str(tmp_path), splits=signal_splits(), progress=False)
    assert summary["activations"]["conv_0_out"]["shape"] == [4, 48, 8]
    assert {"worst_errors.png", "activations_conv_0_out.png"} <= set(summary["files"])
    worst = captured["worst_errors.png"].axes[0]
    assert len(worst.get_lines()) == len(summary["worst_errors"]) and not worst.get_images()
    inputs, maps = captured["activations_conv_0_out.png"].axes
    assert len(curves(inputs, 48)) == 4  # one input signal per class
    assert len(curves(maps, 48)) == 4 * 4 and not maps.get_images()  # the 4 most active of 8 channels per example
    dense = captured["activations_dense_0_out.png"].axes
    assert dense[1].get_images()  # a layer without a time axis stays a heatmap, beside the input lines
    page = (tmp_path / "report.html").read_text()
    assert "x[0]" not in page  # no feature table for a signal
    why = captured["why_attributions.png"]  # each explained signal: its curve over a strip of per-step attributions
    strips = [ax for ax in why.axes if ax.get_images()]
    assert len(strips) == len(curves_of(why)) == len(summary["questions"]["why"]["examples"]) > 0
    assert all(ax.get_images()[0].get_array().shape == (1, 48, 3) for ax in strips)


@pytest.mark.slow
def test_a_tabular_run_gets_its_features_as_table_rows(captured, tmp_path, digits):
    flat = lambda a: {"x": a["x"].reshape(len(a["x"]), -1), "y": a["y"]}  # noqa: E731
    info = DataInfo(name="digits_flat", task="classification", input_shape=(64,), num_classes=10,
                    class_names=digits.info.class_names)
    splits = Splits(train=flat(digits.train), validation=flat(digits.validation), test=flat(digits.test), info=info)
    summary = train_and_evaluate(tiny("mlp"), str(tmp_path), splits=splits, progress=False)
    assert "worst_errors.png" not in summary["files"] and not (tmp_path / "worst_errors.png").exists()
    assert not captured["activations_hidden_0_out.png"].axes[0].get_lines()
    page = (tmp_path / "report.html").read_text()
    worst = summary["worst_errors"][0]
    first = f"{splits.test['x'][worst['index'], 0]:.4g}"
    assert "<th>x[0]</th>" in page and "<th>x[15]</th>" in page and "<th>x[16]</th>" not in page
    assert f"<td>{worst['index']}</td>" in page and f"<td>{first}</td>" in page
    assert "The first 16 of 64 features are shown." in page
    assert "Inputs (the rows of the figures below)" in page
    why = summary["questions"]["why"]  # tabular: top features in words, no figure
    assert "why_attributions.png" not in summary["files"]
    assert why["examples"][0]["sentence"] in page.replace("&#x27;", "'")
    assert why["examples"][0]["top_features"][0]["feature"].startswith("x[")
