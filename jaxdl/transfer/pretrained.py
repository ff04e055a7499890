"""Transfer learning: start a new model from the parameters of a trained one.

    state = jaxdl.create_state(model, tx, input_shape, seed, metrics_fn)       # fresh initialisation
    state, report = jaxdl.load_pretrained(state, "runs/cnn-source", skip=("head",))
    print(jaxdl.format_report(report))

`load_pretrained` reads a jaxdl checkpoint (a workdir, its `checkpoints/` folder, or one
checkpoint in it) without needing the optimizer or the model that wrote it: only the saved
parameters and batch-norm statistics are restored, as plain arrays, through Orbax. Every array
of the new model whose path (`jaxdl.train.paths`) and shape match one in the checkpoint is copied;
the others keep their fresh initialisation, typically a head whose number of classes changed.
Patterns in `skip` keep matching arrays fresh on purpose. The report lists what was loaded,
skipped and re-initialised, and what in the checkpoint went unused. A checkpoint in which nothing
matches the model is an InputError: it cannot be what the person meant.

Freezing, per-group rates and the two-phase schedule are in `jaxdl.transfer.phases`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from jaxdl.errors import InputError
from jaxdl.train import paths
from jaxdl.train.checkpoint import CheckpointReader
from jaxdl.train.state import TrainState

COLLECTIONS = ("params", "batch_stats")
WHICH = ("final", "best", "last")


@dataclasses.dataclass
class Pretrained:
    """Arrays read from a checkpoint.

    Attributes:
      variables: {"params": tree, "batch_stats": tree} of numpy arrays.
      checkpoint: the checkpoint folder they were read from (`.../checkpoints/<epoch>`).
      epoch: that checkpoint's epoch.
      model: "best" (the early-stopping best) or "last" (the state at `epoch`).
      member: the sweep member taken from a stacked checkpoint (None: not a sweep).
      config: the config the checkpoint was saved with ({} if none was saved).
    """

    variables: dict[str, Any]
    checkpoint: str
    epoch: int
    model: str
    member: int | None
    config: dict


def key_name(section: str, argument: str) -> str:
    """What bad input is reported under: the argument's name, or its config key within `section`."""
    return f"{section}.{argument}" if section else argument


def find_checkpoint(source: str, epoch: int | None = None, section: str = "") -> str:
    where = key_name(section, "source")
    """The checkpoint folder that `source` names: a workdir, a `checkpoints/` folder (its newest, or
    `epoch`), or one checkpoint folder."""
    source = os.path.abspath(os.path.expanduser(source))
    if not os.path.isdir(source):
        raise InputError(where, "no such directory", got=source, expected="a jaxdl workdir or checkpoint folder")
    if os.path.isdir(os.path.join(source, "state")):
        return source
    folder = os.path.join(source, "checkpoints") if os.path.isdir(os.path.join(source, "checkpoints")) else source
    # Complete checkpoints only (a run training there writes `<epoch>.orbax-checkpoint-tmp-*`), read-only.
    epochs = [epoch for epoch in CheckpointReader(folder).epochs()
              if os.path.isdir(os.path.join(folder, str(epoch), "state"))]
    if not epochs:
        raise InputError(where, "holds no jaxdl checkpoint", got=source,
                         expected="a workdir with checkpoints/, a checkpoints/ folder, or one checkpoint in it")
    if epoch is not None and epoch not in epochs:
        raise InputError(where, f"has no checkpoint of epoch {epoch}", got=source,
                         expected="one of " + ", ".join(map(str, epochs)))
    return os.path.join(folder, str(epochs[-1] if epoch is None else epoch))


def read_pretrained(source: str, *, epoch: int | None = None, which: str = "final", member: int = -1,
                    section: str = "") -> Pretrained:
    """Reads the parameters and batch-norm statistics of a jaxdl checkpoint, as numpy arrays.

    Args:
      source: a workdir, its `checkpoints/` folder, or one checkpoint folder.
      epoch: which checkpoint of a `checkpoints/` folder (default: the newest).
      which: "final": the model the run kept (the best one if it used early stopping, as in its
        summary.json), "best" or "last".
      member: for a sweep checkpoint (a stack of runs), the member to take; -1 = the sweep's best
        member as recorded in the workdir's summary.json.
      section: the config section these arguments come from (e.g. "config.transfer"), so that bad
        input is reported under the config key ("config.transfer.source"); "" names the arguments.
    """
    if which not in WHICH:
        raise InputError("which", "unknown choice", got=which, expected="one of " + ", ".join(WHICH))
    where = key_name(section, "source")
    path = find_checkpoint(source, epoch, section)
    handler = ocp.PyTreeCheckpointHandler()
    try:
        tree = handler.metadata(epath.Path(path) / "state").tree
    except Exception as error:  # noqa: BLE001 (Orbax raises several kinds for unreadable metadata)
        raise InputError(where, f"cannot read checkpoint ({type(error).__name__}: {error})", got=path) from error
    if not isinstance(tree, dict) or not isinstance(tree.get("train"), dict) or "params" not in tree["train"]:
        raise InputError(where, "is not a jaxdl training checkpoint (no train.params)", got=path)
    config = read_config(path)
    model = resolve_which(which, config)
    train = tree["train"]
    wanted = {"train": {"params": train["params"], "batch_stats": train.get("batch_stats", {})}}
    if model != "last":
        early = tree.get("early", {})
        wanted["early"] = {"best_params": early["best_params"], "best_batch_stats": early["best_batch_stats"],
                           "best_epoch": early["best_epoch"]}
    arrays = restore_subtree(handler, epath.Path(path) / "state", wanted, where)
    chosen = pick_member(path, member, tree["epoch"].shape[0], section) if len(tree["epoch"].shape) == 1 else None
    if chosen is not None:
        arrays = jax.tree.map(lambda a: a[chosen], arrays)
    if model == "final":
        model = "best" if int(arrays["early"]["best_epoch"]) > 0 else "last"
    variables = ({"params": arrays["early"]["best_params"], "batch_stats": arrays["early"]["best_batch_stats"]}
                 if model == "best" else arrays["train"])
    return Pretrained(variables=variables, checkpoint=path, epoch=int(os.path.basename(path)), model=model,
                      member=chosen, config=config)


