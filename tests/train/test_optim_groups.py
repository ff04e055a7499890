"""Parameter groups in the optimizer: path patterns, frozen parameters, per-group learning rates."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxdl.errors import InputError
from jaxdl.train import paths
from jaxdl.train.optimizer import build_optimizer

PARAMS = {"conv_0": {"kernel": jnp.array([[-0.0, 1.5], [2.0, -3.0]]), "bias": jnp.array([0.0, -0.0])},
          "norm_0": {"scale": jnp.ones(2), "bias": jnp.zeros(2)},
          "head": {"kernel": jnp.ones((2, 2)), "bias": jnp.zeros(2)}}


def optimizer_config(**overrides):
    config = ml_collections.ConfigDict(dict(name="adamw", learning_rate=0.1, schedule="cosine", warmup_epochs=0.0,
                                            final_lr_ratio=0.0, momentum=0.9, weight_decay=0.1, clip_norm=0.5))
    with config.unlocked():
        config.update(overrides)
    return config


def train(config, steps=5):
    """`steps` updates with the gradient of a loss that touches every parameter; returns the params."""
    tx = build_optimizer(config, steps_per_epoch=steps, epochs=1)
    loss = lambda p: sum(jnp.sum(jnp.sin(3 * leaf) + leaf**2) for leaf in jax.tree.leaves(p))  # noqa: E731

    @jax.jit
    def run(params):
        def step(carry, _):
            params, state = carry
            updates, state = tx.update(jax.grad(loss)(params), state, params)
            return (optax.apply_updates(params, updates), state), None

        return jax.lax.scan(step, (params, tx.init(params)), length=steps)[0][0]

    return run(PARAMS)


def same_bits(a, b):
    return all(np.array_equal(np.asarray(x).view(np.uint32), np.asarray(y).view(np.uint32))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def test_patterns_select_by_prefix_and_the_last_match_decides():
    assert paths.selected("head/kernel", ("head",))
    assert paths.selected("conv_1/kernel", ("conv_*",)) and not paths.selected("head/kernel", ("conv_*",))
    assert not paths.selected("head/bias", ("*", "!head"))
    assert paths.selected("norm_0/scale", ("*", "!head"))
    assert paths.selected("head/bias", ("*", "!head", "head/bias"))
    assert paths.leaves_by_path(PARAMS).keys() >= {"conv_0/kernel", "norm_0/scale", "head/bias"}


def test_a_pattern_that_matches_nothing_is_an_input_error_listing_the_layers():
    with pytest.raises(InputError, match="matches no parameter.*conv_0, head, norm_0"):
        paths.check_patterns("config.optimizer.freeze", ("conv_9",), list(paths.leaves_by_path(PARAMS)))


def test_frozen_parameters_do_not_change_by_a_bit_with_decay_clipping_and_momentum():
    trained = train(optimizer_config(freeze=("conv_*", "norm_0")))
    assert same_bits(trained["conv_0"], PARAMS["conv_0"])  # includes the -0.0 entries
    assert same_bits(trained["norm_0"], PARAMS["norm_0"])
    assert not np.allclose(trained["head"]["kernel"], PARAMS["head"]["kernel"])


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "adamw", "rmsprop"])
def test_freezing_works_with_every_update_rule(name):
    trained = train(optimizer_config(name=name, freeze=("*", "!head")))
    body = [name for name in PARAMS if name != "head"]
    assert same_bits([trained[name] for name in body], [PARAMS[name] for name in body])
    assert not same_bits(trained["head"], PARAMS["head"])


def test_trained_parameters_follow_the_plain_optimizer_exactly():
    # Freezing the conv layer must not change how the others train, apart from the clipping norm
    # (which now counts only the trained parameters): without clipping they match to the bit.
    plain = train(optimizer_config(clip_norm=0.0))
    frozen = train(optimizer_config(clip_norm=0.0, freeze=("conv_0",)))
    assert same_bits(frozen["head"], plain["head"]) and same_bits(frozen["norm_0"], plain["norm_0"])


def test_learning_rate_multipliers_scale_each_group_s_steps():
    config = optimizer_config(name="sgd", schedule="constant", weight_decay=0.0, clip_norm=0.0,
                              lr_multipliers=("*=0.1", "head=1"))
    tx = build_optimizer(config, steps_per_epoch=1, epochs=1)
    ones = jax.tree.map(jnp.ones_like, PARAMS)
    updates, _ = tx.update(ones, tx.init(PARAMS), PARAMS)
    np.testing.assert_allclose(updates["head"]["kernel"], -0.1 * np.ones((2, 2)), rtol=1e-6)
    np.testing.assert_allclose(updates["conv_0"]["kernel"], -0.01 * np.ones((2, 2)), rtol=1e-6)
    assert float(tx.init(PARAMS).hyperparams["learning_rate"]) == pytest.approx(0.1)  # sweeps still set it


def test_without_groups_the_optimizer_state_is_the_plain_one():
    plain = jax.tree.structure(build_optimizer(optimizer_config(), steps_per_epoch=1, epochs=1).init(PARAMS))
    empty = build_optimizer(optimizer_config(freeze=(), lr_multipliers=()), steps_per_epoch=1, epochs=1)
    assert jax.tree.structure(empty.init(PARAMS)) == plain


@pytest.mark.parametrize(("overrides", "message"), [
    ({"freeze": ("conv_9",)}, "config.optimizer.freeze: pattern matches no parameter"),
    ({"freeze": ("*",)}, "freezes every parameter"),
    ({"freeze": "head"}, "config.optimizer.freeze: wrong type"),
    ({"lr_multipliers": ("conv_0:0.1",)}, "config.optimizer.lr_multipliers: bad entry"),
    ({"lr_multipliers": ("conv_0=-1",)}, "config.optimizer.lr_multipliers: out of range"),
    ({"lr_multipliers": ("dense=0.5",)}, "config.optimizer.lr_multipliers: pattern matches no parameter"),
])
def test_bad_groups_are_input_errors(overrides, message):
    with pytest.raises(InputError, match=message):
        build_optimizer(optimizer_config(**overrides), steps_per_epoch=1, epochs=1).init(PARAMS)
