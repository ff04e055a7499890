"""Peak resident memory of `data.pipeline` memory and stream on a generated set of 1 GB of uint8 images.

Writes a folder of .npy arrays (`npz:DIR`: x (N, side, side, 3) uint8, y, and fixed 512-image
validation and test splits), prepares it once into ArrayRecord in a temporary data_dir, then
trains `--epochs` epochs (default 2) of a small MLP (hidden (32,), batch 256) on it through
`train_and_evaluate`, each run in a fresh subprocess that reports its own peak resident memory
(`resource.getrusage` maxrss). The memory pipeline runs on the large set; the streamed one on the
large set and on a set half as large, to show that its peak does not grow with the set's size.
Speed: the first epoch holds the compilation; images/s and the time the loop waited for the next
streamed chunk ("waited") are those of the epochs after it. "Reading alone": the streamed split's
read and decode of 4,096 random images in one thread with nothing else running (best of 3), the
cost that streaming adds to each step on the same cores.

Preparing: TFDS sorts a split's serialized examples in memory up to 1000 MiB and spills larger
ones to disk through TensorFlow (tf.io.gfile), which jaxdl does not install; uint8 tensors are
stored as raw bytes (jaxdl's `npz:` builder, `Encoding.BYTES`; before, int64 varints of about 1.5
bytes a pixel, decoded one example at a time). The preparing child (not measured)
therefore raises that in-memory limit, so the set is prepared without TensorFlow.

    python benchmarks/stream_memory.py [--gb 1.0] [--side 64] [--epochs 2] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import ml_collections
import numpy as np

HELD_OUT = 512  # validation and test images: fixed, whatever the training set's size
BLOCK = 4096


def write_set(folder: str, count: int, side: int, seed: int = 0) -> None:
    """x.npy (count, side, side, 3) uint8 written a block at a time (never whole in memory), y.npy,
    and the fixed validation and test splits. Each class is a brightness ramp plus noise."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, side, dtype=np.float32)[None, :, None, None]
    for suffix, n in (("", count), ("_validation", HELD_OUT), ("_test", HELD_OUT)):
        x = np.lib.format.open_memmap(os.path.join(folder, f"x{suffix}.npy"), mode="w+", dtype=np.uint8,
                                      shape=(n, side, side, 3))
        labels = rng.integers(0, 10, n)
        for start in range(0, n, BLOCK):
            y = labels[start:start + BLOCK]
            noise = rng.integers(0, 96, (len(y), side, side, 3), dtype=np.uint8)
            x[start:start + BLOCK] = noise + (ramp * (16 * y[:, None, None, None])).astype(np.uint8)
        x.flush()
        del x
        np.save(os.path.join(folder, f"y{suffix}.npy"), labels)


def config_for(folder: str, data_dir: str, pipeline: str, epochs: int) -> ml_collections.ConfigDict:
    from jaxdl.run.config import load_config  # noqa: PLC0415 (the parent process needs no JAX)

    config = load_config(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                                      "mlp.py"))
    with config.unlocked():
        config.data.name = f"npz:{folder}"
        config.data.data_dir = data_dir
        config.data.pipeline = pipeline
        config.model.hidden_sizes = (32,)
        config.train.epochs = epochs
        config.train.batch_size = 256
        config.eval.baseline = False
        config.eval.report = False
        config.checkpoint.every_seconds = 0.0
    return config


def child(args) -> None:
    """One run in this process; prints a JSON line with its peak resident memory."""
    from jaxdl.data.loader import open_dataset  # noqa: PLC0415
    from jaxdl.run import pipeline  # noqa: PLC0415

    results = []

    def fit(*fit_args, **kwargs):  # the run's FitResult, for its per-epoch times and waits
        results.append(pipeline_fit(*fit_args, **kwargs))
        return results[-1]

    pipeline_fit, pipeline.fit = pipeline.fit, fit
    config = config_for(args.set, args.data_dir, args.pipeline, args.epochs)
    tick = time.perf_counter()
    if args.child == "prepare":
        from tensorflow_datasets.core import shuffle  # noqa: PLC0415

        shuffle.MAX_MEM_BUFFER_SIZE = 64 << 30  # sort in memory: spilling to disk would need TensorFlow
        open_dataset(config.data)  # prepares the set into ArrayRecord
        out = {}
    else:
        with tempfile.TemporaryDirectory() as workdir:
            summary = pipeline.train_and_evaluate(config, workdir, progress=False)
        result = results[-1]
        out = {"pipeline": summary["data"]["pipeline"], "train": summary["data"]["train"],
               "epoch_seconds": [record["seconds"] for record in result.history],
               "wait_seconds": result.data_wait_seconds}
        if args.pipeline == "stream":
            out["reader_per_s"] = reader_speed(config.data)
    out.update(seconds=time.perf_counter() - tick, peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(out))


