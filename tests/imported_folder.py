"""ImageNet-style inputs for the transfer tests, made here: a folder of images and ResNet-18 weights.

`resnet18_safetensors` writes a state dict with torchvision's names and random values without
PyTorch (tests/transfer/test_imported.py is where real PyTorch checks the import itself).
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image


def image_folder(root, count: int = 12, size=(20, 24)) -> str:
    """root/<class>/<i>.png: two classes of noisy dark and light RGB images of different sizes."""
    rng = np.random.default_rng(0)
    for name, value in (("dark", 50), ("light", 200)):
        os.makedirs(root / name)
        for i in range(count):
            shape = (size[0] + i % 3, size[1], 3)  # sizes differ: data.image_size resizes them
            pixels = np.clip(value + rng.integers(-40, 40, size=shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return str(root)


def resnet18_safetensors(path) -> str:
    """A ResNet-18 state dict with torchvision's names and random values, written without PyTorch."""
    from safetensors.numpy import save_file

    from jaxdl.transfer.imported import torch_layout

    rng = np.random.default_rng(0)
    arrays = {}
    for name, shape in torch_layout("resnet18").items():
        if name.endswith("running_var"):
            arrays[name] = np.ones(shape, np.float32)
        elif name.endswith(("running_mean", ".bias")):
            arrays[name] = np.zeros(shape, np.float32)
        elif len(shape) == 1:
            arrays[name] = np.ones(shape, np.float32)
        else:
            arrays[name] = rng.normal(0, (2 / np.prod(shape[1:])) ** 0.5, shape).astype(np.float32)
    arrays["fc.weight"] = rng.normal(0, 0.01, (1000, 512)).astype(np.float32)
    arrays["fc.bias"] = np.zeros(1000, np.float32)
    save_file(arrays, str(path))
    return str(path)
