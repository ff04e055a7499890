"""Finished tiny runs that the deploy tests predict with, serve, export and check for drift: each is
trained once per test session, in-process, and shared by every test module and every xdist worker
(`finished_run`). A test reads a finished run; one that changes a run's files works on a copy.

mlp: digits (uint8 8x8x1 images), 20 epochs: a model that predicts every class (test_drift.py);
cnn: a folder of RGB 16x16 PNGs of digits resized to 8x8 (batch norm); rnn: a GRU reading digits row
by row; sweep: two learning rates of the MLP as one run; these three write their report too, as every
run does by default (tests/deploy/test_complete_runs.py checks each is a complete run).
table: a csv: file with a numeric, a categorical and a missing-value column; arrays: an npz: file of
float32 rows; regression: an npz: file of float inputs (N, 4) and one float target, 20 epochs (it
learns the target); signals: a GRU on the `signals` sequences (128 steps of one float channel).

Every run pins `train.steps_per_call=1`: `auto` would compile and time candidate step programs first
(the same bits whatever it picks; tests/train/test_steps_per_call.py tests the choice).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import importlib
import json
import os
import shutil

import ml_collections
import numpy as np
from conftest import REPO
from PIL import Image

from jaxdl.data import get_builder, load
from jaxdl.run.config import apply_override, load_config, split_overrides


def train(workdir, config: str, *overrides: str, report: bool = False) -> str:
    """What `python -m experiments.<name> --config configs/<name>.py:VARIANT --workdir WORKDIR --quiet
    OVERRIDES...` does (the same config, overrides and `run`), in this process: the command's start-up
    (importing jaxdl, about 3 s) is not paid per run. Without `report`, neither the report nor the
    questions (`eval.questions`: the compute question compiles the step again, simpler_methods fits
    trees) that no deploy test reads; with it, the variant's own questions as well."""
    spec = config if os.path.isabs(config) else os.path.join(REPO, config)
    loaded = load_config(spec)
    _, parsed = split_overrides([*(() if report else ("--config.eval.report=false", "--config.eval.questions=none")),
                                 "--config.train.steps_per_call=1", *overrides])
    for key, text in parsed.items():
        apply_override(loaded, key, text)
    experiment = importlib.import_module(f"experiments.{loaded.experiment}")
    experiment.run(loaded, str(workdir), progress=False)
    return str(workdir)


def run_splits(workdir: str):
    """The run's own splits, loaded again from its config.json (the same seeded carve)."""
    with open(os.path.join(workdir, "config.json")) as f:
        data = json.load(f)["data"]
    data["image_size"] = tuple(data.get("image_size", ()))
    return load(ml_collections.ConfigDict(data))


