"""Train and eval steps: loss falls, every example is evaluated once, same seed gives same bits."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdl.models import MLP
from jaxdl.train.digest import params_sha256
from jaxdl.train.losses import classification_metrics
from jaxdl.train.state import create_state
from jaxdl.train.step import epoch_order, eval_batches, evaluate_batches, train_epoch, train_step


def small_state(seed=0, hidden=(32,), lr=1e-2):
    return create_state(MLP(num_outputs=10, hidden_sizes=hidden), optax.adam(lr), (8, 8, 1), seed,
                        classification_metrics)


def test_loss_falls_on_a_tiny_batch(digits):
    state = small_state()
    batch = {"x": jnp.asarray(digits.train["x"][:32]), "y": jnp.asarray(digits.train["y"][:32])}
    step = jax.jit(train_step)
    state, first = step(state, batch)
    for _ in range(50):
        state, metrics = step(state, batch)
    assert float(metrics["loss"]) < 0.1 * float(first["loss"])
    assert float(metrics["accuracy"]) == 1.0
    assert int(state.step) == 51


@pytest.mark.parametrize("batch_size", [7, 64, 500])
def test_evaluation_counts_every_example_exactly_once(digits, batch_size):
    state = small_state()
    arrays = digits.validation
    metrics = jax.jit(evaluate_batches)(state, eval_batches(arrays, batch_size))
    logits = state.apply_fn({"params": state.params}, jnp.asarray(arrays["x"]))
    expected = classification_metrics(logits, jnp.asarray(arrays["y"]))
    assert int(metrics["count"]) == len(arrays["y"])
    np.testing.assert_allclose(metrics["loss"], np.mean(expected["loss"]), rtol=1e-5)
    np.testing.assert_allclose(metrics["accuracy"], np.mean(expected["accuracy"]), rtol=1e-6)


def test_eval_batches_pad_with_a_zero_mask():
    arrays = {"x": np.ones((5, 2), np.float32), "y": np.arange(5, dtype=np.int32)}
    batches = eval_batches(arrays, 4)
    assert batches["x"].shape == (2, 4, 2) and batches["mask"].tolist() == [[1, 1, 1, 1], [1, 0, 0, 0]]


def test_epoch_order_is_a_fresh_permutation_per_epoch():
    state = small_state()
    first = np.asarray(epoch_order(state, 100, 32))
    assert first.shape == (3, 32) and len(set(first.ravel())) == 96
    later = np.asarray(epoch_order(state.replace(step=state.step + 3), 100, 32))
    assert not np.array_equal(first, later)
    np.testing.assert_array_equal(first, epoch_order(small_state(), 100, 32))
    assert not np.array_equal(first, epoch_order(small_state(seed=1), 100, 32))


def test_same_seed_same_bits_different_seed_different_bits(digits):
    data = {k: jnp.asarray(v) for k, v in digits.train.items()}
    epoch = jax.jit(functools.partial(train_epoch, batch_size=64))

    def trained(seed):
        state = small_state(seed, hidden=(32, 32))
        for _ in range(2):
            state, _ = epoch(state, data)
        return params_sha256(state.params)

    assert trained(0) == trained(0)
    assert trained(0) != trained(1)


def test_epoch_metrics_are_the_mean_over_steps(digits):
    state = small_state()
    data = {k: jnp.asarray(v) for k, v in digits.train.items()}
    new_state, metrics = jax.jit(functools.partial(train_epoch, batch_size=100))(state, data)
    steps = len(digits.train["y"]) // 100
    assert int(new_state.step) == steps

    # The same epoch, step by step on the host: the batches of `epoch_order`, one `train_step` each.
    step = jax.jit(train_step)
    per_step = []
    for index in np.asarray(epoch_order(state, len(digits.train["y"]), 100)):
        state, step_metrics = step(state, {k: data[k][index] for k in ("x", "y")})
        per_step.append(jax.device_get(step_metrics))
    assert len(per_step) == steps
    for name in ("loss", "accuracy"):
        values = np.array([m[name] for m in per_step], np.float64)
        assert len(set(values.tolist())) > 1, name  # the mean differs from any one step's value
        np.testing.assert_allclose(float(metrics[name]), values.mean(), rtol=1e-6, err_msg=name)


@pytest.mark.slow
def test_initialisation_compiled_for_speed_gives_xlas_default_bits():
    """create_state compiles init with RUN_ONCE_CPU_OPTIONS (faster to compile); every family's
    parameters must be the bits XLA's default optimisation level gives."""
    from jaxdl.data import DataInfo
    from jaxdl.models import build_model
    from jaxdl.models.train_argument import with_train_argument
    from jaxdl.run.config import load_config
    from jaxdl.train.state import RUN_ONCE_CPU_OPTIONS, run_once_options

    assert run_once_options() == RUN_ONCE_CPU_OPTIONS  # the suite runs on CPU
    images = DataInfo(name="d", task="classification", input_shape=(8, 8, 1), num_classes=10)
    frames = DataInfo(name="f", task="classification", input_shape=(2, 8, 8, 1), num_classes=19)
    steps = DataInfo(name="s", task="regression", input_shape=(10, 2), target_shape=(1,))
    models = [(build_model(load_config(f"configs/{spec}").model, info), info.input_shape) for spec, info in (
        ("mlp.py:tiny", images), ("cnn.py:tiny", images), ("rnn.py:adding", steps), ("hybrid.py:tiny", frames))]
    resnet = load_config("configs/cnn.py:tiny").model
    resnet.update({"name": "resnet", "channels": (4, 8), "blocks_per_stage": 1, "dense_sizes": (), "dropout": 0.0})
    models.append((build_model(resnet, images), (8, 8, 1)))  # (ImageNet ResNet-18/50: checked by hand, 8-12 s)
    for model, shape in models:
        init = functools.partial(with_train_argument(model).init, train=False)
        keys, dummy = {"params": jax.random.key(5), "dropout": jax.random.key(5)}, jnp.zeros((1, *shape))
        fast = jax.jit(init, compiler_options=RUN_ONCE_CPU_OPTIONS)(keys, dummy)
        default = jax.jit(init)(keys, dummy)
        assert params_sha256(fast) == params_sha256(default), type(model).__name__


def test_states_created_under_vmap_and_jit_are_the_solo_states():
    """Traced, create_state's init is a nested jit (no compiler options): the same bits as a solo state."""
    seeds = jax.random.split(jax.random.PRNGKey(0), 2)
    make = lambda key: small_state(key).params  # noqa: E731
    stacked = jax.jit(jax.vmap(make))(seeds)
    for index, key in enumerate(seeds):
        assert params_sha256(jax.tree.map(lambda a, i=index: a[i], stacked)) == params_sha256(make(key))
