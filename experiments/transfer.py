"""Transfer learning: when does starting from a pretrained model help, and by how much?

    python -m experiments.transfer [--config configs/transfer.py[:VARIANT]] [--config.source=WORKDIR|ARCH:FILE]
                                   [--config.KEY=VALUE ...] [--workdir DIR]
    python -m experiments.transfer --config configs/transfer.py:folder \
        --config.source=resnet18:resnet18.safetensors --config.data.name=folder:photos

Pretrains a model on the source task (or loads `config.source`: a jaxdl workdir, or ImageNet
weights as ARCH:FILE with ARCH resnet18, resnet34 or resnet50 and FILE a torchvision/timm
.safetensors or .pth state dict), then, for each label budget of the target task and each seed,
trains the `strategies` on the same labelled examples: from scratch, head only (pretrained body
frozen), and fine-tuned in two phases. All are tested on the target's test split. The workdir gets
`summary.json` (a row per budget in `budgets`, the learning curves in `curves`, the load report in
`transfer`), `transfer.json`, `budgets.png`, `curves.png`, and the pretraining run, if any, in
`pretrain/` (a jaxdl workdir like any other). It is a complete run of one model, the headline:
`finetune` at `curves_budget` labels per class with seed `config.seed` (summary.json's
`kept_model`), whose checkpoint is in `checkpoints/` (also readable by `jaxdl.read_pretrained` or a
later `--config.source`), whose epochs are `metrics.jsonl`, and whose `data_info.json` (the target
data), `report.html`, `drift_reference.json` and `params_sha256` let `jaxdl.load_run`, predict,
export, serve and drift use it like any run's model.

With imported weights the model is the source's architecture (`model.name` need not say it; a
different ImageNet resnet there is an error), `model.input_normalization` defaults to "imagenet"
(the model maps [0, 1] images with ImageNet's mean and std, as the weights expect), and a
`folder:` target without `data.image_size` is resized to 224x224, the weights' training size;
config.json records all three, so that whatever predicts with the model later prepares its
inputs the same way.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from experiments.transfer_figures import plot_budgets, plot_curves
from jaxdl import data as data_lib
from jaxdl import parallel
from jaxdl.data import subsets
from jaxdl.errors import InputError, check_range
from jaxdl.evaluate.passes import count_params, evaluate_split
from jaxdl.models import build_model
from jaxdl.models.resnet_imagenet import ARCHITECTURES
from jaxdl.report import log
from jaxdl.report.log import write_load_report
from jaxdl.run import cli
from jaxdl.run.pipeline import complete_run, prepare_workdir, train_and_evaluate
from jaxdl.train.checkpoint import Checkpointer
from jaxdl.train.digest import params_sha256
from jaxdl.train.losses import metrics_for_task
from jaxdl.train.optimizer import build_optimizer, check_optimizer_config
from jaxdl.train.state import create_state
from jaxdl.train.sweep import members_of
from jaxdl.transfer.imported import read_imported
from jaxdl.transfer.phases import Phase, run_phases, two_phases
from jaxdl.transfer.pretrained import format_report, initialise_from, read_pretrained

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "transfer.py")
STRATEGIES = ("scratch", "head_only", "finetune")
IMPORTED = tuple(ARCHITECTURES)  # architectures whose ImageNet weights `config.source` may name
IMAGENET_SIZE = (224, 224)  # (height, width) the torchvision and timm ImageNet weights were trained at


def check_config(config: ml_collections.ConfigDict) -> None:
    """Host-side checks of the keys only this experiment reads (before loading or compiling)."""
    check_optimizer_config(config.optimizer)
    check_optimizer_config(config.pretrain.optimizer)
    if members_of(config):
        raise InputError("config.sweep", "the transfer experiment cannot sweep: it trains its own grid of label "
                         "budgets, strategies and seeds", got=config.sweep.to_dict(),
                         expected="no sweep (config.seeds sets the seeds; sweep the source with experiments.cnn)")
    check_range("config.seeds", config.seeds, low=1, integer=True)
    check_range("config.train.epochs", config.train.epochs, low=1, integer=True)
    check_range("config.train.batch_size", config.train.batch_size, low=1, integer=True)
    check_range("config.train.min_epoch_examples", config.train.min_epoch_examples, low=1, integer=True)
    check_range("config.transfer.finetune_lr_ratio", config.transfer.finetune_lr_ratio, low=0, low_inclusive=False,
                high=1)
    check_range("config.transfer.body_lr_ratio", config.transfer.body_lr_ratio, low=0, low_inclusive=False, high=1)
    head = tuple(config.transfer.head)
    if not head or not isinstance(head[0], str) or head[0].startswith("!"):
        raise InputError("config.transfer.head", "needs patterns of the head's layers", got=head,
                         expected='a tuple such as ("head",) or ("*", "!conv_0")')
    check_range("config.transfer.head_epochs", config.transfer.head_epochs, low=0, high=config.train.epochs - 1,
                integer=True)
    if not isinstance(config.budgets, (tuple, list)) or not config.budgets:
        raise InputError("config.budgets", "wrong type", got=config.budgets, expected="a tuple such as (1, 10, 0)")
    for budget in config.budgets:
        check_range("config.budgets", budget, low=0, integer=True)
    if config.curves_budget not in config.budgets:
        raise InputError("config.curves_budget", "is not one of the budgets", got=config.curves_budget,
                         expected="one of " + ", ".join(map(str, config.budgets)))
    strategies = config.get("strategies", STRATEGIES)
    if (not isinstance(strategies, (tuple, list)) or "finetune" not in strategies or len(set(strategies)) != len(
            strategies) or not set(strategies) <= set(STRATEGIES)):
        raise InputError("config.strategies", "needs distinct strategies, fine-tuning among them", got=strategies,
                         expected="a tuple of " + ", ".join(STRATEGIES) + ' with "finetune", e.g. ("head_only", '
                                  '"finetune")')
    if not config.model.get("name"):
        raise InputError("config.source", "names no architecture, and config.model.name is empty", got=config.source,
                         expected="ImageNet weights as " + ", ".join(f"{arch}:FILE" for arch in IMPORTED)
                                  + ", or a config.model.name")
    if config.model.get("name") in IMPORTED and not config.source:
        raise InputError("config.source", f"the {config.model.name} model starts from imported weights, not from "
                         "pretraining", got="", expected=f"{config.model.name}:FILE with FILE a .safetensors or .pth "
                         "state dict (docs/transfer.md), or a jaxdl workdir")


def imported_source(source: str) -> tuple[str, str] | None:
    """(architecture, file) when `source` is "ARCH:FILE" for an ImageNet resnet; None for a jaxdl workdir or ""."""
    arch, colon, path = source.partition(":")
    if not colon or arch not in IMPORTED:
        return None
    if not path:
        raise InputError("config.source", "names no weight file", got=source,
                         expected=f"{arch}:FILE with FILE a .safetensors or .pth state dict")
    return arch, path


def with_imported_model(config: ml_collections.ConfigDict, arch: str) -> ml_collections.ConfigDict:
    """A copy of `config` whose model is `arch` with the input conventions of ImageNet weights.

    `model` becomes {"name": arch, "input_normalization": its value if set, else "imagenet", "dtype":
    its value if set, else "float32"} (another family's keys go: they describe a model the weights do
    not fit); another ImageNet resnet in `model.name` is an error. A `folder:` target without
    `data.image_size` gets (224, 224).
    """
    config = config.copy_and_resolve_references()
    name = config.model.get("name")
    if name in IMPORTED and name != arch:
        raise InputError("config.model.name", "is not the architecture of the weights in config.source", got=name,
                         expected=f'{arch}, or "" (the architecture of the weights)')
    normalization = config.model.get("input_normalization", "imagenet")
    with config.unlocked():
        config.model = ml_collections.ConfigDict({"name": arch, "input_normalization": normalization,
                                                  "dtype": config.model.get("dtype", "float32")})
        if str(config.data.name).startswith("folder:") and not tuple(config.data.get("image_size", ())):
            config.data.image_size = IMAGENET_SIZE
    return config


def pretrain(config: ml_collections.ConfigDict, workdir: str, progress: bool) -> str:
    """Trains the source model with the shared pipeline into `workdir/pretrain` (resumed if there)."""
    source = ml_collections.ConfigDict({
        "experiment": "transfer-pretrain", "seed": config.seed, "data": config.pretrain.data,
        "model": config.model, "optimizer": config.pretrain.optimizer, "train": config.pretrain.train,
        "eval": config.eval, "checkpoint": config.checkpoint})
    splits = subsets.select_classes(data_lib.load(config.pretrain.data), config.pretrain.data.classes,
                                    where="config.pretrain.data.classes")
    folder = os.path.join(workdir, "pretrain")
    train_and_evaluate(source, folder, splits=splits, progress=progress)
    return folder


def new_layers(config: ml_collections.ConfigDict, strategy: str) -> tuple[str, ...]:
    """Patterns of the layers a strategy does not load: the head, and for fine-tuning `transfer.skip` too."""
    head = tuple(config.transfer.head)
    return (*head, *config.transfer.skip) if strategy == "finetune" else head


def strategy_phases(config: ml_collections.ConfigDict, strategy: str) -> list[Phase]:
    """The training phases of a strategy, all `train.epochs` long in total."""
    epochs, head = config.train.epochs, new_layers(config, strategy)
    if strategy == "scratch":
        return [Phase("all", epochs, config.optimizer)]
    if strategy == "head_only":
        return two_phases(config.optimizer, head=head, head_epochs=epochs, epochs=0)
    return two_phases(config.optimizer, head=head, head_epochs=config.transfer.head_epochs,
                      epochs=epochs - config.transfer.head_epochs,
                      finetune_lr_ratio=config.transfer.finetune_lr_ratio,
                      body_lr_ratio=config.transfer.body_lr_ratio, keep_frozen=tuple(config.transfer.keep_frozen))


def run(config: ml_collections.ConfigDict, workdir: str, *, progress: bool = True) -> dict:
    """Pretrains (or loads) the source, trains every budget, seed and strategy; returns the summary."""
    started = time.perf_counter()
    imported = imported_source(config.source)
    if imported:
        config = with_imported_model(config, imported[0])
    check_config(config)
    strategies = tuple(config.get("strategies", STRATEGIES))
    workdir = prepare_workdir(workdir)
    log.write_config(workdir, config)
    mesh = parallel.make_mesh()
    target = subsets.select_classes(data_lib.load(config.data), config.data.classes)
    for budget in config.budgets:  # every class has enough labels: fail now, not after pretraining
        subsets.label_budget(target.train, budget, config.seed, target.info.num_classes)
    if imported:
        source = imported[1]
        pretrained = read_imported(source, imported[0], section="config")
    else:
        source = config.source or pretrain(config, workdir, progress)
        pretrained = read_pretrained(source, member=config.transfer.member, section="config.transfer")
    model = build_model(config.model, target.info)
    placeholder = build_optimizer(config.optimizer, steps_per_epoch=1, epochs=1)
    metrics_fn = metrics_for_task(target.info.task)

    def fresh(seed: int, strategy: str):
        state = create_state(model, placeholder, target.info.input_shape, seed, metrics_fn)
        if strategy == "scratch":
            return state, None
        return initialise_from(state, pretrained, skip=new_layers(config, strategy), section="config.transfer")

    loaded_report = fresh(config.seed, "finetune")[1]
    loaded_report["source"] = os.path.abspath(source)
    write_load_report(loaded_report, workdir)
    if progress:
        print("fine-tuning starts from:\n" + format_report(loaded_report), file=sys.stderr)

    counts = [budget * target.info.num_classes for budget in config.budgets if budget]
    epoch_examples = subsets.common_epoch_examples(counts, config.train.min_epoch_examples)
    runs, curves, headline = [], {}, None
    total = len(config.budgets) * config.seeds * len(strategies)
    bar = tqdm(total=total, unit="run", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    for budget in config.budgets:
        for offset in range(config.seeds):
            seed = config.seed + offset
            labelled = subsets.label_budget(target.train, budget, seed, target.info.num_classes)
            train = subsets.repeat_to(labelled, epoch_examples if budget else config.train.min_epoch_examples)
            batch_size = min(config.train.batch_size, data_lib.size(train))
            batch_size -= batch_size % mesh.devices.size
            for strategy in strategies:
                state, _ = fresh(seed, strategy)
                history = []
                results = run_phases(state, train, target.validation, strategy_phases(config, strategy),
                                     batch_size=batch_size, patience=config.train.patience,
                                     eval_batch_size=config.eval.batch_size, mesh=mesh, on_epoch=history.append,
                                     cache_features=config.transfer.get("cache_features", True))
                kept = results[-1].state
                test = evaluate_split(kept, target.test, mesh=mesh, batch_size=config.eval.batch_size)
                runs.append({"labels_per_class": budget, "seed": seed, "strategy": strategy,
                             "train_examples": data_lib.size(labelled), "steps": history[-1]["step"],
                             "test": test, "seconds": sum(r["seconds"] for r in history),
                             "cached_features": any(r.get("cached_features", False) for r in history)})
                if budget == config.curves_budget and strategy != "head_only":
                    curves.setdefault(strategy, []).append([(r["step"], r["val_accuracy"]) for r in history])
                if budget == config.curves_budget and strategy == "finetune" and offset == 0:
                    headline = (kept, results, test, history, train)
                bar.set_postfix({"budget": budget or "all", "seed": seed, strategy: f"{test['accuracy']:.3f}"},
                                    refresh=False)
                bar.update(1)
    bar.close()

    rows = budget_rows(runs, target, strategies)
    curve_summary = {name: mean_curve(lines) for name, lines in curves.items()}
    plot_budgets(rows, os.path.join(workdir, "budgets.png"), title=task_title(config, target))
    plot_curves(curve_summary, os.path.join(workdir, "curves.png"), budget=config.curves_budget,
                head_epochs=config.transfer.head_epochs)
    kept, results, test, history, labelled_train = headline
    save_model(workdir, results, config)
    summary = {
        "experiment": config.experiment,
        "workdir": workdir,
        "task": target.info.task,
        "data": {"name": target.info.name, "classes": list(config.data.classes), **target.sizes()},
        "source": {"path": os.path.abspath(source), "checkpoint": pretrained.checkpoint,
                   "data": pretrained.config.get("data", {}).get("name"),
                   **({"architecture": imported[0], "format": pretrained.config.get("format")} if imported else {})},
        "model": config.model.name,
        "model_dtype": config.model.get("dtype", "float32"),
        "num_params": count_params(kept.params),
        "headline": f"finetune, {config.curves_budget} labels per class, seed {config.seed}",
        # The model of the run: what checkpoints/ holds, and what jaxdl.load_run, predict, serve and export use.
        "kept_model": {"strategy": "finetune", "labels_per_class": config.curves_budget, "seed": config.seed,
                       "epochs": sum(r.epochs_run for r in results)},
        "test": test,
        "epochs_run": sum(r.epochs_run for r in results),
        "best_epoch": sum(r.epochs_run for r in results[:-1]) + results[-1].best_epoch,  # phases count from 0
        "train_seconds": sum(r["seconds"] for r in runs),
        "total_seconds": time.perf_counter() - started,
        "params_sha256": params_sha256(kept.params),
        "devices": parallel.describe_devices(mesh),
        "jax_version": jax.__version__,
        "budgets": rows,
        "curves": {"labels_per_class": config.curves_budget, **curve_summary},
        "transfer": {key: loaded_report[key] for key in ("checkpoint", "epoch", "model", "skip", "counts")},
        "strategies": list(strategies),
        "checkpoint": os.path.join(workdir, "checkpoints"),
        "runs": runs,
        "figures": ["budgets.png", "curves.png"],
    }
    # data_info.json of the target, metrics.jsonl and report.html of the kept model, drift_reference.json, summary.json.
    baseline_splits = data_lib.Splits(labelled_train, target.validation, target.test, target.info)
    summary = complete_run(config, workdir, target, kept, summary=summary, history=epoch_records(history), mesh=mesh,
                           review_splits=baseline_splits)
    if progress:
        print(budget_table(rows))
    return summary


def epoch_records(history: list[dict]) -> list[dict]:
    """The kept model's epoch records (of all its phases) numbered 1.. across phases, as metrics.jsonl holds them."""
    records, before, phase = [], 0, None
    for record in history:
        if record.get("phase") != phase:
            before, phase = (records[-1]["epoch"] if records else 0), record.get("phase")
        records.append({**record, "epoch": before + record["epoch"]})
    return records