def reader_speed(data_config: ml_collections.ConfigDict, rows: int = 4096, repeats: int = 3) -> float:
    """Images/s of the streamed split's reading alone (ArrayRecord read and decode of `rows` random
    examples, in this thread, nothing else running): best of `repeats`."""
    from jaxdl.data.stream import load_for_pipeline  # noqa: PLC0415

    split = load_for_pipeline(data_config)[0].train
    indices = np.random.default_rng(0).permutation(len(split))[:rows]
    best = float("inf")
    for _ in range(repeats):
        tick = time.perf_counter()
        split.read(indices)
        best = min(best, time.perf_counter() - tick)
    return len(indices) / best


def run_child(*argv: str) -> dict:
    result = subprocess.run([sys.executable, os.path.abspath(__file__), *argv], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise SystemExit(f"error: benchmark child {argv} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="size of the large training set's pixels (10^9 bytes)")
    parser.add_argument("--side", type=int, default=64, help="images are side x side x 3 uint8")
    parser.add_argument("--dir", default="", help="where to write the sets (default: a temporary folder)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each run (the first compiles)")
    parser.add_argument("--keep", action="store_true", help="keep the sets and their ArrayRecord files")
    parser.add_argument("--child", choices=("prepare", "train"), help=argparse.SUPPRESS)
    parser.add_argument("--set", help=argparse.SUPPRESS)
    parser.add_argument("--data_dir", help=argparse.SUPPRESS)
    parser.add_argument("--pipeline", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    root = args.dir or tempfile.mkdtemp(prefix="jaxdl_stream_memory_")
    data_dir = os.path.join(root, "tfds")
    per_image = args.side * args.side * 3
    large = int(args.gb * 1e9) // per_image
    sets = {"large": (os.path.join(root, "large"), large), "half": (os.path.join(root, "half"), large // 2)}
    try:
        for folder, count in sets.values():
            if not os.path.exists(os.path.join(folder, "x.npy")):
                write_set(folder, count, args.side)
            run_child("--child", "prepare", "--set", folder, "--data_dir", data_dir, "--pipeline", "memory")
        runs = [("memory", "large"), ("stream", "large"), ("stream", "half")]
        print(f"{args.epochs} epochs of an MLP (32,) on {args.side}x{args.side}x3 uint8 images, batch 256; "
              f"validation and test {HELD_OUT} images each, held in memory by both pipelines")
        for pipeline, name in runs:
            folder, count = sets[name]
            out = run_child("--child", "train", "--set", folder, "--data_dir", data_dir, "--pipeline", pipeline,
                            "--epochs", str(args.epochs))
            assert out["pipeline"] == pipeline and out["train"] == count
            seconds, waits = out["epoch_seconds"], out["wait_seconds"]
            steady = seconds[1:] or seconds
            speed = f"epoch 1 {seconds[0]:.1f} s, then {count * len(steady) / sum(steady):>7,.0f} images/s"
            if waits:
                steady_waits = waits[1:] or waits
                speed += f", waited on data {100 * sum(steady_waits) / sum(steady):.0f}%"
            if "reader_per_s" in out:
                speed += f"; reading alone {out['reader_per_s']:,.0f} images/s on one thread"
            print(f"  {pipeline:<7} {count:>7,} images ({count * per_image / 1e9:.2f} GB uint8): "
                  f"peak resident {out['peak_mb']:>7,.0f} MB   {speed}")
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
