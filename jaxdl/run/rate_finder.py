"""`train.lr_find=true` in a run: the range test and its confirming sweep before training, then training
at the rate they chose (`jaxdl.train.lr_find`).

The rate found replaces `optimizer.learning_rate` in the run's config (config.json records it) and the
test's curve is kept in `lr_find.json` (summary.json's `lr_find`, the curve in report.html). A resumed
run does not search again: it trains on at the rate its checkpoint's config holds.
"""

from __future__ import annotations

import json
import sys

import ml_collections

from jaxdl import data as data_lib
from jaxdl import parallel, paths
from jaxdl.errors import InputError
from jaxdl.report import log
from jaxdl.train.build import build_state
from jaxdl.train.checkpoint import Checkpointer
from jaxdl.train.lr_find import lr_find

FILE = "lr_find.json"


def wanted(config: ml_collections.ConfigDict) -> bool:
    return bool(config.train.get("lr_find", False))


def keep_saved_rate(config: ml_collections.ConfigDict, checkpointer: Checkpointer) -> None:
    """A resumed run with `lr_find` trains on at the rate its checkpoint's config holds (the one found)."""
    found = checkpointer.latest_meta() if wanted(config) else None
    if found is None or "config" not in found[1]:
        return
    config.optimizer.learning_rate = float(found[1]["config"]["optimizer"]["learning_rate"])


def check_lr_find(config: ml_collections.ConfigDict, *, members: list, own_optimizer: bool) -> None:
    if not wanted(config):
        return
    if members:
        raise InputError("config.train.lr_find", "a sweep trains the rates of its sweep section", got=True,
                         expected="false for a config with a sweep section")
    if own_optimizer:
        raise InputError("config.train.lr_find", "needs the optimizer config.optimizer describes (its injected rate)",
                         got=True, expected="false, or no optimizer= argument")


def find_rate(config: ml_collections.ConfigDict, splits: data_lib.Splits, model, *, steps_per_epoch: int,
              per_step: bool, metrics, mesh, workdir: str, resumed: bool, quiet: bool) -> dict | None:
    """Runs the finder (or, resumed, reads what it found), sets `config.optimizer.learning_rate` to the rate
    to train at, and returns the `lr_find` record (None when `train.lr_find` is off)."""
    if not wanted(config):
        return None
    path = paths.join(workdir, FILE)
    if resumed:
        saved = paths.as_path(path)
        return json.loads(saved.read_text()) if saved.exists() else None
    if not isinstance(splits.train, dict):
        raise InputError("config.train.lr_find", "the range test runs on a training split in memory",
                         got=config.data.get("pipeline", "memory"), expected="data.pipeline=memory")
    finder = ml_collections.ConfigDict(config.to_dict())
    finder.optimizer.schedule = "constant"  # the test sets the rate itself, step by step
    finder.train.ema = 0.0
    state = build_state(finder, splits.info, steps_per_epoch, model, per_step=per_step, metrics_fn=metrics)
    found = lr_find(state, splits.train, splits.validation, batch_size=config.train.batch_size, mesh=mesh)
    config.optimizer.learning_rate = float(found.rate)
    record = found.record()
    if parallel.is_leader():
        log.write_json(path, record)
        if not quiet:
            print(describe(record), file=sys.stderr)
    return record


def describe(record: dict) -> str:
    """The lines the command line prints about the search."""
    rates = record["rates"]
    stop = f"diverged at {record['diverged_at']:.3g}" if record["diverged_at"] else "did not diverge"
    lines = [f"lr_find: range test {rates[0]:.3g} .. {rates[-1]:.3g} over {len(rates)} steps ({stop}); "
             f"suggested {record['suggestion']:.3g} ({record['rule']}; "
             f"min/10 would be {record['min_rate_over_10']:.3g})"]
    confirm = record.get("confirm")
    if confirm:
        tried = ", ".join(f"{rate:.3g}: {loss:.4f}" for rate, loss in zip(confirm["rates"], confirm["val_loss"],
                                                                          strict=True))
        lines.append(f"lr_find: confirming sweep, val loss after {confirm['epochs']} epoch(s): {tried}")
    lines.append(f"lr_find: training at learning_rate={record['rate']:.3g}")
    return "\n".join(lines)