def save_model(workdir: str, results: list, config: ml_collections.ConfigDict) -> None:
    """Saves the headline model (the last phase's fit state) into `workdir/checkpoints/<epochs run>`,
    with the config, as a jaxdl checkpoint: `read_pretrained(workdir)` reads it."""
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), keep=1)
    try:
        checkpointer.save(sum(r.epochs_run for r in results), results[-1].fit_state,
                          {"config": json.loads(config.to_json())})
    finally:
        checkpointer.close()


def budget_rows(runs: list[dict], target: data_lib.Splits, strategies: tuple[str, ...] = STRATEGIES) -> list[dict]:
    """One row per budget: mean and spread (sample standard deviation over seeds) per strategy run;
    `finetune_minus_scratch` when both ran."""
    rows = []
    for budget in dict.fromkeys(r["labels_per_class"] for r in runs):
        mine = [r for r in runs if r["labels_per_class"] == budget]
        examples = mine[0]["train_examples"]
        row = {"labels_per_class": budget if budget else round(examples / target.info.num_classes, 1),
               "all_labels": budget == 0, "train_examples": examples, "seeds": len({r["seed"] for r in mine})}
        for strategy in strategies:
            accuracies = np.array([r["test"]["accuracy"] for r in mine if r["strategy"] == strategy])
            row[f"{strategy}_accuracy"] = float(accuracies.mean())
            row[f"{strategy}_std"] = float(accuracies.std(ddof=1)) if len(accuracies) > 1 else 0.0
            row[f"{strategy}_min"], row[f"{strategy}_max"] = float(accuracies.min()), float(accuracies.max())
        if "scratch" in strategies:
            row["finetune_minus_scratch"] = row["finetune_accuracy"] - row["scratch_accuracy"]
        rows.append(row)
    return rows


