"""A convolutional network on images (digits offline, or mnist, fashion_mnist, cifar10), 1-D signals or 3-D volumes.

    python -m experiments.cnn [--config configs/cnn.py[:VARIANT]] [--config.KEY=VALUE ...] [--workdir DIR]
"""

from __future__ import annotations

import os
import sys

import ml_collections

from jaxdl.run import cli
from jaxdl.run.pipeline import train_and_evaluate

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "cnn.py")


def run(config: ml_collections.ConfigDict, workdir: str, *, progress: bool = True) -> dict:
    """Trains and evaluates the CNN (or ResNet) that `config` describes; returns the summary."""
    return train_and_evaluate(config, workdir, progress=progress)


if __name__ == "__main__":
    sys.exit(cli.main(run, DEFAULT_CONFIG))
