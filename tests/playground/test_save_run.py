""""Save as run" writes a complete jaxdl run: load_run, export and serve take it, and the model answers
with the numbers the page showed."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest
from playground_server import request, serving

import jaxdl
from jaxdl.deploy.export import export_predictor
from jaxdl.deploy.serve import create_app
from jaxdl.errors import InputError
from jaxdl.playground import network
from jaxdl.playground.save_run import save_run
from jaxdl.playground.session import Session
from jaxdl.playground.settings import Settings
from jaxdl.run.main import main as jaxdl_main


@pytest.mark.slow  # writes two whole runs (report, baseline, drift reference)
@pytest.mark.parametrize("dataset", ["xor", "multi_gaussian"])
def test_a_saved_run_answers_as_the_page_did_through_load_run_export_and_serve(tmp_path, dataset):
    settings = Settings(dataset=dataset, features=("x1", "x2", "x1_times_x2"), hidden=(5, 3), regularization="L2",
                        regularization_rate=0.001)
    session = Session(settings)
    view = session.step(4)
    params, epoch = session.host_state()
    workdir = str(tmp_path / "run")
    summary = save_run(workdir, settings, params, epoch, session.points)
    for name in ("config.json", "data_info.json", "summary.json", "drift_reference.json", "report.html",
                 "metrics.jsonl"):
        assert os.path.isfile(os.path.join(workdir, name)), name
    assert summary["epochs_run"] == 4 and len(summary["params_sha256"]) == 64
    np.testing.assert_allclose(summary["test"]["loss"], view["members"][0]["test_loss"], rtol=1e-5)
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["playground"]["hidden"] == [5, 3]

    predictor = jaxdl.load_run(workdir)
    points = session.points[0][:16]
    outputs, _ = network.forward(params, network.make_arch(settings.features, settings.hidden, settings.regression),
                                 np.int32(network.ACTIVATION_NAMES.index(settings.activation)), points)
    answered = predictor(points)
    if settings.regression:
        np.testing.assert_allclose(answered[:, 0], np.asarray(outputs)[:, 0], rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(answered, np.asarray(jax.nn.softmax(outputs)), rtol=1e-5, atol=1e-6)
    exported = export_predictor(predictor, platforms=("cpu",))
    np.testing.assert_allclose(np.asarray(exported.call(points[:8])), answered[:8], rtol=1e-6, atol=1e-6)
    assert create_app(predictor, max_batch=2) is not None  # serve warms up every batch size on it


def test_saving_an_untrained_network_or_into_a_taken_name_is_refused(tmp_path):
    session = Session(Settings(hidden=(2,)))
    with pytest.raises(InputError, match="has not trained yet"):
        save_run(str(tmp_path / "run"), session.settings, *session.host_state(), session.points)
    assert not (tmp_path / "run").exists()
    (tmp_path / "taken").mkdir()
    with serving(runs_dir=str(tmp_path), warm_up=False) as address:
        opened = request(address, "POST", "/api/session", {"hidden": [2]})[1]
        request(address, "POST", f"/api/session/{opened['session']}/step", {"epochs": 1})
        status, answer = request(address, "POST", f"/api/session/{opened['session']}/save", {"name": "taken"})
    assert status == 409 and "exists already" in answer["error"]


def test_the_jaxdl_command_starts_the_playground_and_refuses_bad_flags(capsys):
    assert jaxdl_main(["playground", "--max_sessions", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: --max_sessions: ")
    assert jaxdl_main(["playground", "--help"]) == 0
    assert "python -m jaxdl.playground" in capsys.readouterr().out
