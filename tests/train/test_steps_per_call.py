"""`steps_per_call`: one jitted step per call, K steps per call (K not dividing the epoch), the whole
epoch as one loop, and "auto" train the same bits: in memory and streamed, solo and as a vmapped
stack, an MLP with dropout and a CNN with batch norm and dropout."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxdl.data import load_for_pipeline
from jaxdl.data.splits import size
from jaxdl.errors import InputError
from jaxdl.models import MLP
from jaxdl.models.cnn import CNN
from jaxdl.train.checkpoint import Checkpointer
from jaxdl.train.digest import params_sha256
from jaxdl.train.fit import fit
from jaxdl.train.losses import classification_metrics
from jaxdl.train.state import create_state

# Batch 64 over the 1,295 training digits: S = 20 steps per epoch, not a multiple of 3, so K = 3 ends each
# epoch with a shorter call (and streamed chunks of 7 steps are read as 6: a multiple of K).
MODELS = {"mlp": MLP(num_outputs=10, hidden_sizes=(32,), dropout=0.2),
          "cnn": CNN(num_outputs=10, channels=(4,), dense_sizes=(8,), batch_norm=True, dropout=0.2)}


def splits_for(data_dir, pipeline):
    splits, fed = load_for_pipeline(ml_collections.ConfigDict({
        "name": "digits", "data_dir": data_dir, "validation_fraction": 0.1, "split_seed": 0, "download": False,
        "pipeline": pipeline}))
    assert fed == pipeline
    return splits


TRAINED: dict = {}  # (model, pipeline, steps_per_call, members) -> what `trained` returned, once per module


def trained_once(name, pipeline, splits, steps_per_call, members=0):
    """`trained(splits, MODELS[name], ...)`, run once per module: the mlp's FAST grid (the quick lane's) is
    part of its FULL grid (the slow lane's), and the same fit gives the same bits."""
    key = (name, pipeline, steps_per_call, members)
    if key not in TRAINED:
        TRAINED[key] = trained(splits, MODELS[name], steps_per_call, members)
    return TRAINED[key]


def trained(splits, model, steps_per_call, members=0):
    if members:  # a stack, as jaxdl.train.sweep.create_states makes it
        keys = jnp.stack([jax.random.PRNGKey(seed) for seed in range(members)])
        state = jax.jit(jax.vmap(lambda key: create_state(model, optax.adam(3e-3), (8, 8, 1), key,
                                                          classification_metrics)))(keys)
    else:
        state = create_state(model, optax.adam(3e-3), (8, 8, 1), 0, classification_metrics)
    result = fit(state, splits.train, splits.validation, epochs=2, batch_size=64, patience=1, members=members,
                 steps_per_call=steps_per_call, chunk_steps=7)
    history = [{k: v for k, v in record.items() if k != "seconds"} for record in result.history]
    if members:
        history = [[{k: v for k, v in line.items() if k != "seconds"} for line in record["members"]]
                   for record in result.history]
    return params_sha256(result.state.params), history, result


FAST = {"memory": (1, 3, "auto"), "stream": (3,)}
FULL = {"memory": (1, 3, "epoch", "auto"), "stream": (1, 3, "epoch")}


@pytest.mark.slow
@pytest.mark.parametrize("name, grid", [("mlp", FAST), pytest.param("mlp", FULL, marks=pytest.mark.slow),
                                        pytest.param("cnn", FULL, marks=pytest.mark.slow)])
def test_every_steps_per_call_trains_the_same_bits_in_memory_and_streamed(data_dir, name, grid):
    runs = {}
    for pipeline, values in grid.items():
        splits = splits_for(data_dir, pipeline)
        assert (size(splits.train) // 64) % 3 != 0
        for value in values:
            runs[(pipeline, value)] = trained_once(name, pipeline, splits, value)
    reference = runs[("memory", 1)]
    for key, (sha, history, _result) in runs.items():
        assert (sha, history) == reference[:2], key
    assert reference[1][-1]["train_loss"] < reference[1][0]["train_loss"]
    auto = runs[("memory", "auto")][2].steps_per_call
    assert auto["chosen"] in (1, 8, "epoch") and str(auto["chosen"]) in auto["ms_per_step"]
    assert runs[("memory", 3)][2].steps_per_call == {"chosen": 3, "ms_per_step": {}}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp", pytest.param("cnn", marks=pytest.mark.slow)])
def test_a_stack_trains_the_same_bits_whatever_the_steps_per_call(digits, name):
    runs = {value: trained(digits, MODELS[name], value, members=2)[:2] for value in (1, 3, "epoch")}
    assert runs[1] == runs[3] == runs["epoch"]


@pytest.mark.slow
def test_auto_times_a_program_once_per_process_and_a_new_program_again(digits):
    """A second fit of the same step program (another seed) takes the first one's choice without timing;
    a fit whose program differs (another learning rate: a constant of the step) is timed anew."""
    model = MLP(num_outputs=10, hidden_sizes=(27,))  # a program no other test of this process compiles

    def auto_fit(seed, rate):
        state = create_state(model, optax.adam(rate), (8, 8, 1), seed, classification_metrics)
        return fit(state, digits.train, digits.validation, epochs=3, batch_size=64, steps_per_call="auto")

    first, second, other = auto_fit(0, 1e-3), auto_fit(1, 1e-3), auto_fit(0, 2e-3)
    assert "remembered" not in first.steps_per_call and "remembered" not in other.steps_per_call
    assert second.steps_per_call == {**first.steps_per_call, "remembered": True}
    assert params_sha256(second.state.params) != params_sha256(first.state.params)  # another seed did train


def test_a_bad_steps_per_call_is_refused(digits):
    state = create_state(MODELS["mlp"], optax.adam(1e-3), (8, 8, 1), 0, classification_metrics)
    for value in (0, -1, 2.5, "fast", True, "1.5", None):
        with pytest.raises(InputError, match="steps_per_call"):
            fit(state, digits.train, digits.validation, epochs=1, batch_size=64, steps_per_call=value)


def test_a_config_string_of_digits_is_a_number_of_steps(digits):
    # The grids' model and optimizer: their loop program (every K > 1 is one), compiled once.
    state = create_state(MODELS["mlp"], optax.adam(3e-3), (8, 8, 1), 0, classification_metrics)
    result = fit(state, digits.train, digits.validation, epochs=1, batch_size=64, steps_per_call="5")
    assert result.steps_per_call == {"chosen": 5, "ms_per_step": {}}
    assert np.isfinite(result.history[0]["val_loss"])


@pytest.mark.slow
def test_a_run_resumed_with_another_steps_per_call_ends_with_the_uninterrupted_bits(digits, tmp_path):
    def start():
        return create_state(MODELS["cnn"], optax.adam(3e-3), (8, 8, 1), 0, classification_metrics)

    straight = fit(start(), digits.train, digits.validation, epochs=2, batch_size=64, steps_per_call="epoch")
    checkpointer = Checkpointer(str(tmp_path / "ck"), every_epochs=1, every_seconds=0)
    fit(start(), digits.train, digits.validation, epochs=1, batch_size=64, checkpointer=checkpointer, steps_per_call=1)
    checkpointer.close()
    checkpointer = Checkpointer(str(tmp_path / "ck"), every_epochs=1, every_seconds=0)
    resumed = fit(start(), digits.train, digits.validation, epochs=2, batch_size=64, checkpointer=checkpointer,
                  steps_per_call=3)
    checkpointer.close()
    assert resumed.resumed_from == 1
    assert params_sha256(resumed.state.params) == params_sha256(straight.state.params)
    assert resumed.history[-1]["val_loss"] == straight.history[-1]["val_loss"]
