"""`python -m jaxdl.compare`: the differing config keys and the test figures of several runs.

These tests write workdir files by hand (the compare tool reads nothing else); a comparison of
real runs through the command line is in test_report.py.
"""

from __future__ import annotations

import json

import pytest
from conftest import REPO, run_cli
from PIL import Image

from jaxdl.errors import InputError
from jaxdl.run.compare import comparison_table, differing_keys, flatten, load_run, main


def write_run(folder, config: dict, history: list[dict], summary: dict | None) -> str:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))
    return str(folder)


def config(lr: float, sizes: list[int], **extra) -> dict:
    return {"seed": 0, "data": {"name": "digits", "data_dir": ""}, "model": {"name": "mlp", "hidden_sizes": sizes},
            "optimizer": {"name": "adam", "learning_rate": lr}, **extra}


def history(values: list[float]) -> list[dict]:
    return [{"epoch": i + 1, "train_loss": v, "val_loss": v * 1.2, "val_accuracy": 1 - v} for i, v in enumerate(values)]


def summary(accuracy: float, overfitting: bool) -> dict:
    return {"test": {"accuracy": accuracy, "count": 359, "loss": 0.1}, "epochs_run": 3, "best_epoch": 2,
            "num_params": 1234, "train_seconds": 1.5, "overfitting": overfitting,
            "baseline": {"model": "softmax regression", "test": {"accuracy": 0.9, "loss": 0.3, "count": 359}},
            "target": {"metric": "accuracy", "target": 0.95, "value": accuracy, "met": accuracy >= 0.95}}


@pytest.fixture
def runs(tmp_path):
    a = write_run(tmp_path / "a", config(1e-3, [32]), history([0.9, 0.5, 0.4]), summary(0.9612, False))
    b = write_run(tmp_path / "b", config(1e-2, [32], note="x"), history([0.8, 0.3, 0.35]), summary(0.9401, True))
    c = write_run(tmp_path / "c", config(1e-3, [64]), history([0.9]), None)  # still running
    return a, b, c


def test_flatten_and_differing_keys(runs):
    loaded = [load_run(path, name) for path, name in zip(runs, "abc", strict=True)]
    assert flatten({"a": {"b": {"c": 1}}, "d": 2}) == {"a.b.c": 1, "d": 2}
    assert differing_keys(loaded) == ["model.hidden_sizes", "note", "optimizer.learning_rate"]
    assert differing_keys(loaded[:1]) == []


def test_table_has_one_row_per_run_with_outcomes(runs):
    table = comparison_table([load_run(path, name) for path, name in zip(runs, "abc", strict=True)])
    header, rule, a, b, c = table.splitlines()
    assert header.split() == ["run", "model.hidden_sizes", "note", "optimizer.learning_rate", "test", "accuracy",
                              "test", "loss", "baseline", "accuracy", "baseline", "loss", "target", "overfitting",
                              "epochs", "(best)", "params", "train", "s"]
    assert set(rule) == {"-", " "}
    assert a.split() == ["a", "[32]", "-", "0.001", "0.9612", "0.1000", "0.9000", "0.3000", "met", "no", "3", "(2)",
                         "1,234", "1.5"]
    assert b.split()[:5] == ["b", "[32]", '"x"', "0.01", "0.9401"] and "not met" in b and " yes " in b
    assert c.split() == ["c", "[64]", "-", "0.001", *["-"] * 9]  # no summary yet


def test_command_line_prints_the_table_and_plots_the_validation_curves(runs, tmp_path):
    plot = tmp_path / "out" / "curves.png"
    assert main([*runs[:2], "--out", str(plot)]) == 0
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.width > 300


def test_runs_with_the_same_folder_name_are_told_apart(tmp_path, capsys):
    first = write_run(tmp_path / "x" / "run", config(1e-3, [8]), history([0.5]), None)
    second = write_run(tmp_path / "y" / "run", config(1e-3, [8]), history([0.4]), None)
    assert main([first, second, f"--out={tmp_path / 'p.png'}"]) == 0
    out = capsys.readouterr().out
    assert first in out and second in out and "(the configs are identical)" in out


def test_a_sweep_is_represented_by_its_best_member(tmp_path):
    lines = [{**r, "member": m, "val_loss": r["val_loss"] + m} for r in history([0.5, 0.4]) for m in (0, 1)]
    path = write_run(tmp_path / "sweep", config(1e-3, [8]), lines, {**summary(0.9, False), "best_member": 1})
    run = load_run(path, "sweep")
    assert [r["val_loss"] for r in run.history] == pytest.approx([1.6, 1.48]) and "member" not in run.history[0]


def test_a_missing_run_folder_is_one_error_line():
    result = run_cli("jaxdl.compare", "does/not/exist")
    assert result.returncode == 2
    assert result.stderr == "error: does/not/exist: no such run folder (expected a workdir written by an experiment)\n"


@pytest.mark.parametrize(("args", "message"), [
    ([REPO], "not a run folder"),
    ([], "no run folders given"),
    (["--out"], "missing value"),
    (["x", "--out=plot.pdf"], "the plot is a PNG"),
    (["--colour=red", "x"], "unknown flag"),
])
def test_bad_input_is_one_error_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_a_broken_summary_is_one_error_line(runs, capsys):
    with open(f"{runs[0]}/summary.json", "w") as f:
        f.write("{not json")
    assert main([runs[0]]) == 2
    assert "summary.json: not valid JSON" in capsys.readouterr().err


def test_a_run_saved_before_model_dtype_compares_as_float32(tmp_path):
    old = write_run(tmp_path / "old", config(1e-3, [32]), history([0.5]), summary(0.95, False))
    same = write_run(tmp_path / "same", config(1e-3, [32]) | {"model": {"name": "mlp", "hidden_sizes": [32],
                                                                        "dtype": "float32"}}, history([0.5]), None)
    half = write_run(tmp_path / "half", config(1e-3, [32]) | {"model": {"name": "mlp", "hidden_sizes": [32],
                                                                        "dtype": "bfloat16"}}, history([0.5]), None)
    assert differing_keys([load_run(old, "old"), load_run(same, "same")]) == []
    assert differing_keys([load_run(old, "old"), load_run(half, "half")]) == ["model.dtype"]
    assert load_run(old, "old").config["model.dtype"] == "float32"


@pytest.mark.parametrize(("name", "content", "words"), [
    ("summary.json", b"[]", "summary.json"),
    ("summary.json", b"\xff\xfe garbage", "summary.json: not a text file"),
    ("config.json", b"[1, 2]", "config.json"),
    ("metrics.jsonl", b'{"epoch": "one"}\n', "metrics.jsonl"),
])
def test_a_damaged_workdir_file_is_an_input_error_naming_the_run_and_the_file(runs, name, content, words):
    a, _, _ = runs
    with open(f"{a}/{name}", "wb") as f:
        f.write(content)
    with pytest.raises(InputError) as caught:
        load_run(a, "a")
    assert caught.value.where == a and words in caught.value.what
