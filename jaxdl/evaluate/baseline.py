"""The simpler model a network must beat: no hidden layer, same data, same training budget.

For classification that is softmax regression, for regression linear regression: the MLP with
`hidden_sizes=()`, started from zero, trained with the run's optimizer, epochs, batch size and
early stopping, and tested on the same test split. If depth paid off, the network's test figures are better.

Non-finite losses or gradients follow the run's `train.nan_policy` (`jaxdl.train.nonfinite`), but a
diverged baseline does not end the run: training stops after the epoch that broke the policy, a
`warning:` line says so, and the baseline's summary entry says `"diverged": true` instead of giving
test figures.
"""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh

from jaxdl import parallel
from jaxdl.data import Splits
from jaxdl.data.splits import size
from jaxdl.evaluate.passes import count_params, evaluate_split
from jaxdl.models.mlp import MLP
from jaxdl.train import nonfinite
from jaxdl.train.fit import FitState, eval_batch_size_for, final_state, fit_epoch, init_fit_state
from jaxdl.train.losses import metrics_for_task
from jaxdl.train.optimizer import build_optimizer
from jaxdl.train.state import TrainState
from jaxdl.train.step import eval_batches

log = logging.getLogger("jaxdl")


def baseline_name(task: str) -> str:
    return "softmax regression" if task == "classification" else "linear regression"


def is_baseline_model(config: ml_collections.ConfigDict) -> bool:
    """True when the configured model already is the baseline (an MLP with no hidden layer)."""
    return config.model.name == "mlp" and tuple(config.model.get("hidden_sizes", (0,))) == ()


def zero_state(model: MLP, tx: optax.GradientTransformation, input_shape: tuple[int, ...], seed: int,
               metrics_fn) -> TrainState:
    """A TrainState like `create_state`'s, with all parameters zero.

    Softmax (and linear) regression is convex, so zeros are the usual start; they also spare
    compiling the random-normal initialiser, which alone takes ~2 s on a CPU.
    """
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, *input_shape)), train=False))
    params = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes["params"])
    run_key = jax.random.split(jax.random.PRNGKey(seed))[1]  # the data-order stream create_state would give
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=jax.jit(tx.init)(params), rng=run_key,
                      batch_stats={}, apply_fn=model.apply, tx=tx, metrics_fn=metrics_fn)


def fit_in_one_program(state: TrainState, train: dict[str, np.ndarray], validation: dict[str, np.ndarray], *,
                       epochs: int, batch_size: int, patience: int, eval_batch_size: int,
                       mesh: Mesh, nan_policy: str = "halt",
                       max_consecutive_nonfinite: int = 20) -> tuple[FitState, list[dict]]:
    """Every epoch of `fit` (train, validate, early stopping) inside one `lax.while_loop`.

    No host sync between epochs: a model this small trains faster than the host could report.
    Non-finite steps are handled as `fit` does under `nan_policy` ("skip" drops their updates), and
    the loop ends after the first epoch that breaks the policy (`nonfinite.breaks_policy`).
    Returns the final FitState and one record per epoch run: {"epoch", "train_*", "val_*",
    "nonfinite_steps", "nonfinite_longest", "first_nonfinite_step"}.
    """
    replicated = parallel.replicated(mesh)
    train_data = jax.device_put(train, replicated)
    val_batches = jax.device_put(eval_batches(validation, eval_batch_size_for(len(validation["y"]), eval_batch_size,
                                                                               mesh)), replicated)
    epoch_fn = functools.partial(fit_epoch, batch_size=batch_size, patience=patience,
                                 batch_sharding=parallel.batch_sharded(mesh),
                                 eval_sharding=parallel.batch_sharded(mesh), skip_nonfinite=nan_policy == "skip")

    def run(fit_state, train_data, val_batches):
        shapes = jax.eval_shape(lambda fs: epoch_fn(fs, train_data, val_batches)[1], fit_state)
        # Epochs never run stay NaN (integer counters: -1); they are cut off on the host.
        history = jax.tree.map(lambda s: jnp.full((epochs,), jnp.nan if jnp.issubdtype(s.dtype, jnp.floating) else -1,
                                                  s.dtype), shapes)

        def body(carry):
            fit_state, history, _ = carry
            index = fit_state.epoch
            fit_state, metrics = epoch_fn(fit_state, train_data, val_batches)
            broken = nonfinite.breaks_policy(metrics["nonfinite_steps"], metrics["nonfinite_longest"],
                                             policy=nan_policy, max_consecutive=max_consecutive_nonfinite)
            return fit_state, jax.tree.map(lambda h, m: h.at[index].set(m), history, metrics), broken

        def more(carry):
            fit_state, _, broken = carry
            return (fit_state.epoch < epochs) & ~fit_state.early.stopped & ~broken

        return jax.lax.while_loop(more, body, (fit_state, history, jnp.zeros((), bool)))[:2]

    fit_state = jax.device_put(init_fit_state(state), replicated)
    fit_state, history = parallel.host_get(jax.jit(run, donate_argnums=0)(fit_state, train_data, val_batches))
    records = [{"epoch": i + 1, **{k: float(v[i]) for k, v in history.items()}} for i in range(int(fit_state.epoch))]
    return fit_state, records


