"""Model variables without running `init`: shapes from `jax.eval_shape`, values from numpy.

Compiling a model's `init` costs seconds on CPU (the random initialisers), more than the tests
that only need *some* parameters (shape and padding checks) spend on everything else.
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
