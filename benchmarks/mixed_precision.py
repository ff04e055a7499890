"""`model.dtype` side by side: float32, bfloat16 and float16 training of the same model, one process.

Each dtype trains the same model (the default CNN of configs/cnn.py, or with `--model mlp` the
512-512 MLP of configs/mlp.py) with jaxdl's `fit`, the same optimizer, data, batch size, epochs
and seed. Runs alternate (f32, bf16, f16, f32, ...) so machine noise hits all alike. Throughput is
the steady state: the median epoch time over epochs 2.. of every repeat (epoch 1 holds the
compilation). Also printed: the last validation accuracy and, for float16, the overflow steps.

On a CPU, bfloat16 and float16 are not faster (XLA's CPU matrix products are float32 inside, and
the casts cost); the lower dtypes are for accelerators with bfloat16 / float16 units (TPU, GPU).

    python benchmarks/mixed_precision.py [--model cnn|mlp] [--batch 64] [--epochs 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics

import jax
import ml_collections

from jaxdl.data import load
from jaxdl.models import build_model
from jaxdl.run.config import load_config
from jaxdl.train.fit import fit
from jaxdl.train.losses import classification_metrics
from jaxdl.train.optimizer import build_optimizer
from jaxdl.train.state import create_state

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
DTYPES = ("float32", "bfloat16", "float16")


def one_run(config: ml_collections.ConfigDict, splits, dtype: str, *, batch_size: int, epochs: int) -> list[dict]:
    """fit's per-epoch records of the config's model computing in `dtype`."""
    model_config = config.model.copy_and_resolve_references()
    with model_config.unlocked():
        model_config.dtype = dtype
    tx = build_optimizer(config.optimizer, steps_per_epoch=len(splits.train["y"]) // batch_size, epochs=epochs)
    state = create_state(build_model(model_config, splits.info), tx, splits.info.input_shape, 0,
                         classification_metrics)
    return fit(state, splits.train, splits.validation, epochs=epochs, batch_size=batch_size).history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("cnn", "mlp"), default="cnn")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data_dir", default="")
    args = parser.parse_args()
    config = load_config(os.path.join(CONFIGS, f"{args.model}.py"))
    splits = load(ml_collections.ConfigDict(dict(name="digits", data_dir=args.data_dir, validation_fraction=0.1,
                                                 split_seed=0, download=False)))
    runs: dict[str, list[list[dict]]] = {dtype: [] for dtype in DTYPES}
    for _ in range(args.repeats):
        for dtype in DTYPES:
            runs[dtype].append(one_run(config, splits, dtype, batch_size=args.batch, epochs=args.epochs))

    per_epoch = (len(splits.train["y"]) // args.batch) * args.batch
    print(f"{args.model} of configs/{args.model}.py, batch {args.batch}, {args.epochs} epochs x "
          f"{len(splits.train['y'])} digits, {args.repeats} alternating repeats, "
          f"{jax.device_count()} x {jax.devices()[0].device_kind}")
    rates = {}
    for dtype, histories in runs.items():
        steady = statistics.median(record["seconds"] for history in histories for record in history[1:])
        rates[dtype] = per_epoch / steady
        last = histories[-1][-1]
        overflow = sum(record.get("train_overflow_steps", 0) for record in histories[-1])
        print(f"  {dtype:<9} {rates[dtype]:>9,.0f} examples/s steady ({rates[dtype] / rates['float32']:.2f}x float32)"
              f"   val accuracy {last['val_accuracy']:.4f}"
              + (f"   overflow steps {overflow}, final loss scale {last['train_loss_scale']:g}"
                 if "train_loss_scale" in last else ""))


if __name__ == "__main__":
    main()
