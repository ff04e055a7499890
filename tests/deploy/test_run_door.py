"""The run door (`jaxdl.report.run_schema`): every workdir file a reader opens is checked against one
schema, so a damaged file is one `--workdir: <file>: <field>` error, never a traceback.

The properties damage the files of a small workdir in every way Hypothesis finds (random bytes,
any JSON value, a field replaced or removed) and read it in-process with `read_run`,
`read_reference` and `MetricsLog.read`; the issue's examples run through the commands.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import run_cli
from deploy_runs import finished_run
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jaxdl.deploy.drift_features import read_reference
from jaxdl.deploy.run_loader import read_run
from jaxdl.errors import InputError
from jaxdl.report.log import MetricsLog

# JAXDL_DOOR_EXAMPLES=500 explores further (a slow run); CI keeps 50 per property.
SETTINGS = settings(max_examples=int(os.environ.get("JAXDL_DOOR_EXAMPLES", "50")), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

CONFIG = {"seed": 0, "data": {"name": "csv:t.csv"}, "model": {"name": "mlp", "hidden_sizes": [8]},
          "optimizer": {"name": "adam", "learning_rate": 0.01},
          "train": {"batch_size": 4, "epochs": 2, "patience": 0}}
SUMMARY = {"params_sha256": "0" * 64, "epochs_run": 2, "best_epoch": 2, "test": {"accuracy": 0.5}}
DATA_INFO = {"name": "csv_table", "task": "classification", "input_shape": [3], "num_classes": 2, "target_shape": [],
             "class_names": ["a", "b"], "stored": {"kind": "table", "dtype": "float32"},
             "sizes": {"train": 8, "validation": 2, "test": 2}}
PREPROCESSING = {"columns": [{"name": "size", "kind": "numeric", "inputs": [0, 1], "mean": 1.0, "std": 2.0},
                             {"name": "shade", "kind": "categorical", "inputs": [1, 3], "categories": ["d", "l"]}],
                 "label": {"name": "kind"}}
DRIFT = {"version": 1, "task": "classification", "input_shape": [3], "class_names": ["a", "b"],
         "layout": {"kind": "table", "input_shape": [3], "grid": [], "channels": 1, "with_globals": False,
                    "pixels": False, "column_means": [[0, 1.0]]},
         "train": {"examples": 8, "sampled": 8, "seed": 0},
         "features": {"names": ["size"], "edges": [[0.0, 1.0]], "counts": [[2, 3, 3]], "mean": [1.0]},
         "predictions": {"split": "validation", "task": "classification", "examples": 2, "class_counts": [1, 1],
                         "confidence": {"edges": [0.5], "counts": [1, 1], "mean": 0.7}}}
FILES = {"config.json": CONFIG, "summary.json": SUMMARY, "data_info.json": DATA_INFO,
         "preprocessing.json": PREPROCESSING, "drift_reference.json": DRIFT}

JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=8)


def write_workdir(folder, files: dict) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    return str(folder)


def read_all(workdir: str) -> None:
    """What predict / export / serve / drift read of a workdir before any checkpoint."""
    read_run(workdir)
    read_reference(workdir)


def test_the_templates_are_a_readable_run(tmp_path):
    run = read_run(write_workdir(tmp_path / "run", FILES))
    assert run.info.input_shape == (3,) and run.config.train.batch_size == 4 and run.sizes["train"] == 8
    assert read_reference(str(tmp_path / "run"))["features"]["counts"] == [[2, 3, 3]]


def paths_of(value, prefix=()):
    """Every (key path) inside a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths_of(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from paths_of(item, (*prefix, i))


def damaged(record, path, replacement, remove: bool):
    record = json.loads(json.dumps(record))
    if not path:
        return replacement
    parent = record
    for key in path[:-1]:
        parent = parent[key]
    if remove and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return record


@st.composite
def damage(draw):
    """One workdir file damaged: random bytes, or one field replaced by any JSON value or removed."""
    name = draw(st.sampled_from(sorted(FILES)))
    how = draw(st.sampled_from(["bytes", "field", "field", "field"]))
    if how == "bytes":
        return name, draw(st.binary(max_size=40))
    path = draw(st.sampled_from(list(paths_of(FILES[name]))))
    return name, damaged(FILES[name], path, draw(JSON), draw(st.booleans()))


@SETTINGS
@given(damage=damage())
@example(damage=("config.json", damaged(FILES["config.json"], ("model", "hidden_sizes"), {".": None}, False)))
@example(damage=("config.json", damaged(FILES["config.json"], ("train", "__init__"), 1, False)))
def test_a_damaged_workdir_file_is_read_or_refused_naming_the_file(tmp_path_factory, damage):
    name, content = damage
    workdir = write_workdir(tmp_path_factory.mktemp("run"), {**FILES, name: content})
    try:
        read_all(workdir)
    except InputError as error:
        assert error.where == "--workdir"
        # a file alone, or what spans files (data_info.json's inputs against preprocessing.json's columns)
        assert str(error).startswith((f"--workdir: {name}: ", "--workdir: preprocessing.json: ")), str(error)
        assert "\n" not in str(error)


@SETTINGS
@given(lines=st.lists(st.one_of(JSON.map(json.dumps), st.text(max_size=10)), max_size=4),
       raw=st.none() | st.binary(max_size=20))
def test_a_damaged_metrics_log_is_read_or_refused(tmp_path_factory, lines, raw):
    path = tmp_path_factory.mktemp("run") / "metrics.jsonl"
    path.write_bytes(raw if raw is not None else "".join(line.replace("\n", " ") + "\n" for line in lines).encode())
    try:
        records = MetricsLog(str(path)).read()
    except InputError as error:
        assert str(error).startswith("--workdir: metrics.jsonl: ")
        return
    assert all(isinstance(r, dict) and isinstance(r["epoch"], int) and r["epoch"] >= 1 for r in records)


# --- the issue's examples ---------------------------------------------------------------------------------

ISSUE_DAMAGE = [
    ("summary.json", bytes(range(128, 256)), "summary.json: not a text file"),
    ("summary.json", b"[]", "summary.json: wrong type (got [], expected a JSON object)"),
    ("summary.json", b'{"params_sha256": 12345}', "summary.json: params_sha256: wrong type (got 12345"),
    ("data_info.json", json.dumps({k: v for k, v in DATA_INFO.items() if k != "stored"}).encode(),
     "data_info.json: stored: missing"),
    ("config.json", b"[1, 2]", "config.json: wrong type (got [1, 2], expected a JSON object)"),
]


@pytest.mark.parametrize(("name", "content", "fragment"), ISSUE_DAMAGE, ids=[f"{c[0]}-{i}" for i, c in
                                                                             enumerate(ISSUE_DAMAGE)])
def test_the_issues_damaged_files_are_one_error_each(tmp_path, name, content, fragment):
    workdir = write_workdir(tmp_path / "run", {**FILES, name: content})
    with pytest.raises(InputError) as caught:
        read_run(workdir)
    assert str(caught.value).startswith(f"--workdir: {fragment}")


@pytest.mark.slow
def test_every_command_that_reads_a_run_refuses_a_damaged_file_in_one_line(tmp_path_factory, tmp_path):
    """predict, export, serve, drift and resume: one `error: --workdir: <file>: ...` line, exit 2,
    and the workdir unchanged."""
    run = shutil.copytree(finished_run("mlp", tmp_path_factory), tmp_path / "run")
    x = tmp_path / "x.npy"
    x.write_bytes(b"")  # never read: the workdir is refused first
    commands = {
        "summary.json": ("jaxdl.predict", "--workdir", str(run), str(x)),
        "config.json": ("jaxdl.export", "--workdir", str(run), "--output", str(tmp_path / "model.jaxexport")),
        "data_info.json": ("jaxdl.serve", "--workdir", str(run), "--port", "0"),
        "drift_reference.json": ("jaxdl.drift", "--workdir", str(run), str(x), "--output", str(tmp_path / "d")),
    }
    for target, argv in commands.items():
        original = (run / target).read_bytes()
        (run / target).write_bytes(b"[1, 2]")
        before = sorted(p.name for p in run.iterdir())
        result = run_cli(argv[0], *argv[1:])
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-1500:]
        assert lines[0].startswith(f"error: --workdir: {target}: wrong type (got [1, 2]"), lines
        assert sorted(p.name for p in run.iterdir()) == before and (run / target).read_bytes() == b"[1, 2]"
        (run / target).write_bytes(original)
    assert not (tmp_path / "model.jaxexport").exists() and not (tmp_path / "d").exists()
    # resume: the same command again on a run whose metrics.jsonl was damaged
    (run / "metrics.jsonl").write_bytes((run / "metrics.jsonl").read_bytes() + b"{not json\n")
    config = json.loads((run / "config.json").read_text())
    result = run_cli("experiments.mlp", "--config", "configs/mlp.py:tiny", "--workdir", str(run), "--quiet",
                     f"--config.data.data_dir={config['data']['data_dir']}", "--config.eval.report=false")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-1500:]
    assert lines[0].startswith("error: --workdir: metrics.jsonl: line ") and "not valid JSON" in lines[0]
    assert (run / "checkpoints").is_dir() and any(p.name.isdigit() for p in (run / "checkpoints").iterdir())
