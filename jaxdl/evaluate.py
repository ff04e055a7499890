"""Evaluation after training: metrics on a whole split, and a fingerprint of the parameters."""

from __future__ import annotations

import functools
import hashlib

import jax
import numpy as np
from jax.sharding import Mesh

from jaxdl import parallel
from jaxdl.fit import eval_batch_size_for
from jaxdl.train import TrainState, eval_batches, evaluate


def evaluate_split(state: TrainState, arrays: dict[str, np.ndarray], *, mesh: Mesh | None = None,
                   batch_size: int = 1024) -> dict[str, float]:
    """Mean metrics over every example of `arrays` ({"x", "y"} on the host), plus "count"."""
    mesh = mesh or parallel.make_mesh()
    batch_size = eval_batch_size_for(len(arrays["y"]), batch_size, mesh)
    batches = jax.device_put(eval_batches(arrays, batch_size), parallel.replicated(mesh))
    run = jax.jit(functools.partial(evaluate, batch_sharding=parallel.batch_sharded(mesh)))
    metrics = jax.device_get(run(state, batches))
    return {name: (int(value) if name == "count" else float(value)) for name, value in metrics.items()}


def params_sha256(params) -> str:
    """SHA-256 of the parameters' bytes, leaf by leaf in path order (names, dtypes, shapes included)."""
    digest = hashlib.sha256()
    leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(params))[0]
    for path, value in sorted(leaves, key=lambda item: jax.tree_util.keystr(item[0])):
        array = np.ascontiguousarray(value)
        digest.update(f"{jax.tree_util.keystr(path)}:{array.dtype}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def count_params(params) -> int:
    """Number of scalar parameters."""
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(params)))
