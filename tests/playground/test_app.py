"""The playground's HTTP door: sessions over JSON, a 4xx with {"error"} for every bad message, and the
server goes on answering; settings round-trip through the URL; sessions are bounded and freed."""

from __future__ import annotations

import pytest
from playground_server import request, serving

from jaxdl.errors import InputError
from jaxdl.playground import settings as settings_lib
from jaxdl.playground.session import SessionError, Sessions
from jaxdl.playground.settings import Settings


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serving(max_sessions=3, runs_dir=str(tmp_path_factory.mktemp("runs")), warm_up=False) as address:
        yield address


@pytest.mark.slow
def test_a_session_trains_in_chunks_and_answers_with_its_view(server):
    status, opened = request(server, "POST", "/api/session", {"dataset": "xor", "hidden": [3], "features": ["x1"]})
    assert status == 200, opened
    assert opened["settings"]["dataset"] == "xor" and opened["settings"]["hidden"] == [3]
    assert opened["settings"]["features"] == ["x1"] and "dataset=xor" in opened["query"]
    assert len(opened["points"]) == 500 and opened["view"]["epoch"] == 0
    path = f"/api/session/{opened['session']}"
    status, stepped = request(server, "POST", path + "/step", {"epochs": 3})
    assert status == 200 and stepped["view"]["epoch"] == 3 and stepped["view"]["epochs"] == 3
    status, auto = request(server, "POST", path + "/step", {})
    assert status == 200 and auto["view"]["epochs"] >= 1 and auto["view"]["epoch"] == 3 + auto["view"]["epochs"]
    status, reset = request(server, "POST", path + "/reset", {})
    assert status == 200 and reset["view"]["epoch"] == 0
    assert reset["view"]["members"][0]["output"] == opened["view"]["members"][0]["output"]  # same seed, same start
    assert request(server, "DELETE", path)[0] == 200
    assert request(server, "POST", path + "/step", {})[0] == 404


BAD = [  # (method, path, body or raw bytes, status, words of the error)
    ("POST", "/api/session", b"{not json", 400, "not JSON"),
    ("POST", "/api/session", [1, 2], 400, "not a JSON object"),
    ("POST", "/api/session", {"hidden": [8] * 7}, 422, "hidden: too many hidden layers"),
    ("POST", "/api/session", {"hidden": [9]}, 422, "hidden"),
    ("POST", "/api/session", {"dataset": "spirals"}, 422, "dataset: unknown name"),
    ("POST", "/api/session", {"features": []}, 422, "features: no input feature"),
    ("POST", "/api/session", {"learning_rate": "NaN"}, 422, "learning_rate"),
    ("POST", "/api/session", {"learning_rate": 0}, 422, "learning_rate"),
    ("POST", "/api/session", {"batch_size": 31}, 422, "batch_size"),
    ("POST", "/api/session", {"colour": "red"}, 422, "unknown field 'colour'"),
    ("POST", "/api/session", b"x" * 70000, 413, "more than"),
    ("POST", "/api/session/nosuch/step", {}, 404, "no session 'nosuch'"),
    ("GET", "/api/session", None, 405, "Method Not Allowed"),
    ("GET", "/nothing", None, 404, "Not Found"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "words"), BAD)
def test_a_bad_message_gets_a_4xx_with_an_error_and_the_server_goes_on(server, method, path, body, status, words):
    raw = body if isinstance(body, bytes) else None
    got, answer = request(server, method, path, None if raw else body, raw=raw)
    assert got == status and words in answer["error"], answer
    assert request(server, "GET", "/health")[0] == 200


@pytest.mark.slow
def test_bad_step_compare_and_save_messages_of_a_session(server):
    status, opened = request(server, "POST", "/api/session", {"hidden": [2]})
    path = f"/api/session/{opened['session']}"
    cases = [("/step", {"epochs": -1}, 422, "epochs"), ("/step", {"epochs": 1.5}, 422, "epochs"),
             ("/step", {"epochs": 101}, 422, "epochs"),
             ("/compare", {"vary": "dataset", "values": ["xor", "spiral"]}, 422, "vary"),
             ("/compare", {"vary": "learning_rate", "values": [0.1]}, 422, "values: wrong count"),
             ("/compare", {"vary": "learning_rate", "values": [0.1] * 9}, 422, "values: wrong count"),
             ("/compare", {"vary": "activation", "values": ["tanh", "swish"]}, 422, "activation: unknown name"),
             ("/save", {"name": "../escape"}, 422, "name: not a run name"),
             ("/save", {}, 422, "name"),
             ("/save", {"name": "untrained"}, 422, "has not trained yet"),
             ("/settings", {"noise": 60}, 422, "noise")]
    for route, body, status, words in cases:
        got, answer = request(server, "POST", path + route, body)
        assert got == status and words in answer["error"], (route, body, answer)
    assert request(server, "POST", path + "/step", {"epochs": 1})[1]["view"]["epoch"] == 1  # still there
    request(server, "DELETE", path)


def test_settings_round_trip_through_the_url_and_are_checked_at_the_door():
    settings = Settings(dataset="spiral", noise=10, features=("x1", "sin_x2"), hidden=(8, 1, 3), activation="relu",
                        learning_rate=0.003, regularization="L2", regularization_rate=0.01, optimizer="adam", seed=7)
    assert settings_lib.from_query(settings.query()) == settings
    assert settings_lib.from_query("#hidden=&features=x2") == Settings(hidden=(), features=("x2",))
    with pytest.raises(InputError, match="^seed: "):
        settings_lib.from_query("seed=-1")


def test_sessions_are_bounded_and_idle_ones_are_freed():
    sessions = Sessions(max_sessions=2, idle_seconds=3600)
    first = sessions.create(Settings(hidden=(1,)))
    sessions.create(Settings(hidden=(1,)))
    with pytest.raises(SessionError, match="all 2 sessions are in use") as raised:
        sessions.create(Settings(hidden=(1,)))
    assert raised.value.status == 429
    sessions.idle_seconds = 0.0  # every session counts as idle now
    assert sessions.sweep() == 0
    with pytest.raises(SessionError, match="no session"):
        sessions.get(first.id)
