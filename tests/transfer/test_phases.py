"""Fine-tuning: frozen layers and their batch-norm statistics stay bit for bit, phases, resume."""

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import optax
import pytest

from jaxdl.errors import InputError
from jaxdl.models.cnn import CNN
from jaxdl.models.hybrid import Hybrid
from jaxdl.models.resnet import ResNet
from jaxdl.models.rnn import RNN
from jaxdl.train import paths
from jaxdl.train.digest import params_sha256
from jaxdl.train.losses import classification_metrics
from jaxdl.train.state import create_state
from jaxdl.train.step import train_epoch
from jaxdl.transfer.phases import Phase, frozen_norm_layers, prepare_phase, run_phases, two_phases


class Net(nn.Module):
    """Dense -> BatchNorm -> ReLU -> Dropout -> Dense head; the norm decides train/eval per call
    when `per_call` (the other way Flax models use BatchNorm). A norm named in `frozen_norms` runs
    in inference mode, as in the model families."""

    per_call: bool = False
    dropout: float = 0.2
    frozen_norms: tuple[str, ...] = ()

    @nn.compact
    def __call__(self, x, *, train=False):
        x = nn.Dense(16, name="body")(x.reshape((x.shape[0], -1)))
        inference = not train or "norm" in self.frozen_norms
        if self.per_call:
            x = nn.BatchNorm(momentum=0.9, name="norm")(x, use_running_average=inference)
        else:
            x = nn.BatchNorm(use_running_average=inference, momentum=0.9, name="norm")(x)
        x = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(x))
        return nn.Dense(10, name="head")(x)


class NetWithoutField(nn.Module):
    """Net with a batch norm it cannot freeze."""

    @nn.compact
    def __call__(self, x, *, train=False):
        x = nn.Dense(16, name="body")(x.reshape((x.shape[0], -1)))
        x = nn.BatchNorm(use_running_average=not train, name="norm")(x)
        return nn.Dense(10, name="head")(x)


def optimizer(**overrides):
    config = ml_collections.ConfigDict(dict(name="adamw", learning_rate=1e-2, schedule="cosine", warmup_epochs=0.0,
                                            final_lr_ratio=0.0, momentum=0.9, weight_decay=1e-2, clip_norm=1.0))
    config.update(overrides)
    return config


def pretrained_state(digits, model=None):
    """A state whose batch-norm statistics are those of real data (as after pretraining)."""
    state = create_state(model or Net(), optax.sgd(0.1), (8, 8, 1), 0, classification_metrics)
    _, updates = state.apply_fn(state.variables(), digits.train["x"][:256], train=True, mutable=["batch_stats"],
                                rngs={"dropout": jax.random.PRNGKey(0)})
    return state.replace(batch_stats=updates["batch_stats"])


def host(tree):
    return jax.device_get(tree)


@pytest.mark.slow
def test_frozen_parameters_and_statistics_are_bit_identical_after_the_head_phase(digits):
    state = pretrained_state(digits)
    before = host((state.params, state.batch_stats))
    records = []
    phases = two_phases(optimizer(), head_epochs=3, epochs=2)
    head, everything = run_phases(state, digits.train, digits.validation, phases, batch_size=64,
                                  on_epoch=records.append)
    # Read after phase two ran: each phase trains a copy, so the first phase's result is still whole.
    params, stats = host((head.state.params, head.state.batch_stats))
    for layer in ("body", "norm"):
        assert params_sha256(params[layer]) == params_sha256(before[0][layer])
    assert params_sha256(stats) == params_sha256(before[1])
    assert params_sha256(params["head"]) != params_sha256(before[0]["head"])
    assert head.history[-1]["train_loss"] < head.history[0]["train_loss"]  # the head learns on frozen features
    # Phase two trains everything, and the norm's statistics move again.
    assert params_sha256(host(everything.state.params["body"])) != params_sha256(before[0]["body"])
    assert params_sha256(host(everything.state.batch_stats)) != params_sha256(before[1])
    steps = len(digits.train["y"]) // 64
    assert [(r["phase"], r["epoch"], r["step"]) for r in records] == [
        ("head", 1, steps), ("head", 2, 2 * steps), ("head", 3, 3 * steps), ("all", 1, 4 * steps),
        ("all", 2, 5 * steps)]


