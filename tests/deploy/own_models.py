"""A research-code module, metrics function and optimizer of the kind `jaxdl.train_and_evaluate` takes
(tests/deploy/test_complete_runs.py); importable from this folder, as a user's own package is."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax


class SmallNet(nn.Module):
    """Flatten, one hidden layer, a head: the parameter names `hidden` and `head`."""

    width: int = 16
    num_outputs: int = 10
    sizes: tuple = (1,)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = x.reshape((x.shape[0], -1)).astype(self.dtype) * self.sizes[0]
        x = nn.relu(nn.Dense(self.width, dtype=self.dtype, name="hidden")(x))
        return nn.Dense(self.num_outputs, name="head")(x)


def smoothed_metrics(logits: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    """Label-smoothed cross-entropy as the loss, and accuracy; each (batch,)."""
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), 0.1)
    return {"loss": optax.softmax_cross_entropy(logits.astype(jnp.float32), targets),
            "accuracy": (jnp.argmax(logits, -1) == labels).astype(jnp.float32)}


def own_optimizer() -> optax.GradientTransformation:
    """An optimizer no config describes: clipping, then SGD with Nesterov momentum."""
    return optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1, momentum=0.9, nesterov=True))


__all__ = ["SmallNet", "own_optimizer", "smoothed_metrics"]
