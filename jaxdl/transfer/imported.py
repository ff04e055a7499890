"""Weights from PyTorch: torchvision and timm ResNet-18/34/50 state dicts for `ResNetImageNet`.

    state = jaxdl.create_state(ResNetImageNet(10, "resnet50", "imagenet"), tx, (224, 224, 3), 0, metrics_fn)
    pretrained = read_imported("resnet50.safetensors", "resnet50")
    state, report = initialise_from(state, pretrained, skip=("head",))

A `.safetensors` file is read with the safetensors library's numpy API: no pickle and no PyTorch.
A `.pth`/`.pt` state dict (as `torch.save(model.state_dict())` writes it) needs PyTorch
(`pip install 'jaxdl[torch]'`) and is read with `torch.load(..., weights_only=True)`, whose
unpickler rebuilds only tensors and plain containers and refuses any other global.

The names are converted one to one (table in `jaxdl.models.resnet_imagenet`): convolution
weights from OIHW to HWIO, the `fc` weight from (out, in) to (in, out), a batch norm's
weight/bias to scale/bias and its running_mean/running_var to `batch_stats` mean/var;
`num_batches_tracked` is dropped. timm's `resnet18`, `resnet34` and `resnet50` use torchvision's
names (`conv1`, `bn1`, `layer1.0.conv1`, ..., `layer2.0.downsample.0`, `fc`), so both read the
same way. A file without `fc` (a feature extractor, timm's num_classes=0) is accepted: the head then
keeps its fresh initialisation. Any other name or shape that does not fit the architecture is an
InputError listing the first differences; what is then loaded or re-initialised is up to
`initialise_from` and its report, as for jaxdl checkpoints.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from jaxdl.errors import InputError, check_choice
from jaxdl.models.resnet_imagenet import ARCHITECTURES, EXPANSION, STAGE_CHANNELS
from jaxdl.transfer.pretrained import Pretrained, key_name

SAFETENSORS = (".safetensors",)
PYTORCH = (".pth", ".pt", ".bin")
IGNORED = ("num_batches_tracked",)
SHOWN = 5  # differences listed per kind in an error


def torch_layout(arch: str) -> dict[str, tuple[int, ...]]:
    """{PyTorch state-dict name: shape} of torchvision's `arch` without its `fc` (whose number of
    classes is free) and without `num_batches_tracked`."""
    kind, blocks = ARCHITECTURES[arch]
    layout: dict[str, tuple[int, ...]] = {}

    def conv_bn(conv: str, bn: str, out: int, inp: int, size: int) -> None:
        layout[f"{conv}.weight"] = (out, inp, size, size)
        for leaf in ("weight", "bias", "running_mean", "running_var"):
            layout[f"{bn}.{leaf}"] = (out,)

    conv_bn("conv1", "bn1", 64, 3, 7)
    inp = 64
    for stage, (channels, count) in enumerate(zip(STAGE_CHANNELS, blocks, strict=True), 1):
        out = channels * EXPANSION[kind]
        for block in range(count):
            prefix = f"layer{stage}.{block}"
            if kind == "basic":
                convs = [(channels, inp, 3), (out, channels, 3)]
            else:
                convs = [(channels, inp, 1), (channels, channels, 3), (out, channels, 1)]
            for k, (o, i, size) in enumerate(convs, 1):
                conv_bn(f"{prefix}.conv{k}", f"{prefix}.bn{k}", o, i, size)
            if block == 0 and (inp != out or stage > 1):
                conv_bn(f"{prefix}.downsample.0", f"{prefix}.downsample.1", out, inp, 1)
            inp = out
    return layout


def flax_name(name: str) -> tuple[str, tuple[str, ...]]:
    """(collection, Flax path) of a PyTorch state-dict name: `layer1.0.downsample.1.running_mean`
    -> ("batch_stats", ("layer1_0", "downsample_bn", "mean"))."""
    parts = name.split(".")
    leaf, module = parts[-1], parts[:-1]
    if module[0].startswith("layer"):  # layer1.0.conv1 -> layer1_0/conv1
        module = [f"{module[0]}_{module[1]}", *module[2:]]
    if module[-2:] in (["downsample", "0"], ["downsample", "1"]):
        module = [*module[:-2], "downsample_conv" if module[-1] == "0" else "downsample_bn"]
    if module == ["fc"]:
        module = ["head"]
    is_norm = module[-1].startswith("bn") or module[-1] == "downsample_bn"
    renamed = {"weight": "scale" if is_norm else "kernel", "bias": "bias", "running_mean": "mean",
               "running_var": "var"}[leaf]
    return ("batch_stats" if leaf.startswith("running_") else "params"), (*module, renamed)


def convert(name: str, array: np.ndarray) -> np.ndarray:
    """A PyTorch array in Flax's layout: OIHW -> HWIO for a convolution, (out, in) -> (in, out) for fc."""
    if array.ndim == 4:
        return np.ascontiguousarray(array.transpose(2, 3, 1, 0))
    if name == "fc.weight":
        return np.ascontiguousarray(array.T)
    return array