@pytest.mark.parametrize("per_call", [False, True])
def test_a_frozen_batch_norm_trains_in_inference_mode(digits, per_call):
    state = pretrained_state(digits, Net(per_call=per_call, dropout=0.0))
    x = digits.train["x"][:64]
    frozen = prepare_phase(state, optimizer(freeze=("*", "!head")), steps_per_epoch=1, epochs=1)
    assert frozen_norm_layers(state.params, ("*", "!head")) == {("body",), ("norm",)}
    training, updates = frozen.apply_fn(frozen.variables(), x, train=True, mutable=["batch_stats"])
    np.testing.assert_array_equal(training, frozen.apply_fn(frozen.variables(), x, train=False))
    assert params_sha256(updates["batch_stats"]) == params_sha256(state.batch_stats)
    # A norm left to train uses the batch's statistics and updates its own.
    free = prepare_phase(state, optimizer(freeze=("body",)), steps_per_epoch=1, epochs=1)
    training, updates = free.apply_fn(free.variables(), x, train=True, mutable=["batch_stats"])
    assert not np.allclose(training, free.apply_fn(free.variables(), x, train=False))
    assert params_sha256(updates["batch_stats"]) != params_sha256(state.batch_stats)


def test_a_phase_runs_the_model_cloned_with_its_frozen_norms(digits):
    state = pretrained_state(digits)
    head = prepare_phase(state, optimizer(freeze=("*", "!head")), steps_per_epoch=1, epochs=1)
    # A plain `Module.apply` of the model itself (no wrapper, no method interceptor), whose
    # field names the frozen batch norm (and no other layer: "body" is frozen but has no statistics).
    assert head.apply_fn.__func__ is nn.Module.apply
    assert head.apply_fn.__self__ == Net(frozen_norms=("norm",))
    # The next phase states its own: nothing frozen, the field cleared.
    everything = prepare_phase(head, optimizer(), steps_per_epoch=1, epochs=1)
    assert everything.apply_fn.__self__ == Net()
    # A model with no frozen_norms field: fine while its norms train, an InputError once they are frozen.
    other = pretrained_state(digits, NetWithoutField())
    assert prepare_phase(other, optimizer(freeze=("body",)), steps_per_epoch=1, epochs=1).apply_fn == other.apply_fn
    with pytest.raises(InputError, match="frozen_norms field"):
        prepare_phase(other, optimizer(freeze=("*", "!head")), steps_per_epoch=1, epochs=1)


