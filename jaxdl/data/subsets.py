"""Tasks carved out of a dataset: a subset of its classes, and a budget of labels per class.

`select_classes(splits, (5, 6, 7, 8, 9))` keeps the examples of those classes in every split and
renumbers them 0..4 (in the order given), so a model for the subset has 5 outputs.
`label_budget(train, 10, seed)` keeps 10 seeded examples of each class: the few labelled examples
a new task may come with.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from jaxdl.data.splits import Arrays, DataInfo, Splits, take
from jaxdl.errors import InputError


def select_classes(splits: Splits, classes: Sequence[int], where: str = "config.data.classes") -> Splits:
    """The examples of `classes` in every split, labels renumbered 0..len(classes)-1; () keeps all."""
    if not classes:
        return splits
    info = splits.info
    if info.task != "classification":
        raise InputError(where, "needs a classification dataset", got=info.name)
    classes = [int(c) for c in classes]
    bad = [c for c in classes if not 0 <= c < info.num_classes]
    if bad or len(set(classes)) != len(classes) or len(classes) < 2:
        raise InputError(where, "bad class list", got=tuple(classes),
                         expected=f"at least 2 distinct classes in 0..{info.num_classes - 1}")
    renumber = np.full(info.num_classes, -1, np.int32)
    renumber[classes] = np.arange(len(classes), dtype=np.int32)

    def subset(arrays: Arrays) -> Arrays:
        kept = take(arrays, np.flatnonzero(renumber[arrays["y"]] >= 0))
        return {**kept, "y": renumber[kept["y"]]}

    names = tuple(info.class_names[c] for c in classes) if info.class_names else ()
    subset_info = dataclasses.replace(info, num_classes=len(classes), class_names=names)
    return Splits(train=subset(splits.train), validation=subset(splits.validation), test=subset(splits.test),
                  info=subset_info)


def label_budget(arrays: Arrays, per_class: int, seed: int, num_classes: int) -> Arrays:
    """`per_class` seeded examples of each class (0: all of them), in a seeded order.

    Raises InputError when a class has fewer examples than the budget asks for.
    """
    if per_class == 0:
        return arrays
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(num_classes):
        members = np.flatnonzero(arrays["y"] == label)
        if len(members) < per_class:
            raise InputError("config.budgets", f"class {label} has only {len(members)} training examples",
                             got=per_class, expected=f"at most {len(members)} labels per class")
        chosen.append(rng.choice(members, per_class, replace=False))
    return take(arrays, rng.permutation(np.concatenate(chosen)))


def repeat_to(arrays: Arrays, min_examples: int) -> Arrays:
    """The examples repeated whole until there are at least `min_examples`, so that a small
    labelled set still fills several batches per epoch (every example equally often)."""
    count = len(arrays["y"])
    copies = max(1, -(-min_examples // count))
    return {key: np.concatenate([value] * copies) for key, value in arrays.items()}


def common_epoch_examples(counts: Sequence[int], min_examples: int, limit: int = 4) -> int:
    """An epoch length that every labelled set of `counts` examples fills with whole copies.

    The least common multiple of the counts, times the smallest factor that reaches
    `min_examples`; when that exceeds `limit` times the larger of `min_examples` and the largest
    count, just `min_examples` (each set is then repeated to its own length, `repeat_to`). Sets
    repeated to one length train with arrays of one shape: one compiled program for them all.
    """
    multiple = math.lcm(*counts) if counts else 1
    examples = multiple * max(1, -(-min_examples // multiple))
    return examples if examples <= limit * max(min_examples, *counts, 1) else min_examples


def describe(info: DataInfo, classes: Sequence[int]) -> str:
    """E.g. "digits classes 5-9" or "fashion_mnist"."""
    if not classes:
        return info.name
    shown = (f"{min(classes)}-{max(classes)}" if list(classes) == list(range(min(classes), max(classes) + 1))
             else ",".join(map(str, classes)))
    return f"{info.name} classes {shown}"
