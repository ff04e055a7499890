"""Optimizers and schedules from config."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxdl.data import DataInfo
from jaxdl.errors import InputError
from jaxdl.models import build_model
from jaxdl.run.config import load_config
from jaxdl.train import sweep
from jaxdl.train.losses import classification_metrics
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
    params = {"kernel": jnp.array([[3.0, 4.0]]), "bias": jnp.array([3.0, 4.0])}
    updates, _ = decay.update(jax.tree.map(jnp.zeros_like, params), decay.init(params), params)
    np.testing.assert_allclose(updates["kernel"], [[-0.3, -0.4]], rtol=1e-6)
    np.testing.assert_array_equal(updates["bias"], [0.0, 0.0])  # biases are not decayed (by default)


def test_bad_optimizer_names_suggest():
    with pytest.raises(InputError, match="did you mean 'adamw'"):
        build_optimizer(optimizer_config(name="adamww"), steps_per_epoch=1, epochs=1)
    with pytest.raises(InputError, match="config.optimizer.schedule"):
        build_optimizer(optimizer_config(schedule="cosin"), steps_per_epoch=1, epochs=1)


DIGITS = DataInfo("digits", "classification", (8, 8, 1), 10)


def cnn_with_nonzero_params(**optimizer_overrides):
    """The tiny CNN (conv, BatchNorm, dense, head) and its optimizer section, params all away from 0
    (zero biases would hide a decay that acts on them)."""
    config = load_config("configs/cnn.py:tiny")
    with config.unlocked():
        config.optimizer.update(optimizer_overrides)
    model = build_model(config.model, DIGITS)
    key = jax.random.PRNGKey(0)
    params = model.init({"params": key, "dropout": key}, jnp.zeros((1, *DIGITS.input_shape)), train=False)["params"]
    assert {"kernel", "scale", "bias"} <= {path[-1].key for path, _ in jax.tree_util.tree_leaves_with_path(params)}
    return model, config.optimizer, jax.tree.map(lambda p: p + 0.5, params)


def decay_only_step(optimizer, params):
    """One update with zero gradients: only weight decay can move a parameter."""
    tx = build_optimizer(optimizer, steps_per_epoch=1, epochs=1)
    updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    return optax.apply_updates(params, updates)


def changed(before, after) -> dict[str, bool]:
    """{"conv_0/kernel": True, ...}: which parameters are not bit for bit what they were."""
    flat = jax.tree_util.tree_leaves_with_path
    bits = lambda leaf: np.asarray(leaf).view(np.uint32)  # noqa: E731
    return {"/".join(k.key for k in path): not np.array_equal(bits(a), bits(b))
            for (path, a), (_, b) in zip(flat(before), flat(after), strict=True)}


def kernels_only(params) -> dict[str, bool]:
    return {"/".join(k.key for k in path): leaf.ndim >= 2 for path, leaf in jax.tree_util.tree_leaves_with_path(params)}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_weight_decay_acts_on_kernels_not_biases_or_norms_unless_asked(name):
    _, optimizer, params = cnn_with_nonzero_params(name=name, weight_decay=0.1)
    assert optimizer.weight_decay_on == "kernels"  # the config files' default
    moved = changed(params, decay_only_step(optimizer, params))
    assert moved == kernels_only(params)  # conv, dense and head kernels; not biases, not norm_0/scale
    with optimizer.unlocked():
        optimizer.weight_decay_on = "all"
    assert all(changed(params, decay_only_step(optimizer, params)).values())


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_weight_decay_mask_holds_with_frozen_layers(name):
    _, optimizer, params = cnn_with_nonzero_params(name=name, weight_decay=0.1, freeze=("conv_0",))
    moved = changed(params, decay_only_step(optimizer, params))
    assert moved == {**kernels_only(params), "conv_0/kernel": False}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["momentum", "adamw"])
def test_weight_decay_mask_holds_for_each_member_of_a_sweep(name):
    model, optimizer, _ = cnn_with_nonzero_params(name=name)
    tx = build_optimizer(optimizer, steps_per_epoch=1, epochs=1)
    members = [sweep.Member(index=i, seed=0, hyperparameters={"learning_rate": 0.1, "weight_decay": wd})
               for i, wd in enumerate((0.0, 0.1))]
    states = sweep.create_states(model, tx, DIGITS.input_shape, members, classification_metrics)
    params = jax.tree.map(lambda p: p + 0.5, states.params)

    def step(params, opt_state):
        updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), opt_state, params)
        return optax.apply_updates(params, updates)

    after = jax.vmap(step)(params, states.opt_state)
    first, second = (sweep.take_member(tree, 0) for tree in (params, after))
    assert not any(changed(first, second).values())  # weight_decay 0: nothing moves
    first, second = (sweep.take_member(tree, 1) for tree in (params, after))
    assert changed(first, second) == kernels_only(first)


def test_weight_decay_on_is_checked():
    with pytest.raises(InputError, match="config.optimizer.weight_decay_on: unknown name.*did you mean 'kernels'"):
        build_optimizer(optimizer_config(weight_decay_on="kernel"), steps_per_epoch=1, epochs=1)


def test_onecycle_rises_from_a_25th_to_the_peak_then_falls():
    shape = schedule_shape(optimizer_config(schedule="onecycle", warmup_epochs=0.0, final_lr_ratio=0.0), 100, 10)
    values = np.array([float(shape(step)) for step in range(101)])
    assert values[0] == pytest.approx(1 / 25) and int(np.argmax(values)) == 25  # a quarter of the run
    assert np.all(np.diff(values[:26]) > 0) and np.all(np.diff(values[25:]) < 0) and values[-1] == pytest.approx(0)
