"""A `gs://` workdir: every workdir file goes through etils.epath.

No bucket can be reached here, so `gs://test-bucket/...` is mapped to a local folder in this
process: etils' own test hook (`epath.testing.mock_epath`) wraps every epath backend call, and
Orbax's TensorStore array writes, which do not go through epath, get a `file` kvstore in that
folder instead of the `gcs` one (`gcs_utils.get_kvstore_for_gcs`, the one place Orbax builds it);
Orbax's question to the bucket's metadata (hierarchical namespace or not) is answered "no".
Anything written with bare `open`/`os.path` on the URL would land in a local `gs:` folder instead,
which the test checks is never made.
"""

from __future__ import annotations

import ast
import json
import os
import pathlib

import numpy as np
import pytest
from conftest import REPO
from etils.epath import testing as epath_testing
from orbax.checkpoint._src.path import gcs_utils

import jaxdl
from jaxdl.run.cli import resume_command
from jaxdl.run.config import load_config
from jaxdl.run.pipeline import prepare_workdir, train_and_evaluate

BUCKET = "gs://test-bucket"
PACKAGE = pathlib.Path(jaxdl.__file__).parent


@pytest.fixture
def bucket(tmp_path, monkeypatch):
    """A folder that `gs://test-bucket/` maps to, in this process; yields that folder."""
    root = tmp_path / "bucket"
    root.mkdir()
    monkeypatch.chdir(tmp_path)  # a bare open("gs://...") would make tmp_path/"gs:"

    def local(path) -> str:
        text = os.fspath(path)
        return str(root) + text[len(BUCKET):] if text.startswith(BUCKET) else text

    def back(path: str) -> str:
        return BUCKET + path[len(str(root)):] if path.startswith(str(root)) else path

    def one(original, path, *args, **kwargs):
        return original(local(path), *args, **kwargs)

    def two(original, path, dst, *args, **kwargs):
        return original(local(path), local(dst), *args, **kwargs)

    def glob(original, pattern):
        return [back(p) for p in original(local(pattern))]

    def walk(original, top, **kwargs):
        for folder, dirs, files in original(local(top), **kwargs):
            yield back(os.fspath(folder)), dirs, files

    def gcs_kvstore(path: str) -> dict:
        assert path.startswith(BUCKET), path
        return {"driver": "file", "path": local(path)}

    monkeypatch.setattr(gcs_utils, "get_kvstore_for_gcs", gcs_kvstore)
    # Orbax asks the bucket's metadata (google-cloud-storage) whether it has a hierarchical namespace.
    monkeypatch.setattr(gcs_utils, "is_hierarchical_namespace_enabled", lambda path: False)
    with epath_testing.mock_epath(open=one, exists=one, isdir=one, listdir=one, makedirs=one, mkdir=one,
                                  remove=one, rmtree=one, stat=one, rename=two, replace=two, copy=two,
                                  glob=glob, walk=walk):
        yield root
    assert not (tmp_path / "gs:").exists()


def tiny_config(data_dir):
    config = load_config(os.path.join(REPO, "configs", "mlp.py") + ":tiny")
    config.data.data_dir = data_dir
    config.train.epochs = 2
    config.checkpoint.every_epochs = 1
    return config


