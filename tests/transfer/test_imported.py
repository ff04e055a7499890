"""Importing torchvision/timm ResNet weights: the same logits as PyTorch, and one error for a file that
does not fit.

The PyTorch comparisons build torchvision's resnet18 and resnet50 with random weights and random
batch-norm statistics (no download), save them as .safetensors and .pth, read them into the jaxdl
ResNetImageNet and compare the inference-mode logits on one batch. They need PyTorch and torchvision
(`pip install 'jaxdl[torch]'`); without them they skip, or fail where JAXDL_REQUIRE_TORCH is set
(CI). The other tests write state dicts with the safetensors numpy API and need no PyTorch.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from safetensors.numpy import save_file

from jaxdl.errors import InputError
from jaxdl.models.resnet_imagenet import ResNetImageNet
from jaxdl.train.losses import classification_metrics
from jaxdl.train.state import create_state
from jaxdl.transfer.imported import flax_name, read_imported, torch_layout
from jaxdl.transfer.pretrained import initialise_from

CLASSES = 10
BATCH = (2, 64, 64, 3)  # every stride-2 layer meets an even size: asymmetric padding would show


def torch_and_resnets():
    """(torch, torchvision.models.resnet), or a skip (a failure where JAXDL_REQUIRE_TORCH is set)."""
    try:
        import torch
    except ImportError:
        if os.environ.get("JAXDL_REQUIRE_TORCH"):
            pytest.fail("PyTorch is required here (JAXDL_REQUIRE_TORCH is set) but not installed")
        pytest.skip("PyTorch is not installed (pip install 'jaxdl[torch]'); CI installs it and runs this test")
    try:
        from torchvision.models import resnet
    except ImportError:
        if os.environ.get("JAXDL_REQUIRE_TORCH"):
            pytest.fail("torchvision is required here (JAXDL_REQUIRE_TORCH is set) but not installed")
        pytest.skip("torchvision is not installed (pip install 'jaxdl[torch]')")
    except (RuntimeError, OSError):
        resnet = resnet_module_without_extension()
    return torch, resnet


def resnet_module_without_extension():
    """torchvision's own `models.resnet`, imported without the package's __init__.

    The torchvision wheels on PyPI link their compiled ops against CUDA PyTorch; next to the CPU
    build, `import torchvision` fails registering those ops ("operator torchvision::nms does not
    exist"). The model code is plain Python and needs none of them.
    """
    for name in [name for name in sys.modules if name.split(".")[0] == "torchvision"]:
        del sys.modules[name]
    spec = importlib.util.find_spec("torchvision")
    package = types.ModuleType("torchvision")
    package.__path__, package.__spec__ = list(spec.submodule_search_locations), spec
    sys.modules["torchvision"] = package
    from torchvision.models import resnet
    return resnet


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """arch -> (.safetensors path, .pth path, input batch (NHWC), PyTorch's logits), built once per arch."""
    cache = {}

    def export(arch: str):
        if arch in cache:
            return cache[arch]
        torch, resnet = torch_and_resnets()
        from safetensors.torch import save_file as save_torch

        torch.manual_seed(0)
        model = getattr(resnet, arch)(weights=None, num_classes=CLASSES)
        with torch.no_grad():  # statistics and affine terms far from 0 and 1, so that each one matters
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.running_mean.uniform_(-0.5, 0.5)
                    module.running_var.uniform_(0.5, 2.0)
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.5, 0.5)
        model.eval()
        folder = tmp_path_factory.mktemp(arch)
        state_dict = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
        save_torch(state_dict, str(folder / f"{arch}.safetensors"))
        torch.save(state_dict, str(folder / f"{arch}.pth"))
        x = np.random.default_rng(0).uniform(0.0, 1.0, BATCH).astype(np.float32)
        with torch.no_grad():
            logits = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
        cache[arch] = (str(folder / f"{arch}.safetensors"), str(folder / f"{arch}.pth"), x, logits)
        return cache[arch]

    return export


@pytest.fixture(scope="module")
def fresh():
    """arch -> (model, fresh TrainState, jitted inference apply), built once per arch."""
    cache = {}

    def build(arch: str):
        if arch not in cache:
            model = ResNetImageNet(CLASSES, arch, input_normalization="none")
            state = create_state(model, optax.sgd(0.1), BATCH[1:], 1, classification_metrics)
            cache[arch] = (model, state, jax.jit(lambda v, x: model.apply(v, x, train=False)))
        return cache[arch]

    return build


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
@pytest.mark.parametrize("kind", ["safetensors", "pth"])
def test_imported_weights_give_pytorchs_logits(exported, fresh, arch, kind):
    safetensors_path, pth_path, x, expected = exported(arch)
    model, state, apply = fresh(arch)
    pretrained = read_imported(safetensors_path if kind == "safetensors" else pth_path, arch)
    loaded, report = initialise_from(state, pretrained)
    assert report["reinitialised"] == [] and report["unused"] == [] and report["skipped"] == []
    expected_arrays = len([n for n in torch_layout(arch) if not n.endswith("num_batches_tracked")]) + 2  # + fc
    assert report["counts"]["loaded"]["arrays"] == expected_arrays
    logits = np.asarray(apply({"params": loaded.params, "batch_stats": loaded.batch_stats}, jnp.asarray(x)))
    difference = np.max(np.abs(logits - expected))
    print(f"{arch} {kind}: max |logit difference| {difference:.3g}, max |logit| {np.max(np.abs(expected)):.3g}, "
          f"relative {difference / np.max(np.abs(expected)):.3g}")
    assert difference <= 1e-4 * np.max(np.abs(expected))
    # The fresh model is far from it: the comparison has something to find.
    assert np.max(np.abs(np.asarray(apply({"params": state.params, "batch_stats": state.batch_stats},
                                          jnp.asarray(x))) - expected)) > 0.1 * np.max(np.abs(expected))


def random_state_dict(arch: str, classes: int | None = CLASSES, seed: int = 0) -> dict[str, np.ndarray]:
    """A state dict with torchvision's (and timm's) names and shapes for `arch`, random values;
    `classes=None`: no `fc` (a feature extractor)."""
    rng = np.random.default_rng(seed)
    layout = dict(torch_layout(arch))
    if classes is not None:
        width = 512 if arch != "resnet50" else 2048
        layout.update({"fc.weight": (classes, width), "fc.bias": (classes,)})
    arrays = {name: rng.uniform(0.5, 1.5, shape).astype(np.float32) for name, shape in layout.items()}
    arrays.update({name.rsplit(".", 1)[0] + ".num_batches_tracked": np.array(7, np.int64)
                   for name in layout if name.endswith("running_var")})
    return arrays


# Names of timm's resnet50 state dict (timm/models/resnet.py: conv1, bn1, layer{1..4} of Bottleneck
# blocks with conv1..3, bn1..3 and downsample = Sequential(conv, norm), fc), as in its published files.
TIMM_RESNET50 = ("conv1.weight", "bn1.weight", "bn1.num_batches_tracked", "layer1.0.conv1.weight",
                 "layer1.0.bn3.running_var", "layer1.0.downsample.0.weight", "layer1.0.downsample.1.bias",
                 "layer2.0.conv2.weight", "layer3.5.bn2.running_mean", "layer4.2.conv3.weight", "fc.weight", "fc.bias")


def test_names_map_one_to_one_and_arrays_are_transposed(tmp_path):
    assert flax_name("conv1.weight") == ("params", ("conv1", "kernel"))
    assert flax_name("bn1.running_var") == ("batch_stats", ("bn1", "var"))
    assert flax_name("layer2.0.downsample.0.weight") == ("params", ("layer2_0", "downsample_conv", "kernel"))
    assert flax_name("layer2.0.downsample.1.weight") == ("params", ("layer2_0", "downsample_bn", "scale"))
    assert flax_name("layer4.1.bn2.running_mean") == ("batch_stats", ("layer4_1", "bn2", "mean"))
    assert flax_name("fc.weight") == ("params", ("head", "kernel"))
    layout = torch_layout("resnet50")
    assert all(name in layout or name.startswith("fc.") or name.endswith("num_batches_tracked")
               for name in TIMM_RESNET50)
    arrays = random_state_dict("resnet18")
    save_file(arrays, str(tmp_path / "w.safetensors"))
    variables = read_imported(str(tmp_path / "w.safetensors"), "resnet18").variables
    np.testing.assert_array_equal(variables["params"]["conv1"]["kernel"],
                                  arrays["conv1.weight"].transpose(2, 3, 1, 0))  # OIHW -> HWIO
    np.testing.assert_array_equal(variables["params"]["head"]["kernel"], arrays["fc.weight"].T)
    np.testing.assert_array_equal(variables["batch_stats"]["layer3_0"]["downsample_bn"]["var"],
                                  arrays["layer3.0.downsample.1.running_var"])


def test_a_timm_feature_extractor_file_loads_all_but_the_head(tmp_path, fresh):
    # timm publishes model.safetensors; with num_classes=0 it has no fc.
    path = tmp_path / "model.safetensors"
    save_file(random_state_dict("resnet18", classes=None), str(path))
    pretrained = read_imported(str(path), "resnet18", section="config.transfer")
    assert pretrained.config == {"arch": "resnet18", "format": "safetensors"}
    _, state, _ = fresh("resnet18")
    _, report = initialise_from(state, pretrained)
    assert {e["path"] for e in report["reinitialised"]} == {"params/head/kernel", "params/head/bias"}
    assert report["counts"]["loaded"]["arrays"] == len(torch_layout("resnet18")) and report["unused"] == []


def test_a_file_that_does_not_fit_is_one_input_error_listing_the_differences(tmp_path):
    arrays = random_state_dict("resnet18")
    arrays["layer3.1.conv2.weight"] = np.zeros((256, 256, 1, 1), np.float32)
    del arrays["layer4.1.bn2.running_var"]
    arrays["layer5.0.conv1.weight"] = np.zeros((1,), np.float32)
    save_file(arrays, str(tmp_path / "bad.safetensors"))
    with pytest.raises(InputError) as caught:
        read_imported(str(tmp_path / "bad.safetensors"), "resnet18", section="config.transfer")
    error = caught.value
    assert error.where == "config.transfer.source"
    assert "missing: layer4.1.bn2.running_var" in error.what
    assert "unexpected: layer5.0.conv1.weight" in error.what
    assert "shape: layer3.1.conv2.weight [256, 256, 1, 1] (expected [256, 256, 3, 3])" in error.what
    # A resnet18 file read as resnet50: the first few differences, and how many more.
    save_file(random_state_dict("resnet18"), str(tmp_path / "resnet18.safetensors"))
    with pytest.raises(InputError, match=r"does not fit torchvision/timm resnet50 \(missing: .* and \d+ more"):
        read_imported(str(tmp_path / "resnet18.safetensors"), "resnet50")


def test_pth_without_pytorch_says_how_to_install_it(tmp_path, monkeypatch):
    path = tmp_path / "weights.pth"
    path.write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    with pytest.raises(InputError, match=r"needs PyTorch.*pip install 'jaxdl\[torch\]'") as caught:
        read_imported(str(path), "resnet18")
    assert caught.value.where == "source"


def test_bad_paths_and_names(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_imported(str(tmp_path / "absent.safetensors"), "resnet18")
    (tmp_path / "weights.npz").write_bytes(b"")
    with pytest.raises(InputError, match="unknown weight file type"):
        read_imported(str(tmp_path / "weights.npz"), "resnet18")
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00")
    with pytest.raises(InputError, match="cannot read safetensors file"):
        read_imported(str(tmp_path / "cut.safetensors"), "resnet18")
    with pytest.raises(InputError, match="unknown name"):
        read_imported(str(tmp_path / "cut.safetensors"), "resnet101")