def frames(x):
    """(n, 8, 8, 1) digits -> (n / 2, 2, 8, 8, 1): two frames per example."""
    return x[: len(x) // 2 * 2].reshape((-1, 2, *x.shape[1:]))


@pytest.mark.slow
@pytest.mark.parametrize(("family", "freeze", "frozen", "free"), [
    ("cnn", ("norm_0",), ["norm_0"], ["norm_1"]),
    ("resnet", ("stem*", "block_0_0"), ["stem_norm", "block_0_0/norm_0", "block_0_0/norm_1"],
     ["block_1_0/norm_0", "block_1_0/projection_norm"]),
    ("hybrid", ("frame_encoder/conv_0", "frame_encoder/norm_0"), ["frame_encoder/norm_0"],
     ["frame_encoder/norm_1"]),
])
def test_frozen_batch_norms_of_every_family_keep_their_statistics_through_an_epoch(digits, family, freeze, frozen,
                                                                                   free):
    encoder = CNN(num_outputs=0, channels=(4, 4), batch_norm=True, dense_sizes=())
    model, x = {
        "cnn": (CNN(num_outputs=10, channels=(4, 4), batch_norm=True, dense_sizes=()), digits.train["x"][:256]),
        "resnet": (ResNet(num_outputs=10, channels=(4, 8), blocks_per_stage=1), digits.train["x"][:256]),
        "hybrid": (Hybrid(num_outputs=10, frame_encoder=encoder, sequence_encoder=RNN(0, cell="gru", hidden_size=4)),
                   frames(digits.train["x"][:512])),
    }[family]
    state = create_state(model, optax.sgd(0.1), x.shape[1:], 0, classification_metrics)
    state = prepare_phase(state, optimizer(freeze=freeze), steps_per_epoch=4, epochs=1)
    assert state.apply_fn.__self__.frozen_norms == tuple(sorted(frozen))
    before = paths.leaves_by_path(host(state.batch_stats))
    trained, _ = jax.jit(train_epoch, static_argnums=2)(state, {"x": x, "y": digits.train["y"][:len(x)]}, 64)
    after = paths.leaves_by_path(host(trained.batch_stats))
    for layer in frozen + free:
        for stat in ("mean", "var"):
            same = after[f"{layer}/{stat}"].tobytes() == before[f"{layer}/{stat}"].tobytes()
            assert same == (layer in frozen), (layer, stat)
    if family == "cnn":  # gradients flow through the frozen norm to the convolution before it
        assert not np.array_equal(host(trained.params["conv_0"]["kernel"]), host(state.params["conv_0"]["kernel"]))


def test_two_phases_freeze_the_body_then_train_all_at_lower_rates():
    head, everything = two_phases(optimizer(), head=("dense_*", "head"), head_epochs=4, epochs=6,
                                  finetune_lr_ratio=0.2, body_lr_ratio=0.5)
    assert (head.name, head.epochs, tuple(head.optimizer.freeze)) == ("head", 4, ("*", "!dense_*", "!head"))
    assert head.optimizer.learning_rate == 1e-2
    assert (everything.name, everything.epochs) == ("all", 6)
    assert everything.optimizer.learning_rate == pytest.approx(2e-3)
    assert tuple(everything.optimizer.lr_multipliers) == ("*=0.5", "dense_*=1", "head=1")
    assert "freeze" not in everything.optimizer
    kept = two_phases(optimizer(), head_epochs=1, epochs=1, keep_frozen=("norm",))[1]
    assert tuple(kept.optimizer.freeze) == ("norm",)
    assert [p.name for p in two_phases(optimizer(), head_epochs=5, epochs=0)] == ["head"]
    with pytest.raises(InputError, match="^head: needs patterns"):
        two_phases(optimizer(), head=("!head",), head_epochs=1, epochs=1)
    # "Everything but the first layer" is the head: phase one freezes that layer alone.
    head, everything = two_phases(optimizer(), head=("*", "!body"), head_epochs=1, epochs=1, body_lr_ratio=0.5)
    names = ["body/kernel", "norm/scale", "head/bias"]
    assert [paths.selected(name, head.optimizer.freeze) for name in names] == [True, False, False]
    factors = [next(float(f) for p, f in reversed([e.split("=") for e in everything.optimizer.lr_multipliers])
                    if paths.selected(name, (p,))) for name in names]
    assert factors == [0.5, 1.0, 1.0]


@pytest.mark.slow
def test_phases_checkpoint_and_a_rerun_resumes_them(digits, tmp_path):
    phases = [Phase("head", 2, optimizer(freeze=("body", "norm"))),
              Phase("all", 1, optimizer(lr_multipliers=("body=0.1",)))]
    first = run_phases(pretrained_state(digits), digits.train, digits.validation, phases, batch_size=128,
                       checkpoint_dir=str(tmp_path))
    again = run_phases(pretrained_state(digits), digits.train, digits.validation, phases, batch_size=128,
                       checkpoint_dir=str(tmp_path))
    assert [r.resumed_from for r in again] == [2, 1] and not any(r.history for r in again)
    assert params_sha256(again[-1].state.params) == params_sha256(first[-1].state.params)


def test_nothing_to_train_is_an_input_error(digits):
    with pytest.raises(InputError, match="nothing to train"):
        run_phases(pretrained_state(digits), digits.train, digits.validation, [], batch_size=64)
    with pytest.raises(InputError, match="freezes every parameter"):
        prepare_phase(pretrained_state(digits), optimizer(freeze=("*",)), steps_per_epoch=1, epochs=1)
