"""RNN: cells by name, shapes of every readout, padding that never changes the result, config checks."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from model_probes import random_variables, traced_shapes

from jaxdl import InputError, build_model
from jaxdl.data import DataInfo
from jaxdl.models import RNN
from jaxdl.models.rnn import sequence_lengths

DIGIT_ROWS = DataInfo(name="digits", task="classification", input_shape=(8, 8, 1), num_classes=10)
ADDING = DataInfo(name="adding", task="regression", input_shape=(12, 2))


def rnn_config(**overrides) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict({
        "name": "rnn", "cell": "lstm", "hidden_size": 6, "num_layers": 1, "bidirectional": False, "readout": "last",
        "mask_padding": False, "dropout": 0.0, "dense_sizes": (), "activation": "relu", "vocab_size": 0,
        "embed_size": 4})
    config.update(overrides)
    return config


@pytest.mark.parametrize("cell", ["simple", "lstm", "gru"])
def test_each_cell_reads_digit_rows_as_a_sequence(cell):
    output, variables, sown = traced_shapes(build_model(rnn_config(cell=cell), DIGIT_ROWS), jnp.zeros((3, 8, 8, 1)))
    assert output == (3, 10)
    assert set(variables["params"]) == {"forward_0", "head"}
    assert sown == {"layer_0_out": ((3, 8, 6),), "readout": ((3, 6),)}


def test_stacked_bidirectional_layers_concatenate_directions():
    model = build_model(rnn_config(num_layers=2, bidirectional=True, dense_sizes=(5,)), DIGIT_ROWS)
    output, variables, sown = traced_shapes(model, jnp.zeros((2, 8, 8, 1)))
    assert output == (2, 10)
    assert set(variables["params"]) == {"forward_0", "backward_0", "forward_1", "backward_1", "dense_0", "head"}
    assert sown["layer_1_out"] == ((2, 8, 12),) and sown["readout"] == ((2, 12),) and sown["dense_0_out"] == ((2, 5),)


@pytest.mark.parametrize("readout", ["mean", "max"])
def test_pooled_readouts(readout):
    output, _, sown = traced_shapes(build_model(rnn_config(readout=readout), ADDING), jnp.zeros((4, 12, 2)))
    assert output == (4, 1) and sown["readout"] == ((4, 6),)


def test_per_step_readout_predicts_every_step():
    info = DataInfo(name="running_sum", task="regression", input_shape=(12, 2), target_shape=(12, 3))
    output, _, _ = traced_shapes(build_model(rnn_config(readout="per_step"), info), jnp.zeros((4, 12, 2)))
    assert output == (4, 12, 3)


def test_token_inputs_are_embedded():
    info = DataInfo(name="text", task="classification", input_shape=(30,), num_classes=2)
    model = build_model(rnn_config(vocab_size=257, mask_padding=True), info)
    output, variables, sown = traced_shapes(model, jnp.zeros((2, 30)))
    assert output == (2, 2) and "embed" in variables["params"] and sown["layer_0_out"] == ((2, 30, 6),)


def test_sequence_lengths_count_up_to_the_last_nonzero_step():
    x = np.zeros((4, 5, 2), np.float32)
    x[0, :3] = 1.0  # length 3
    x[1, 1, 0] = 2.0  # a zero step inside a sequence is not padding: length 2
    x[2] = 1.0  # no padding: length 5
    # x[3] is all padding: length 1, so every sequence has a step to read
    np.testing.assert_array_equal(sequence_lengths(jnp.asarray(x)), [3, 2, 5, 1])


def padded(x: np.ndarray, extra: int) -> np.ndarray:
    """`x` with `extra` all-zero steps appended."""
    return np.concatenate([x, np.zeros((x.shape[0], extra, *x.shape[2:]), x.dtype)], axis=1)


def apply_fn(model):
    """(variables for an input like x, jitted apply)."""
    return functools.partial(random_variables, model, train=False), jax.jit(lambda v, x: model.apply(v, x, train=False))


@pytest.mark.slow
@pytest.mark.parametrize(("cell", "bidirectional", "readout", "layers"), [
    ("lstm", False, "last", 1),
    ("gru", True, "last", 2),
    ("simple", True, "max", 1),
])
def test_padding_never_changes_the_result(cell, bidirectional, readout, layers):
    model = RNN(num_outputs=3, cell=cell, hidden_size=5, num_layers=layers, bidirectional=bidirectional,
                readout=readout, mask_padding=True)
    rng = np.random.default_rng(0)
    batch = rng.uniform(0.1, 1.0, size=(3, 7, 2)).astype(np.float32)
    batch[1, 3:] = 0.0  # lengths 7, 3, 5: padded to the longest
    batch[2, 5:] = 0.0
    init, apply = apply_fn(model)
    variables = init(jnp.asarray(batch))

    together = np.asarray(apply(variables, jnp.asarray(batch)))
    alone = np.asarray(apply(variables, jnp.asarray(batch[1:2, :3])))  # the short one, unpadded
    np.testing.assert_allclose(together[1], alone[0], rtol=1e-5, atol=1e-6)
    more_padding = np.asarray(apply(variables, jnp.asarray(padded(batch, 6))))
    np.testing.assert_allclose(more_padding, together, rtol=1e-5, atol=1e-6)

    # The test has teeth: without masking, the same padding does change the outputs.
    _, unmasked = apply_fn(model.clone(mask_padding=False))
    assert not np.allclose(unmasked(variables, jnp.asarray(padded(batch, 6))), together, atol=1e-4)


def test_padding_does_not_change_per_step_outputs_and_zeroes_padded_steps():
    model = RNN(num_outputs=2, cell="gru", hidden_size=4, bidirectional=True, readout="per_step", mask_padding=True)
    x = np.random.default_rng(1).uniform(0.1, 1.0, size=(2, 5, 3)).astype(np.float32)
    x[1, 3:] = 0.0  # the second sequence has length 3
    init, apply = apply_fn(model)
    variables = init(jnp.asarray(x))
    out = np.asarray(apply(variables, jnp.asarray(x)))
    np.testing.assert_allclose(np.asarray(apply(variables, jnp.asarray(padded(x, 4))))[:, :5], out, atol=1e-6)
    np.testing.assert_allclose(np.asarray(apply(variables, jnp.asarray(x[1:, :3])))[0], out[1, :3], atol=1e-6)
    assert np.all(out[1, 3:] == 0.0)


def test_token_padding_never_changes_the_result():
    model = RNN(num_outputs=2, cell="gru", hidden_size=4, bidirectional=True, readout="mean", mask_padding=True,
                vocab_size=20, embed_size=3)
    tokens = np.array([[5, 9, 2, 0, 0, 0], [7, 1, 1, 4, 3, 8]], np.float32)
    init, apply = apply_fn(model)
    variables = init(jnp.asarray(tokens))
    out = np.asarray(apply(variables, jnp.asarray(tokens)))
    np.testing.assert_allclose(np.asarray(apply(variables, jnp.asarray(tokens[:1, :3])))[0], out[0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(apply(variables, jnp.asarray(padded(tokens[..., None], 5)[..., 0]))),
                               out, atol=1e-6)


@pytest.mark.parametrize(("overrides", "where"), [
    ({"cell": "lstn"}, "config.model.cell"),
    ({"readout": "first"}, "config.model.readout"),
    ({"hidden_size": 0}, "config.model.hidden_size"),
    ({"dense_sizes": (16, 0)}, "config.model.dense_sizes"),
])
def test_rnn_config_errors_name_the_key(overrides, where):
    with pytest.raises(InputError) as error:
        build_model(rnn_config(**overrides), DIGIT_ROWS)
    assert error.value.where == where


def test_unknown_cell_gets_a_suggestion():
    with pytest.raises(InputError, match="did you mean 'lstm'"):
        build_model(rnn_config(cell="lstn"), DIGIT_ROWS)


def test_per_step_readout_needs_targets_per_step():
    with pytest.raises(InputError, match="per_step"):
        build_model(rnn_config(readout="per_step"), ADDING)


def test_token_inputs_must_be_one_dimensional():
    with pytest.raises(InputError) as error:
        build_model(rnn_config(vocab_size=257), DIGIT_ROWS)
    assert error.value.where == "config.model.vocab_size"


def test_a_one_dimensional_signal_is_read_as_one_feature_per_step():
    signal = DataInfo(name="signals", task="classification", input_shape=(20,), num_classes=4)
    model = build_model(rnn_config(cell="gru"), signal)
    output, variables, sown = traced_shapes(model, jnp.zeros((3, 20)))
    assert output == (3, 4) and sown["layer_0_out"] == ((3, 20, 6),)
    assert variables["params"]["forward_0"]["ir"]["kernel"] == (1, 6)  # one input feature per step
    x = jnp.asarray(np.random.default_rng(0).standard_normal((3, 20)), jnp.float32)
    params = random_variables(model, x)
    np.testing.assert_array_equal(model.apply(params, x), model.apply(params, x[..., None]))


def test_examples_without_a_time_axis_are_refused():
    with pytest.raises(InputError, match="the rnn model needs sequences") as error:
        build_model(rnn_config(), DataInfo(name="scalars", task="regression", input_shape=(), target_shape=(1,)))
    assert error.value.where == "config.data.name"
