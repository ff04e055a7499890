"""The TensorFlow Neural Network Playground, in JAX: a small network on a 2-D set, and pictures of it.

    python -m experiments.playground [--config configs/playground.py[:VARIANTS]] [--config.KEY=VALUE ...] \
                                    [--workdir DIR]

Writes, besides the usual workdir files: boundary.png (decision boundary with train and test
points), neurons.png (every hidden unit's output over the plane), curves.png (loss curves) and,
for a sweep, members.png (each member's boundary; the other images show the best member).
"""

from __future__ import annotations

import os
import sys

import ml_collections

from jaxdl import data as data_lib
from jaxdl.data.playground import dataset_name
from jaxdl.report import log, plane
from jaxdl.report.curves import plot_curves
from jaxdl.run import cli
from jaxdl.run.pipeline import train_and_evaluate
from jaxdl.train.sweep import member_labels, members_of, take_member

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                              "playground.py")


def load_splits(config: ml_collections.ConfigDict) -> data_lib.Splits:
    """The set that `config.data` describes (name, noise, train_fraction, num_examples, data_seed)."""
    data_config = ml_collections.ConfigDict(config.to_dict())
    data_config.name = dataset_name(config)
    return data_lib.load(data_config)


def run(config: ml_collections.ConfigDict, workdir: str, *, progress: bool = True) -> dict:
    """Trains the network (or a sweep of them) that `config` describes, draws it; returns the summary."""
    splits = load_splits(config.data)
    summary, state = train_and_evaluate(config, workdir, splits=splits, progress=progress, return_state=True)
    workdir = summary["workdir"]
    members = members_of(config)
    images = {}
    labels = member_labels(members) if members else []
    if members:
        titles = [f"{label}\ntest accuracy {entry['test']['accuracy']:.3f}"
                  for label, entry in zip(labels, summary["members"], strict=True)]
        images["members"] = plane.plot_members(state, titles, splits, os.path.join(workdir, "members.png"))
        state = take_member(state, summary["best_member"])
    best = f" (best member: {labels[summary['best_member']]})" if members else ""
    title = f"{splits.info.name}: test accuracy {summary['test']['accuracy']:.3f}{best}"
    images["boundary"] = plane.plot_boundary(state, splits, os.path.join(workdir, "boundary.png"),
                                             resolution=config.plot.resolution, title=title)
    images["neurons"] = plane.plot_neurons(state, config.model.features, os.path.join(workdir, "neurons.png"),
                                           extent=plane.plane_extent(splits))
    history = log.MetricsLog(os.path.join(workdir, "metrics.jsonl")).read()
    own = [r for r in history if r.get("member") == (summary["best_member"] if members else None)]
    images["curves"] = plot_curves([{k: v for k, v in r.items() if k != "member"} for r in own],
                                   os.path.join(workdir, "curves.png"), title=title)
    summary["images"] = {name: os.path.basename(path) for name, path in images.items()}
    log.write_json(os.path.join(workdir, "summary.json"), summary)
    return summary


if __name__ == "__main__":
    sys.exit(cli.main(run, DEFAULT_CONFIG))
