"""An exponential moving average of the weights (`train.ema`), kept in the optimizer state.

`params_ema(decay)` is the last transformation of the optimizer's chain (`jaxdl.train.optimizer`):
it sees the final updates, so it knows the parameters after the step, and keeps

    ema_0 = params_0,    ema_t = ema_{t-1} + (1 - decay) * (params_t - ema_{t-1})

(the same as `decay * ema + (1 - decay) * params`, written so that a parameter that does not change,
a frozen one, keeps its average bit for bit). Living in the optimizer state, the average is in
every checkpoint (a resumed run goes on with it), is stacked and vmapped with a sweep's members,
and a step skipped for a non-finite gradient leaves it as it was.

When a state holds one, `with_ema(state)` is the state whose params are the average: validation,
early stopping's best model, the kept model (and so the test, predict, serve and export) use it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import optax

PyTree = Any


class EmaState(NamedTuple):
    """The average of the parameters, a pytree like the params."""

    ema: PyTree


def params_ema(decay: float) -> optax.GradientTransformation:
    """Leaves the updates as they are and keeps the moving average of `params + updates` (see the module)."""

    def init(params):
        return EmaState(ema=jax.tree.map(lambda p: p.copy(), params))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("params_ema needs the params passed to update")
        ema = jax.tree.map(lambda e, p, u: e + (1.0 - decay) * ((p + u) - e).astype(e.dtype),
                           state.ema, params, updates)
        return updates, EmaState(ema=ema)

    return optax.GradientTransformation(init, update)


def find_ema(opt_state: PyTree) -> PyTree | None:
    """The averaged params held somewhere in `opt_state`, or None when the optimizer keeps none."""
    found = [node for node in jax.tree.leaves(opt_state, is_leaf=lambda n: isinstance(n, EmaState))
             if isinstance(node, EmaState)]
    return found[0].ema if found else None


def with_ema(state):
    """`state` with its params replaced by their moving average, when its optimizer keeps one."""
    ema = find_ema(state.opt_state)
    return state if ema is None else state.replace(params=ema)
