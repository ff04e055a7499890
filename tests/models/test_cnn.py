"""CNN and ResNet: shapes, sown feature maps, config checks, and batch norm in training vs evaluation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from conftest import REPO
from model_probes import random_variables, traced_shapes

from jaxdl import InputError, build_model, create_state, eval_step, metrics_for_task, train_step
from jaxdl.data import DataInfo, Splits
from jaxdl.models import CNN, ResNet
from jaxdl.models.augment import random_shift
from jaxdl.models.resnet import ResidualBlock
from jaxdl.run.config import load_config
from jaxdl.run.pipeline import train_and_evaluate

DIGITS = DataInfo(name="digits", task="classification", input_shape=(8, 8, 1), num_classes=10)
CIFAR = DataInfo(name="cifar10", task="classification", input_shape=(32, 32, 3), num_classes=10)


def cnn_config(**overrides) -> ml_collections.ConfigDict:
    # One dict, not ConfigDict.update: an int size may be overridden by a tuple (one entry per axis).
    return ml_collections.ConfigDict({
        "name": "cnn", "channels": (8, 16), "kernel_size": 3, "strides": 1, "pooling": "max", "pool_size": 2,
        "batch_norm": True, "dropout": 0.0, "dense_sizes": (16,), "activation": "relu", "blocks_per_stage": 1,
        "random_shift": 0, **overrides})


def test_cnn_shapes_and_sown_feature_maps():
    output, variables, sown = traced_shapes(build_model(cnn_config(), DIGITS), jnp.zeros((3, 8, 8, 1)))
    assert output == (3, 10)
    assert set(variables["params"]) == {"conv_0", "norm_0", "conv_1", "norm_1", "dense_0", "head"}
    assert sown == {"conv_0_out": ((3, 8, 8, 8),), "conv_1_out": ((3, 4, 4, 16),), "dense_0_out": ((3, 16),)}


def test_cnn_strides_and_pooling_options_shape_the_feature_maps():
    _, variables, sown = traced_shapes(build_model(cnn_config(strides=2, pooling="none", batch_norm=False), DIGITS),
                                jnp.zeros((2, 8, 8, 1)))
    assert "batch_stats" not in variables
    assert sown["conv_0_out"] == ((2, 4, 4, 8),) and sown["conv_1_out"] == ((2, 2, 2, 16),)


def test_cnn_without_head_returns_features():
    output, variables, _ = traced_shapes(CNN(num_outputs=0, channels=(4,), dense_sizes=(12,)), jnp.zeros((5, 8, 8, 1)))
    assert "head" not in variables["params"]
    assert output == (5, 12)


def test_resnet_shapes_stages_and_head():
    output, variables, sown = traced_shapes(build_model(cnn_config(name="resnet", channels=(4, 8, 16), dense_sizes=()),
                                                 CIFAR), jnp.zeros((2, 32, 32, 3)))
    assert output == (2, 10)
    assert "head" in variables["params"] and "batch_stats" in variables
    assert sown["block_0_0_out"] == ((2, 32, 32, 4),)
    assert sown["block_2_0_out"] == ((2, 8, 8, 16),)
    assert sown["pooled"] == ((2, 16),)
    # A block that changes the shape projects its shortcut; one that keeps it does not.
    assert "projection" in variables["params"]["block_1_0"]
    assert "projection" not in variables["params"]["block_0_0"]


def test_resnet_without_head_returns_pooled_features():
    output, variables, _ = traced_shapes(ResNet(num_outputs=0, channels=(4, 6), blocks_per_stage=1),
                                  jnp.zeros((2, 16, 16, 3)))
    assert "head" not in variables["params"]
    assert output == (2, 6)


def test_resnet_block_starts_as_identity_up_to_activation():
    """The zero-initialised last norm scale makes each block act(x) at initialisation."""
    block = ResidualBlock(channels=3)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 4, 4, 3)), jnp.float32)
    variables = jax.jit(block.init)(jax.random.PRNGKey(0), x)
    np.testing.assert_allclose(jax.jit(block.apply)(variables, x), jax.nn.relu(x), atol=1e-6)


@pytest.mark.parametrize(("overrides", "where"), [
    ({"channels": (8, 8, 8, 8)}, "config.model.channels"),
    ({"pooling": "maxx"}, "config.model.pooling"),
    ({"channels": ()}, "config.model.channels"),
    ({"kernel_size": 0}, "config.model.kernel_size"),
    ({"activation": "rellu"}, "config.model.activation"),
])
def test_cnn_config_errors_name_the_key(overrides, where):
    with pytest.raises(InputError) as error:
        build_model(cnn_config(**overrides), DIGITS)
    assert error.value.where == where


def test_cnn_rejects_data_of_more_than_three_spatial_axes():
    frames = DataInfo(name="clips", task="classification", input_shape=(3, 4, 8, 8, 1), num_classes=2)
    with pytest.raises(InputError, match=r"\(length,\), \(length, channels\), \(height, width, channels\)") as error:
        build_model(cnn_config(), frames)
    assert error.value.where == "config.data.name"


@pytest.mark.parametrize(("input_shape", "kernel", "conv_0", "conv_1"), [
    ((32,), (3, 1, 8), (2, 32, 8), (2, 16, 16)),  # a plain signal is one channel
    ((32, 2), (3, 2, 8), (2, 32, 8), (2, 16, 16)),  # a 2-channel signal (the adding problem's shape)
    ((8, 8, 1), (3, 3, 1, 8), (2, 8, 8, 8), (2, 4, 4, 16)),
    ((4, 6, 6, 1), (3, 3, 3, 1, 8), (2, 4, 6, 6, 8), (2, 2, 3, 3, 16)),
])
def test_kernel_and_pooling_follow_the_rank_of_the_input(input_shape, kernel, conv_0, conv_1):
    info = DataInfo(name="any", task="classification", input_shape=input_shape, num_classes=3)
    output, variables, sown = traced_shapes(build_model(cnn_config(), info), jnp.zeros((2, *input_shape)))
    assert output == (2, 3)
    assert variables["params"]["conv_0"]["kernel"] == kernel
    assert sown["conv_0_out"] == (conv_0,) and sown["conv_1_out"] == (conv_1,)
    # The parameter names are those of the 2-D model, whatever the rank (frozen_norms, transfer).
    assert set(variables["params"]) == {"conv_0", "norm_0", "conv_1", "norm_1", "dense_0", "head"}


def test_explicit_sizes_give_one_entry_per_spatial_axis():
    signal = DataInfo(name="signals", task="classification", input_shape=(40,), num_classes=4)
    _, variables, sown = traced_shapes(build_model(cnn_config(kernel_size=(7,), pool_size=(4,), channels=(8,)),
                                                   signal), jnp.zeros((2, 40)))
    assert variables["params"]["conv_0"]["kernel"] == (7, 1, 8) and sown["conv_0_out"] == ((2, 40, 8),)
    assert variables["params"]["dense_0"]["kernel"] == (10 * 8, 16)  # 40 // 4 steps of 8 channels
    _, variables, sown = traced_shapes(build_model(cnn_config(kernel_size=(3, 1), strides=(1, 2), channels=(8,)),
                                                   DIGITS), jnp.zeros((2, 8, 8, 1)))
    assert variables["params"]["conv_0"]["kernel"] == (3, 1, 1, 8) and sown["conv_0_out"] == ((2, 8, 4, 8),)


@pytest.mark.parametrize(("key", "value", "info"), [
    ("kernel_size", (3, 3), DataInfo(name="signals", task="classification", input_shape=(32,), num_classes=4)),
    ("pool_size", (2, 2, 2), DIGITS),
    ("strides", (1,), DataInfo(name="v", task="classification", input_shape=(4, 6, 6, 1), num_classes=2)),
    ("kernel_size", (3, 0), DIGITS),
])
def test_sizes_of_the_wrong_rank_name_the_key(key, value, info):
    with pytest.raises(InputError) as error:
        build_model(cnn_config(**{key: value}), info)
    assert error.value.where == f"config.model.{key}"
    assert str(error.value).startswith(f"config.model.{key}: ")


def test_a_signal_of_shape_length_is_one_channel():
    model = build_model(cnn_config(channels=(4,), batch_norm=False), DataInfo(
        name="signals", task="classification", input_shape=(16,), num_classes=4))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((3, 16)), jnp.float32)
    variables = random_variables(model, x, train=False)
    np.testing.assert_array_equal(model.apply(variables, x), model.apply(variables, x[..., None]))


def test_blocks_that_shrink_a_signal_to_nothing_are_refused():
    with pytest.raises(InputError, match="3 blocks shrink signals of length 6 to nothing") as error:
        build_model(cnn_config(channels=(4, 4, 4)), DataInfo(name="s", task="classification", input_shape=(6,),
                                                             num_classes=2))
    assert error.value.where == "config.model.channels"


def test_resnet_stays_two_dimensional_and_says_so():
    with pytest.raises(InputError, match="config.model.name=cnn also takes 1-D signals") as error:
        build_model(cnn_config(name="resnet"), DataInfo(name="s", task="classification", input_shape=(32, 1),
                                                        num_classes=2))
    assert error.value.where == "config.data.name"


def test_batch_norm_updates_in_training_and_is_frozen_in_evaluation():
    model = build_model(cnn_config(channels=(4,), dense_sizes=()), DIGITS)
    make_state = jax.jit(create_state, static_argnums=(0, 1, 2, 4))
    state = make_state(model, optax.sgd(0.1), DIGITS.input_shape, jax.random.PRNGKey(0),
                       metrics_for_task("classification"))
    rng = np.random.default_rng(0)
    batch = {"x": jnp.asarray(rng.uniform(size=(16, 8, 8, 1)), jnp.float32) * 3 + 1,
             "y": jnp.asarray(rng.integers(0, 10, 16), jnp.int32), "mask": jnp.ones((16,))}

    before = jax.tree.map(np.asarray, state.batch_stats)
    trained, _ = jax.jit(train_step)(state, batch)
    mean_before = before["norm_0"]["mean"]
    mean_after = np.asarray(trained.batch_stats["norm_0"]["mean"])
    assert not np.allclose(mean_after, mean_before), "training must update the running statistics"
    np.testing.assert_allclose(mean_after, 0.1 * np.asarray(batch_mean_of_first_conv(state, batch["x"])),
                               rtol=1e-5, atol=1e-6)

    # Evaluation uses the running averages: an example scores the same alone or in any batch
    # (eval_step returns no statistics, so it cannot change them)...
    logits = jax.jit(lambda state, x: state.apply_fn(state.variables(), x, train=False))
    np.testing.assert_allclose(logits(trained, batch["x"][:1]), logits(trained, batch["x"])[:1], rtol=1e-5, atol=1e-6)
    # ...while training normalises with the batch's own statistics.
    train_logits = jax.jit(lambda state, x: state.apply_fn(state.variables(), x, train=True,
                                                           mutable=["batch_stats"])[0])
    assert not np.allclose(train_logits(trained, batch["x"][:1]), train_logits(trained, batch["x"])[:1], atol=1e-3)
    sums = jax.jit(eval_step)(trained, batch)
    assert float(sums["count"]) == 16


def batch_mean_of_first_conv(state, x):
    """Per-channel mean of conv_0's output over the batch (what batch norm averages in training)."""
    conv = state.params["conv_0"]["kernel"]
    y = jax.jit(lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                         dimension_numbers=("NHWC", "HWIO", "NHWC")))(x, conv)
    return jnp.mean(y, axis=(0, 1, 2))