def fit_baseline(config: ml_collections.ConfigDict, splits: Splits, mesh: Mesh) -> dict:
    """Trains and tests the no-hidden-layer model under `config`'s budget.

    Returns {"model", "num_params", "test" (mean metrics), "epochs_run", "best_epoch",
    "history" (per-epoch val_loss and val_accuracy / val_mse)}. When a non-finite loss or gradient
    broke `train.nan_policy` in epoch N, it warns and returns {"model", "num_params",
    "diverged": True, "epoch": N, "first_nonfinite_step", "reason", "epochs_run", "history" (the
    epochs before N)}, without test figures.
    """
    info = splits.info
    model = MLP(num_outputs=info.num_outputs, hidden_sizes=())
    tx = build_optimizer(config.optimizer, steps_per_epoch=size(splits.train) // config.train.batch_size,
                         epochs=config.train.epochs)
    state = zero_state(model, tx, info.input_shape, config.seed, metrics_for_task(info.task))
    eval_batch_size = config.eval.get("batch_size", 1024)
    policy = {"policy": config.train.get("nan_policy", "halt"),
              "max_consecutive": config.train.get("max_consecutive_nonfinite", 20)}
    fit_state, history = fit_in_one_program(state, splits.train, splits.validation, epochs=config.train.epochs,
                                            batch_size=config.train.batch_size, patience=config.train.patience,
                                            eval_batch_size=eval_batch_size, mesh=mesh, nan_policy=policy["policy"],
                                            max_consecutive_nonfinite=policy["max_consecutive"])
    curves = [{k: v for k, v in record.items() if k == "epoch" or k.startswith("val_")} for record in history]
    name, num_params = baseline_name(info.task), count_params(state.params)
    last = history[-1] if history else None
    if last and nonfinite.breaks_policy(last["nonfinite_steps"], last["nonfinite_longest"], **policy):
        problem, setting = nonfinite.describe_breach(int(last["nonfinite_steps"]), int(last["nonfinite_longest"]),
                                                     int(last["first_nonfinite_step"]), **policy)
        reason = f"loss or gradient is NaN or infinite ({setting}): {problem}"
        log.warning("the %s baseline diverged in epoch %d, %s; it has no test figures (the run itself is not "
                    "affected; a lower config.optimizer.learning_rate or a config.optimizer.clip_norm may help)",
                    name, last["epoch"], reason)
        # Only the finite epochs before it: NaN is not JSON, and a curve ends where training broke.
        return {"model": name, "num_params": num_params, "diverged": True, "epoch": last["epoch"],
                "first_nonfinite_step": int(last["first_nonfinite_step"]), "reason": reason,
                "epochs_run": last["epoch"], "history": curves[:-1]}
    final = final_state(fit_state, config.train.patience)
    test = evaluate_split(final, splits.test, mesh=mesh, batch_size=eval_batch_size)
    return {"model": name, "num_params": num_params, "test": test,
            "epochs_run": int(fit_state.epoch), "best_epoch": int(fit_state.early.best_epoch), "history": curves}
