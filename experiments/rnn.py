"""A recurrent network on sequences: digits row by row offline, 1-D signals, the adding problem, or text as bytes.

    python -m experiments.rnn [--config configs/rnn.py[:VARIANT]] [--config.KEY=VALUE ...] [--workdir DIR]
"""

from __future__ import annotations

import os
import sys

import ml_collections

from jaxdl.run import cli
from jaxdl.run.pipeline import train_and_evaluate

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "rnn.py")


def run(config: ml_collections.ConfigDict, workdir: str, *, progress: bool = True) -> dict:
    """Trains and evaluates the RNN that `config` describes; returns the summary."""
    return train_and_evaluate(config, workdir, progress=progress)


if __name__ == "__main__":
    sys.exit(cli.main(run, DEFAULT_CONFIG))
