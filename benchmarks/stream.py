"""`data.pipeline` memory against stream on the default CNN (configs/cnn.py) and digits, side by side.

Both train the same model with the same optimizer, batch and epochs through `fit`, in one process,
alternating (memory, stream, memory, ...) so machine noise hits both alike. Throughput is the
steady state: the median epoch time over epochs 2.. of every repeat (epoch 1 holds the
compilation). "waited" is the fraction of those epochs' time that the streamed loop spent waiting
for the next chunk to be read (an upper bound of the time the devices waited on data). The two
pipelines must end with the same parameters; the script checks it.

    python benchmarks/stream.py [--epochs 10] [--repeats 3] [--batch 64] [--chunk_steps 0]
"""

from __future__ import annotations

import argparse
import os
import statistics

import jax
import ml_collections
import optax

from jaxdl.data import load_for_pipeline
from jaxdl.models import build_model
from jaxdl.run.config import load_config
from jaxdl.train.digest import params_sha256
from jaxdl.train.feed import chunk_steps_for
from jaxdl.train.fit import fit
from jaxdl.train.losses import classification_metrics
from jaxdl.train.state import create_state

CNN_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "cnn.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--chunk_steps", type=int, default=0, help="steps per streamed chunk (0: about 16 MB)")
    parser.add_argument("--data_dir", default="")
    args = parser.parse_args()
    config = load_config(CNN_CONFIG)
    splits = {}
    for pipeline in ("memory", "stream"):
        splits[pipeline], fed = load_for_pipeline(ml_collections.ConfigDict({
            "name": "digits", "data_dir": args.data_dir, "validation_fraction": 0.1, "split_seed": 0,
            "download": False, "pipeline": pipeline}))
        assert fed == pipeline
    info = splits["memory"].info
    model = build_model(config.model, info)
    seconds = {"memory": [], "stream": []}
    waits, digests = [], {}
    for _ in range(args.repeats):
        for pipeline in ("memory", "stream"):
            state = create_state(model, optax.adam(1e-3), info.input_shape, 0, classification_metrics)
            result = fit(state, splits[pipeline].train, splits[pipeline].validation, epochs=args.epochs,
                         batch_size=args.batch, chunk_steps=args.chunk_steps)
            seconds[pipeline].append([record["seconds"] for record in result.history])
            digests[pipeline] = params_sha256(result.state.params)
            if pipeline == "stream":
                waits.append(result.data_wait_seconds)
    steps = len(splits["memory"].train["y"]) // args.batch
    chunk = chunk_steps_for(splits["stream"].train, args.batch, args.chunk_steps)
    cnn = config.model
    print(f"CNN {tuple(cnn.channels)} (batch norm, dropout {cnn.dropout}) on digits, batch {args.batch}, "
          f"{args.epochs} epochs x {steps} steps, {args.repeats} alternating repeats, "
          f"{jax.device_count()} x {jax.devices()[0].device_kind}; stream: chunks of {chunk} steps")
    rates = {}
    for pipeline, runs in seconds.items():
        steady = statistics.median(s for run in runs for s in run[1:])
        first = statistics.median(run[0] for run in runs)
        rates[pipeline] = steps * args.batch / steady
        line = f"  {pipeline:<7} {rates[pipeline]:>10,.0f} examples/s steady   first epoch (compile) {first:6.2f} s"
        if pipeline == "stream":
            waited = sum(w for run in waits for w in run[1:]) / sum(s for run in runs for s in run[1:])
            line += f"   waited on data {100 * waited:.1f}% of epochs 2..{args.epochs}"
        print(line)
    print(f"  ratio stream / memory (steady examples/s): {rates['stream'] / rates['memory']:.3f}")
    print(f"  same parameters: {digests['stream'] == digests['memory']} ({digests['memory'][:16]})")


if __name__ == "__main__":
    main()
