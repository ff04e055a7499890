"""Optimizers and schedules from config."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxdl.errors import InputError
from jaxdl.train.optimizer import OPTIMIZERS, SCHEDULES, build_optimizer, schedule_shape


def optimizer_config(**overrides):
    config = ml_collections.ConfigDict(dict(name="adam", learning_rate=0.1, schedule="constant", warmup_epochs=0.0,
                                            final_lr_ratio=0.0, momentum=0.9, weight_decay=0.0, clip_norm=0.0))
    config.update(overrides)
    return config


def minimise(tx, steps=100):
    """Minimises |w - 3|^2 from w = 0; returns the final w."""
    grad = jax.grad(lambda p: jnp.sum((p["w"] - 3.0) ** 2))

    def step(carry, _):
        params, state = carry
        updates, state = tx.update(grad(params), state, params)
        return (optax.apply_updates(params, updates), state), None

    params = {"w": jnp.zeros(4)}
    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), length=steps)
    return params["w"]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_descends(name):
    w = minimise(build_optimizer(optimizer_config(name=name, learning_rate=0.3), steps_per_epoch=10, epochs=10))
    assert float(jnp.max(jnp.abs(w - 3.0))) < 1.0  # started 3 away


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedules_peak_at_one_and_end_at_final_ratio(name):
    shape = schedule_shape(optimizer_config(schedule=name, warmup_epochs=1.0, final_lr_ratio=0.1), 100, 10)
    values = np.array([float(shape(step)) for step in range(101)])
    assert values.max() == pytest.approx(1.0, abs=1e-6)
    if name != "constant":
        assert values[-1] == pytest.approx(0.1, abs=1e-6)
    if name == "warmup_cosine":
        assert values[0] == 0.0 and values[10] == pytest.approx(1.0)


def test_learning_rate_is_an_injected_hyperparameter():
    tx = build_optimizer(optimizer_config(learning_rate=0.01), steps_per_epoch=1, epochs=1)
    state = tx.init({"w": jnp.zeros(2)})
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.01)


def test_sgd_step_size_follows_the_schedule():
    tx = build_optimizer(optimizer_config(name="sgd", learning_rate=1.0, schedule="linear", final_lr_ratio=0.0),
                         steps_per_epoch=2, epochs=2)
    params = {"w": jnp.zeros(())}
    state = tx.init(params)
    steps = []
    for _ in range(4):
        updates, state = tx.update({"w": jnp.ones(())}, state, params)
        steps.append(-float(updates["w"]))
    np.testing.assert_allclose(steps, [1.0, 0.75, 0.5, 0.25], rtol=1e-6)


def test_clipping_and_weight_decay():
    clip = build_optimizer(optimizer_config(name="sgd", learning_rate=1.0, clip_norm=0.5), steps_per_epoch=1, epochs=1)
    params = {"w": jnp.array([3.0, 4.0])}
    updates, _ = clip.update({"w": jnp.array([3.0, 4.0])}, clip.init(params), params)
    assert float(jnp.linalg.norm(updates["w"])) == pytest.approx(0.5, rel=1e-5)
    decay = build_optimizer(optimizer_config(name="sgd", learning_rate=1.0, weight_decay=0.1), steps_per_epoch=1,
                            epochs=1)
    updates, _ = decay.update({"w": jnp.zeros(2)}, decay.init(params), params)
    np.testing.assert_allclose(updates["w"], [-0.3, -0.4], rtol=1e-6)


def test_bad_optimizer_names_suggest():
    with pytest.raises(InputError, match="did you mean 'adamw'"):
        build_optimizer(optimizer_config(name="adamww"), steps_per_epoch=1, epochs=1)
    with pytest.raises(InputError, match="config.optimizer.schedule"):
        build_optimizer(optimizer_config(schedule="cosin"), steps_per_epoch=1, epochs=1)
