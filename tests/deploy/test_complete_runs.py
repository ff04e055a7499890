"""Every finished run is a complete run: whatever made it (an experiment of each family, a sweep, a
transfer run, research code with its own module, metrics and optimizer), its workdir holds the same
files, and load_run, export, drift and serve work on it with the numbers of the training process."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys

import jax
import ml_collections
import numpy as np
import pytest
from conftest import REPO, run_cli
from deploy_runs import finished_run, run_splits
from own_models import SmallNet, own_optimizer, smoothed_metrics

import jaxdl
from jaxdl.deploy.export import export_predictor
from jaxdl.deploy.run_model import restore_whole
from jaxdl.deploy.serve import create_app
from jaxdl.errors import InputError
from jaxdl.models.record import module_record, rebuild
from jaxdl.run.config import load_config

FILES = ("config.json", "data_info.json", "summary.json", "drift_reference.json", "report.html", "metrics.jsonl")


def read(workdir, name: str) -> dict:
    with open(os.path.join(workdir, name)) as f:
        return json.load(f)


def stored(x: np.ndarray) -> np.ndarray:
    """Loaded images (float32 = uint8 / 255) back in the uint8 form the dataset stores."""
    pixels = np.round(x * 255).astype(np.uint8)
    assert np.array_equal(pixels.astype(np.float32) / 255.0, x)
    return pixels


def asgi_get(app, path: str) -> tuple[int, bytes]:
    """(status, body) of GET `path` from an ASGI app, without a socket."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "headers": [], "client": ("t", 1),
             "server": ("t", 80), "root_path": ""}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def check_complete(workdir: str, x: np.ndarray, y: np.ndarray, *, model=None) -> jaxdl.Predictor:
    """The files of a complete run, and load_run, export, drift and serve on the test split `x`, `y`
    (stored form): load_run's test accuracy is the training process's own."""
    for name in FILES:
        assert os.path.isfile(os.path.join(workdir, name)), name
    assert any(name.isdigit() for name in os.listdir(os.path.join(workdir, "checkpoints")))
    summary = read(workdir, "summary.json")
    assert len(summary["params_sha256"]) == 64
    predictor = jaxdl.load_run(workdir, model=model)  # checks params_sha256
    probabilities = predictor(x)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == y))
    assert summary["test"]["count"] == len(y)
    assert abs(accuracy - summary["test"]["accuracy"]) <= 1e-6, (accuracy, summary["test"])

    exported = export_predictor(predictor, platforms=("cpu",))
    batch = x[:8]  # the predictor's own bucket for 8 rows: the same compiled shape, the same bits
    np.testing.assert_array_equal(np.asarray(exported.call(batch)), predictor(batch))

    drift = jaxdl.check_drift(predictor, np.concatenate([x] * max(1, -(-200 // len(x))))[:max(200, len(x))])
    assert isinstance(drift["drifted"], bool) and np.isfinite(drift["score"])

    app = create_app(predictor, max_batch=1)  # /info answers the same whatever the batch; one size warms up
    status, body = asgi_get(app, "/info")
    info = json.loads(body)
    assert status == 200 and info["model"] == predictor.model_description
    assert info["kept_epoch"] == predictor.kept_epoch and info["class_names"] == list(predictor.class_names)
    return predictor


def tiny(name: str, data_dir: str, *overrides: tuple[str, object]) -> ml_collections.ConfigDict:
    config = load_config(os.path.join(REPO, "configs", f"{name}.py:tiny"))
    config.data.data_dir = data_dir
    for key, value in overrides:
        section, _, leaf = key.rpartition(".")
        (config[section] if section else config)[leaf] = value
    return config


# --------------------------------------------------------------------------------------------- own module record

def test_an_importable_module_is_rebuilt_from_its_record_and_others_say_why_not():
    record = module_record(SmallNet(width=24, sizes=(3,), dtype=np.float32))
    assert record == {"module": "own_models", "qualname": "SmallNet", "rebuildable": True,
                      "fields": {"width": 24, "num_outputs": 10, "sizes": [3], "dtype": {"dtype": "float32"}}}
    assert rebuild(json.loads(json.dumps(record))) == SmallNet(width=24, sizes=(3,), dtype=jax.numpy.float32)

    def local():
        class Inner(SmallNet):
            pass
        return Inner()

    inner = module_record(local())
    assert not inner["rebuildable"] and "inside a function" in inner["reason"]
    with pytest.raises(InputError, match=r"^--workdir: the run was trained with its own model .*Inner, which config"
                       r".json's model_source cannot rebuild.*expected jaxdl.load_run\(RUN, model=.*Inner\(...\)\)"):
        rebuild(inner)
    odd = module_record(SmallNet(sizes=(np.sum,)))
    assert not odd["rebuildable"] and "field 'sizes'" in odd["reason"] and "sizes" not in odd["fields"]


# ------------------------------------------------------------------------------------------------ research code

@pytest.mark.slow
def test_research_code_with_its_own_module_metrics_and_optimizer_is_a_complete_run(data_dir, tmp_path):
    config = tiny("mlp", data_dir, ("train.epochs", 3), ("train.patience", 0), ("train.steps_per_call", "1"))
    workdir = str(tmp_path / "own")
    summary = jaxdl.train_and_evaluate(config, workdir, model=SmallNet(width=24), optimizer=own_optimizer(),
                                       metrics=smoothed_metrics, progress=False)
    written = read(workdir, "config.json")
    assert written["model_source"]["qualname"] == "SmallNet" and written["model_source"]["rebuildable"]
    assert written["metrics_source"] == "own_models.smoothed_metrics" and "optimizer_source" in written
    assert summary["model"] == "SmallNet"
    splits = run_splits(workdir)
    predictor = check_complete(workdir, stored(splits.test["x"]), splits.test["y"])
    assert predictor.model_description == "epoch 3 (the last)" and predictor.kept_epoch == 3

    # From the command line, with the module importable as the user's own package is.
    np.savez(tmp_path / "new.npz", x=stored(splits.test["x"][:5]))
    result = run_cli("jaxdl.predict", "--workdir", workdir, str(tmp_path / "new.npz"), "--output",
                     str(tmp_path / "out.csv"), env={"PYTHONPATH": os.pathsep.join([REPO, os.path.dirname(__file__)])})
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert len(lines) == 6


@pytest.mark.slow
def test_a_module_defined_in_main_is_passed_to_load_run_and_the_command_line_says_so(data_dir, tmp_path):
    script = tmp_path / "train_mine.py"
    workdir = tmp_path / "mine"
    script.write_text("\n".join([
        "from typing import Any", "import flax.linen as nn", "import jax.numpy as jnp", "import jaxdl",
        "from jaxdl.run.config import load_config", "",
        inspect.getsource(SmallNet), "",
        f"config = load_config({os.path.join(REPO, 'configs', 'mlp.py:tiny')!r})",
        f"config.data.data_dir = {data_dir!r}",
        "config.train.epochs = 8",
        "config.train.steps_per_call = '1'",
        f"jaxdl.train_and_evaluate(config, {str(workdir)!r}, model=SmallNet(width=20), progress=False)", ""]))
    result = run_cli_script(script)
    assert result.returncode == 0, result.stderr[-2000:]
    record = read(workdir, "config.json")["model_source"]
    assert record["module"] == "__main__" and not record["rebuildable"]

    splits = run_splits(str(workdir))
    np.savez(tmp_path / "new.npz", x=stored(splits.test["x"][:5]))
    result = run_cli("jaxdl.predict", "--workdir", str(workdir), str(tmp_path / "new.npz"))
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: --workdir: the run was trained with its own model __main__.SmallNet, which "
                           "config.json's model_source cannot rebuild: its class is defined in __main__"), line
    assert "jaxdl.load_run(RUN, model=SmallNet(...))" in line and "older jaxdl" not in line

    with pytest.raises(InputError, match="cannot rebuild"):
        jaxdl.load_run(str(workdir))
    # The same class, importable here: the checkpoint's parameters fit it.
    predictor = check_complete(str(workdir), stored(splits.test["x"]), splits.test["y"], model=SmallNet(width=20))
    assert predictor.kept_epoch == read(workdir, "summary.json")["best_epoch"] > 0
    with pytest.raises(InputError, match=r"holds a different model than the model passed to load_run"):
        jaxdl.load_run(str(workdir), model=SmallNet(width=21))


def run_cli_script(script):
    import subprocess
    return subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=600,
                          check=False)


# ------------------------------------------------------------------------------------------- every experiment

# Each kind: (experiment, overrides of its tiny variant), trained here; or None: the finished run of that
# name that the other deploy tests read (tests/deploy/deploy_runs.py; it writes its report, as these do): the
# CNN on a folder of RGB images, the GRU on digits, the sweep of two learning rates.
KINDS = {
    # Adam at 0.1 overfits the digits within a few epochs: early stopping keeps an earlier, best epoch.
    "mlp": ("mlp", (("train.epochs", 12), ("optimizer.learning_rate", 0.1), ("train.patience", 3))),
    "cnn": None,
    "rnn": None,
    "hybrid": ("hybrid", ()),
    "sweep": None,
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_of_run_is_complete(kind, data_dir, tmp_path, tmp_path_factory):
    if KINDS[kind] is None:
        workdir = finished_run(kind, tmp_path_factory)
    else:
        name, overrides = KINDS[kind]
        experiment = __import__(f"experiments.{name}", fromlist=["run"])
        workdir = str(tmp_path / kind)
        # One compiled step program, not `auto`'s timed candidates (the same bits; tests/train test the choice).
        experiment.run(tiny(name, data_dir, ("train.steps_per_call", "1"), *overrides), workdir, progress=False)
    summary = read(workdir, "summary.json")
    assert read(workdir, "config.json")["eval"]["report"]  # a report, as every run writes by default
    splits = run_splits(workdir)
    x = stored(splits.test["x"]) if splits.info.stored.get("dtype") == "uint8" else splits.test["x"]
    predictor = check_complete(workdir, x, splits.test["y"])
    if kind == "sweep":
        assert predictor.member == summary["best_member"]
        assert predictor.model_description.startswith(f"member {summary['best_member']} (lr=")
    if kind == "mlp":  # the served model is the best epoch's, and says so
        assert summary["stopped_early"] and summary["best_epoch"] < summary["epochs_run"]
        assert predictor.kept_epoch == summary["best_epoch"]
        assert predictor.model_description == f"epoch {summary['best_epoch']} (best of {summary['epochs_run']})"


# ------------------------------------------------------------------------------------------------- transfer

@pytest.mark.slow
def test_a_transfer_run_is_complete_and_says_which_model_it_kept(data_dir, tmp_path):
    from experiments import transfer

    config = load_config(os.path.join(REPO, "configs", "transfer.py:tiny"))
    for section in (config.data, config.pretrain.data):
        section.data_dir = data_dir
    config.pretrain.train.epochs = 1
    config.train.epochs = 3
    config.transfer.head_epochs = 1
    config.budgets = (2,)
    config.curves_budget = 2
    config.strategies = ("finetune",)
    with config.unlocked():  # as the other experiments' tiny variants: the cheap questions, no baseline fit
        config.eval.questions = "good_enough,data"
        config.eval.baseline = False
        config.pretrain.train.steps_per_call = "1"  # one step program, not auto's timed candidates
    workdir = str(tmp_path / "transfer")
    summary = transfer.run(config, workdir, progress=False)
    assert summary["kept_model"] == {"strategy": "finetune", "labels_per_class": 2, "seed": 0, "epochs": 3}
    target = read(workdir, "data_info.json")
    assert target["class_names"] == ["5", "6", "7", "8", "9"] and target["num_classes"] == 5
    assert len(open(os.path.join(workdir, "metrics.jsonl")).read().splitlines()) == 3

    from jaxdl import data as data_lib
    from jaxdl.data import subsets
    splits = subsets.select_classes(data_lib.load(config.data), config.data.classes)
    predictor = check_complete(workdir, stored(splits.test["x"]), splits.test["y"])
    assert predictor.model_description == "finetune (2 labels per class, seed 0), epoch 3 (the last)"


# ------------------------------------------------------------------------------------- errors name the real cause

def test_a_missing_data_info_is_called_missing_in_a_run_of_this_version(tmp_path):
    for name, summary in (("new", {"test": {}, "params_sha256": "0" * 64, "drift_reference": "x"}), ("old", {})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(InputError, match="no data_info.json, which its training wrote beside summary.json") as new:
        jaxdl.load_run(str(tmp_path / "new"))
    assert "older jaxdl" not in str(new.value) and "restore data_info.json" in str(new.value)
    with pytest.raises(InputError, match=r"no data_info.json \(written by an older jaxdl\)"):
        jaxdl.load_run(str(tmp_path / "old"))


def test_a_checkpoint_of_another_optimizer_is_read_by_its_model_and_another_model_is_named():
    model = {f".{part}['head']['kernel']": "float32[4, 3]" for part in ("train.params", "early.best_params")}
    adam = {**model, ".train.opt_state[0].mu['head']['kernel']": "float32[4, 3]"}
    sgd = {**model, ".train.opt_state[0].trace['head']['kernel']": "float32[4, 3]"}
    assert restore_whole(adam, adam, "ck/3", "config.json's model section") is True
    assert restore_whole(None, adam, "ck/3", "config.json's model section") is True  # a checkpoint without leaves
    assert restore_whole(sgd, adam, "ck/3", "config.json's model section") is False  # the parameters alone
    wider = {key: "float32[5, 3]" for key in adam}
    with pytest.raises(InputError, match=r"^--workdir: its checkpoint ck/3 holds a different model than config.json's "
                       r"model section builds \(got .*saved float32\[5, 3\], rebuilt float32\[4, 3\]") as error:
        restore_whole(wider, adam, "ck/3", "config.json's model section")
    assert "changed after training" not in str(error.value) and "load_run(RUN, model=...)" in str(error.value)
