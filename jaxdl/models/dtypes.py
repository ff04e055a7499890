"""Compute dtypes by name: `model.dtype = "float32" | "bfloat16" | "float16"`.

Every family takes a `dtype` field: the dtype its layers compute in (Flax's `dtype=`). Parameters
are always created in float32 (`param_dtype`, Flax's default), batch-norm statistics are kept in
float32, and a family casts its outputs to float32, so the loss and the metrics are float32 whatever
the compute dtype. float16 needs dynamic loss scaling in training (`jaxdl.train.loss_scale`).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import ml_collections

from jaxdl.errors import check_choice

DTYPES: dict[str, Any] = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
DEFAULT = "float32"


def compute_dtype(config: ml_collections.ConfigDict, where: str = "config.model.dtype") -> Any:
    """The dtype that `config.dtype` names (float32 when the config has no `dtype`: runs saved before it)."""
    return DTYPES[check_choice(where, config.get("dtype", DEFAULT), DTYPES)]


def dtype_name(dtype: Any) -> str:
    """"float32", "bfloat16" or "float16" for a dtype of `DTYPES` (None, Flax's "infer it", is float32)."""
    return jnp.dtype(dtype if dtype is not None else jnp.float32).name
