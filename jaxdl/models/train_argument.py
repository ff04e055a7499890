"""Own modules without a `train` argument: jaxdl calls every model as `model.apply(variables, x, train=...)`.

A Flax module whose `__call__` takes no `train` (no dropout or batch norm to switch) is wrapped in
`WithTrain`, which takes the argument and ignores it. The wrapper shares the inner module's scope, so
the parameters keep their own paths ("Dense_0", not "inner/Dense_0") and a checkpoint of either reads
into the other.
"""

from __future__ import annotations

import inspect

import flax.linen as nn
import jax


def takes_train(model: nn.Module) -> bool:
    """Whether `model.__call__` accepts a `train` keyword (by name, or through **kwargs)."""
    try:
        parameters = inspect.signature(type(model).__call__).parameters
    except (TypeError, ValueError):
        return True
    return "train" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


class WithTrain(nn.Module):
    """`inner`, called with a `train` argument that it does not take (and would not use)."""

    inner: nn.Module

    def setup(self):
        nn.share_scope(self, self.inner)

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train  # the inner module behaves the same in training and evaluation
        return self.inner(x)


def with_train_argument(model: nn.Module) -> nn.Module:
    """`model` if it takes `train`, else `WithTrain(model)`."""
    return model if isinstance(model, WithTrain) or takes_train(model) else WithTrain(model)
