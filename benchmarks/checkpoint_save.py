"""What a checkpoint save costs the training thread: the former inline hashing against the background save.

Builds the state of the ResNet-20 variant (`configs/cnn.py:cifar10`) for CIFAR-10-shaped inputs
(a DataInfo of the set's shapes: nothing is read or downloaded; `--config` also takes a config of
the `digits` set) wrapped in a FitState, as `fit` checkpoints it, and saves it over and over,
alternating the two ways (A, B, A, B, ...) so machine noise hits both alike:

  inline      what `Checkpointer.save` did before: copy the state to the host and SHA-256 it on
              the calling thread, then hand the device state to Orbax's async save;
  background  `Checkpointer.save` now: a host copy on the calling thread; hashing, meta and the
              Orbax save on the Checkpointer's worker thread.

For each it reports the median over the repeats of the blocking part (what the training thread
waits for) and of the time until the checkpoint is completely written (`wait()` returned), and
the state's size. With `--steps N` it also times N training steps on a synthetic batch and
scales them to an epoch, for scale (compiling ResNet-20 costs tens of seconds on a CPU).

    python benchmarks/checkpoint_save.py [--repeats 15] [--steps 0] [--config configs/cnn.py:cifar10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from jaxdl.data import DataInfo
from jaxdl.run.config import load_config
from jaxdl.run.pipeline import build_state
from jaxdl.train.checkpoint import Checkpointer, library_versions, tree_digest
from jaxdl.train.fit import init_fit_state
from jaxdl.train.step import train_step

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "cnn.py:cifar10")
# The data a config may name, as shapes only: (DataInfo, training examples before the validation carve).
DATA = {"cifar10": (DataInfo(name="cifar10", task="classification", input_shape=(32, 32, 3), num_classes=10), 50_000),
        "digits": (DataInfo(name="digits", task="classification", input_shape=(8, 8, 1), num_classes=10), 1_437)}


def inline_save(checkpointer: Checkpointer, epoch: int, state, meta: dict) -> None:
    """The save as it was before the background worker: digest on the calling thread, then Orbax."""
    sha256, leaves = tree_digest(state)
    meta = {**meta, "epoch": epoch, "versions": library_versions(), "state_sha256": sha256, "state_leaves": leaves}
    args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
    checkpointer.manager.save(epoch, args=args, force=True)


def epoch_seconds(config, info: DataInfo, state, steps: int, steps_per_epoch: int) -> float:
    """Median seconds of a training step on a synthetic batch, times the steps of an epoch."""
    batch_size = config.train.batch_size
    rng = np.random.default_rng(0)
    batch = {"x": jnp.asarray(rng.normal(size=(batch_size, *info.input_shape)).astype(np.float32)),
             "y": jnp.asarray(rng.integers(0, 10, size=batch_size).astype(np.int32))}
    step = jax.jit(train_step)
    state, metrics = step(state, batch)  # compiles
    jax.block_until_ready(metrics)
    seconds = []
    for _ in range(steps):
        tick = time.perf_counter()
        state, metrics = step(state, batch)
        jax.block_until_ready(metrics)
        seconds.append(time.perf_counter() - tick)
    return statistics.median(seconds) * steps_per_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=CONFIG, help="config file[:variant] whose model is checkpointed")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=0, help="also time this many training steps (0: don't)")
    args = parser.parse_args()
    config = load_config(args.config)
    if config.data.name not in DATA:
        parser.error(f"--config: data {config.data.name!r} has no shapes here; expected one of {', '.join(DATA)}")
    info, train_size = DATA[config.data.name]
    steps_per_epoch = int(train_size * (1 - config.data.validation_fraction)) // config.train.batch_size
    state = build_state(config, info, steps_per_epoch)
    fit_state = jax.device_put(init_fit_state(state))
    jax.block_until_ready(fit_state)
    meta = {"config": json.loads(config.to_json())}
    leaves = jax.tree.leaves(fit_state)
    megabytes = sum(leaf.nbytes for leaf in leaves) / 2**20

    ways = {"inline": lambda c, e, s: inline_save(c, e, s, meta), "background": lambda c, e, s: c.save(e, s, meta)}
    blocking = {name: [] for name in ways}
    written = {name: [] for name in ways}
    with tempfile.TemporaryDirectory() as root:
        checkpointers = {name: Checkpointer(os.path.join(root, name), every_seconds=0, keep=2) for name in ways}
        for repeat in range(args.repeats + 1):  # the first round warms Orbax and the digest up, uncounted
            for name, save in ways.items():
                checkpointer = checkpointers[name]
                tick = time.perf_counter()
                save(checkpointer, repeat + 1, fit_state)
                returned = time.perf_counter()
                checkpointer.wait()
                checkpointer.manager.wait_until_finished()  # what `wait` does not cover for the inline way
                done = time.perf_counter()
                if repeat:
                    blocking[name].append(returned - tick)
                    written[name].append(done - tick)
        for checkpointer in checkpointers.values():
            checkpointer.close()
        digest = []
        host = jax.device_get(fit_state)
        for _ in range(args.repeats):
            tick = time.perf_counter()
            tree_digest(host)
            digest.append(time.perf_counter() - tick)

    def ms(values: list[float]) -> float:
        return 1000 * statistics.median(values)

    print(f"State of {args.config} ({config.model.name}): FitState of {len(leaves)} arrays, {megabytes:.2f} MB; "
          f"{args.repeats} alternating repeats, {jax.device_count()} x {jax.devices()[0].device_kind}")
    for name in ways:
        print(f"  {name:<11} blocking {ms(blocking[name]):8.1f} ms   until written {ms(written[name]):8.1f} ms")
    print(f"  SHA-256 of the host copy alone: {ms(digest):.1f} ms")
    print(f"  ratio blocking inline / background: {ms(blocking['inline']) / ms(blocking['background']):.1f}")
    print(f"  ratio until written background / inline: {ms(written['background']) / ms(written['inline']):.2f}")
    if args.steps:
        seconds = epoch_seconds(config, info, state, args.steps, steps_per_epoch)
        print(f"  an epoch ({steps_per_epoch} steps of {config.train.batch_size}) costs about {seconds:.1f} s here")


if __name__ == "__main__":
    main()
