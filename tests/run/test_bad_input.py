"""Every bad input ends in one `error: <where>: ...` line on stderr and exit code 2, before compiling.

The table runs through `jaxdl.run.cli.main`, the code behind `python -m experiments.mlp`, in one
driver subprocess per test worker (tests/cli_driver.py: JAX imported once, 8 simulated devices);
a handful of cases also run as real `python -m experiments.mlp` subprocesses. What only research
code can pass (its own model or data) is checked through `train_and_evaluate`.
"""

from __future__ import annotations

import dataclasses
import os

import flax.linen as nn
import numpy as np
import pytest
from conftest import REPO, CliDriver, devices_env, run_cli

from jaxdl.errors import InputError
from jaxdl.models import MLP
from jaxdl.run.config import load_config
from jaxdl.run.pipeline import train_and_evaluate

EIGHT_DEVICES = {**devices_env(8), "JAX_PLATFORMS": "cpu"}

# (id, extra argv, where the error line must point, fragments it must contain, offline)
# Placeholders: {data} prepared digits, {bad} data_dir for bad_data, {empty} an empty data_dir,
# {file} a regular file, {tmp} a folder with broken config files.
CASES = [
    ("unknown_flag", ["--workdri", "x"], "--workdri", ["unknown flag", "did you mean --workdir"]),
    ("positional_argument", ["train"], "command line", ["unexpected argument", "'train'"]),
    ("flag_without_value", ["--workdir"], "--workdir", ["missing value"]),
    ("config_file_misspelled", ["--config", "configs/mpl.py"], "--config", ["no such config file", "did you mean",
                                                                           "mlp.py"]),
    ("config_file_syntax_error", ["--config", "{tmp}/broken.py"], "--config", ["SyntaxError", "broken.py"]),
    ("config_file_without_get_config", ["--config", "{tmp}/no_function.py"], "--config", ["no get_config()"]),
    ("config_variant_misspelled", ["--config", "configs/mlp.py:tinny"], "--config", ["unknown config variant",
                                                                                     "'tinny'"]),
    ("key_misspelled", ["--config.train.epoch=3"], "--config.train.epoch", ["unknown config key",
                                                                           "did you mean --config.train.epochs"]),
    ("section_misspelled", ["--config.trian.epochs=3"], "--config.trian.epochs",
     ["did you mean --config.train.epochs"]),
    ("key_without_its_section", ["--config.epochs=3"], "--config.epochs", ["did you mean --config.train.epochs"]),
    ("section_given_a_value", ["--config.model=3"], "--config.model", ["is a section, not a value"]),
    ("epochs_not_a_number", ["--config.train.epochs=ten"], "--config.train.epochs", ["wrong type", "got 'ten'",
                                                                                   "expected int"]),
    ("epochs_fractional", ["--config.train.epochs=2.5"], "--config.train.epochs", ["wrong type", "expected int"]),
    ("learning_rate_not_a_number", ["--config.optimizer.learning_rate=fast"], "--config.optimizer.learning_rate",
     ["wrong type", "expected float"]),
    ("bool_not_a_bool", ["--config.data.download=maybe"], "--config.data.download", ["expected true or false"]),
    ("hidden_sizes_not_a_tuple", ["--config.model.hidden_sizes=wide"], "--config.model.hidden_sizes",
     ["wrong type", "a tuple"]),
    ("hidden_size_zero", ["--config.model.hidden_sizes=(32,0)"], "config.model.hidden_sizes",
     ["out of range", "got 0", "an integer >= 1"]),
    ("hidden_size_not_an_integer", ["--config.model.hidden_sizes=(32,'a')"], "config.model.hidden_sizes",
     ["wrong type", "an integer"]),
    ("batch_size_zero", ["--config.train.batch_size=0"], "config.train.batch_size", ["out of range", "got 0"]),
    ("batch_size_negative", ["--config.train.batch_size=-8"], "config.train.batch_size", ["out of range", "got -8"]),
    ("batch_size_not_divisible_by_8_devices", ["--config.train.batch_size=36"], "config.train.batch_size",
     ["device count (8)", "got 36", "a multiple of 8"]),
    ("batch_size_larger_than_train_set", ["--config.train.batch_size=4096"], "config.train.batch_size",
     ["larger than the training set", "got 4096"]),
    ("epochs_zero", ["--config.train.epochs=0"], "config.train.epochs", ["out of range", "got 0"]),
    ("learning_rate_zero", ["--config.optimizer.learning_rate=0"], "config.optimizer.learning_rate",
     ["out of range", "got 0.0", "in (0, 10]"]),
    ("learning_rate_negative", ["--config.optimizer.learning_rate=-0.1"], "config.optimizer.learning_rate",
     ["out of range", "got -0.1"]),
    ("learning_rate_too_large", ["--config.optimizer.learning_rate=100"], "config.optimizer.learning_rate",
     ["out of range", "got 100.0"]),
    ("dropout_one", ["--config.model.dropout=1.0"], "config.model.dropout", ["out of range", "in [0, 1)"]),
    ("dropout_negative", ["--config.model.dropout=-0.5"], "config.model.dropout", ["out of range", "got -0.5"]),
    ("momentum_out_of_range", ["--config.optimizer.momentum=1.5"], "config.optimizer.momentum", ["out of range"]),
    ("weight_decay_negative", ["--config.optimizer.weight_decay=-1"], "config.optimizer.weight_decay",
     ["out of range"]),
    ("seed_negative", ["--config.seed=-1"], "config.seed", ["out of range", "got -1"]),
    ("validation_fraction_one", ["--config.data.validation_fraction=1.0"], "config.data.validation_fraction",
     ["out of range", "in (0, 1)"]),
    ("eval_batch_size_zero", ["--config.eval.batch_size=0"], "config.eval.batch_size", ["out of range"]),
    ("checkpoint_keep_zero", ["--config.checkpoint.keep=0"], "config.checkpoint.keep", ["out of range"]),
    ("nan_policy_misspelled", ["--config.train.nan_policy=skp"], "config.train.nan_policy",
     ["unknown name", "did you mean 'skip'"]),
    ("max_consecutive_nonfinite_zero", ["--config.train.max_consecutive_nonfinite=0"],
     "config.train.max_consecutive_nonfinite", ["out of range"]),
    ("steps_per_call_word", ["--config.train.steps_per_call=fast"], "config.train.steps_per_call",
     ["got 'fast'", 'expected an integer >= 1, "epoch" or "auto"']),
    ("steps_per_call_zero", ["--config.train.steps_per_call=0"], "config.train.steps_per_call", ["got 0"]),
    ("pipeline_misspelled", ["--config.data.pipeline=steam"], "config.data.pipeline",
     ["unknown name", "did you mean 'stream'"]),
    ("model_misspelled", ["--config.model.name=mpl"], "config.model.name", ["did you mean 'mlp'"]),
    ("dtype_unknown", ["--config.model.dtype=float64"], "config.model.dtype",
     ["unknown name", "got 'float64'", "expected one of bfloat16, float16, float32"]),
    ("optimizer_misspelled", ["--config.optimizer.name=adma"], "config.optimizer.name", ["did you mean 'adam'"]),
    ("activation_misspelled", ["--config.model.activation=rleu"], "config.model.activation",
     ["did you mean 'relu'"]),
    ("schedule_misspelled", ["--config.optimizer.schedule=cosin"], "config.optimizer.schedule",
     ["did you mean 'cosine'"]),
    ("dataset_misspelled", ["--config.data.name=digts"], "config.data.name", ["unknown dataset",
                                                                             "did you mean 'digits'"]),
    ("catalog_dataset_not_prepared", ["--config.data.name=mnist", "--config.data.data_dir={empty}"],
     "config.data.name", ["'mnist' is not prepared", "download=true"]),
    ("catalog_dataset_cannot_be_downloaded", ["--config.data.name=mnist", "--config.data.data_dir={empty}",
                                              "--config.data.download=true"],
     "config.data.name", ["cannot download 'mnist'", "no network"]),
    ("data_dir_is_a_file", ["--config.data.data_dir={file}"], "config.data.data_dir", ["not a directory"]),
    ("label_out_of_range", ["--config.data.name=bad_data/label_out_of_range", "--config.data.data_dir={bad}"],
     "data 'bad_data', train split", ["out of range", "got -1", "expected 0..2"]),
    ("nan_input", ["--config.data.name=bad_data/nan_input", "--config.data.data_dir={bad}"],
     "data 'bad_data', train split", ["input is NaN or infinite"]),
    ("inf_input", ["--config.data.name=bad_data/inf_input", "--config.data.data_dir={bad}"],
     "data 'bad_data', test split", ["input is NaN or infinite"]),
    ("empty_validation_split", ["--config.data.name=bad_data/one_per_class", "--config.data.data_dir={bad}"],
     "data 'bad_data', validation split", ["split is empty"]),
    ("variable_input_shape", ["--config.data.name=bad_data/ragged_input", "--config.data.data_dir={bad}"],
     "data 'bad_data', feature 'x'", ["variable shape", "(None,)"]),
    ("text_without_length", ["--config.data.name=bad_data/text_input", "--config.data.data_dir={bad}"],
     "config.data.sequence_length", ["holds text", "got 0"]),
    ("workdir_unwritable", ["--workdir={file}/run"], "--workdir", ["cannot write there"]),
]
OFFLINE = {"catalog_dataset_cannot_be_downloaded"}