def test_random_shift_moves_each_image_within_bounds():
    images = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.0, size=(16, 6, 6, 1)), jnp.float32)
    shifted = np.asarray(jax.jit(random_shift, static_argnums=1)(images, 1, jax.random.PRNGKey(0)))
    assert shifted.shape == images.shape
    moved = 0
    for image, out in zip(np.asarray(images), shifted, strict=True):
        # Every output is the image moved by some (dy, dx) in [-1, 1]^2, zeros moved in.
        padded = np.pad(image, ((1, 1), (1, 1), (0, 0)))
        matches = [(dy, dx) for dy in range(3) for dx in range(3) if np.array_equal(padded[dy:dy + 6, dx:dx + 6], out)]
        assert matches, "not a shift of the input"
        moved += matches[0] != (1, 1)
    assert moved > 8  # most of 16 images move (each stays put with probability 1/9)


def test_random_shift_is_on_in_training_only():
    model = build_model(cnn_config(batch_norm=False, random_shift=1), DIGITS)
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(4, 8, 8, 1)), jnp.float32)
    variables = random_variables(model, x, train=False)
    evaluate = jax.jit(lambda x: model.apply(variables, x, train=False))
    train = jax.jit(lambda x, key: model.apply(variables, x, train=True, rngs={"dropout": key}))
    np.testing.assert_array_equal(evaluate(x), model.clone(random_shift=0).apply(variables, x, train=False))
    assert not np.allclose(train(x, jax.random.PRNGKey(1)), evaluate(x), atol=1e-4)
    np.testing.assert_array_equal(train(x, jax.random.PRNGKey(1)), train(x, jax.random.PRNGKey(1)))