@pytest.mark.slow
def test_a_bucket_workdir_holds_every_file_and_resumes_and_predicts(bucket, data_dir, digits):
    workdir = f"{BUCKET}/run"
    assert prepare_workdir(workdir) == workdir
    summary = train_and_evaluate(tiny_config(data_dir), workdir, progress=False)
    run = bucket / "run"
    for name in ("config.json", "metrics.jsonl", "summary.json", "data_info.json", "report.html",
                 "learning_curves.png", "confusion_matrix.png", "drift_reference.json"):
        assert (run / name).is_file(), name
    assert summary["report"] == f"{workdir}/report.html"
    assert summary["drift_reference"] == f"{workdir}/drift_reference.json"
    assert json.loads((run / "summary.json").read_text())["epochs_run"] == 2
    first = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in first] == [1, 2] and summary["resumed_from"] == 0
    assert (run / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(run))  # copied at close
    assert sorted(os.listdir(run / "checkpoints")) == ["1", "2"]
    assert (run / "checkpoints" / "2" / "meta").is_dir() and (run / "checkpoints" / "2" / "state").is_dir()

    # A second call with more epochs resumes from the bucket's checkpoint of epoch 2.
    config = tiny_config(data_dir)
    config.train.epochs = 3
    resumed = train_and_evaluate(config, workdir, progress=False)
    assert resumed["epochs_run"] == 3 and resumed["resumed_from"] == 2
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[:2] == first and records[2]["epoch"] == 3  # epochs 1-2 kept, not trained again
    assert "3" in os.listdir(run / "checkpoints")

    predictor = jaxdl.load_run(workdir)  # config, summary, data_info and the checkpoint, from the bucket
    assert predictor.epoch == 3
    pixels = np.round(digits.test["x"] * 255).astype(np.uint8)  # the stored form
    accuracy = float(np.mean(np.argmax(predictor(pixels), axis=-1) == digits.test["y"]))
    assert accuracy == pytest.approx(resumed["test"]["accuracy"], abs=1e-6)


# Calls that reach the file system without etils.epath, which would take "gs://b/run" for a local path.
BARE = {"open", "os.path.abspath", "os.path.isdir", "os.path.isfile", "os.path.exists", "os.path.join",
        "os.path.dirname", "os.path.basename", "os.path.normpath", "os.path.expanduser", "os.makedirs",
        "os.listdir", "os.replace", "os.rename", "os.remove", "os.unlink", "shutil.move", "shutil.rmtree",
        "shutil.copy", "shutil.copyfile"}
WORKDIR_MODULES = ["run/pipeline.py", "train/checkpoint.py", "report/log.py", "report/build.py",
                   "report/figures.py", "report/curves.py", "report/plane.py", "report/scalars.py",
                   "deploy/drift_features.py", "deploy/run_loader.py", "deploy/drift_report.py", "deploy/serve.py",
                   "run/compare.py", "run/cli.py", "train/preemption.py", "report/run_schema.py",
                   "report/schema_checks.py"]
# (module, function): why a bare call there does not touch a workdir path.
ALLOWED = {
    ("report/scalars.py", "close"): "copies the event files out of the local temporary folder",
    ("run/compare.py", "run_names"): "the runs' labels for the table, from the paths as given (no file access)",
    ("deploy/drift_report.py", "drift_command"): "the default output name and the printed paths (strings only)",
    ("run/cli.py", "parse_args"): "the default workdir name runs/<experiment>-<time> (a string)",
    ("run/cli.py", "resume_command"): "the program and --config paths (local files, not the workdir)",
    ("run/cli.py", "use_compilation_cache"): "the compilation cache folder (local, not the workdir)",
}


def bare_calls(path: pathlib.Path) -> list[tuple[str, str, int]]:
    """(called name, enclosing function, line) of every call of a BARE name in the module."""
    found = []

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Call):
                name = ast.unparse(child.func)
                if name in BARE:
                    found.append((name, function, child.lineno))
            visit(child, inner)

    visit(ast.parse(path.read_text()), "")
    return found


def test_workdir_modules_use_no_bare_file_calls():
    wrong = [f"{module}:{line} {name}" for module in WORKDIR_MODULES
             for name, function, line in bare_calls(PACKAGE / module) if (module, function) not in ALLOWED]
    assert not wrong, "\n".join(wrong)


def test_the_resume_command_keeps_a_bucket_workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resume_command(["--workdir", "gs://b/run"], "gs://b/run").endswith(" --workdir=gs://b/run")
    assert resume_command(["--workdir=run"], "run").endswith(f" --workdir={tmp_path / 'run'}")