def read_config(path: str) -> dict:
    """The config saved in a checkpoint's `meta` item ({} when there is none)."""
    if not os.path.isdir(os.path.join(path, "meta")):
        return {}
    meta = ocp.JsonCheckpointHandler().restore(epath.Path(path) / "meta")  # reads only (no Checkpointer)
    return meta.get("config", {}) if isinstance(meta, dict) else {}


def resolve_which(which: str, config: dict) -> str:
    """ "final" stays "final" (decided on the best epoch) when the run used early stopping, else "last"."""
    if which != "final":
        return which
    patience = config.get("train", {}).get("patience", 0)
    return "final" if patience and patience > 0 else "last"


def restore_subtree(handler: ocp.PyTreeCheckpointHandler, path: epath.Path, wanted: dict, where: str) -> dict:
    """Restores only the leaves of `wanted` (metadata leaves) from the `state` item, as numpy arrays."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), wanted)
    args = ocp.args.PyTreeRestore(target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
                                  partial_restore=True)
    try:
        restored = handler.restore(path, args=args)
    except Exception as error:  # noqa: BLE001 (TensorStore raises several kinds for missing or cut files)
        raise InputError(where, f"cannot read checkpoint arrays ({type(error).__name__})", got=path) from error
    return jax.tree.map(np.asarray, restored)


def pick_member(path: str, member: int, count: int, section: str) -> int:
    where, member_where = key_name(section, "source"), key_name(section, "member")
    """The sweep member to read: `member`, or with -1 the `best_member` of the workdir's summary.json."""
    if member == -1:
        summary = os.path.join(os.path.dirname(os.path.dirname(path)), "summary.json")
        best = json.load(open(summary)).get("best_member") if os.path.exists(summary) else None
        if best is None:
            raise InputError(where, f"is a sweep of {count} members and its summary.json names no best member",
                             got=path, expected=f"a member index ({member_where})")
        member = int(best)
    if not 0 <= member < count:
        raise InputError(member_where, "out of range", got=member, expected=f"0..{count - 1}")
    return member


def match_variables(target: dict[str, Any], source: dict[str, Any], *,
                    skip: tuple[str, ...] = (), section: str = "") -> tuple[dict[str, Any], dict]:
    """Copies the source arrays that fit `target`, a whole layer at a time.

    An array is copied when its collection and path are in the source with the same shape, and so
    are all the other arrays of its layer (kernel and bias, scale, bias and statistics of a norm):
    a layer is never half loaded, e.g. a head with as many classes but a wider input keeps its
    fresh bias too.

    Args:
      target: {"params": tree, "batch_stats": tree} of the new model (its fresh initialisation).
      source: the same of the trained model (e.g. `Pretrained.variables`).
      skip: path patterns (`jaxdl.train.paths`, matched within each collection) not to load.

    Returns:
      (variables, report): `target` with the matching arrays replaced (cast to the target's
      dtype), and {"loaded", "skipped", "reinitialised", "unused"}: lists of
      {"path": "params/conv_0/kernel", "shape": [...]}; a re-initialised entry has a "reason".
    """
    mine = {c: paths.leaves_by_path(target.get(c, {})) for c in COLLECTIONS}
    theirs = {c: paths.leaves_by_path(source.get(c, {})) for c in COLLECTIONS}
    paths.check_patterns(key_name(section, "skip"), skip, [name for c in COLLECTIONS for name in mine[c]])
    reasons, layer_reasons = {}, {}
    for collection in COLLECTIONS:
        for name, fresh in mine[collection].items():
            saved = theirs[collection].get(name)
            if paths.selected(name, skip):
                continue
            if saved is None:
                reasons[collection, name] = "not in the checkpoint"
            elif np.shape(saved) != np.shape(fresh):
                reasons[collection, name] = f"checkpoint shape {list(np.shape(saved))}"
            else:
                continue
            layer_reasons.setdefault(layer_of(name), f"{collection}/{name} does not match")
    report: dict[str, list] = {"loaded": [], "skipped": [], "reinitialised": [], "unused": []}
    variables = {}
    for collection in COLLECTIONS:
        values = {}
        for name, fresh in mine[collection].items():
            entry = {"path": f"{collection}/{name}", "shape": list(np.shape(fresh))}
            values[name] = fresh
            if paths.selected(name, skip):
                report["skipped"].append(entry)
            elif layer_of(name) in layer_reasons:
                reason = reasons.get((collection, name), f"its layer: {layer_reasons[layer_of(name)]}")
                report["reinitialised"].append({**entry, "reason": reason})
            else:
                values[name] = np.asarray(theirs[collection][name]).astype(np.asarray(fresh).dtype)
                report["loaded"].append(entry)
        report["unused"] += [{"path": f"{collection}/{name}", "shape": list(np.shape(value))}
                             for name, value in theirs[collection].items() if name not in mine[collection]]
        if collection in target:
            variables[collection] = paths.tree_from_paths(target[collection], values)
    return variables, report


