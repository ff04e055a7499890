"""Head-only training on a frozen body: every step through the whole model, or the head on cached features.

Both train the same head of the same model from the same state with `jaxdl.run_phases` and the
head-only phase of `two_phases` (everything but `head` frozen), on the same data, batch size,
epochs and seed; the only difference is `cache_features` (False: plain training, each step runs
the model forward and backward; True: the body's features are computed once per example, then
the head trains on them, `jaxdl.transfer.features`). Runs alternate (slow, fast, slow, fast, ...) so machine
noise hits both alike. Reported per mode: the median wall time of the whole phase (compilation
and, for the cached mode, the feature pass included: what a user waits for), the median
steady-state epoch (epochs 2..), the test accuracy and the largest difference between the two heads.

Models: `cnn`, the digits CNN of configs/transfer.py (8x8 digits), without its dropout unless
`--dropout` (so both modes train the same head); `resnet18`, the ImageNet
ResNet-18 (random weights: the time does not depend on them) on the digits upscaled to
`--image-size` pixels and 3 channels.

    python benchmarks/cached_features.py [--model cnn|resnet18] [--image-size 32] [--epochs 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import jax
import ml_collections
import numpy as np

from jaxdl import data as data_lib
from jaxdl.data import load
from jaxdl.evaluate.passes import evaluate_split
from jaxdl.models import build_model
from jaxdl.run.config import load_config
from jaxdl.train.losses import classification_metrics
from jaxdl.train.optimizer import build_optimizer
from jaxdl.train.state import create_state
from jaxdl.transfer.phases import run_phases, two_phases

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def upscale(splits: data_lib.Splits, size: int) -> data_lib.Splits:
    """Digits (N, 8, 8, 1) -> (N, size, size, 3) by pixel repetition (size a multiple of 8)."""
    factor = size // 8

    def big(arrays):
        x = np.kron(arrays["x"], np.ones((1, factor, factor, 1), np.float32))
        return {**arrays, "x": np.repeat(x, 3, axis=-1)}

    info = dataclasses.replace(splits.info, input_shape=(size, size, 3))
    return data_lib.Splits(train=big(splits.train), validation=big(splits.validation), test=big(splits.test),
                           info=info)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("cnn", "resnet18"), default="cnn")
    parser.add_argument("--image-size", type=int, default=32, help="resnet18 only: a multiple of 8")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="cnn only: its dropout (the config's is 0.1; with dropout the cached mode trains "
                             "the head on clean features, so the heads differ)")
    parser.add_argument("--data-dir", default="")
    args = parser.parse_args()

    config = load_config(os.path.join(REPO, "configs", "transfer.py"))
    config.data.data_dir = args.data_dir
    splits = load(config.data)
    model_config = config.model
    model_config.dropout = args.dropout
    if args.model == "resnet18":
        splits = upscale(splits, args.image_size)
        model_config = ml_collections.ConfigDict({"name": "resnet18", "input_normalization": "imagenet"})
    model = build_model(model_config, splits.info)
    placeholder = build_optimizer(config.optimizer, steps_per_epoch=1, epochs=1)
    phases = two_phases(config.optimizer, head=("head",), head_epochs=args.epochs, epochs=0)
    print(f"{args.model}: input {splits.info.input_shape}, {len(splits.train['y'])} training examples, "
          f"batch {args.batch}, {args.epochs} head-only epochs, {args.repeats} repeats, devices {jax.devices()}")

    times: dict[str, list[float]] = {"slow": [], "fast": []}
    epochs: dict[str, list[float]] = {"slow": [], "fast": []}
    heads, accuracies = {}, {}
    for _ in range(args.repeats):
        for mode in ("slow", "fast"):
            state = create_state(model, placeholder, splits.info.input_shape, 0, classification_metrics)
            records = []
            tick = time.perf_counter()
            [result] = run_phases(state, splits.train, splits.validation, phases, batch_size=args.batch,
                                  eval_batch_size=256, cache_features=mode == "fast", on_epoch=records.append)
            jax.block_until_ready(result.state.params)
            times[mode].append(time.perf_counter() - tick)
            epochs[mode] += [r["seconds"] for r in records[1:]]
            heads[mode] = jax.device_get(result.state.params["head"]["kernel"])
            accuracies[mode] = evaluate_split(result.state, splits.test, batch_size=256)["accuracy"]

    for mode, label in (("slow", "full forward/backward"), ("fast", "cached features")):
        print(f"  {label:<22} phase {statistics.median(times[mode]):8.2f} s   steady epoch "
              f"{statistics.median(epochs[mode]):8.4f} s   test accuracy {accuracies[mode]:.4f}")
    phase = statistics.median(times["slow"]) / statistics.median(times["fast"])
    epoch = statistics.median(epochs["slow"]) / statistics.median(epochs["fast"])
    print(f"  speed-up (slow / fast): whole phase {phase:.1f}x, steady epoch {epoch:.1f}x")
    print(f"  largest |head kernel difference|: {float(np.abs(heads['slow'] - heads['fast']).max()):.2e}")


if __name__ == "__main__":
    main()
