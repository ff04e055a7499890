"""`csv:PATH`: tables written with the csv module, read through `jaxdl.load_data` and the command line."""

from __future__ import annotations

import csv
import json
import os

import ml_collections
import numpy as np
import pytest
from conftest import run_cli

import jaxdl
from jaxdl.data import table
from jaxdl.errors import InputError

COLORS = ("red", "green", "blue")


def write_csv(path, header, rows) -> str:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def flowers(path, n: int = 90) -> str:
    """Columns row (its index), height (float, every 9th empty), color (3 values, every 10th "NA"),
    species (a / b / c, decided by height, so it can be learned)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        species = "abc"[i % 3]
        height = 10.0 * (i % 3) + rng.normal(0, 1)
        rows.append([i, "" if i % 9 == 4 else f"{height:.3f}", "NA" if i % 10 == 7 else COLORS[(i // 2) % 3], species])
    return write_csv(path, ["row", "height", "color", "species"], rows)


def data_config(name: str, data_dir, **overrides) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"name": name, "data_dir": str(data_dir), "validation_fraction": 0.1,
                                      "split_seed": 0, "download": False, "label": "", "task": "auto", **overrides})


def raw_column(path: str, name: str) -> list[str]:
    with open(path, newline="") as f:
        return [row[name] for row in csv.DictReader(f)]


def train_statistics(path: str, splits) -> tuple[float, float]:
    """numpy's mean and std of `height` over the training rows (found by the `row` column)."""
    row = splits.info.preprocessing["columns"][0]
    rows = np.rint(splits.train["x"][:, 0] * row["std"] + row["mean"]).astype(int)
    heights = np.array([float(h) if h else np.nan for h in raw_column(path, "height")])[rows]
    return float(np.nanmean(heights)), float(np.nanstd(heights))


def test_table_is_standardised_with_training_statistics(tmp_path):
    path = flowers(tmp_path / "flowers.csv")
    splits = jaxdl.load_data(data_config(f"csv:{path}", tmp_path / "tfds", label="species"))
    info = splits.info
    assert (info.task, info.class_names, info.input_shape) == ("classification", ("a", "b", "c"), (5,))
    assert sum(splits.sizes().values()) == 90
    columns = {c["name"]: c for c in info.preprocessing["columns"]}
    assert columns["color"]["categories"] == ["blue", "green", "red"] and columns["color"]["inputs"] == [2, 5]
    mean, std = train_statistics(path, splits)
    assert columns["height"]["mean"] == pytest.approx(mean, rel=1e-5)
    assert columns["height"]["std"] == pytest.approx(std, rel=1e-5)
    # Every split uses the training statistics; a missing number becomes 0 (the training mean),
    # a missing category an all-zero one-hot.
    heights = raw_column(path, "height")
    colors = raw_column(path, "color")
    seen = []
    for split in (splits.train, splits.validation, splits.test):
        rows = np.rint(split["x"][:, 0] * columns["row"]["std"] + columns["row"]["mean"]).astype(int)
        expected = np.array([(float(heights[r]) - mean) / std if heights[r] else 0.0 for r in rows])
        np.testing.assert_allclose(split["x"][:, 1], expected, atol=1e-4)
        onehot = np.array([[c == colors[r] for c in ("blue", "green", "red")] for r in rows], np.float32)
        np.testing.assert_array_equal(split["x"][:, 2:], onehot)
        seen.extend(rows)
    assert sorted(seen) == list(range(90))
    assert any(not heights[r] for r in seen) and any(colors[r] == "NA" for r in seen)  # the test saw missing cells
    assert hash(info) == hash(info)  # still hashable with its preprocessing dict


def test_default_label_is_the_last_column_and_numbers_give_regression(tmp_path):
    rows = [[i, i % 4, 0.5 * i + 0.25] for i in range(40)]
    path = write_csv(tmp_path / "t.csv", ["a", "b", "target"], rows)
    info = jaxdl.load_data(data_config(f"csv:{path}", tmp_path / "tfds")).info
    assert (info.task, info.target_shape, info.input_shape) == ("regression", (), (2,))
    assert info.preprocessing["label"] == {"name": "target", "task": "regression", "classes": []}


def test_few_integer_labels_are_classes_in_numeric_order(tmp_path):
    rows = [[i, (2, 10, 1)[i % 3]] for i in range(30)]
    path = write_csv(tmp_path / "t.csv", ["a", "grade"], rows)
    splits = jaxdl.load_data(data_config(f"csv:{path}", tmp_path / "tfds"))
    assert splits.info.class_names == ("1", "2", "10")
    regression = jaxdl.load_data(data_config(f"csv:{path}", tmp_path / "tfds", task="regression"))
    assert regression.info.task == "regression"