def mean_curve(lines: list[list[tuple[int, float]]]) -> dict:
    """{"steps", "accuracy" (mean over seeds), "std"} of curves that share their steps."""
    steps = [step for step, _ in lines[0]]
    values = np.array([[value for _, value in line] for line in lines])
    return {"steps": steps, "accuracy": values.mean(axis=0).tolist(),
            "std": (values.std(axis=0, ddof=1) if len(lines) > 1 else np.zeros(len(steps))).tolist()}


def task_title(config: ml_collections.ConfigDict, target: data_lib.Splits) -> str:
    imported = imported_source(config.source)
    if imported:
        return f"{imported[0]} weights -> {subsets.describe(target.info, config.data.classes)}"
    source = subsets.describe(data_lib.DataInfo(config.pretrain.data.name, "classification", ()),
                              config.pretrain.data.classes)
    return f"{source} -> {subsets.describe(target.info, config.data.classes)}"


def budget_table(rows: list[dict]) -> str:
    """Plain-text table: labels per class, then mean ± spread of test accuracy (%) per strategy run."""
    names = {"scratch": "scratch", "head_only": "head only", "finetune": "fine-tune"}
    shown = [s for s in STRATEGIES if f"{s}_accuracy" in rows[0]]
    difference = "finetune_minus_scratch" in rows[0]
    lines = [f"  {'labels/class':>12}  " + "  ".join(f"{names[s]:>13}" for s in shown)
             + (f"  {'ft - scratch':>12}" if difference else "")]
    for row in rows:
        label = f"all ({row['labels_per_class']:g})" if row["all_labels"] else f"{row['labels_per_class']:g}"
        cells = [f"{100 * row[f'{s}_accuracy']:6.1f} ± {100 * row[f'{s}_std']:4.1f}" for s in shown]
        lines.append(f"  {label:>12}  " + "  ".join(f"{c:>13}" for c in cells)
                     + (f"  {100 * row['finetune_minus_scratch']:+12.1f}" if difference else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(cli.main(run, DEFAULT_CONFIG))
