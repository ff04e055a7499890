"""experiments.transfer from ImageNet weights (`--config.source=resnet18:FILE`) on a folder of images."""

from __future__ import annotations

import json
import os
import sys

import ml_collections
import pytest
from conftest import REPO, run_cli

from experiments import transfer
from jaxdl.errors import InputError
from jaxdl.run.config import load_config
from jaxdl.train.digest import params_sha256
from jaxdl.transfer.pretrained import read_pretrained


@pytest.mark.slow
def test_fine_tuning_imported_resnet18_weights_on_a_folder_from_the_command_line(imported_folder_run):
    work, weights = imported_folder_run["workdir"], imported_folder_run["weights"]

    summary = json.loads((work / "summary.json").read_text())
    test = summary["test"]
    assert test["count"] == summary["data"]["test"] > 0
    hits = test["accuracy"] * test["count"]
    assert abs(hits - round(hits)) < 1e-6, test  # a whole number of right answers
    assert summary["strategies"] == ["head_only", "finetune"] and len(summary["runs"]) == 2
    # Both train the new head on the frozen body first: on features computed once (transfer.cache_features).
    assert [run["cached_features"] for run in summary["runs"]] == [True, True]
    assert summary["model"] == "resnet18" and summary["source"]["architecture"] == "resnet18"
    assert summary["source"]["format"] == "safetensors" and summary["epochs_run"] == 2
    # --config.eval.questions=good_enough,data: the others are turned off, the why section follows the report
    asked = {name: entry["run"] for name, entry in summary["questions"].items()}
    assert asked == {"simpler_methods": False, "why": True, "good_enough": True, "data": True, "compute": False}

    report = json.loads((work / "transfer.json").read_text())
    loaded = {entry["path"] for entry in report["loaded"]}
    assert {"params/conv1/kernel", "batch_stats/bn1/mean", "params/layer4_1/conv2/kernel"} <= loaded
    assert sorted(entry["path"] for entry in report["skipped"]) == ["params/head/bias", "params/head/kernel"]
    assert report["reinitialised"] == [] and report["counts"]["loaded"]["values"] > 11_000_000

    config = json.loads((work / "config.json").read_text())
    assert config["source"] == f"resnet18:{weights}"
    assert config["model"] == {"name": "resnet18", "input_normalization": "imagenet", "dtype": "float32"}
    assert config["data"]["image_size"] == [32, 32]

    # The headline model is a jaxdl checkpoint in the workdir, saved with that config.
    saved = read_pretrained(str(work))
    assert params_sha256(saved.variables["params"]) == summary["params_sha256"]
    assert saved.config["model"]["input_normalization"] == "imagenet"


@pytest.mark.slow
def test_fine_tuning_imported_weights_on_a_folder_is_a_complete_run(imported_folder_run):
    """The same run read back as every other kind is (tests/deploy/test_complete_runs.py's checks)."""
    sys.path.insert(0, os.path.join(REPO, "tests", "deploy"))
    from deploy_runs import run_splits
    from test_complete_runs import check_complete, stored

    workdir, photos = imported_folder_run["workdir"], imported_folder_run["photos"]
    splits = run_splits(str(workdir))
    assert splits.info.stored["kind"] == "folder"
    predictor = check_complete(str(workdir), stored(splits.test["x"]), splits.test["y"])
    assert predictor.model_description.startswith("finetune (all labels, seed 0)")

    result = run_cli("jaxdl.predict", "--workdir", str(workdir), str(photos))  # the folder's images, any size
    assert result.returncode == 0, result.stderr


def folder_config(tmp_path, source: str) -> ml_collections.ConfigDict:
    config = load_config(os.path.join(REPO, "configs", "transfer.py:folder"))
    config.source = source
    config.data.name = f"folder:{tmp_path / 'photos'}"
    return config


def test_the_source_decides_the_model_and_the_input_conventions(tmp_path):
    config = folder_config(tmp_path, "resnet50:weights.safetensors")
    config.data.image_size = ()
    switched = transfer.with_imported_model(config, "resnet50")
    assert switched.model.to_dict() == {"name": "resnet50", "input_normalization": "imagenet", "dtype": "float32"}
    assert tuple(switched.data.image_size) == (224, 224)  # unset: the weights' training size
    assert config.model.name == ""  # the caller's config is left as it was

    digits = load_config(os.path.join(REPO, "configs", "transfer.py"))  # a CNN config: its keys go, but its dtype
    digits.model.dtype = "bfloat16"
    assert transfer.with_imported_model(digits, "resnet18").model.to_dict() == {
        "name": "resnet18", "input_normalization": "imagenet", "dtype": "bfloat16"}
    assert tuple(transfer.with_imported_model(digits, "resnet18").data.image_size) == ()  # not a folder
    assert transfer.imported_source("runs/x/pretrain") is None and transfer.imported_source("") is None
    assert transfer.imported_source("resnet34:C:/w.pth") == ("resnet34", "C:/w.pth")


@pytest.mark.parametrize(("change", "key", "message"), [
    ({"source": "resnet50:w.safetensors", "model.name": "resnet18"}, "config.model.name",
     "is not the architecture of the weights"),
    ({"source": "resnet18:"}, "config.source", "names no weight file"),
    ({"source": "resnet18:missing.safetensors"}, "config.source", "no such file"),
    ({"source": ""}, "config.source", "names no architecture"),
    ({"strategies": ("scratch", "head_only")}, "config.strategies",
     "needs distinct strategies, fine-tuning among them"),
])
def test_bad_imported_sources_are_input_errors_under_config_keys(data_dir, tmp_path, change, key, message):
    config = folder_config(tmp_path, "resnet18:missing.safetensors")
    config.data.name = "digits"  # loads without a folder; the error comes first or from the source
    config.data.data_dir = data_dir
    for name, value in change.items():
        section, _, leaf = name.rpartition(".")
        (config[section] if section else config)[leaf] = value
    with pytest.raises(InputError, match=f"^{key}: {message}"):
        transfer.run(config, str(tmp_path / "work"), progress=False)
