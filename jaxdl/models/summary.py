"""A model's layers: each submodule's output shape and parameter count, traced (nothing is computed).

`layers(model, input_shape)` -> rows, one per module call in call order (the model itself first):

    {"layer": "hidden_0", "module": "Dense", "output": [1, 512], "params": 33280}

`params` counts the parameters under the layer's path (a block counts its sublayers'). The rows
go into summary.json (`model_summary`) and report.html; `format_layers` prints them, as
`--config.model.summary_only=true` does.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdl.models.train_argument import WithTrain, with_train_argument


def count(tree: Any) -> int:
    return int(sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree)))


def layers(model: nn.Module, input_shape: tuple[int, ...]) -> list[dict]:
    """The rows of `model` for one input of `input_shape` (batch 1), in the order the layers are called."""
    model = with_train_argument(model)
    calls: dict[tuple[str, ...], str] = {}

    def record(module: nn.Module, method: str) -> bool:
        if method == "__call__" and not isinstance(module, WithTrain):
            calls.setdefault(tuple(module.path), type(module).__name__)
        return method == "__call__"

    key = jax.random.PRNGKey(0)
    dummy = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    _, variables = jax.eval_shape(lambda x: model.init_with_output(
        {"params": key, "dropout": key}, x, train=False, capture_intermediates=record), dummy)
    params, intermediates = variables.get("params", {}), variables.get("intermediates", {})
    rows = []
    for path, module in sorted(calls.items(), key=lambda item: len(item[0]) > 0):  # the model first
        found = subtree(intermediates, path).get("__call__", ())
        output = jax.tree.leaves(found[0]) if found else []
        rows.append({"layer": "/".join(path) or "(model)", "module": module,
                     "output": list(output[0].shape) if len(output) == 1 else [list(o.shape) for o in output],
                     "params": count(subtree(params, path))})
    return rows


def subtree(tree: dict, path: tuple[str, ...]) -> dict:
    for name in path:
        tree = tree.get(name, {}) if isinstance(tree, dict) else {}
    return tree if isinstance(tree, dict) else {}


def shape_text(output: list) -> str:
    """[1, 10] -> "(1, 10)"; several outputs -> "(1, 8, 64), (1, 64)"; none recorded (a call inside a loop) -> "-"."""
    if not output:
        return "-"
    if isinstance(output[0], int):
        return str(tuple(output))
    return ", ".join(str(tuple(shape)) for shape in output)


def format_layers(rows: list[dict]) -> str:
    """A plain-text table of `layers` rows, with the total."""
    table = [("layer", "module", "output shape", "parameters")]
    table += [(row["layer"], row["module"], shape_text(row["output"]), f"{row['params']:,}") for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths,
             strict=True))) for line in table]
    total = rows[0]["params"] if rows else 0
    return "\n".join([*lines, f"total parameters: {total:,}"])
