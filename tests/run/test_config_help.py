"""`--help` of an experiment lists every config key with its default and comment; an unknown key
gets a suggestion from its own section only."""

from __future__ import annotations

import contextlib
import io
import os
import re
import string

import ml_collections
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments import cnn
from jaxdl.errors import InputError
from jaxdl.run import cli
from jaxdl.run.config import apply_override, flatten, load_config, packaged_configs

CONFIGS = packaged_configs()


def help_text(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(cnn.run, cnn.DEFAULT_CONFIG, [*argv, "--help"])
    assert code == 0
    return out.getvalue()


def test_help_lists_every_key_with_its_default_and_comment_by_section():
    text = help_text()
    config = load_config("cnn")
    for key, value in flatten(config.to_dict()).items():
        assert f"  {key} = {value!r}" in text, key
    lines = text.splitlines()
    # Comments from the config file's own lines and from the docstrings of the shared sections.
    assert re.search(r"^  model\.channels = \(32, 64\) +# per conv block \(cnn\) or per stage \(resnet\)$", text, re.M)
    assert re.search(r"^  optimizer\.learning_rate = 0\.001 +# the peak learning rate\.$", text, re.M)
    assert re.search(r"^  train\.patience = 0 +# epochs without a better validation loss", text, re.M)
    assert re.search(r"^  data\.name = 'digits' +# a project builder", text, re.M)
    # Grouped: each key's lines come under its section's header.
    for section in ("data", "model", "optimizer", "train", "eval", "checkpoint"):
        start = lines.index(section)
        block = lines[start + 1:lines.index("", start)]
        assert block and all(line.startswith(f"  {section}.") for line in block), section
    assert "tiny " in text and "signals " in text  # the variants, from the config file's docstring


def test_help_shows_the_defaults_of_the_variant_named():
    assert "  model.channels = (8,)" in help_text("--config", "cnn:tiny")
    assert "  train.epochs = 3" in help_text("--config=configs/cnn.py:tiny")


def test_help_of_a_config_that_does_not_load_still_answers():
    assert "the config keys cannot be listed: --config: no such config file" in help_text("--config", "nope.py")


@pytest.mark.parametrize("key, suggestion", [
    ("optimizer.lr", "optimizer.learning_rate"), ("optimizer.learning_rat", "optimizer.learning_rate"),
    ("train.bs", "train.batch_size"), ("optimiser.learning_rate", "optimizer.learning_rate"),
    ("epochs", "train.epochs"), ("model.chanels", "model.channels"), ("train.lr", None),
    ("swep.learning_rate", "sweep.learning_rate"),
])
def test_an_unknown_key_suggests_the_close_key_of_its_section(key, suggestion):
    with pytest.raises(InputError) as error:
        apply_override(load_config("cnn"), key, "3")
    text = str(error.value)
    assert text.startswith(f"--config.{key}: unknown config key")
    if suggestion:
        assert text.endswith(f"did you mean --config.{suggestion}?")
    else:
        assert "did you mean" not in text


def leaf_keys() -> list[tuple[str, str]]:
    keys = []
    for name, path in CONFIGS.items():
        keys += [(name, key) for key in flatten(load_config(path).to_dict()) if "." in key]
    return keys


LEAF_KEYS = leaf_keys()
NAMES = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=14)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(LEAF_KEYS), st.data(), st.booleans())
def test_a_suggestion_never_comes_from_another_section(config_key, data, in_section_name):
    """A wrong leaf (or a wrong section name), random or a typo of a real one, gets, if anything, a key
    of the same section (or a section that holds that leaf); a typo of one letter always gets one."""
    name, key = config_key
    section, leaf = key.rsplit(".", 1)
    config = load_config(CONFIGS[name])
    target = section.split(".")[-1] if in_section_name else leaf
    cut = data.draw(st.integers(0, len(target) - 1))
    typo = target[:cut] + target[cut + 1:]
    wrong = data.draw(st.one_of(NAMES, st.just(typo)))
    given_key = f"{wrong}.{leaf}" if in_section_name else f"{section}.{wrong}"
    keys = flatten(config.to_dict())
    if not wrong or given_key in keys or (in_section_name and (section.count(".") or wrong in config)):
        return
    with pytest.raises(InputError) as error:
        apply_override(config, given_key, "1")
    found = re.search(r"did you mean --config\.(\S+)\?$", str(error.value))
    if found is None:
        assert wrong != typo or len(target) < 4  # a one-letter typo of a longer name is always found
        return
    suggested = found.group(1)
    assert suggested in keys, suggested
    if in_section_name:
        assert suggested.endswith(f".{leaf}") and suggested.count(".") == given_key.count(".")
    else:
        assert suggested.rsplit(".", 1)[0] == section


def test_configs_are_found_by_name_and_a_missing_one_says_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here
    assert load_config("mlp:tiny").train.epochs == 3
    assert load_config("configs/mlp.py:tiny").model.hidden_sizes == (32,)
    assert isinstance(load_config("rnn.py"), ml_collections.ConfigDict)
    with pytest.raises(InputError) as error:
        load_config("configs/mpl.py:tiny")
    text = str(error.value)
    assert text.startswith("--config: no such config file (got 'configs/mpl.py'")
    assert f"tried configs/mpl.py and {os.path.join(os.path.dirname(CONFIGS['mlp']), 'mpl.py')}" in text
    assert text.endswith("did you mean 'configs/mlp.py'?")
    with pytest.raises(InputError, match=r"did you mean 'mlp'\?$"):
        load_config("mpl:tiny")
    (tmp_path / "configs").mkdir()
    with open(CONFIGS["mlp"]) as f:
        (tmp_path / "configs" / "mlp.py").write_text(f.read().replace("config.seed = 0", "config.seed = 7"))
    assert load_config("configs/mlp.py").seed == 7  # a file here comes first
    assert load_config("mlp").seed == 0  # a name is the packaged config


def test_the_resume_command_names_the_config_file_it_used(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    command = cli.resume_command(["--config", "mlp:tiny", "--config.train.epochs=5"], "w")
    assert f" --config={CONFIGS['mlp']}:tiny --config.train.epochs=5 --workdir={tmp_path / 'w'}" in command
