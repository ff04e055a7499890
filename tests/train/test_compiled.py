"""The compiled-program promises: one compilation of each program an epoch runs (the step call, the
end of epoch) per fit, none per epoch or per repeated evaluation, and no host transfer inside an
epoch, also with one jitted step per call."""

from __future__ import annotations

import collections
import contextlib
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxdl import parallel
from jaxdl.data import load_for_pipeline
from jaxdl.evaluate.passes import evaluate_split
from jaxdl.models import MLP
from jaxdl.train.fit import epochs_in_memory, eval_batch_size_for, fit, place_fit_state
from jaxdl.train.losses import classification_metrics
from jaxdl.train.state import create_state
from jaxdl.train.step import eval_batches

# Recorded by jax around every XLA compilation (cache hits included), with the jitted function's name.
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def compilations():
    """Counts XLA compilations by name ("jit(fit_epoch)", ...) while the block runs."""
    counts = collections.Counter()

    def listener(event, duration, **kwargs):
        if event == BACKEND_COMPILE_EVENT:
            counts[kwargs["fun_name"]] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counts
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def mlp_state(seed=0):
    return create_state(MLP(num_outputs=10, hidden_sizes=(32,)), optax.adam(1e-2), (8, 8, 1), seed,
                        classification_metrics)


def test_the_listener_sees_a_compilation():
    # Sanity check of the hook itself: a fresh jit of a new function compiles exactly once.
    with compilations() as counts:
        jax.jit(lambda x: x * 3 + 1)(np.float32(2.0))
    assert counts == {"jit(<lambda>)": 1}


@pytest.mark.slow
@pytest.mark.parametrize("steps_per_call", [1, 3])
def test_fit_compiles_each_program_once_not_per_epoch(digits, steps_per_call):
    """1: a step per call (20 calls an epoch); 3: a loop of 3 steps, and of 2 for the epoch's last call
    (the same program)."""
    first, second = mlp_state(), mlp_state(1)
    with compilations() as short:
        fit(first, digits.train, digits.validation, epochs=2, batch_size=64, patience=3, steps_per_call=steps_per_call)
    with compilations() as long:
        result = fit(second, digits.train, digits.validation, epochs=10, batch_size=64, patience=10,
                     steps_per_call=steps_per_call)
    assert result.epochs_run == 10
    for counts in (short, long):
        assert counts["jit(memory_call)"] == 1 and counts["jit(finish_epoch)"] == 1, dict(counts)
    # Nothing else is compiled per epoch either: 8 more epochs compile no program more often.
    assert all(count <= short[name] for name, count in long.items()), (dict(short), dict(long))


TRAIN_TRACES = collections.Counter()  # CountedMLP's traces in training mode, by its `name_`


class CountedMLP(nn.Module):
    """The MLP, counting each time it is traced in training mode (a train step's trace) in TRAIN_TRACES."""

    name_: str

    @nn.compact
    def __call__(self, x, train: bool = False):
        if train:
            TRAIN_TRACES[self.name_] += 1
        return MLP(num_outputs=10, hidden_sizes=(8,), dropout=0.1)(x, train=train)


