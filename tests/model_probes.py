"""Probing models cheaply in tests: shapes by tracing only, variables without compiling `init`.

Compiling a model's `init` costs seconds on CPU (the random initialisers), more than the tests
that only need shapes, or *some* parameters (padding checks), spend on everything else.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np


def random_variables(model: nn.Module, x, seed: int = 0, scale: float = 0.5, **init_kwargs) -> dict:
    """Variables shaped like `model.init(key, x)`: params ~ N(0, scale^2); batch-norm stats mean 0, variance 1."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, **init_kwargs))
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if "'params'" not in name:
            return np.ones(leaf.shape, leaf.dtype) if name.endswith("'var']") else np.zeros(leaf.shape, leaf.dtype)
        return (scale * rng.standard_normal(leaf.shape)).astype(leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def traced_shapes(model: nn.Module, x) -> tuple[tuple[int, ...], dict, dict]:
    """(output shape, variables' shapes, sown intermediates' shapes) of `model` on `x`, traced, not compiled."""
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
    output, state = jax.eval_shape(lambda v: model.apply(v, x, train=False, mutable=["intermediates"]), variables)
    as_shapes = lambda tree: jax.tree.map(lambda a: a.shape, tree)  # noqa: E731
    return output.shape, as_shapes(variables), as_shapes(state["intermediates"])
