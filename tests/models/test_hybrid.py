"""Hybrid CNN + RNN: one frame encoder for every frame, an RNN over the frames, a head."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from model_probes import random_variables

from jaxdl import InputError, build_model
from jaxdl.data import DataInfo
from jaxdl.models import CNN, RNN, Hybrid

SEQUENCES = DataInfo(name="digit_sequences", task="classification", input_shape=(3, 8, 8, 1), num_classes=28)


def hybrid_config(**sequence_overrides) -> ml_collections.ConfigDict:
    encoder = {"channels": (4,), "kernel_size": 3, "strides": 1, "pooling": "max", "pool_size": 2,
               "batch_norm": True, "dropout": 0.0, "dense_sizes": (8,), "activation": "relu"}
    sequence = {"cell": "gru", "hidden_size": 6, "num_layers": 1, "bidirectional": False, "readout": "last",
                "mask_padding": False, "dropout": 0.0, "dense_sizes": (), "activation": "relu"}
    sequence.update(sequence_overrides)
    return ml_collections.ConfigDict({"name": "hybrid", "encoder": encoder, "sequence": sequence})


def test_hybrid_shapes_and_nested_intermediates():
    model = build_model(hybrid_config(), SEQUENCES)
    x = jnp.zeros((2, 3, 8, 8, 1))
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
    output, state = jax.eval_shape(lambda v: model.apply(v, x, train=False, mutable=["intermediates"]), variables)
    assert output.shape == (2, 28)
    assert set(variables["params"]) == {"frame_encoder", "sequence_encoder", "head"}
    assert "norm_0" in variables["batch_stats"]["frame_encoder"]
    sown = jax.tree.map(lambda a: a.shape, state["intermediates"])
    # Time is folded into the batch for the encoder: 2 sequences x 3 frames = 6 images.
    assert sown["frame_encoder"]["conv_0_out"] == ((6, 8, 8, 4),)
    assert sown["frame_features"] == ((2, 3, 8),)
    assert sown["sequence_encoder"]["layer_0_out"] == ((2, 3, 6),)


def test_every_frame_goes_through_the_same_encoder():
    """Frame features equal the encoder applied to each frame on its own (in evaluation)."""
    encoder = CNN(num_outputs=0, channels=(4,), dense_sizes=(5,), batch_norm=True)
    model = Hybrid(num_outputs=3, frame_encoder=encoder, sequence_encoder=RNN(num_outputs=0, hidden_size=4))
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(2, 3, 8, 8, 1)), jnp.float32)
    variables = random_variables(model, x)
    _, state = jax.jit(lambda v, x: model.apply(v, x, mutable=["intermediates"]))(variables, x)
    encoder_variables = {name: tree["frame_encoder"] for name, tree in variables.items()}
    per_frame = jax.jit(encoder.apply)(encoder_variables, x[1, 2][None])
    np.testing.assert_allclose(state["intermediates"]["frame_features"][0][1, 2], per_frame[0], rtol=1e-5, atol=1e-6)


def test_blank_frames_at_the_end_are_padding_when_masked():
    model = build_model(hybrid_config(mask_padding=True, bidirectional=True), SEQUENCES)
    x = np.random.default_rng(0).uniform(size=(2, 3, 8, 8, 1)).astype(np.float32)
    x[1, 2] = 0.0  # the second sequence has 2 frames
    variables = random_variables(model, x, train=False)
    apply = jax.jit(lambda x: model.apply(variables, x, train=False))
    np.testing.assert_allclose(apply(x[1:, :2])[0], apply(x)[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("overrides", "where"), [
    ({"readout": "per_step"}, "config.model.sequence.readout"),
    ({"cell": "lsmt"}, "config.model.sequence.cell"),
])
def test_hybrid_config_errors_name_the_section(overrides, where):
    with pytest.raises(InputError) as error:
        build_model(hybrid_config(**overrides), SEQUENCES)
    assert error.value.where == where


def test_hybrid_encoder_errors_name_the_encoder_section():
    config = hybrid_config()
    config.encoder.channels = (4, 4, 4, 4)
    with pytest.raises(InputError) as error:
        build_model(config, SEQUENCES)
    assert error.value.where == "config.model.encoder.channels"


def test_hybrid_needs_sequences_of_images():
    with pytest.raises(InputError, match="frames, height, width, channels"):
        build_model(hybrid_config(), DataInfo(name="digits", task="classification", input_shape=(8, 8, 1),
                                              num_classes=10))


@pytest.mark.slow
def test_frame_encoder_activations_are_reported_per_sequence(tmp_path):
    """The report's activations regroup the encoder's folded (n * frames) rows into (n, frames, ...)."""
    import optax  # noqa: PLC0415

    from jaxdl.evaluate import activations as intermediates  # noqa: PLC0415
    from jaxdl.report import figures  # noqa: PLC0415
    from jaxdl.train.losses import classification_metrics  # noqa: PLC0415
    from jaxdl.train.state import create_state  # noqa: PLC0415

    model = build_model(hybrid_config(), SEQUENCES)
    state = create_state(model, optax.sgd(0.1), SEQUENCES.input_shape, 0, classification_metrics)
    x = np.random.default_rng(0).uniform(size=(5, 3, 8, 8, 1)).astype(np.float32)
    activations = intermediates.capture(state, x)
    maps = activations["frame_encoder/conv_0_out"]
    assert maps.shape == (5, 3, 8, 8, 4)
    # Sequence 2, frame 1 is the encoder's row 2 * 3 + 1 of the folded batch.
    folded = state.apply_fn(state.variables(), x, train=False, mutable=["intermediates"])[1]
    np.testing.assert_array_equal(maps[2, 1], np.asarray(folded["intermediates"]["frame_encoder"]["conv_0_out"][0][7]))
    labels = [f"#{i}" for i in range(5)]
    for name, values in activations.items():
        path = figures.activations(name, values, str(tmp_path / f"{name.replace('/', '_')}.png"), row_labels=labels)
        assert (tmp_path / path.rsplit("/", 1)[-1]).stat().st_size > 1000
    mosaic = figures.feature_mosaic(maps)
    assert mosaic.shape == (5 * 9, 3 * 2 * 9)  # 3 frames x the 2 most active channels, tiles with 1-pixel gaps
    with pytest.raises(ValueError, match="row labels"):
        figures.activations("conv", maps, str(tmp_path / "x.png"), row_labels=labels[:3])
