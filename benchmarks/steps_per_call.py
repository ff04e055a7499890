"""`train.steps_per_call` side by side: steady epoch time of 1 / 8 / epoch steps per compiled call.

The default digits CNN (configs/cnn.py: conv 32 / conv 64, batch norm, dropout, dense 128) and the
512-512 MLP, Adam, batch 64, through `fit`, in one process. Every repeat runs every setting once, in
turn (interleaved), so machine noise hits all alike; the figure is the median, over repeats, of the
median epoch time over epochs 2.. (epoch 1 holds the compilation). "lax grads" is the CNN trained
with the convolution gradients JAX derives itself (as before `jaxdl.models.conv`), in a whole-epoch
loop: what an epoch cost when `fit` compiled one `lax.scan` per epoch. Every setting of a model must
end with the same parameters (the lax-grads one excepted: other convolution arithmetic); the script
checks it. Ratios are to "epoch".

    python benchmarks/steps_per_call.py [--epochs 5] [--repeats 3] [--models cnn,mlp]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import flax.linen as nn
import optax

import jaxdl.models.cnn as cnn_module
from jaxdl.data import load
from jaxdl.models import MLP, build_model
from jaxdl.models.conv import Conv
from jaxdl.run.config import load_config
from jaxdl.train.digest import params_sha256
from jaxdl.train.fit import fit
from jaxdl.train.losses import classification_metrics
from jaxdl.train.state import create_state

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = {"cnn": (1, 8, "epoch", "lax grads"), "mlp": (1, 8, "epoch")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="cnn,mlp")
    parser.add_argument("--data_dir", default="")
    args = parser.parse_args()
    import ml_collections

    splits = load(ml_collections.ConfigDict({"name": "digits", "data_dir": args.data_dir, "validation_fraction": 0.1,
                                             "split_seed": 0, "download": False}))
    info = splits.info
    models = {"cnn": lambda: build_model(load_config(os.path.join(REPO, "configs", "cnn.py")).model, info),
              "mlp": lambda: MLP(num_outputs=10, hidden_sizes=(512, 512))}
    names = args.models.split(",")
    epochs = {(name, setting): [] for name in names for setting in SETTINGS[name]}
    digests = {}
    for _ in range(args.repeats):
        for name in names:
            for setting in SETTINGS[name]:
                cnn_module.Conv = nn.Conv if setting == "lax grads" else Conv
                state = create_state(models[name](), optax.adam(1e-3), info.input_shape, 0, classification_metrics)
                result = fit(state, splits.train, splits.validation, epochs=args.epochs, batch_size=64,
                             steps_per_call="epoch" if setting == "lax grads" else setting)
                epochs[(name, setting)].append(statistics.median(r["seconds"] for r in result.history[1:]))
                digests[(name, setting)] = params_sha256(result.state.params)
    cnn_module.Conv = Conv
    print(f"steady epoch, ms (median of {args.repeats} interleaved repeats of the median of epochs 2..{args.epochs})")
    for name in names:
        reference = statistics.median(epochs[(name, "epoch")])
        cells = [f"{setting}: {1000 * statistics.median(epochs[(name, setting)]):7.1f} ms "
                 f"({statistics.median(epochs[(name, setting)]) / reference:4.2f}x)" for setting in SETTINGS[name]]
        print(f"{name:4s} " + " | ".join(cells))
        same = {digests[(name, setting)] for setting in SETTINGS[name] if setting != "lax grads"}
        if len(same) != 1:
            sys.exit(f"error: {name}: the settings ended with different parameters: {same}")
    print("same parameters for every steps_per_call of a model: yes")


if __name__ == "__main__":
    main()
