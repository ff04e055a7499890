"""Config files, overrides and the one-line errors they raise."""

import os

import pytest
from conftest import REPO

from jaxdl.errors import InputError, check_choice, check_range
from jaxdl.run.config import apply_override, config_differences, load_config, split_overrides

MLP_CONFIG = os.path.join(REPO, "configs", "mlp.py")


def test_config_has_the_shared_keys_and_is_locked():
    config = load_config(MLP_CONFIG)
    for key in ("seed", "data.name", "data.data_dir", "model.name", "optimizer.name",
                "optimizer.learning_rate", "train.epochs", "train.batch_size", "train.patience",
                "model.hidden_sizes", "model.activation", "model.dtype"):
        node = config
        for part in key.split("."):
            node = node[part]
    with pytest.raises(AttributeError):
        config.train.epochz = 3


def test_variant_selects_softmax_regression():
    assert load_config(MLP_CONFIG + ":softmax").model.hidden_sizes == ()
    with pytest.raises(InputError, match="unknown config variant"):
        load_config(MLP_CONFIG + ":nope")


@pytest.mark.parametrize("key, text, expected", [
    ("model.hidden_sizes", "(128,64,32)", (128, 64, 32)),
    ("model.hidden_sizes", "()", ()),
    ("model.hidden_sizes", "256", (256,)),
    ("model.hidden_sizes", "[8, 8]", (8, 8)),
    ("optimizer.learning_rate", "3e-4", 3e-4),
    ("optimizer.learning_rate", "1", 1.0),
    ("train.epochs", "7", 7),
    ("model.activation", "tanh", "tanh"),
    ("data.download", "true", True),
])
def test_overrides_take_the_type_of_the_value_they_replace(key, text, expected):
    config = load_config(MLP_CONFIG)
    apply_override(config, key, text)
    node = config
    for part in key.split("."):
        node = node[part]
    assert node == expected and type(node) is type(expected)


@pytest.mark.parametrize("key, text, message", [
    ("train.epochz", "3", "did you mean --config.train.epochs?"),
    ("trian.epochs", "3", "did you mean --config.train.epochs?"),
    ("train.epochs", "three", "expected int"),
    ("data.download", "maybe", "expected true or false"),
    ("model.hidden_sizes", "'wide'", "expected a tuple"),
    ("train", "3", "is a section"),
])
def test_bad_overrides_name_the_key(key, text, message):
    with pytest.raises(InputError) as error:
        apply_override(load_config(MLP_CONFIG), key, text)
    assert str(error.value).startswith(f"--config.{key}") and message in str(error.value)


def test_split_overrides_accepts_both_spellings():
    flags, overrides = split_overrides(["--config", "c.py", "--config.train.epochs=3", "--config.seed", "4",
                                        "--workdir=w", "--debug"])
    assert flags == {"config": "c.py", "workdir": "w", "debug": None}
    assert overrides == {"train.epochs": "3", "seed": "4"}


def test_missing_config_file_suggests_the_near_one():
    with pytest.raises(InputError, match="did you mean .*mlp.py"):
        load_config(os.path.join(os.path.dirname(MLP_CONFIG), "mpl.py"))


def test_check_choice_and_range():
    assert check_choice("x", "adam", ["adam", "sgd"]) == "adam"
    with pytest.raises(InputError, match="did you mean 'adam'"):
        check_choice("x", "adma", ["adam", "sgd"])
    with pytest.raises(InputError, match=r"got 0, expected an integer >= 1"):
        check_range("train.epochs", 0, low=1, integer=True)
    with pytest.raises(InputError, match="expected a number in"):
        check_range("lr", float("nan"), low=0, high=1)
    with pytest.raises(InputError, match="wrong type"):
        check_range("n", True, low=0, integer=True)


def test_a_saved_config_without_model_dtype_reads_as_float32():
    """Runs saved before `model.dtype` existed resume with float32 and refuse another dtype."""
    saved = {"model": {"name": "mlp"}, "train": {"epochs": 3}}
    assert config_differences(saved, {"model": {"name": "mlp", "dtype": "float32"}, "train": {"epochs": 5}}) == []
    assert config_differences(saved, {"model": {"name": "mlp", "dtype": "bfloat16"}, "train": {"epochs": 3}}) == [
        "model.dtype (saved 'float32', now 'bfloat16')"]
    assert config_differences({"model": {"name": "mlp", "dtype": "float16"}}, {"model": {"name": "mlp"}}) == [
        "model.dtype (saved 'float16', now 'float32')"]
