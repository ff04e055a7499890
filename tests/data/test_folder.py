"""`folder:PATH`: image folders (PNG, JPEG, EXIF orientation, gray/RGBA, split folders, fingerprint, bad input)."""

from __future__ import annotations

import json
import logging
import os

import ml_collections
import numpy as np
import pytest
from conftest import CliDriver, run_cli
from PIL import Image

from jaxdl.data import folder, load
from jaxdl.errors import InputError

EXIF_ORIENTATION = 0x0112


def data_config(path, data_dir, image_size=()) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"name": f"folder:{path}", "data_dir": str(data_dir), "validation_fraction": 0.1,
                                      "split_seed": 0, "download": False, "image_size": image_size})


def write(path, array: np.ndarray, **save_kwargs) -> str:
    """Writes uint8 (H, W) or (H, W, C) as an image file whose format follows the extension."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path, **save_kwargs)
    return str(path)


def class_tree(root, classes: dict[str, int], count: int = 10, shape=(6, 6), ext="png") -> None:
    """root/<class>/<i>.<ext>: `count` images per class, every pixel = the class's value."""
    for name, value in classes.items():
        for i in range(count):
            write(root / name / f"{i}.{ext}", np.full(shape, value, np.uint8))


def pixels(x: np.ndarray) -> np.ndarray:
    """float32 [0, 1] inputs back to the 0..255 pixel values they were made from."""
    return np.round(x * 255).astype(int)


def prepared_configs(data_dir) -> list[str]:
    path = os.path.join(data_dir, "folder")
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def test_png_and_jpeg_load_as_uint8_images_with_sorted_class_names(tmp_path):
    for i in range(10):
        write(tmp_path / "src" / "dog" / f"{i}.png", np.full((6, 4, 3), (200, 10, 10), np.uint8))
        write(tmp_path / "src" / "cat" / f"{i}.jpg", np.full((6, 4, 3), (10, 10, 200), np.uint8), quality=95)
    (tmp_path / "src" / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "src" / "dog" / ".DS_Store").write_bytes(b"\0\1")

    splits = load(data_config(tmp_path / "src", tmp_path / "tfds"))

    assert splits.info.class_names == ("cat", "dog")
    assert splits.info.input_shape == (6, 4, 3)
    assert sum(splits.sizes().values()) == 20
    x = np.concatenate([splits.train["x"], splits.validation["x"], splits.test["x"]])
    y = np.concatenate([splits.train["y"], splits.validation["y"], splits.test["y"]])
    assert x.dtype == np.float32
    np.testing.assert_array_equal(np.unique(pixels(x[y == 1]).reshape(-1, 3), axis=0), [[200, 10, 10]])  # PNG: exact
    np.testing.assert_allclose(pixels(x[y == 0]).mean(axis=(0, 1, 2)), [10, 10, 200], atol=6)  # JPEG: lossy


def test_exif_orientation_turns_the_image_upright(tmp_path):
    # Stored 8 high x 16 wide: left half dark, right half bright. Orientation 6 = "rotate 90 degrees
    # clockwise to display", so the upright image is 16 high x 8 wide, dark on top.
    stored = np.zeros((8, 16), np.uint8)
    stored[:, 8:] = 255
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    for i in range(5):
        write(tmp_path / "src" / "a" / f"{i}.jpg", stored, exif=exif, quality=95)
        write(tmp_path / "src" / "b" / f"{i}.png", np.full((16, 8), 128, np.uint8))

    splits = load(data_config(tmp_path / "src", tmp_path / "tfds"))

    assert splits.info.input_shape == (16, 8, 1)
    x = np.concatenate([splits.train["x"], splits.validation["x"], splits.test["x"]])
    y = np.concatenate([splits.train["y"], splits.validation["y"], splits.test["y"]])
    upright = np.rot90(stored, k=-1)[..., None] / 255.0  # clockwise
    assert upright[0, 0, 0] == 0.0 and upright[-1, 0, 0] == 1.0
    for image in x[y == 0]:
        assert np.abs(image - upright).mean() < 0.05


