"""The ImageNet-style ResNet-18/34/50: torchvision's sizes, sown stage outputs, input normalisation,
frozen batch norms and config checks. (Equality with PyTorch: tests/transfer/test_imported.py.)"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from model_probes import random_variables, traced_shapes

from jaxdl import InputError, build_model
from jaxdl.data import DataInfo
from jaxdl.models.resnet_imagenet import IMAGENET_MEAN, IMAGENET_STD, ResNetImageNet
from jaxdl.run.config import load_config

# torchvision's parameter counts (1000 classes): resnet18 11,689,512, resnet34 21,797,672, resnet50 25,557,032.
TORCHVISION_PARAMETERS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032}


@pytest.mark.parametrize("arch", sorted(TORCHVISION_PARAMETERS))
def test_parameter_counts_are_torchvisions(arch):
    _, variables, _ = traced_shapes(ResNetImageNet(1000, arch), jnp.zeros((1, 32, 32, 3)))
    assert sum(int(np.prod(shape)) for shape in jax.tree.leaves(variables["params"],
                                                                is_leaf=lambda s: isinstance(s, tuple))) \
        == TORCHVISION_PARAMETERS[arch]


def test_shapes_names_and_sown_stage_outputs():
    output, variables, sown = traced_shapes(ResNetImageNet(10, "resnet50"), jnp.zeros((2, 64, 64, 3)))
    assert output == (2, 10)
    blocks = [f"layer{s}_{b}" for s, n in zip((1, 2, 3, 4), (3, 4, 6, 3), strict=True) for b in range(n)]
    assert set(variables["params"]) == {"conv1", "bn1", "head", *blocks}
    assert set(variables["params"]["layer1_0"]) == {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3",
                                                    "downsample_conv", "downsample_bn"}
    assert "downsample_conv" not in variables["params"]["layer1_1"]
    # v1.5: the stride sits on the 3x3 convolution; symmetric padding halves 64 exactly at every step.
    assert variables["params"]["layer2_0"]["conv2"]["kernel"] == (3, 3, 128, 128)
    assert sown == {"stem_out": ((2, 32, 32, 64),), "layer1_out": ((2, 16, 16, 256),),
                    "layer2_out": ((2, 8, 8, 512),), "layer3_out": ((2, 4, 4, 1024),),
                    "layer4_out": ((2, 2, 2, 2048),), "pooled": ((2, 2048),)}


def test_imagenet_normalisation_and_grayscale_inputs():
    x = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
    plain = ResNetImageNet(5, "resnet18", input_normalization="none")
    normalised = ResNetImageNet(5, "resnet18", input_normalization="imagenet")
    variables = random_variables(plain, jnp.asarray(x), scale=0.05)
    # The stem's feature map: with random weights the logits hardly depend on the input.
    apply = jax.jit(lambda module, v, x: module.apply(v, x, mutable=["intermediates"])[1]["intermediates"]
                    ["stem_out"][0], static_argnums=0)
    expected = apply(plain, variables, jnp.asarray((x - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD),
                                                   jnp.float32))
    np.testing.assert_allclose(apply(normalised, variables, jnp.asarray(x)), expected, rtol=1e-5, atol=1e-5)
    gray = x[..., :1]
    np.testing.assert_allclose(apply(normalised, variables, jnp.asarray(gray)),
                               apply(normalised, variables, jnp.asarray(np.repeat(gray, 3, axis=-1))), rtol=1e-6)
    assert not np.allclose(apply(plain, variables, jnp.asarray(x)), expected, atol=1e-3)


def test_frozen_norms_keep_their_statistics_in_training():
    model = ResNetImageNet(3, "resnet18", frozen_norms=("bn1", "layer2_0/downsample_bn"))
    x = jnp.asarray(np.random.default_rng(1).uniform(0, 1, (2, 32, 32, 3)), jnp.float32)
    variables = random_variables(model, x, scale=0.05)
    _, updated = jax.jit(lambda v: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables)
    stats, before = updated["batch_stats"], variables["batch_stats"]
    for frozen in (stats["bn1"], stats["layer2_0"]["downsample_bn"]):
        assert np.all(np.asarray(frozen["mean"]) == 0) and np.all(np.asarray(frozen["var"]) == 1)
    assert not np.allclose(stats["layer2_0"]["bn1"]["mean"], before["layer2_0"]["bn1"]["mean"])
    assert not np.allclose(stats["layer1_0"]["bn1"]["var"], before["layer1_0"]["bn1"]["var"])


def test_config_variant_and_checks():
    config = load_config("configs/cnn.py:resnet18")
    digits = DataInfo(name="digits", task="classification", input_shape=(8, 8, 1), num_classes=10)
    model = build_model(config.model, digits)
    assert (model.architecture, model.input_normalization) == ("resnet18", "imagenet")
    assert traced_shapes(model, jnp.zeros((2, 8, 8, 1)))[0] == (2, 10)
    fifty = ml_collections.ConfigDict({"name": "resnet50"})  # input_normalization defaults to imagenet
    assert build_model(fifty, digits).input_normalization == "imagenet"
    four_channels = DataInfo(name="x", task="classification", input_shape=(16, 16, 4), num_classes=2)
    with pytest.raises(InputError, match="config.model.input_normalization.*1 or 3 channels"):
        build_model(fifty, four_channels)
    fifty.input_normalization = "none"
    assert build_model(fifty, four_channels).input_normalization == "none"
    fifty.input_normalization = "imagnet"
    with pytest.raises(InputError, match="did you mean 'imagenet'"):
        build_model(fifty, four_channels)
    signals = DataInfo(name="signals", task="classification", input_shape=(128, 1), num_classes=4)
    with pytest.raises(InputError, match="config.data.name.*resnet18 model needs examples"):
        build_model(config.model, signals)