def layer_of(path: str) -> str:
    """The layer that owns an array: its path without the last name."""
    return path.rsplit("/", 1)[0]


def load_pretrained(state: TrainState, source: str, *, skip: tuple[str, ...] = (), epoch: int | None = None,
                    which: str = "final", member: int = -1,
                    section: str = "") -> tuple[TrainState, dict]:
    """`state` with the parameters and batch-norm statistics of checkpoint `source` that fit it.

    See `read_pretrained` for `source`, `epoch`, `which` and `member`, and `initialise_from` for
    `skip`, the report and the errors.
    """
    pretrained = read_pretrained(source, epoch=epoch, which=which, member=member, section=section)
    state, report = initialise_from(state, pretrained, skip=skip, section=section)
    return state, {"source": os.path.abspath(source), **report}


def initialise_from(state: TrainState, pretrained: Pretrained, *, skip: tuple[str, ...] = (),
                    section: str = "") -> tuple[TrainState, dict]:
    """`state` with the arrays of `pretrained` that fit it (`match_variables`), and the report.

    The optimizer state is initialised afresh for the new parameters. The report is
    `match_variables`'s plus the checkpoint, its epoch, the model taken, the skip patterns and
    counts. Raises InputError when no layer of the checkpoint matches the model.
    """
    target = {"params": state.params, "batch_stats": state.batch_stats}
    variables, report = match_variables(target, pretrained.variables, skip=skip, section=section)
    if not any(entry["path"].startswith("params/") for entry in report["loaded"]):
        mismatched = [e for e in report["reinitialised"]
                      if e["path"].startswith("params/") and e["reason"].startswith("checkpoint shape")]
        example = max(mismatched, key=lambda e: len(e["shape"]), default=None)  # a kernel says more than a bias
        raise InputError(key_name(section, "source"), "no layer of the checkpoint matches this model (path and shape)",
                         got=f"{pretrained.checkpoint} with layers {layer_names(pretrained.variables['params'])}",
                         expected=f"layers such as the model's {layer_names(state.params)}",
                         hint=(f"e.g. {example['path']} has {example['reason']}, the model's is {example['shape']}"
                               if example else "check the skip patterns and the model config"))
    report = {"checkpoint": pretrained.checkpoint, "epoch": pretrained.epoch, "model": pretrained.model,
              "member": pretrained.member, "skip": list(skip), "counts": counts(report), **report}
    params = jax.tree.map(jax.numpy.asarray, variables["params"])
    batch_stats = jax.tree.map(jax.numpy.asarray, variables.get("batch_stats", {}))
    return state.replace(params=params, batch_stats=batch_stats, opt_state=state.tx.init(params)), report


def layer_names(tree: Any) -> str:
    names = paths.top_level_names(list(paths.leaves_by_path(tree)))
    return ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")


def counts(report: dict) -> dict[str, dict[str, int]]:
    """{kind: {"arrays": n, "values": total size}} for loaded, skipped, reinitialised, unused."""
    return {kind: {"arrays": len(report[kind]), "values": int(sum(np.prod(e["shape"]) for e in report[kind]))}
            for kind in ("loaded", "skipped", "reinitialised", "unused")}


def format_report(report: dict) -> str:
    """A few lines for the terminal: what was loaded, skipped, re-initialised and left unused, by layer."""
    lines = [f"transfer from {report['checkpoint']} (epoch {report['epoch']}, {report['model']} model"
             + (f", sweep member {report['member']})" if report.get("member") is not None else ")")]
    for kind in ("loaded", "skipped", "reinitialised", "unused"):
        entries = report[kind]
        layers = list(dict.fromkeys(e["path"].split("/", 1)[0] + "/" + e["path"].split("/")[1] for e in entries))
        reasons = sorted({e["reason"] for e in entries if "reason" in e})
        shown = ", ".join(layers) if layers else "-"
        detail = f" ({'; '.join(reasons)})" if reasons else ""
        lines.append(f"  {kind:<13} {report['counts'][kind]['arrays']:>3} arrays "
                     f"{report['counts'][kind]['values']:>10,} values  {shown}{detail}")
    return "\n".join(lines)