def digit_folder(root, digits, count: int = 300) -> str:
    """digits' first `count` training images as RGB 16x16 PNGs in class folders 0..9."""
    images = np.round(digits.train["x"][:count] * 255).astype(np.uint8)
    for i, (image, label) in enumerate(zip(images, digits.train["y"][:count], strict=True)):
        big = np.kron(image[..., 0], np.ones((2, 2), np.uint8))
        rgb = np.stack([big, big // 2, 255 - big], axis=-1)
        os.makedirs(root / str(label), exist_ok=True)
        Image.fromarray(rgb).save(root / str(label) / f"{i:04d}.png")
    return str(root)


def table_csv(path, n: int = 150) -> str:
    """Columns row (its index), size (every 7th missing), shade (3 categories, every 11th "NA"), kind (a/b/c)."""
    rng = np.random.default_rng(1)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["row", "size", "shade", "kind"])
        for i in range(n):
            kind = "abc"[i % 3]
            size = "" if i % 7 == 3 else f"{5.0 * (i % 3) + rng.normal(0, 0.7):.3f}"
            shade = "NA" if i % 11 == 5 else ("dark", "light", "mid")[(i // 3) % 3]
            writer.writerow([i, size, shade, kind])
    return str(path)


def shared_root(tmp_path_factory):
    """The session's folder that every xdist worker sees (the workers' own temp folders lie in it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def locked(path):
    """An exclusive lock on `path` across processes (released when the holder exits, however it exits)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def built_once(root, build) -> str:
    """`build(root)` once per session across workers: the first caller builds under a lock while the
    others wait; a build that failed halfway is removed and built again by the next caller."""
    done = root.parent / f"{root.name}.done"
    if not done.exists():
        with locked(root.parent / f"{root.name}.lock"):
            if not done.exists():
                if root.exists():
                    shutil.rmtree(root)
                root.mkdir()
                result = build(root)
                done.with_suffix(".writing").write_text(result)
                os.replace(done.with_suffix(".writing"), done)  # whole or absent to a reader outside the lock
    return done.read_text()


TRAINED: dict[str, str] = {}


def finished_run(name: str, tmp_path_factory) -> str:
    """The workdir of finished run `name` (one of TRAINERS), trained on first use in the session."""
    if name not in TRAINED:
        TRAINED[name] = built_once(shared_root(tmp_path_factory) / f"deploy-{name}",
                                   lambda root: TRAINERS[name](root, tmp_path_factory))
    return TRAINED[name]


def digits_dir(tmp_path_factory) -> str:
    """A TFDS data_dir with `digits` prepared, shared by the runs of the session."""
    def prepare(root):
        get_builder("digits", str(root)).download_and_prepare(file_format="array_record")
        return str(root)
    return built_once(shared_root(tmp_path_factory) / "deploy-tfds", prepare)


def digits_splits(data_dir: str):
    get_builder("digits", data_dir).download_and_prepare(file_format="array_record")
    return load(ml_collections.ConfigDict({"name": "digits", "data_dir": data_dir, "validation_fraction": 0.1,
                                           "split_seed": 0, "download": False}))


def train_mlp(root, tmp_path_factory) -> str:
    return train(root / "run", "configs/mlp.py:tiny", f"--config.data.data_dir={digits_dir(tmp_path_factory)}",
                 "--config.train.epochs=20")


def train_cnn(root, tmp_path_factory) -> str:
    digits = digits_splits(digits_dir(tmp_path_factory))
    folder = digit_folder(root / "images", digits)
    return train(root / "run", "configs/cnn.py:tiny", f"--config.data.name=folder:{folder}",
                 "--config.data.image_size=(8, 8)", f"--config.data.data_dir={root / 'tfds'}", report=True)


def train_table(root, tmp_path_factory) -> str:
    path = table_csv(root / "table.csv")
    return train(root / "run", "configs/mlp.py:tiny", f"--config.data.name=csv:{path}", "--config.data.label=kind",
                 f"--config.data.data_dir={root / 'tfds'}", "--config.train.epochs=20")


def train_rnn(root, tmp_path_factory) -> str:
    return train(root / "run", "configs/rnn.py:tiny", f"--config.data.data_dir={digits_dir(tmp_path_factory)}",
                 report=True)


def train_arrays(root, tmp_path_factory) -> str:
    """An MLP on an npz: file of float32 rows (6 features, 2 classes): a run whose inputs are floats."""
    x = np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32)
    np.savez(root / "rows.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    return train(root / "run", "configs/mlp.py:tiny", f"--config.data.name=npz:{root / 'rows.npz'}",
                 f"--config.data.data_dir={root / 'tfds'}")


def train_sweep(root, tmp_path_factory) -> str:
    return train(root / "run", "configs/mlp.py:tiny", f"--config.data.data_dir={digits_dir(tmp_path_factory)}",
                 "--config.sweep.learning_rate=(0.001, 0.03)", "--config.train.patience=2", report=True)


def train_regression(root, tmp_path_factory) -> str:
    """Float inputs (N, 4), one float target: an `npz:` regression run."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    np.savez(root / "regression.npz", x=x, y=x @ np.array([1.0, 2.0, -1.0, 0.5]) + 0.1 * rng.normal(size=300))
    return train(root / "run", "configs/mlp.py:tiny", f"--config.data.name=npz:{root / 'regression.npz'}",
                 f"--config.data.data_dir={root / 'tfds'}", "--config.train.epochs=20")


def train_signals(root, tmp_path_factory) -> str:
    return train(root / "run", "configs/rnn.py:signals", f"--config.data.data_dir={root / 'tfds'}",
                 "--config.train.epochs=2", "--config.eval.baseline=false")


TRAINERS = {"mlp": train_mlp, "cnn": train_cnn, "rnn": train_rnn, "table": train_table, "sweep": train_sweep,
            "arrays": train_arrays, "regression": train_regression, "signals": train_signals}
