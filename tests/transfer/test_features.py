"""Head-only training on cached features: same head as plain training, when it applies, the full model back."""

import jax
import numpy as np
import pytest
from test_phases import Net, optimizer, pretrained_state

from jaxdl.models.cnn import CNN
from jaxdl.train.digest import params_sha256
from jaxdl.transfer import features
from jaxdl.transfer.phases import Phase, prepare_phase, run_phases, two_phases


def head_phase(state, digits, *, cache, epochs=2, patience=0, **overrides):
    records = []
    [result] = run_phases(state, digits.train, digits.validation,
                          two_phases(optimizer(**overrides), head_epochs=epochs, epochs=0),
                          batch_size=64, patience=patience, on_epoch=records.append, cache_features=cache)
    return result, records


@pytest.mark.slow
@pytest.mark.parametrize("model", [Net(dropout=0.0), CNN(num_outputs=10, channels=(4,), dense_sizes=(8,),
                                                         batch_norm=True)], ids=["dense", "cnn"])
def test_cached_features_train_the_same_head_as_the_full_forward_pass(digits, model):
    state = pretrained_state(digits, model)
    before = jax.device_get(state.params)
    slow, slow_records = head_phase(state, digits, cache=False)
    fast, fast_records = head_phase(pretrained_state(digits, model), digits, cache=True)
    assert [r.get("cached_features", False) for r in fast_records] == [True, True]
    assert not any("cached_features" in r for r in slow_records)
    slow_head, fast_head = jax.device_get((slow.state.params["head"], fast.state.params["head"]))
    assert params_sha256(fast_head) != params_sha256(before["head"])  # it trained
    for name in ("kernel", "bias"):
        np.testing.assert_allclose(fast_head[name], slow_head[name], rtol=0, atol=1e-5)
    # The body and its statistics are the loaded ones, bit for bit; the step counter and metrics match.
    body = [name for name in before if name != "head"]
    got = jax.device_get(fast.state.params)
    assert all(params_sha256(got[name]) == params_sha256(before[name]) for name in body)
    assert params_sha256(jax.device_get(fast.state.batch_stats)) == params_sha256(
        jax.device_get(pretrained_state(digits, model).batch_stats))
    assert int(fast.state.step) == int(slow.state.step) == 2 * (len(digits.train["y"]) // 64)
    for a, b in zip(fast_records, slow_records, strict=True):
        assert (a["epoch"], a["step"]) == (b["epoch"], b["step"])
        assert a["val_accuracy"] == pytest.approx(b["val_accuracy"], abs=1e-6)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    assert fast_records[0]["feature_seconds"] > 0
    # The full model evaluates like any other: its apply is the model's, not the head's.
    x = digits.test["x"][:8]
    assert fast.state.apply_fn(fast.state.variables(), x).shape == (8, 10)


@pytest.mark.slow
def test_the_best_head_is_kept_with_early_stopping(digits):
    fast, records = head_phase(pretrained_state(digits, Net(dropout=0.0)), digits, cache=True, epochs=3, patience=1,
                               learning_rate=0.3)
    slow, _ = head_phase(pretrained_state(digits, Net(dropout=0.0)), digits, cache=False, epochs=3, patience=1,
                         learning_rate=0.3)
    assert fast.best_epoch == slow.best_epoch and fast.epochs_run == slow.epochs_run
    np.testing.assert_allclose(jax.device_get(fast.state.params["head"]["kernel"]),
                               jax.device_get(slow.state.params["head"]["kernel"]), atol=1e-5)


def test_cached_head_applies_only_to_one_trainable_layer_that_ends_the_model(digits):
    state = pretrained_state(digits, Net(dropout=0.0))
    example = digits.train["x"][:1]

    def head(**overrides):
        return features.cached_head(prepare_phase(state, optimizer(**overrides), steps_per_epoch=1, epochs=1),
                                    optimizer(**overrides), example)

    found = head(freeze=("*", "!head"))
    assert found.path == ("head",) and found.feature_shape == (16,) and found.module.features == 10
    assert head() is None  # nothing frozen: the body trains too
    assert head(freeze=("head",)) is None  # two layers train (body and norm)
    assert head(freeze=("*", "!head"), lr_multipliers=("head=0.5",)) is None
    assert features.cached_head(state, optimizer(freeze=("*", "!body")), example) is None  # not the last layer


@pytest.mark.slow
def test_a_body_with_dropout_trains_the_head_on_clean_features(digits):
    """Dropout in the body is left out by the cached mode: the head differs from plain training's."""
    model = Net(dropout=0.5)
    slow, _ = head_phase(pretrained_state(digits, model), digits, cache=False)
    fast, _ = head_phase(pretrained_state(digits, model), digits, cache=True)
    clean, _ = head_phase(pretrained_state(digits, Net(dropout=0.0)), digits, cache=False)
    fast_kernel = jax.device_get(fast.state.params["head"]["kernel"])
    assert np.abs(fast_kernel - jax.device_get(slow.state.params["head"]["kernel"])).max() > 1e-3
    np.testing.assert_allclose(fast_kernel, jax.device_get(clean.state.params["head"]["kernel"]), atol=1e-5)


@pytest.mark.slow
def test_a_phase_that_is_not_head_only_trains_as_before(digits):
    phases = [Phase("all", 1, optimizer())]
    [cached] = run_phases(pretrained_state(digits), digits.train, digits.validation, phases, batch_size=64)
    [plain] = run_phases(pretrained_state(digits), digits.train, digits.validation, phases, batch_size=64,
                         cache_features=False)
    assert params_sha256(jax.device_get(cached.state.params)) == params_sha256(jax.device_get(plain.state.params))