def test_gray_and_rgba_in_one_set_become_rgb_and_alpha_is_dropped(tmp_path):
    rgba = np.zeros((5, 5, 4), np.uint8)
    rgba[..., :3] = (30, 60, 90)  # fully transparent: dropping alpha keeps these values, blending would not
    for i in range(5):
        write(tmp_path / "src" / "gray" / f"{i}.png", np.full((5, 5), 100, np.uint8))
        write(tmp_path / "src" / "rgba" / f"{i}.png", rgba)

    splits = load(data_config(tmp_path / "src", tmp_path / "tfds"))

    assert splits.info.input_shape == (5, 5, 3)
    x = np.concatenate([splits.train["x"], splits.validation["x"], splits.test["x"]])
    y = np.concatenate([splits.train["y"], splits.validation["y"], splits.test["y"]])
    np.testing.assert_array_equal(np.unique(pixels(x[y == 0]).reshape(-1, 3), axis=0), [[100, 100, 100]])
    np.testing.assert_array_equal(np.unique(pixels(x[y == 1]).reshape(-1, 3), axis=0), [[30, 60, 90]])


def test_image_size_resizes_whole_images_of_different_sizes(tmp_path):
    for i in range(5):
        write(tmp_path / "src" / "a" / f"{i}.png", np.full((20, 10), 50, np.uint8))
        write(tmp_path / "src" / "b" / f"{i}.png", np.full((7, 9), 150, np.uint8))

    with pytest.raises(InputError, match=r"config.data.image_size: images of different sizes.*7x9.*20x10"):
        load(data_config(tmp_path / "src", tmp_path / "tfds"))
    assert not os.path.exists(tmp_path / "tfds")
    splits = load(data_config(tmp_path / "src", tmp_path / "tfds", image_size=(4, 6)))

    assert splits.info.input_shape == (4, 6, 1)
    x = np.concatenate([splits.train["x"], splits.validation["x"], splits.test["x"]])
    assert set(np.unique(pixels(x))) == {50, 150}  # constant images stay constant: no crop, no padding


def test_split_folders_are_used_as_given(tmp_path):
    class_tree(tmp_path / "src" / "train", {"a": 0, "b": 255}, count=6)
    class_tree(tmp_path / "src" / "validation", {"a": 0, "b": 255}, count=2)
    class_tree(tmp_path / "src" / "test", {"b": 255}, count=3)  # a class may be missing from test

    splits = load(data_config(tmp_path / "src", tmp_path / "tfds"))

    assert splits.sizes() == {"train": 12, "validation": 4, "test": 3}
    assert splits.info.class_names == ("a", "b")
    np.testing.assert_array_equal(splits.test["y"], [1, 1, 1])
    np.testing.assert_array_equal(pixels(splits.test["x"][:, 0, 0, 0]), [255, 255, 255])


def test_a_class_in_test_that_train_lacks_is_an_error(tmp_path):
    class_tree(tmp_path / "src" / "train", {"a": 0, "b": 255}, count=4)
    class_tree(tmp_path / "src" / "test", {"a": 0, "zebra": 9}, count=2)

    with pytest.raises(InputError, match=r"label not present in train.*zebra"):
        load(data_config(tmp_path / "src", tmp_path / "tfds"))
    assert not os.path.exists(tmp_path / "tfds")