def test_a_changed_file_is_prepared_again(tmp_path):
    path = flowers(tmp_path / "flowers.csv", n=60)
    config = data_config(f"csv:{path}", tmp_path / "tfds", label="species")
    assert sum(jaxdl.load_data(config).sizes().values()) == 60
    flowers(tmp_path / "flowers.csv", n=75)
    assert sum(jaxdl.load_data(config).sizes().values()) == 75
    assert len(os.listdir(tmp_path / "tfds" / "csv_table")) == 2  # one config folder per fingerprint


def test_a_failure_while_preparing_leaves_no_dataset_folder(tmp_path, monkeypatch):
    path = flowers(tmp_path / "flowers.csv", n=60)
    config = data_config(f"csv:{path}", tmp_path / "tfds", label="species")

    def broken(self):
        yield 0, {"features": self.table.x[0], "label": self.table.y[0]}
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(table.CsvTable, "_generate_examples", broken)
        with pytest.raises(InputError, match="disk full"):
            jaxdl.load_data(config)
    assert not os.path.exists(tmp_path / "tfds" / "csv_table")
    assert sum(jaxdl.load_data(config).sizes().values()) == 60


BAD_TABLES = {
    "missing file": (None, {}, "config.data.name: no such file"),
    "empty file": ("", {}, "config.data.name: the CSV file is empty"),
    "header only": ("a,b\n", {}, "config.data.name: the CSV file has no data rows"),
    "no header": ("1,2\n3,4\n", {}, "config.data.name: the first row holds no column names"),
    "ragged row": ("a,b\n1,x\n2\n", {}, "config.data.name: row 3 has 1 cells"),
    "no such label": ("height,species\n1,a\n2,b\n", {"label": "specis"},
                      "config.data.label: no such column .* did you mean 'species'"),
    "free text": ("note,species\n" + "".join(f"text number {i},{'ab'[i % 2]}\n" for i in range(60)), {},
                  "config.data.name: column 'note' is neither numbers nor a category"),
    "one class": ("a,species\n1,x\n2,x\n3,x\n", {}, "config.data.label: the label column holds one class only"),
    "missing label": ("a,species\n1,x\n2,\n3,y\n", {}, "config.data.label: label missing in row 3"),
    "text regression": ("a,species\n1,x\n2,y\n", {"task": "regression"},
                        "config.data.label: regression needs numeric labels"),
    "unknown task": ("a,b\n1,2\n", {"task": "clasification"}, "config.data.task: unknown name"),
}


@pytest.mark.parametrize("case", BAD_TABLES)
def test_bad_tables_are_one_error_and_write_nothing(tmp_path, case):
    text, overrides, message = BAD_TABLES[case]
    path = tmp_path / "t.csv"
    if text is not None:
        path.write_text(text)
    with pytest.raises(InputError, match=message):
        jaxdl.load_data(data_config(f"csv:{path}", tmp_path / "tfds", **overrides))
    assert not os.path.exists(tmp_path / "tfds")


@pytest.mark.slow
def test_command_line_trains_on_a_table_and_keeps_its_statistics(tmp_path):
    path = flowers(tmp_path / "flowers.csv")
    workdir, data_dir = tmp_path / "run", tmp_path / "tfds"
    result = run_cli("experiments.mlp", "--config", "configs/mlp.py:tiny", f"--config.data.name=csv:{path}",
                     "--config.data.label=species", f"--config.data.data_dir={data_dir}", "--workdir", str(workdir),
                     "--config.eval.report=false", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["task"] == "classification" and summary["data"]["test"] > 0
    saved = json.loads((workdir / "preprocessing.json").read_text())
    # The same seeded carve in this process gives the training rows the run standardised with.
    splits = jaxdl.load_data(data_config(f"csv:{path}", data_dir, label="species"))
    mean, std = train_statistics(path, splits)
    height = next(c for c in saved["columns"] if c["name"] == "height")
    assert height["mean"] == pytest.approx(mean, rel=1e-5) and height["std"] == pytest.approx(std, rel=1e-5)
    assert saved["label"]["classes"] == ["a", "b", "c"]


def test_command_line_bad_label_exits_2_and_writes_nothing(tmp_path):
    path = flowers(tmp_path / "flowers.csv", n=30)
    result = run_cli("experiments.mlp", "--config", "configs/mlp.py:tiny", f"--config.data.name=csv:{path}",
                     "--config.data.label=specis", f"--config.data.data_dir={tmp_path / 'tfds'}",
                     "--workdir", str(tmp_path / "run"), "--config.eval.report=false")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "config.data.label" in errors[0] and "did you mean 'species'" in errors[0]
    assert not os.path.exists(tmp_path / "tfds")
