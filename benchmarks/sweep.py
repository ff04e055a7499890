"""A sweep trained as one vmapped program against the same members trained one after another.

    python benchmarks/sweep.py [--config configs/playground.py[:VARIANTS]] [--config.KEY=VALUE ...]

Both sides run in this one process, through `jaxdl.train.fit.fit` (no checkpoints, no files), for the
same number of epochs (patience 0). Each sequential run compiles its own epoch program, as
separate runs would. Printed: wall time including compilation, steady-state time per epoch
(the median epoch after the first; for the solo runs, the sum over members), the speedups, and
each member's relative test-loss difference between the sweep and its solo run.

Defaults (overridable): the playground network on the spiral set, 4 learning rates x 2 seeds, 100 epochs.
"""

from __future__ import annotations

import importlib
import os
import statistics
import sys
import time

import jax
import ml_collections

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from jaxdl import data as data_lib  # noqa: E402
from jaxdl import parallel  # noqa: E402
from jaxdl.evaluate.members import evaluate_members  # noqa: E402
from jaxdl.evaluate.passes import evaluate_split  # noqa: E402
from jaxdl.run import cli  # noqa: E402
from jaxdl.run.pipeline import build_state  # noqa: E402
from jaxdl.train.fit import fit  # noqa: E402
from jaxdl.train.sweep import Member, member_labels, members_of  # noqa: E402

DEFAULT_ARGS = ["--config", os.path.join(REPO, "configs", "playground.py:spiral"), "--config.train.epochs=100",
                "--config.sweep.seeds=2", "--config.sweep.learning_rate=(0.001,0.003,0.01,0.03)"]


def load_splits(config: ml_collections.ConfigDict) -> data_lib.Splits:
    """The experiment's own loader when it has one (the playground builds its data name), else `load`."""
    module = importlib.import_module(f"experiments.{config.experiment}")
    return module.load_splits(config.data) if hasattr(module, "load_splits") else data_lib.load(config.data)


def solo_config(config: ml_collections.ConfigDict, member: Member) -> ml_collections.ConfigDict:
    """The config of one member as a run of its own."""
    solo = ml_collections.ConfigDict(config.to_dict())
    solo.seed = member.seed
    for name, value in member.hyperparameters.items():
        solo.optimizer[name] = value
    solo.sweep = ml_collections.ConfigDict({"seeds": 1})
    return solo


def timed_fit(config, splits, mesh, members: list[Member]) -> tuple[object, float, list[float]]:
    """Trains (a stack of `members`, or one run when []) -> (result, wall seconds, epoch seconds)."""
    steps = data_lib.size(splits.train) // config.train.batch_size
    state = build_state(config, splits.info, steps, members=members)
    start = time.perf_counter()
    result = fit(state, splits.train, splits.validation, epochs=config.train.epochs,
                 batch_size=config.train.batch_size, patience=0, eval_batch_size=config.eval.batch_size,
                 mesh=mesh, members=len(members))
    jax.block_until_ready(result.state)
    return result, time.perf_counter() - start, [record["seconds"] for record in result.history]


def steady(epoch_seconds: list[float]) -> float:
    return statistics.median(epoch_seconds[1:]) if len(epoch_seconds) > 1 else epoch_seconds[0]


def main(argv: list[str]) -> None:
    config, _, _, _ = cli.parse_args(DEFAULT_ARGS + argv, os.path.join(REPO, "configs", "playground.py"))
    members = members_of(config)
    if not members:
        raise SystemExit("the config asks for no sweep: set --config.sweep.seeds or a --config.sweep.<value> tuple")
    mesh = parallel.make_mesh()
    splits = load_splits(config)
    device = parallel.describe_devices(mesh)
    print(f"{config.experiment} on {splits.info.name}: {len(members)} members "
          f"({', '.join(member_labels(members))}), {config.train.epochs} epochs, "
          f"{data_lib.size(splits.train)} training examples, batch {config.train.batch_size}, "
          f"{device['count']} x {device['kind']}")

    solo_seconds, solo_epochs, solo_losses = 0.0, 0.0, []
    for member in members:
        solo = solo_config(config, member)
        result, seconds, epochs = timed_fit(solo, splits, mesh, [])
        solo_seconds += seconds
        solo_epochs += steady(epochs)
        solo_losses.append(evaluate_split(result.state, splits.test, mesh=mesh)["loss"])
    result, sweep_seconds, epochs = timed_fit(config, splits, mesh, members)
    sweep_epoch = steady(epochs)
    sweep_losses = [m["loss"] for m in evaluate_members(result.state, splits.test, task=splits.info.task,
                                                        mesh=mesh)[0]]
    differences = [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(sweep_losses, solo_losses, strict=True)]

    rows = [("sequential solo runs", solo_seconds, solo_epochs), ("one vmapped sweep", sweep_seconds, sweep_epoch)]
    print(f"{'':<22}{'wall s (with compile)':>24}{'s per epoch (steady)':>24}")
    for name, seconds, per_epoch in rows:
        print(f"{name:<22}{seconds:>24.2f}{per_epoch:>24.5f}")
    print(f"{'speedup':<22}{solo_seconds / sweep_seconds:>23.1f}x{solo_epochs / sweep_epoch:>23.1f}x")
    print("test loss of each member, sweep vs its solo run (relative difference): "
          + ", ".join(f"{label}: {d:.1e}" for label, d in zip(member_labels(members), differences, strict=True)))
    # The programs differ only in float rounding (batched vs single matmuls); a member whose
    # training is chaotic (a high learning rate, many epochs) can amplify that into a visible gap.
    print(f"members within 1e-3: {sum(d <= 1e-3 for d in differences)} of {len(members)}")


if __name__ == "__main__":
    main(sys.argv[1:])
