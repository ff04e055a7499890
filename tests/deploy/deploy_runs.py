"""Finished tiny runs, trained once per session (cached here, whichever test module asks first),
that the deploy tests predict with and export.

mlp: digits (uint8 8x8x1 images); cnn: a folder of RGB 16x16 PNGs of digits resized to 8x8 (batch
norm); rnn: a GRU reading digits row by row; table: a csv: file with a numeric, a categorical and a
missing-value column; arrays: an npz: file of float32 rows; regression: an npz: file of float inputs
(N, 4) and one float target.
"""

from __future__ import annotations

import csv
import json
import os

import ml_collections
import numpy as np
from conftest import run_cli
from PIL import Image

from jaxdl.data import get_builder, load


def train(workdir, config: str, *overrides: str) -> str:
    """`python -m experiments.<name> --config configs/<name>.py:VARIANT ...` into `workdir`."""
    experiment = os.path.basename(config).partition(".")[0]
    result = run_cli(f"experiments.{experiment}", "--config", config, "--workdir",
                     str(workdir), "--config.eval.report=false", "--quiet", *overrides)
    assert result.returncode == 0, result.stderr[-2000:]
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


TRAINED: dict[str, str] = {}


def finished_run(name: str, tmp_path_factory) -> str:
    """The workdir of tiny run `name` ("mlp", "cnn", "rnn", "table", "sweep"), trained on first use."""
    if name not in TRAINED:
        root = tmp_path_factory.getbasetemp() / f"deploy-{name}"
        root.mkdir()
        TRAINED[name] = TRAINERS[name](root)
    return TRAINED[name]


def digits_splits(data_dir: str):
    get_builder("digits", data_dir).download_and_prepare(file_format="array_record")
    return load(ml_collections.ConfigDict({"name": "digits", "data_dir": data_dir, "validation_fraction": 0.1,
                                           "split_seed": 0, "download": False}))


def train_mlp(root) -> str:
    digits_splits(str(root / "tfds"))
    return train(root / "run", "configs/mlp.py:tiny", f"--config.data.data_dir={root / 'tfds'}")


def train_cnn(root) -> str:
    digits = digits_splits(str(root / "digits"))
    folder = digit_folder(root / "images", digits)
    return train(root / "run", "configs/cnn.py:tiny", f"--config.data.name=folder:{folder}",
                 "--config.data.image_size=(8, 8)", f"--config.data.data_dir={root / 'tfds'}")


def train_table(root) -> str:
    path = table_csv(root / "table.csv")
    return train(root / "run", "configs/mlp.py:tiny", f"--config.data.name=csv:{path}", "--config.data.label=kind",
                 f"--config.data.data_dir={root / 'tfds'}", "--config.train.epochs=20")


def train_rnn(root) -> str:
    digits_splits(str(root / "tfds"))
    return train(root / "run", "configs/rnn.py:tiny", f"--config.data.data_dir={root / 'tfds'}")


def train_arrays(root) -> str:
    """An MLP on an npz: file of float32 rows (6 features, 2 classes): a run whose inputs are floats."""
    x = np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32)
    np.savez(root / "rows.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    return train(root / "run", "configs/mlp.py:tiny", f"--config.data.name=npz:{root / 'rows.npz'}",
                 f"--config.data.data_dir={root / 'tfds'}")


def train_sweep(root) -> str:
    digits_splits(str(root / "tfds"))
    return train(root / "run", "configs/mlp.py:tiny", f"--config.data.data_dir={root / 'tfds'}",
                 "--config.sweep.learning_rate=(0.001, 0.03)", "--config.train.patience=2")


def train_regression(root) -> str:
    """Float inputs (N, 4), one float target: an `npz:` regression run."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    np.savez(root / "regression.npz", x=x, y=x @ np.array([1.0, 2.0, -1.0, 0.5]) + 0.1 * rng.normal(size=300))
    return train(root / "run", "configs/mlp.py:tiny", f"--config.data.name=npz:{root / 'regression.npz'}",
                 f"--config.data.data_dir={root / 'tfds'}")


TRAINERS = {"mlp": train_mlp, "cnn": train_cnn, "rnn": train_rnn, "table": train_table, "sweep": train_sweep,
            "arrays": train_arrays, "regression": train_regression}
