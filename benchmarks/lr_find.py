"""Does the learning-rate finder pick a good rate? Its rate against the best of a 6-rate grid.

    python benchmarks/lr_find.py [--models mlp,cnn,rnn] [--seeds 2] [--quick]

For each model (digits MLP, digits CNN, signals RNN, each its experiment's default config with a
shorter budget): `jaxdl.lr_find` (the range test and its confirming sweep) from the run's initial
state, then the 6 grid rates and the rate found train side by side as one vmapped stack (`jaxdl.fit(...,
members=M)`: the same initial weights per seed, the same data order, the config's schedule and
patience), each for `seeds` seeds. Printed per model: the rate found, each rate's mean test accuracy
over the seeds, and the gap between the rate found and the best grid rate in accuracy points (the
finder passes when the gap is at most 0.5). `--quick`: 2 epochs and 1 seed, to see that it runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import ml_collections
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from jaxdl import data as data_lib  # noqa: E402
from jaxdl.evaluate.members import evaluate_members  # noqa: E402
from jaxdl.models import build_model  # noqa: E402
from jaxdl.run.config import load_config  # noqa: E402
from jaxdl.train.build import build_state  # noqa: E402
from jaxdl.train.fit import fit  # noqa: E402
from jaxdl.train.lr_find import lr_find  # noqa: E402
from jaxdl.train.sweep import Member  # noqa: E402

GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
# model -> (config, epochs): the experiments' own configs, with budgets a CPU runs in minutes.
MODELS = {"mlp": ("configs/mlp.py", 20), "cnn": ("configs/cnn.py", 5), "rnn": ("configs/rnn.py:signals", 6)}
GAP_POINTS = 0.5


def config_of(name: str, epochs: int) -> ml_collections.ConfigDict:
    config = load_config(os.path.join(REPO, MODELS[name][0]))
    config.train.epochs = epochs
    config.train.patience = 0
    config.train.steps_per_call = "epoch"
    return config


def measure(name: str, epochs: int, seeds: int) -> dict:
    config = config_of(name, epochs)
    splits = data_lib.load(config.data)
    info = splits.info
    steps_per_epoch = len(splits.train["y"]) // config.train.batch_size
    model = build_model(config.model, info)
    finder = ml_collections.ConfigDict(config.to_dict())
    finder.optimizer.schedule = "constant"
    tick = time.perf_counter()
    found = lr_find(build_state(finder, info, steps_per_epoch, model), splits.train, splits.validation,
                    batch_size=config.train.batch_size)
    find_seconds = time.perf_counter() - tick
    rates = [*GRID, found.rate]
    # Member (rate i, seed s) at index i * seeds + s; each seed's members start from the same weights.
    members = [Member(index=i * seeds + s, seed=config.seed + s, hyperparameters={"learning_rate": rate})
               for i, rate in enumerate(rates) for s in range(seeds)]
    stack = build_state(config, info, steps_per_epoch, model, members=members)
    result = fit(stack, splits.train, splits.validation, epochs=epochs, batch_size=config.train.batch_size,
                 members=len(rates) * seeds, steps_per_call="epoch")
    test, _ = evaluate_members(result.state, splits.test, task=info.task)
    accuracy = np.array([member["accuracy"] for member in test]).reshape(len(rates), seeds).mean(axis=1) * 100
    best = int(np.argmax(accuracy[:-1]))
    return {"model": name, "suggestion": found.suggestion, "rate": found.rate, "find_seconds": find_seconds,
            "accuracy": accuracy.tolist(), "best_grid": GRID[best],
            "gap": float(accuracy[best] - accuracy[-1])}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,cnn,rnn")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    names = args.models.split(",")
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        print(f"error: --models: unknown model (got {unknown[0]!r}, expected some of {', '.join(MODELS)})",
              file=sys.stderr)
        return 2
    print(f"device: {jax.devices()[0].device_kind}; grid {', '.join(f'{r:g}' for r in GRID)}")
    print("model  suggested  trained_at  find_s  " + "  ".join(f"{r:>7g}" for r in GRID)
          + "   found  best_grid  gap_points  pass")
    for name in names:
        epochs = 2 if args.quick else MODELS[name][1]
        row = measure(name, epochs, 1 if args.quick else args.seeds)
        accuracy = row["accuracy"]
        print(f"{name:<5}  {row['suggestion']:9.3g}  {row['rate']:10.3g}  {row['find_seconds']:6.1f}  "
              + "  ".join(f"{value:7.2f}" for value in accuracy)
              + f"  {row['best_grid']:9g}  {row['gap']:10.2f}  {'yes' if row['gap'] <= GAP_POINTS else 'no'}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
