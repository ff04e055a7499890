"""Model families as Flax Linen modules, built from `config.model` by name; `Conv`, `Dense` and `Dropout`:
Flax's layers (same fields, same bits) as jaxdl's models use them, for a module of one's own
(`jaxdl.models.conv`: convolution gradients fast inside a compiled loop; `jaxdl.models.flat_random`:
random draws that compile faster)."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import ml_collections

from jaxdl.data import DataInfo
from jaxdl.errors import check_choice
from jaxdl.models import cnn, hybrid, mlp, playground, resnet, resnet_imagenet, rnn
from jaxdl.models.activations import ACTIVATIONS, get_activation
from jaxdl.models.cnn import CNN
from jaxdl.models.conv import Conv
from jaxdl.models.flat_random import Dense, Dropout
from jaxdl.models.hybrid import Hybrid
from jaxdl.models.mlp import MLP
from jaxdl.models.resnet import ResNet
from jaxdl.models.resnet_imagenet import ResNetImageNet
from jaxdl.models.rnn import RNN

# name -> from_config(model_config, data_info) -> nn.Module
FAMILIES: dict[str, Callable[[ml_collections.ConfigDict, DataInfo], nn.Module]] = {
    "mlp": mlp.from_config,
    "playground": playground.from_config,
    "cnn": cnn.from_config,
    "resnet": resnet.from_config,
    "resnet18": resnet_imagenet.from_config,
    "resnet34": resnet_imagenet.from_config,
    "resnet50": resnet_imagenet.from_config,
    "rnn": rnn.from_config,
    "hybrid": hybrid.from_config,
}


def build_model(config: ml_collections.ConfigDict, info: DataInfo) -> nn.Module:
    """The Linen module that `config.name` names, sized for the data described by `info`."""
    return FAMILIES[check_choice("config.model.name", config.name, FAMILIES)](config, info)


__all__ = ["ACTIVATIONS", "CNN", "FAMILIES", "MLP", "RNN", "Conv", "Dense", "Dropout", "Hybrid", "ResNet",
           "ResNetImageNet", "build_model", "get_activation"]