def check_fits(state_dict: dict[str, np.ndarray], arch: str, where: str, path: str) -> None:
    """An InputError listing the first missing names, unexpected names and shape differences, if any."""
    layout = torch_layout(arch)
    width = STAGE_CHANNELS[-1] * EXPANSION[ARCHITECTURES[arch][0]]
    names = {name for name in state_dict if name.rsplit(".", 1)[-1] not in IGNORED}
    head = {name for name in names if name.startswith("fc.")}
    if head:
        classes = state_dict["fc.weight"].shape[0] if "fc.weight" in state_dict else len(state_dict["fc.bias"])
        layout.update({"fc.weight": (classes, width), "fc.bias": (classes,)})
    missing = [name for name in layout if name not in names]
    unexpected = sorted(names - set(layout))
    shapes = [f"{name} {list(np.shape(state_dict[name]))} (expected {list(layout[name])})"
              for name in layout if name in names and tuple(np.shape(state_dict[name])) != layout[name]]
    problems = [(what, items) for what, items in (("missing", missing), ("unexpected", unexpected),
                                                  ("shape", shapes)) if items]
    if not problems:
        return
    listed = "; ".join(f"{what}: " + ", ".join(items[:SHOWN]) + (f" and {len(items) - SHOWN} more"
                                                                   if len(items) > SHOWN else "")
                       for what, items in problems)
    raise InputError(where, f"does not fit torchvision/timm {arch} ({listed})", got=path,
                     expected=f"a {arch} state dict with names such as conv1.weight, layer1.0.conv1.weight, fc.weight")


def read_safetensors(path: str, where: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except Exception as error:  # noqa: BLE001 (safetensors raises several kinds for bad headers and dtypes)
        raise InputError(where, f"cannot read safetensors file ({type(error).__name__}: {error})", got=path) from error


def read_torch(path: str, where: str) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError as error:
        raise InputError(where, "reading a PyTorch .pth file needs PyTorch, which is not installed", got=path,
                         hint="pip install 'jaxdl[torch]', or convert the file to .safetensors") from error
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 (torch raises several kinds for bad archives and refused globals)
        raise InputError(where, f"cannot read PyTorch file ({type(error).__name__}: {error})", got=path) from error
    # Training checkpoints (timm's train.py, many scripts) wrap the state dict.
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise InputError(where, "is not a state dict (a dict of tensors)", got=path,
                         expected="torch.save(model.state_dict(), path)")
    return {name: (tensor.float() if tensor.is_floating_point() else tensor).numpy() for name, tensor in loaded.items()}


def read_imported(path: str, arch: str, *, section: str = "") -> Pretrained:
    """Reads a torchvision/timm ResNet state dict as a `Pretrained` for `initialise_from`.

    Args:
      path: a `.safetensors` file, or a `.pth`/`.pt`/`.bin` file written by `torch.save` (needs PyTorch).
      arch: resnet18, resnet34 or resnet50.
      section: the config section the arguments come from (e.g. "config.transfer"), so that bad input
        is reported under its key ("config.transfer.source"); "" names the arguments.

    Returns:
      A Pretrained with `variables` {"params", "batch_stats"} of numpy arrays in Flax's layout and
      names, `checkpoint` the file's absolute path, `epoch` 0, `model` "imported", `config`
      {"arch": arch, "format": "safetensors" | "pytorch"}.
    """
    where = key_name(section, "source")
    check_choice(key_name(section, "arch"), arch, ARCHITECTURES)
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(path):
        raise InputError(where, "no such file", got=path, expected="a .safetensors or .pth file")
    extension = os.path.splitext(path)[1].lower()
    if extension in SAFETENSORS:
        state_dict, kind = read_safetensors(path, where), "safetensors"
    elif extension in PYTORCH:
        state_dict, kind = read_torch(path, where), "pytorch"
    else:
        raise InputError(where, "unknown weight file type", got=path,
                         expected="a file ending in " + ", ".join(SAFETENSORS + PYTORCH))
    check_fits(state_dict, arch, where, path)
    variables: dict[str, Any] = {"params": {}, "batch_stats": {}}
    for name, array in state_dict.items():
        if name.rsplit(".", 1)[-1] in IGNORED:
            continue
        collection, flax_path = flax_name(name)
        node = variables[collection]
        for part in flax_path[:-1]:
            node = node.setdefault(part, {})
        node[flax_path[-1]] = convert(name, np.asarray(array))
    return Pretrained(variables=variables, checkpoint=path, epoch=0, model="imported", member=None,
                      config={"arch": arch, "format": kind})
