"""The padded, masked network computes what the unpadded Flax network computes, trains the same
whatever the chunking, and a "compare" member trains as its solo session does."""

from __future__ import annotations

import base64

import jax
import numpy as np
import pytest

from jaxdl.data import DataInfo
from jaxdl.data.playground import REGRESSION_GENERATORS
from jaxdl.models.mlp import MLP
from jaxdl.models.playground import PlaygroundNet
from jaxdl.playground import chunk, network
from jaxdl.playground.session import Session, hyper_of, make_points
from jaxdl.playground.settings import Settings

ARCHITECTURES = [  # (features, hidden, activation, dataset)
    (("x1", "x2"), (8, 8), "tanh", "spiral"),
    (("x2", "sin_x1", "x1_times_x2"), (4,), "relu", "xor"),
    (("x1", "x1_squared", "x2_squared", "sin_x2"), (3, 2, 5, 8, 2, 6), "tanh", "plane"),
    (("x1", "x2", "x1_squared", "x2_squared", "x1_times_x2", "sin_x1", "sin_x2"), (2,), "sigmoid", "multi_gaussian"),
    (("x1",), (), "linear", "circle"),
]


def flax_outputs(settings: Settings, params: dict, points: np.ndarray) -> np.ndarray:
    regression = settings.dataset in REGRESSION_GENERATORS
    model = PlaygroundNet(features=settings.features,
                          mlp=MLP(num_outputs=1 if regression else 2, hidden_sizes=settings.hidden,
                                  activation=settings.activation))
    own = network.flax_params(params, settings.features, settings.hidden, regression)
    return np.asarray(model.apply({"params": own}, points))


@pytest.mark.slow
@pytest.mark.parametrize(("features", "hidden", "activation", "dataset"), ARCHITECTURES)
def test_the_padded_network_after_training_is_the_unpadded_flax_network(features, hidden, activation, dataset):
    settings = Settings(dataset=dataset, features=features, hidden=hidden, activation=activation,
                        regularization="L1", regularization_rate=0.001, optimizer="adam", learning_rate=0.01)
    session = Session(settings)
    session.step(3)
    params, epoch = session.host_state()
    assert epoch == 3
    masks = jax.device_get(network.param_masks(jax.tree.map(np.asarray, hyper_of(settings).arch)))
    for name, value in params.items():  # nothing outside the chosen architecture ever moved
        assert np.all(value[masks[name] == 0] == 0), name
    points = make_points(settings)[0]
    padded, _ = network.forward(params, network.make_arch(features, hidden, settings.regression),
                                np.int32(network.ACTIVATION_NAMES.index(activation)), points)
    expected = flax_outputs(settings, params, points)
    np.testing.assert_allclose(np.asarray(padded)[:, :expected.shape[1]], expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(expected, expected[:1])  # a network that learned something, not a constant


def test_chunks_of_any_length_give_the_same_numbers():
    settings = Settings(dataset="circle", hidden=(3, 2), batch_size=7)
    whole, pieces = Session(settings), Session(settings)
    whole.step(5)
    pieces.step(2)
    pieces.step(0)
    pieces.step(3)
    for name, value in whole.host_state()[0].items():
        np.testing.assert_array_equal(value, pieces.host_state()[0][name])


@pytest.mark.slow  # compiles the two-member program (the one-member one is shared with the other tests)
def test_a_compare_member_trains_as_its_solo_session():
    settings = Settings(dataset="gaussian", hidden=(4,), learning_rate=0.03)
    group = Session(settings)
    group.configure(settings, "learning_rate", [0.003, 0.1])
    view = group.step(4)
    assert [m["label"] for m in view["members"]] == ["learning_rate 0.003", "learning_rate 0.1"]
    solo = Session(Settings(dataset="gaussian", hidden=(4,), learning_rate=0.1))
    solo_view = solo.step(4)
    np.testing.assert_allclose(view["members"][1]["test_loss"], solo_view["members"][0]["test_loss"], rtol=1e-5)
    assert view["members"][0]["test_loss"] != view["members"][1]["test_loss"]


def test_the_view_holds_compact_surfaces_of_the_output_and_every_tile():
    view = Session(Settings(hidden=(8, 8))).step(1)
    output = np.frombuffer(base64.b64decode(view["members"][0]["output"]), np.uint8)
    tiles = np.frombuffer(base64.b64decode(view["tiles"]), np.uint8)
    assert output.size == chunk.OUTPUT_GRID ** 2 and output.min() < 100 and output.max() > 150
    assert tiles.size == (network.MAX_WIDTH * (1 + network.MAX_LAYERS)) * chunk.TILE_GRID ** 2
    assert np.asarray(view["weights"]["hidden"]).shape == (6, 8, 8) and len(view["weights"]["output"]) == 8


def test_the_sets_hold_the_playgrounds_points():
    info = DataInfo(name="x", task="regression", input_shape=(2,))
    assert info.num_outputs == 1
    for dataset in ("circle", "spiral", "plane", "multi_gaussian"):
        points, targets, in_train = make_points(Settings(dataset=dataset, train_percent=30, noise=10))
        assert points.shape[1] == 2 and np.abs(points).max() <= 6 + 3
        assert abs(in_train.mean() - 0.3) < 0.01
        assert -1.5 <= targets.min() and targets.max() <= 1.5