def counted_state(name: str, members: int):
    """A fresh state of `CountedMLP(name)`: one run, or a stack of `members`."""
    model = CountedMLP(name)
    if not members:
        return create_state(model, optax.adam(1e-2), (8, 8, 1), 0, classification_metrics)
    keys = jnp.stack([jax.random.PRNGKey(seed) for seed in range(members)])
    return jax.jit(jax.vmap(lambda key: create_state(model, optax.adam(1e-2), (8, 8, 1), key,
                                                      classification_metrics)))(keys)


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", ["memory", "stream"])
def test_a_fit_traces_its_train_step_once(data_dir, pipeline):
    """The metrics' shapes, the one-step and the loop programs share one trace of the step
    (jaxdl.train.calls.step_program), also for a stack of runs. `auto` is asked for a run of a million
    epochs, long enough to compile and time every candidate (the one-step program and the loop), and
    stopped after its first epoch (as a signal would)."""
    splits, _ = load_for_pipeline(ml_collections.ConfigDict({
        "name": "digits", "data_dir": data_dir, "validation_fraction": 0.1, "split_seed": 0, "download": False,
        "pipeline": pipeline}))
    for members in (0, 2) if pipeline == "memory" else (0,):
        name = f"{pipeline}-{members}"
        result = fit(counted_state(name, members), splits.train, splits.validation,
                     epochs=10**6, batch_size=64, patience=0, members=members,
                     steps_per_call="auto", chunk_steps=7, stop_requested=lambda: True)
        assert result.epochs_run == (1 if not members else [1, 1])
        if not members:  # every candidate compiled and timed (a stack's choice is reported per run elsewhere)
            assert len(result.steps_per_call["ms_per_step"]) == 3, result.steps_per_call
        assert TRAIN_TRACES[name] == 1, (name, TRAIN_TRACES[name])


def test_evaluating_the_same_shapes_again_compiles_nothing(digits):
    state = mlp_state()
    first = evaluate_split(state, digits.test)
    with compilations() as counts:
        second = evaluate_split(state, digits.test)
    assert counts == {}
    assert second == first


@pytest.mark.parametrize("members", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_an_epoch_of_single_steps_makes_no_host_transfer(digits, members):
    """The epochs fit runs, with one jitted step per call, on inputs placed as fit places them, under a
    transfer guard: only the host's one read per epoch (outside the guard here) leaves the devices."""
    mesh = parallel.make_mesh()
    if members:  # a stack, as jaxdl.train.sweep.create_states makes it
        keys = jnp.stack([jax.random.PRNGKey(seed) for seed in range(members)])
        state = jax.jit(jax.vmap(mlp_state))(keys)
    else:
        state = mlp_state()
    replicated = parallel.replicated(mesh)
    size = eval_batch_size_for(len(digits.validation["y"]), 256, mesh)
    validation = jax.device_put(eval_batches(digits.validation, size), replicated)
    fit_state = place_fit_state(state, mesh, members)
    epochs = epochs_in_memory(jax.device_put(digits.train, replicated), mesh, batch_size=64, patience=2,
                              members=members, skip_nonfinite=True, steps_per_call=1)
    epochs.prepare(fit_state.train, epochs=2)

    for _ in range(2):  # the first epoch compiles, the second only runs
        with jax.transfer_guard("disallow"):
            fit_state, metrics = epochs.run(fit_state, validation)
        assert np.all(np.isfinite(jax.device_get(metrics["val_loss"])))  # the one read per epoch
    assert np.all(jax.device_get(fit_state.epoch) == 2)

    # Host callbacks (jax.debug.print, pure_callback, io_callback) and infeed/outfeed pass the guard
    # unseen, so the programs are read for them too.
    copy = jax.jit(lambda tree: jax.tree.map(jnp.copy, tree))
    step = epochs.programs[True].lower(copy(fit_state.train), epochs.metrics, epochs.position, epochs.order,
                                       epochs.data, epochs.k_device).as_text()
    end = epochs.finish.lower(fit_state, fit_state.train, epochs.metrics, validation).as_text()
    for program in (step, end):
        assert not re.findall(r"callback|stablehlo\.(?:send|recv|infeed|outfeed)", program)

    # The guard does see an implicit host-to-device transfer: host training data.
    with jax.transfer_guard("disallow"), pytest.raises(jax.errors.JaxRuntimeError, match="Disallowed host-to-device"):
        epochs.programs[True](copy(fit_state.train), epochs.metrics, epochs.position, epochs.order, digits.train,
                              epochs.k_device)


def test_a_host_callback_shows_in_the_program_text():
    # Sanity check of the pattern above: a debug print lowers to a python callback custom call.
    def noisy(x):
        jax.debug.print("{}", x)
        return x

    assert re.findall(r"callback", jax.jit(noisy).lower(np.float32(1.0)).as_text())
