"""Fingerprints of pytrees: the SHA-256 of their bytes and the dtype[shape] of each leaf.

`params_sha256` names a trained model in summary.json (same seed, same bytes); checkpoints store
both fingerprints of the state they hold and check them when read back.
"""

from __future__ import annotations

import hashlib
from typing import Any

import jax
import numpy as np

from jaxdl import parallel


def params_sha256(params) -> str:
    """SHA-256 of the parameters' bytes, leaf by leaf in path order (names, dtypes, shapes included)."""
    digest = hashlib.sha256()
    leaves = jax.tree_util.tree_flatten_with_path(parallel.host_get(params))[0]
    for path, value in sorted(leaves, key=lambda item: jax.tree_util.keystr(item[0])):
        array = np.ascontiguousarray(value)
        digest.update(f"{jax.tree_util.keystr(path)}:{array.dtype}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def leaf_specs(tree: Any) -> dict[str, str]:
    """{leaf path: "dtype[shape]"} of a pytree of arrays or shape-dtype structs, without reading values."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): f"{np.dtype(leaf.dtype)}{list(leaf.shape)}" for path, leaf in leaves}
