"""`fit(..., progress=True)` shows the command line's progress bar; the default shows nothing."""

from __future__ import annotations

import inspect

import optax
import pytest

from jaxdl.models import MLP
from jaxdl.run.config import apply_override, load_config
from jaxdl.train.fit import fit
from jaxdl.train.losses import classification_metrics
from jaxdl.train.optimizer import build_optimizer
from jaxdl.train.state import create_state
from jaxdl.train.sweep import create_states, members_of


def state():
    return create_state(MLP(num_outputs=10, hidden_sizes=(16,)), optax.adam(1e-2), (8, 8, 1), 0,
                        classification_metrics)


def test_progress_shows_the_bar_of_the_command_line(digits, capsys):
    assert inspect.signature(fit).parameters["progress"].default is False  # library use: quiet by default
    records = []
    result = fit(state(), digits.train, digits.validation, epochs=3, batch_size=64, progress=True,
                 on_epoch=records.append)
    err = capsys.readouterr().err
    assert "3/3" in err and "epoch" in err and len(records) == 3  # the caller's on_epoch still runs
    last = result.history[-1]
    assert f"val_loss={last['val_loss']:.4f}" in err and f"val_accuracy={last['val_accuracy']:.4f}" in err


@pytest.mark.slow
def test_progress_of_a_stack_shows_its_best_member(digits, capsys):
    config = load_config("mlp:tiny")
    apply_override(config, "sweep.seeds", "2")
    members = members_of(config)
    model = MLP(num_outputs=10, hidden_sizes=(16,))
    tx = build_optimizer(config.optimizer, steps_per_epoch=1, epochs=1)
    states = create_states(model, tx, (8, 8, 1), members, classification_metrics)
    result = fit(states, digits.train, digits.validation, epochs=2, batch_size=64, members=2, progress=True)
    err = capsys.readouterr().err
    best = min(result.history[-1]["members"], key=lambda line: line["val_loss"])
    assert "2/2" in err and f"val_loss={best['val_loss']:.4f}" in err