def test_a_changed_file_is_prepared_again(tmp_path):
    class_tree(tmp_path / "src", {"a": 10, "b": 20}, count=5)
    first = load(data_config(tmp_path / "src", tmp_path / "tfds"))
    again = load(data_config(tmp_path / "src", tmp_path / "tfds"))
    assert len(prepared_configs(tmp_path / "tfds")) == 1
    np.testing.assert_array_equal(first.train["x"], again.train["x"])

    for i in range(5):
        write(tmp_path / "src" / "a" / f"{i}.png", np.full((6, 6), 99, np.uint8))
        os.utime(tmp_path / "src" / "a" / f"{i}.png", ns=(1, 1))  # a new mtime even on a coarse clock
    changed = load(data_config(tmp_path / "src", tmp_path / "tfds"))

    assert len(prepared_configs(tmp_path / "tfds")) == 2
    values = np.concatenate([changed.train["x"], changed.validation["x"], changed.test["x"]])
    assert set(np.unique(pixels(values))) == {99, 20}


def test_a_corrupt_image_among_good_ones_is_skipped_with_a_warning(tmp_path, caplog):
    class_tree(tmp_path / "src", {"a": 10, "b": 20}, count=5)
    # A real JPEG cut in half: Pillow reads its header, only decoding it fails.
    whole = write(tmp_path / "whole.jpg", np.random.default_rng(0).integers(0, 255, (6, 6), np.uint8))
    data = open(whole, "rb").read()
    (tmp_path / "src" / "a" / "broken.jpg").write_bytes(data[: len(data) // 2])

    with caplog.at_level(logging.WARNING, logger="jaxdl"):
        splits = load(data_config(tmp_path / "src", tmp_path / "tfds"))

    assert sum(splits.sizes().values()) == 10
    assert any("broken.jpg" in record.getMessage() for record in caplog.records)


def test_a_failure_while_preparing_leaves_nothing_taken_as_prepared(tmp_path, monkeypatch):
    class_tree(tmp_path / "src", {"a": 10, "b": 20}, count=5)
    calls = []

    def fails_on_the_fourth(*args):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("disk full")
        return original(*args)

    original = folder.to_array
    monkeypatch.setattr(folder, "to_array", fails_on_the_fourth)
    with pytest.raises(RuntimeError, match="disk full"):
        load(data_config(tmp_path / "src", tmp_path / "tfds"))
    assert prepared_configs(tmp_path / "tfds") == []

    monkeypatch.setattr(folder, "to_array", original)
    assert sum(load(data_config(tmp_path / "src", tmp_path / "tfds")).sizes().values()) == 10


@pytest.fixture(scope="module")
def driver():
    driver = CliDriver()
    yield driver
    driver.close()


def bad_tree(root, case: str) -> tuple[str, list[str]]:
    """Writes the bad folder of `case` under root; returns (its path, extra argv)."""
    src = root / "src"
    if case == "missing":
        return str(src), []
    if case == "a_file":
        src.write_text("not a folder")
        return str(src), []
    src.mkdir()
    if case == "empty":
        (src / "notes.txt").write_text("no class folders here")
    elif case == "one_class":
        class_tree(src, {"only": 1}, count=4)
    elif case == "no_readable_image":
        class_tree(src, {"a": 1}, count=4)
        (src / "b").mkdir()
        (src / "b" / "scan.png").write_bytes(b"\x89PNG but not really")
    elif case == "no_image_files":
        class_tree(src, {"a": 1}, count=4)
        (src / "b").mkdir()
        (src / "b" / "readme.txt").write_text("x")
    elif case == "sizes_differ":
        class_tree(src, {"a": 1}, count=4, shape=(5, 5))
        class_tree(src, {"b": 2}, count=4, shape=(6, 5))
    elif case == "bad_image_size":
        class_tree(src, {"a": 1, "b": 2}, count=4)
        return str(src), ["--config.data.image_size=(0, 5)"]
    elif case == "not_in_train":
        class_tree(src / "train", {"a": 1, "b": 2}, count=4)
        class_tree(src / "validation", {"c": 3}, count=2)
    elif case == "split_and_class_folders":
        class_tree(src / "train", {"a": 1, "b": 2}, count=4)
        class_tree(src, {"c": 3}, count=2)
    return str(src), []


BAD = [  # (case, where, fragments of the error line)
    ("missing", "config.data.name", ["folder not found", "src"]),
    ("a_file", "config.data.name", ["not a folder", "src"]),
    ("empty", "config.data.name", ["no class folders"]),
    ("one_class", "config.data.name", ["one class only", "only"]),
    ("no_readable_image", "config.data.name", ["has no readable image", "scan.png"]),
    ("no_image_files", "config.data.name", ["has no readable image", os.path.join("src", "b")]),
    ("sizes_differ", "config.data.image_size", ["different sizes", "5x5", "6x5"]),
    ("bad_image_size", "config.data.image_size", ["not an image size", "(0, 5)"]),
    ("not_in_train", "config.data.name", ["label not present in train", "'c'"]),
    ("split_and_class_folders", "config.data.name", ["only split folders", "'c'"]),
]


@pytest.mark.parametrize(("case", "where", "fragments"), BAD, ids=[case for case, *_ in BAD])
def test_bad_folders_are_one_error_line_and_write_nothing(driver, tmp_path, case, where, fragments):
    path, extra = bad_tree(tmp_path, case)
    result = driver.run(["--quiet", f"--config.data.name=folder:{path}",
                         f"--config.data.data_dir={tmp_path / 'tfds'}", f"--workdir={tmp_path / 'work'}", *extra])

    lines = result["stderr"].strip().splitlines()
    assert result["code"] == 2, result["stderr"]
    assert len(lines) == 1, result["stderr"]
    assert lines[0].startswith(f"error: {where}: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not os.path.exists(tmp_path / "tfds")


@pytest.mark.slow
def test_a_corrupt_image_is_a_warning_line_on_the_command_line(driver, tmp_path):
    class_tree(tmp_path / "src", {"a": 10, "b": 20}, count=10)
    (tmp_path / "src" / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = driver.run(["--quiet", "--config", "configs/mlp.py:tiny", f"--config.data.name=folder:{tmp_path / 'src'}",
                         f"--config.data.data_dir={tmp_path / 'tfds'}", f"--workdir={tmp_path / 'work'}",
                         "--config.train.epochs=1", "--config.train.batch_size=4", "--config.eval.report=false"])

    assert result["code"] == 0, result["stderr"]
    warnings = [line for line in result["stderr"].splitlines() if line.startswith("warning: ")]
    # The skipped file, and (36 images leave a test set of a few) the data question's tiny-test-set line.
    assert len(warnings) == 2 and "broken.png" in warnings[0], result["stderr"]
    assert warnings[1].startswith("warning: the test set has only "), result["stderr"]


@pytest.mark.slow
def test_the_cnn_trains_on_an_image_folder_from_the_command_line(tmp_path):
    rng = np.random.default_rng(0)
    for name, value in (("dark", 40), ("light", 215)):
        for i in range(12):
            noise = rng.integers(-30, 30, size=(10, 14, 3))
            write(tmp_path / "src" / name / f"{i}.{'jpg' if i % 2 else 'png'}",
                  np.clip(value + noise, 0, 255).astype(np.uint8))

    result = run_cli("experiments.cnn", "--config", "configs/cnn.py:tiny",
                     f"--config.data.name=folder:{tmp_path / 'src'}",
                     f"--config.data.data_dir={tmp_path / 'tfds'}", "--config.data.image_size=(8, 8)",
                     "--config.train.batch_size=4", "--workdir", str(tmp_path / "work"), "--config.eval.report=false")

    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "work" / "summary.json").read_text())
    assert summary["class_names"] == ["dark", "light"] and summary["epochs_run"] == 3, summary
    assert 0.0 <= summary["test"]["accuracy"] <= 1.0
    # The run prepared the 8x8 form (no second fingerprint appears when Python asks for the same).
    assert load(data_config(tmp_path / "src", tmp_path / "tfds", image_size=(8, 8))).info.input_shape == (8, 8, 3)
    assert len(prepared_configs(tmp_path / "tfds")) == 1
