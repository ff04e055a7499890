"""train.ema: the moving average kept in the optimizer state follows its recurrence, is what validation
and the kept model use, and a resumed run goes on with it."""

import jax
import ml_collections
import numpy as np

from jaxdl.evaluate.passes import evaluate_split
from jaxdl.models import MLP
from jaxdl.train.checkpoint import Checkpointer
from jaxdl.train.digest import params_sha256
from jaxdl.train.ema import find_ema, with_ema
from jaxdl.train.fit import fit
from jaxdl.train.losses import classification_metrics
from jaxdl.train.optimizer import build_optimizer
from jaxdl.train.state import create_state
from jaxdl.train.step import train_step

DECAY = 0.9


def small(digits):
    """256 training examples: a few steps an epoch."""
    return {key: value[:256] for key, value in digits.train.items()}


def state(ema=DECAY, seed=0):
    config = ml_collections.ConfigDict(dict(name="adam", learning_rate=1e-2, schedule="constant", momentum=0.9,
                                            weight_decay=0.0))
    tx = build_optimizer(config, steps_per_epoch=10, epochs=4, ema=ema)
    return create_state(MLP(num_outputs=10, hidden_sizes=(16,)), tx, (8, 8, 1), seed, classification_metrics)


def test_the_average_is_the_recurrence_over_the_steps(digits):
    current = state()
    expected = current.params
    step = jax.jit(train_step)
    for i in range(5):
        batch = {"x": digits.train["x"][16 * i:16 * (i + 1)], "y": digits.train["y"][16 * i:16 * (i + 1)]}
        current, _ = step(current, batch)
        expected = jax.tree.map(lambda e, p: DECAY * e + (1 - DECAY) * p, expected, current.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), find_ema(current.opt_state),
                 expected)
    assert params_sha256(with_ema(current).params) != params_sha256(current.params)


def test_off_keeps_no_average():
    assert find_ema(state(ema=0.0).opt_state) is None


def test_the_kept_model_and_validation_use_the_average(digits):
    result = fit(state(), small(digits), digits.validation, epochs=2, batch_size=64, steps_per_call=1)
    assert params_sha256(result.state.params) == params_sha256(find_ema(result.fit_state.train.opt_state))
    np.testing.assert_allclose(evaluate_split(result.state, digits.validation)["loss"],
                               result.history[-1]["val_loss"], rtol=1e-5)


def test_a_resumed_run_goes_on_with_its_average(digits, tmp_path):
    straight = fit(state(), small(digits), digits.validation, epochs=3, batch_size=64, patience=2, steps_per_call=1)
    checkpointer = Checkpointer(str(tmp_path / "ck"), every_epochs=1, every_seconds=0)
    fit(state(), small(digits), digits.validation, epochs=2, batch_size=64, checkpointer=checkpointer,
        patience=2, steps_per_call=1)
    checkpointer.close()
    checkpointer = Checkpointer(str(tmp_path / "ck"), every_epochs=1, every_seconds=0)
    resumed = fit(state(seed=5), small(digits), digits.validation, epochs=3, batch_size=64,
                  checkpointer=checkpointer, patience=2, steps_per_call=1)
    checkpointer.close()
    assert resumed.resumed_from == 2
    assert params_sha256(resumed.state.params) == params_sha256(straight.state.params)
    assert params_sha256(find_ema(resumed.fit_state.train.opt_state)) == params_sha256(
        find_ema(straight.fit_state.train.opt_state))
