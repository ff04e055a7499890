"""train.accumulate_steps: k micro-batches of b examples, accumulated, make the step one batch of k * b makes."""

import jax
import numpy as np
import optax
import pytest

from jaxdl.errors import InputError
from jaxdl.models import MLP
from jaxdl.run.config import apply_override, check_common, load_config
from jaxdl.train.fit import fit
from jaxdl.train.losses import classification_metrics
from jaxdl.train.state import create_state


def small(digits):
    """256 training examples: a few steps an epoch."""
    return {key: value[:256] for key, value in digits.train.items()}


def state(tx, accumulate):
    made = create_state(MLP(num_outputs=10, hidden_sizes=(16,)), tx, (8, 8, 1), 0, classification_metrics)
    return made.replace(accumulate_steps=accumulate)


@pytest.mark.slow
@pytest.mark.parametrize("tx", [optax.sgd(0.1), optax.adam(1e-2)], ids=["sgd", "adam"])
def test_accumulated_micro_batches_equal_the_large_batch(digits, tx):
    runs = [fit(state(tx, k), small(digits), digits.validation, epochs=1, batch_size=64, steps_per_call=4)
            for k in (1, 4)]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6), runs[0].state.params,
                 runs[1].state.params)
    np.testing.assert_allclose(runs[0].history[-1]["train_loss"], runs[1].history[-1]["train_loss"], rtol=1e-5)


@pytest.mark.parametrize("value", ["5", "0"])
def test_accumulate_steps_must_divide_the_batch(value):
    config = load_config("configs/mlp.py:tiny")  # batch 32
    apply_override(config, "train.accumulate_steps", value)
    with pytest.raises(InputError, match="config.train.accumulate_steps"):
        check_common(config)