def test_random_shift_must_leave_part_of_the_image():
    with pytest.raises(InputError) as error:
        build_model(cnn_config(random_shift=8), DIGITS)
    assert error.value.where == "config.model.random_shift"


@pytest.mark.parametrize("spatial", [(12,), (4, 5, 6)])
def test_random_shift_moves_signals_and_volumes_along_every_axis(spatial):
    x = np.random.default_rng(0).uniform(0.5, 1.0, size=(16, *spatial, 2)).astype(np.float32)
    shifted = np.asarray(jax.jit(random_shift, static_argnums=1)(jnp.asarray(x), 1, jax.random.PRNGKey(0)))
    assert shifted.shape == x.shape
    padded = np.pad(x, ((0, 0), *[(1, 1)] * len(spatial), (0, 0)))
    offsets = list(np.ndindex(*(3,) * len(spatial)))
    moved = 0
    for example, out in zip(padded, shifted, strict=True):
        found = [o for o in offsets
                 if np.array_equal(example[tuple(slice(d, d + n) for d, n in zip(o, spatial, strict=True))], out)]
        assert found, "not a shift of the input"
        moved += found[0] != (1,) * len(spatial)
    assert moved > 8


def test_random_shift_of_a_signal_is_bounded_by_its_length():
    signal = DataInfo(name="signals", task="classification", input_shape=(8,), num_classes=4)
    build_model(cnn_config(channels=(4,), random_shift=7), signal)
    with pytest.raises(InputError) as error:
        build_model(cnn_config(channels=(4,), random_shift=8), signal)
    assert error.value.where == "config.model.random_shift"