@pytest.fixture(scope="module")
def places(tmp_path_factory, data_dir) -> dict[str, str]:
    root = tmp_path_factory.mktemp("bad_input")
    (root / "configs").mkdir()
    (root / "configs" / "broken.py").write_text("def get_config(:\n")
    (root / "configs" / "no_function.py").write_text("CONFIG = {}\n")
    (root / "a_file").write_text("not a folder\n")
    (root / "empty").mkdir()
    return {"data": data_dir, "bad": str(root / "bad_tfds"), "empty": str(root / "empty"),
            "file": str(root / "a_file"), "tmp": str(root / "configs"), "work": str(root / "work")}


@pytest.fixture(scope="module")
def driver():
    driver = CliDriver(EIGHT_DEVICES)
    yield driver
    driver.close()


def argv_for(case_id: str, extra: list[str], places: dict[str, str]) -> list[str]:
    base = ["--quiet", f"--config.data.data_dir={places['data']}", f"--workdir={places['work']}/{case_id}"]
    return base + [arg.format(**places) for arg in extra]


def assert_one_error_line(code: int, stderr: str, where: str, fragments: list[str]) -> str:
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith(f"error: {where}: "), line
    for fragment in fragments:
        assert fragment in line, line
    return line


def test_the_table_is_big_enough():
    assert len(CASES) >= 30
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_bad_input_through_the_cli(driver, places, case):
    case_id, extra, where, fragments = case
    result = driver.run(argv_for(case_id, extra, places), offline=case_id in OFFLINE)
    assert_one_error_line(result["code"], result["stderr"], where, fragments)
    assert not os.path.exists(os.path.join(places["work"], case_id, "metrics.jsonl"))


