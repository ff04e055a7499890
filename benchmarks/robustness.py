"""What the robustness features cost, side by side, on the digits data.

    python benchmarks/robustness.py [--config configs/mlp.py[:VARIANT]] [--repeats 30]

Prints, for the config's model (min over repeats, after compiling):
  - one compiled epoch (train + validate) with nan_policy=halt and with nan_policy=skip;
  - one checkpoint save: the part that blocks training (copy off the device, SHA-256 of the state),
    and the time until the files are written;
  - the ratios: save / epoch, skip / halt.
Run from a checkout whose fit_epoch has no `skip_nonfinite` to time the code before the guard.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import os
import sys
import tempfile
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxdl import data as data_lib  # noqa: E402
from jaxdl import parallel  # noqa: E402
from jaxdl.run.config import load_config  # noqa: E402
from jaxdl.run.pipeline import build_state  # noqa: E402
from jaxdl.train.checkpoint import Checkpointer  # noqa: E402
from jaxdl.train.fit import fit_epoch, init_fit_state  # noqa: E402
from jaxdl.train.step import eval_batches  # noqa: E402


def best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        run()
        times.append(time.perf_counter() - tick)
    return min(times)


def epoch_seconds(config, splits, repeats: int, policy: str) -> tuple[float, object]:
    mesh = parallel.make_mesh()
    steps = data_lib.size(splits.train) // config.train.batch_size
    fit_state = jax.device_put(init_fit_state(build_state(config, splits.info, steps)), parallel.replicated(mesh))
    train = jax.device_put(splits.train, parallel.replicated(mesh))
    val = jax.device_put(eval_batches(splits.validation, 256), parallel.replicated(mesh))
    guarded = "skip_nonfinite" in inspect.signature(fit_epoch).parameters
    options = {"skip_nonfinite": policy == "skip"} if guarded else {}
    step = jax.jit(functools.partial(fit_epoch, batch_size=config.train.batch_size, patience=0,
                                     batch_sharding=parallel.batch_sharded(mesh),
                                     eval_sharding=parallel.batch_sharded(mesh), **options))
    state = {"now": step(fit_state, train, val)[0]}

    def run():
        state["now"], metrics = step(state["now"], train, val)
        jax.block_until_ready(metrics)

    return best_of(repeats, run), state["now"]


def save_seconds(fit_state, repeats: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as folder:
        checkpointer = Checkpointer(folder, every_epochs=1, keep=2)
        epoch = iter(range(1, 10**6))
        checkpointer.save(next(epoch), fit_state, {})  # warm-up
        checkpointer.manager.wait_until_finished()
        blocking, written = [], []
        for _ in range(repeats):
            tick = time.perf_counter()
            checkpointer.save(next(epoch), fit_state, {})
            blocking.append(time.perf_counter() - tick)
            checkpointer.manager.wait_until_finished()
            written.append(time.perf_counter() - tick)
        checkpointer.close()
    return min(blocking), min(written)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/mlp.py")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--data_dir", default="")
    args = parser.parse_args()
    config = load_config(args.config)
    if args.data_dir:
        with config.unlocked():
            config.data.data_dir = args.data_dir
    splits = data_lib.load(config.data)
    halt, fit_state = epoch_seconds(config, splits, args.repeats, "halt")
    skip, _ = epoch_seconds(config, splits, args.repeats, "skip")
    blocking, written = save_seconds(fit_state, max(5, args.repeats // 3))
    size = sum(leaf.nbytes for leaf in jax.tree.leaves(fit_state)) / 2**20
    print(f"config {args.config}: {jax.device_count()} x {jax.devices()[0].device_kind}, state {size:.1f} MiB")
    print(f"  epoch (halt)            {1e3 * halt:8.2f} ms")
    print(f"  epoch (skip)            {1e3 * skip:8.2f} ms   skip / halt = {skip / halt:.2f}")
    print(f"  save, blocking          {1e3 * blocking:8.2f} ms   / epoch = {blocking / halt:.2f}")
    print(f"  save, until written     {1e3 * written:8.2f} ms   / epoch = {written / halt:.2f}")


if __name__ == "__main__":
    main()
