"""`python -m jaxdl.explain` and the server's /explain: attributions of new inputs for a finished run."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from conftest import run_cli
from deploy_runs import finished_run, run_splits
from test_predict import stored_pixels, table_rows

import jaxdl
from jaxdl.deploy.explainer import Explainer
from jaxdl.deploy.serve import MAX_EXPLAIN, create_app
from jaxdl.run.main import main as jaxdl_main


@pytest.mark.slow
def test_the_command_writes_attributions_of_the_stored_shape_that_sum_to_the_change_and_overlays(
        tmp_path_factory, tmp_path):
    workdir = finished_run("mlp", tmp_path_factory)
    predictor = jaxdl.load_run(workdir)
    x = stored_pixels(run_splits(workdir).test["x"][:3])
    np.save(tmp_path / "new.npy", x)
    result = run_cli("jaxdl.explain", "--workdir", workdir, str(tmp_path / "new.npy"), "--output",
                     str(tmp_path / "out"), "--steps", "64")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"wrote {tmp_path / 'out' / 'explanations.json'} and 3 overlays"
    document = json.loads((tmp_path / "out" / "explanations.json").read_text())
    assert document["method"] == "integrated gradients" and document["steps"] == 64
    assert document["explained"] == "the logit of the predicted class" and "black image" in document["baseline"]
    probabilities = predictor(x)
    for i, row in enumerate(document["explanations"]):
        attributions = np.asarray(row["attributions"])
        assert attributions.shape == np.asarray(row["gradient_x_input"]).shape == (8, 8, 1)
        assert row["input"] == f"{tmp_path / 'new.npy'}[{i}]"
        assert row["predicted"] == predictor.class_names[int(probabilities[i].argmax())]
        assert row["probability"] == pytest.approx(float(probabilities[i].max()), abs=1e-6)
        change = row["output_at_input"] - row["output_at_baseline"]
        assert abs(attributions.sum() - change) <= 0.01 * abs(change) and row["completeness_gap"] <= 0.01
        assert np.all(attributions[x[i] == 0] == 0)  # a black pixel is the baseline's own: nothing to attribute
        assert (tmp_path / "out" / row["overlay"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_bad_input_is_one_error_line_exit_2_and_nothing_written(tmp_path_factory, tmp_path):
    workdir = finished_run("mlp", tmp_path_factory)
    np.save(tmp_path / "wrong.npy", np.zeros((2, 3), np.float32))
    for args, words in [((str(tmp_path / "wrong.npy"),), "wrong input shape (got (2, 3), expected (N, 8, 8, 1))"),
                        ((str(tmp_path / "wrong.npy"), "--steps", "2000"), "--steps: out of range")]:
        result = run_cli("jaxdl.explain", "--workdir", workdir, *args, "--output", str(tmp_path / "out"))
        assert result.returncode == 2 and result.stderr.startswith("error: ") and words in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_tables_answer_is_told_by_its_csv_columns_through_the_jaxdl_command(tmp_path_factory, tmp_path, capsys):
    workdir = finished_run("table", tmp_path_factory)
    header, rows = table_rows(workdir)
    with open(tmp_path / "new.csv", "w") as f:
        f.write(",".join(header) + "\n" + "\n".join(",".join(row) for row in rows[:4]) + "\n")
    assert jaxdl_main(["explain", "--workdir", workdir, str(tmp_path / "new.csv")]) == 0
    document = json.loads(capsys.readouterr().out)
    features = {"row", "size", "shade"}  # the run's feature columns (kind is the label)
    for row in document["explanations"]:
        assert {f["feature"] for f in row["top_features"]} == features
        assert row["sentence"].startswith(f"answered '{row['predicted']}' (")
        total = sum(f["contribution"] for f in row["top_features"])
        assert total == pytest.approx(np.sum(row["attributions"]), abs=1e-5)
    missing = document["explanations"][3]  # CSV row 4 (index 3): its size is missing, as the CSV says
    assert {f["feature"]: f["value"] for f in missing["top_features"]}["size"] == "missing"


async def asgi_session(app, requests: list[tuple[str, bytes | dict]]) -> list[tuple[int, dict]]:
    """POSTs each (path, body) to the ASGI app inside its lifespan (the batcher runs there)."""
    events: asyncio.Queue = asyncio.Queue()
    started = asyncio.Event()

    async def lifespan_send(message):
        if message["type"] == "lifespan.startup.complete":
            started.set()

    await events.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, events.get, lifespan_send))
    await started.wait()
    answers = []
    for path, body in requests:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        sent = []

        async def receive(data=data):
            return {"type": "http.request", "body": data, "more_body": False}

        async def send(message, sent=sent):
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": [(b"content-type", b"application/json"), (b"host", b"t")], "client": ("t", 1),
                 "server": ("t", 80)}
        await app(scope, receive, send)
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        answers.append((status, json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] ==
                                                    "http.response.body"))))
    await events.put({"type": "lifespan.shutdown"})
    await lifespan
    return answers


def test_the_explain_route_answers_as_the_explainer_and_refuses_bad_requests_with_4xx(tmp_path_factory):
    workdir = finished_run("mlp", tmp_path_factory)
    predictor = jaxdl.load_run(workdir)
    x = stored_pixels(run_splits(workdir).test["x"][:2])
    app = create_app(predictor, max_batch=2)
    answers = asyncio.run(asgi_session(app, [
        ("/explain", {"inputs": x.tolist()}),
        ("/explain", {"inputs": [[1, 2, 3]]}),
        ("/explain", {"inputs": x[:1].tolist() * (MAX_EXPLAIN + 1)}),
        ("/explain", b'{"inputs": [[1'),
    ]))
    (status, good), *bad = answers
    assert status == 200 and good["method"] == "integrated gradients" and good["steps"] == 64
    want = Explainer(predictor)(x)
    assert [row["predicted"] for row in good["explanations"]] == [row["predicted"] for row in want]
    for got, expected in zip(good["explanations"], want, strict=True):
        np.testing.assert_allclose(got["attributions"], expected["attributions"], atol=1e-6)
        assert np.shape(got["attributions"]) == (8, 8, 1) and got["completeness_gap"] <= 0.01
    assert [status for status, _ in bad] == [422, 413, 400]
    assert "wrong input shape" in bad[0][1]["error"] and f"at most {MAX_EXPLAIN} inputs" in bad[1][1]["error"]
    assert all(set(answer) == {"error"} for _, answer in bad)