SUBPROCESS_CASES = ["key_misspelled", "batch_size_not_divisible_by_8_devices", "catalog_dataset_not_prepared"]


@pytest.mark.slow
@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_bad_input_in_a_real_subprocess(places, case_id):
    _, extra, where, fragments = next(case for case in CASES if case[0] == case_id)
    result = run_cli("experiments.mlp", *argv_for(f"sub_{case_id}", extra, places), env=EIGHT_DEVICES)
    assert_one_error_line(result.returncode, result.stderr, where, fragments)


def test_debug_shows_the_traceback(places):
    result = run_cli("experiments.mlp", *argv_for("debug", ["--config.train.batch_size=0", "--debug"], places))
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: config.train.batch_size: out of range")


class Reshapes(nn.Module):
    """A model written for inputs of 49 values (7x7), not the digits' 8x8x1."""

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        return nn.Dense(10)(x.reshape((x.shape[0], 7, 7)).sum(axis=-1))


@pytest.fixture
def tiny_config(data_dir):
    config = load_config(os.path.join(REPO, "configs", "mlp.py:tiny"))
    with config.unlocked():
        config.data.data_dir = data_dir
    return config


@pytest.mark.parametrize(("model", "fragments"), [
    (Reshapes(), ["the model does not accept the data's inputs", "inputs of shape (8, 8, 1)"]),
    (MLP(num_outputs=5, hidden_sizes=(8,)), ["the model's output does not match the data",
                                             "outputs of shape (1, 5)", "(1, 10) for 10 classes"]),
])
def test_a_model_that_does_not_fit_the_data_is_refused_before_compiling(tiny_config, tmp_path, model, fragments):
    with pytest.raises(InputError) as caught:
        train_and_evaluate(tiny_config, str(tmp_path), model=model, progress=False)
    assert str(caught.value).startswith("config.model: ")
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_splits_given_by_research_code_are_checked_too(tiny_config, digits, tmp_path):
    x = digits.validation["x"].copy()
    x[3, 0, 0, 0] = np.inf
    bad = dataclasses.replace(digits, validation={"x": x, "y": digits.validation["y"]})
    with pytest.raises(InputError, match=r"^data 'digits', validation split: input is NaN or infinite"):
        train_and_evaluate(tiny_config, str(tmp_path / "a"), splits=bad, progress=False)
    wrong_shape = dataclasses.replace(digits, test={"x": digits.test["x"].reshape(-1, 64), "y": digits.test["y"]})
    with pytest.raises(InputError, match=r"input shape differs from the dataset's \(got \(64,\), expected \(8, 8, 1\)"):
        train_and_evaluate(tiny_config, str(tmp_path / "b"), splits=wrong_shape, progress=False)
