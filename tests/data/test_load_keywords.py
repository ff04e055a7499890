"""`jaxdl.load_data` with defaults: a name and keyword arguments, a partial ConfigDict or dict, and no
absl warning lines in a Python session."""

from __future__ import annotations

import logging

import ml_collections
import numpy as np
import pytest
from PIL import Image

import jaxdl
from jaxdl.data import loader
from jaxdl.run.config import add_data_section


def test_the_defaults_are_those_of_the_experiment_configs():
    section = add_data_section(ml_collections.ConfigDict())  # returns the data section
    full = loader.data_config("digits")
    assert {key: section[key] for key in full} == full.to_dict()
    assert set(section) == {*full, *loader.PIPELINE_KEYS}


def test_a_name_a_partial_config_dict_and_a_dict_give_the_same_splits(data_dir):
    by_name = jaxdl.load_data("digits", data_dir=data_dir)
    by_config = jaxdl.load_data(ml_collections.ConfigDict({"name": "digits", "data_dir": data_dir}))
    by_dict = jaxdl.load_data({"name": "digits", "data_dir": data_dir, "validation_fraction": 0.1})
    assert by_name.info.input_shape == (8, 8, 1) and len(by_name.validation["y"]) == 143
    for other in (by_config, by_dict):
        for split in ("train", "validation", "test"):
            np.testing.assert_array_equal(getattr(by_name, split)["x"], getattr(other, split)["x"])
    wider = jaxdl.load_data("digits", data_dir=data_dir, validation_fraction=0.3)  # a keyword is used
    assert len(wider.validation["y"]) == 434


def test_folder_images_with_an_image_size_keyword(tmp_path):
    for name, value in {"cat": 40, "dog": 200}.items():
        for i, shape in enumerate([(5, 7), (9, 4), (6, 6), (8, 8)] * 3):
            path = tmp_path / "photos" / name / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full(shape, value, np.uint8)).save(path)
    splits = jaxdl.load_data(f"folder:{tmp_path / 'photos'}", image_size=(4, 6), data_dir=str(tmp_path / "tfds"))
    assert splits.info.input_shape == (4, 6, 1) and splits.info.class_names == ("cat", "dog")


@pytest.mark.parametrize("call, where", [
    (lambda: jaxdl.load_data("digits", validaton_fraction=0.2), "validaton_fraction: unknown data config key"),
    (lambda: jaxdl.load_data({"name": "digits", "dat_dir": ""}), "config['dat_dir']: unknown data config key"),
    (jaxdl.load_data, "name: missing"),
    (lambda: jaxdl.load_data(7), "config: wrong type"),
])
def test_unknown_keys_and_wrong_arguments_are_input_errors_naming_them(call, where):
    with pytest.raises(jaxdl.InputError) as error:
        call()
    assert str(error.value).startswith(where)
    if "unknown" in where:
        assert "did you mean" in str(error.value)


def test_no_absl_warning_reaches_a_python_session(tmp_path):
    """Preparing a set in a new data_dir logs absl warnings (e.g. "... has no dataset_info.json")."""
    records = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.NOTSET)  # as in a fresh Python session
    absl.addHandler(handler)
    try:
        jaxdl.load_data("signals", data_dir=str(tmp_path / "tfds"))
        jaxdl.load_data("signals", data_dir=str(tmp_path / "tfds"))
    finally:
        absl.removeHandler(handler)
        absl.setLevel(level)
    assert not [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    assert absl.level == level