@pytest.mark.slow
def test_a_cnn_trains_on_volumes_through_the_pipeline(tmp_path):
    """A tiny random 3-D set (depth 4, 6x6, 1 channel) in memory: the whole cycle runs, the maps are 3-D."""
    rng = np.random.default_rng(0)

    def arrays(n):
        x = rng.normal(size=(n, 4, 6, 6, 1)).astype(np.float32)
        return {"x": x, "y": (x.mean(axis=(1, 2, 3, 4)) > 0).astype(np.int32)}

    info = DataInfo(name="volumes", task="classification", input_shape=(4, 6, 6, 1), num_classes=2)
    config = load_config(f"{REPO}/configs/cnn.py:tiny")
    with config.unlocked():
        config.train.epochs = 1
        config.checkpoint.every_epochs = 0
        config.model.random_shift = 1
    summary, state = train_and_evaluate(config, str(tmp_path), splits=Splits(arrays(64), arrays(16), arrays(16), info),
                                        progress=False, return_state=True)
    assert summary["epochs_run"] == 1 and summary["test"]["count"] == 16
    assert state.params["conv_0"]["kernel"].shape == (3, 3, 3, 1, 8)
    assert summary["activations"]["conv_0_out"]["shape"] == [2, 4, 6, 6, 8]
    logits = state.apply_fn(state.variables(), arrays(3)["x"], train=False)
    assert logits.shape == (3, 2) and np.all(np.isfinite(logits))
    assert (tmp_path / "report.html").exists()
