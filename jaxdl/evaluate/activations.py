"""What each hidden layer does on a few inputs, read with Flax's intermediates (no second model).

A model that sows values into its `intermediates` collection (the MLP sows each hidden layer's
activation) is shown exactly those. A model that sows nothing is run with Flax's
`capture_intermediates=True`, which records the output of every submodule call (a CNN's Conv
layers give feature maps). Either way the result is {layer name: (n, ...)} in the order the
model produced them.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxdl import parallel
from jaxdl.train.state import TrainState

MAX_EXAMPLES = 10
HALF_PRECISION = ("bfloat16", "float16")


def representative_examples(labels: np.ndarray, num_classes: int, limit: int = MAX_EXAMPLES) -> np.ndarray:
    """Indices of the first example of each class, by class (at most `limit`); without classes, the first `limit`."""
    if not num_classes:
        return np.arange(min(limit, len(labels)))
    firsts = [np.flatnonzero(labels == k) for k in range(num_classes)]
    return np.array([found[0] for found in firsts if found.size][:limit], np.int64)


def model_intermediates(apply_fn, variables: dict, x: jax.Array) -> dict:
    """The model's sown `intermediates` for model inputs x (n, *input_shape), or every submodule's
    captured output when it sows nothing (a pytree; `named_layers` turns it into {name: array})."""
    _, sown = apply_fn(variables, x, train=False, mutable=["intermediates"])
    tree = sown.get("intermediates", {})
    if jax.tree.leaves(tree):
        return tree
    _, captured = apply_fn(variables, x, train=False, capture_intermediates=True, mutable=["intermediates"])
    tree = dict(captured.get("intermediates", {}))
    tree.pop("__call__", None)  # the model's own output: the logits, not a hidden layer
    return tree


def _intermediates(state: TrainState, x: jax.Array) -> dict:
    return model_intermediates(state.apply_fn, state.variables(), x)


intermediates_compiled = jax.jit(_intermediates)


def capture(state: TrainState, x: np.ndarray) -> dict[str, np.ndarray]:
    """Hidden activations for inputs `x` (n, *input_shape) -> {layer name: (n, ...)} in model order.

    Names are the module path, e.g. "hidden_0_out" (sown by the MLP) or "Conv_0" (captured
    output of a Conv); a value sown several times gets "#i" appended. A model computing in bfloat16
    or float16 (`model.dtype`) has its activations returned as float32. A layer that saw the frames
    of each example folded into the batch (the hybrid's frame encoder: (n * frames, ...)) is
    returned per example, (n, frames, ...).
    """
    tree = parallel.host_get(intermediates_compiled(state, np.asarray(x, np.float32)))
    return named_layers(tree, len(x))


def named_layers(tree: dict, n: int) -> dict[str, np.ndarray]:
    """`model_intermediates`' tree (on the host) for n inputs -> {layer name: (n, ...)}, named as `capture` says."""
    return {name: per_example(value, n) for name, value in _flatten(tree, ())}


def per_example(value: np.ndarray, n: int) -> np.ndarray:
    """(n * k, ...) -> (n, k, ...), for values computed with k frames per example folded into the batch."""
    if value.ndim and value.shape[0] != n and n and value.shape[0] % n == 0:
        return value.reshape((n, value.shape[0] // n, *value.shape[1:]))
    return value


def _flatten(node: Any, path: tuple[str, ...]):
    """(name, array) pairs in insertion order (jax.tree flattening would sort the names)."""
    if isinstance(node, dict) or hasattr(node, "items"):
        for key, child in node.items():
            yield from _flatten(child, path if key == "__call__" else (*path, str(key)))
    elif isinstance(node, (tuple, list)):
        for i, child in enumerate(node):
            yield from _flatten(child, path if len(node) == 1 else (*path[:-1], f"{path[-1]}#{i}"))
    else:
        value = np.asarray(node)
        # A bfloat16 or float16 model's activations: float32 for the statistics and figures.
        yield "/".join(path), value.astype(np.float32) if value.dtype.name in HALF_PRECISION else value


def describe(activations: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per layer: shape, mean, and the fraction of exact zeros (dead ReLU units show up here)."""
    return {name: {"shape": list(value.shape), "mean": float(value.mean()),
                   "zero_fraction": float(np.mean(value == 0))} for name, value in activations.items()}
