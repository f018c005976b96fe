"""Development-mode training: off the request path, coalesced, versioned, persistent."""

from __future__ import annotations

import statistics
import sys
import time

from flask import Flask, jsonify, request

from .conftest import SEED_CONFIG, LiveServer, load_class

PROJECT = "12.1719830400"

SLOW_MODEL = """
import os
import threading
from label_studio_ml.model import LabelStudioMLBase

GATE = threading.Event()
STARTED = threading.Event()
CALLS = []


class Slow(LabelStudioMLBase):
    def predict(self, tasks, **kwargs):
        label = self.train_output.get("label", "none")
        return [{"result": [{"from_name": "choice", "to_name": "image", "type": "choices",
                             "value": {"choices": [label]}}], "score": 0.5} for _ in tasks]

    def fit(self, annotations, workdir=None, **kwargs):
        CALLS.append(len(annotations))
        STARTED.set()
        if not GATE.wait(30):
            raise RuntimeError("gate never opened")
        if annotations[0].get("fail"):
            raise ValueError("bad data")
        with open(os.path.join(workdir, "weights.txt"), "w") as fh:
            fh.write("trained")
        return {"label": annotations[-1]["annotations"][0]["result"][0]["value"]["choices"][0]}
"""


def annotated(label: str, n: int = 2) -> list:
    return [
        {
            "id": i,
            "data": {"image": f"{i}.jpg"},
            "annotations": [
                {
                    "result": [
                        {
                            "from_name": "choice",
                            "to_name": "image",
                            "type": "choices",
                            "value": {"choices": [label]},
                        }
                    ]
                }
            ],
        }
        for i in range(n)
    ]


def wait_done(server, project="12", timeout=20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = server.get(f"/training?project={project}").json()
        if status["status"] in ("succeeded", "failed") and not status.get("pending_job_id"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"training did not finish: {status}")


def test_training_never_blocks_predictions_and_coalesces(serve, tmp_path):
    cls = load_class(tmp_path / "s", SLOW_MODEL, "Slow")
    mod = sys.modules[cls.__module__]
    server = serve(cls)
    assert (
        server.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG}).json()["model_version"]
        == "initial"
    )
    r = server.post(
        "/train",
        json={"annotations": annotated("Airbus", 3), "project": PROJECT, "label_config": SEED_CONFIG},
    )
    assert r.status_code == 201 and r.json()["status"] == "queued", r.text
    first_job = r.json()["job_id"]
    assert mod.STARTED.wait(10), "fit never started"
    assert server.get("/training?project=12").json()["status"] == "running"

    # fit is blocked: predictions must keep flowing, fast
    latencies = []
    for _ in range(20):
        t0 = time.perf_counter()
        p = server.post("/predict", json={"tasks": [{"id": 1, "data": {}}], "project": PROJECT})
        latencies.append(time.perf_counter() - t0)
        assert p.status_code == 200
        assert p.json()["results"][0]["result"][0]["value"]["choices"] == ["none"]
    assert statistics.median(latencies) < 0.2, latencies

    # five more requests while the first run is in progress: one follow-up, the rest coalesce
    answers = [
        server.post("/train", json={"annotations": annotated("Boeing", 2), "project": PROJECT})
        for _ in range(5)
    ]
    assert answers[0].status_code == 201 and answers[0].json()["status"] == "queued"
    follow_up = answers[0].json()["job_id"]
    assert follow_up != first_job
    for a in answers[1:]:
        assert a.status_code == 200 and a.json() == {
            "status": "coalesced",
            "job_id": follow_up,
            "project": "12",
        }
    mod.GATE.set()
    status = wait_done(server)
    assert mod.CALLS == [3, 2], "one run plus exactly one follow-up"
    assert status["status"] == "succeeded" and status["job_id"] == follow_up
    versions = server.get("/versions").json()["versions"]
    assert len(versions) == 2 and versions[0].startswith("v1-") and versions[1].startswith("v2-")
    setup = server.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG}).json()
    assert setup["model_version"] == versions[1]
    p = server.post("/predict", json={"tasks": [{"id": 1, "data": {}}], "project": PROJECT}).json()
    assert p["results"][0]["model_version"] == versions[1]
    assert p["results"][0]["result"][0]["value"]["choices"] == ["Boeing"]
    store = server.app.extensions["lsml"].store
    assert (store.version_dir("12", versions[1]) / "weights.txt").read_text() == "trained"


def test_failed_training_keeps_last_good_version_and_survives_restart(serve, tmp_path, models_dir):
    cls = load_class(tmp_path / "s", SLOW_MODEL, "Slow")
    sys.modules[cls.__module__].GATE.set()
    server = serve(cls)
    server.post(
        "/train", json={"annotations": annotated("Airbus"), "project": PROJECT, "label_config": SEED_CONFIG}
    )
    good = wait_done(server)
    assert good["status"] == "succeeded"
    good_version = good["version"]

    bad = annotated("Boeing")
    bad[0]["fail"] = True
    server.post("/train", json={"annotations": bad, "project": PROJECT})
    status = wait_done(server)
    assert status["status"] == "failed"
    assert status["error"] == "ValueError: bad data"
    assert status["served_version"] == good_version
    assert status["versions"] == [good_version], "the failed run left no version behind"
    assert len(list((models_dir / "12" / "versions").iterdir())) == 1
    p = server.post("/predict", json={"tasks": [{"id": 1}], "project": PROJECT}).json()
    assert p["results"][0]["result"][0]["value"]["choices"] == ["Airbus"]

    # a new process over the same MODEL_DIR serves the same version and train_output
    again = serve(cls)
    assert again.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG}).json() == {
        "model_version": good_version
    }
    p = again.post("/predict", json={"tasks": [{"id": 1}], "project": PROJECT}).json()
    assert p["results"][0]["result"][0]["value"]["choices"] == ["Airbus"]
    assert p["results"][0]["model_version"] == good_version


CURRENT_MODEL = """
from label_studio_ml.model import LabelStudioMLBase
from label_studio_ml.response import ModelResponse

EVENTS = []


class Current(LabelStudioMLBase):
    def setup(self):
        self.set("model_version", "0.1.0")

    def predict(self, tasks, context=None, **kwargs):
        count = self.get("seen") or "0"
        return ModelResponse(predictions=[{"result": [], "score": float(count)} for _ in tasks])

    def fit(self, event, data, **kwargs):
        EVENTS.append((event, sorted(data), self.label_config is not None, kwargs.get("workdir"),
                       kwargs.get("annotations")))
        self.set("seen", str(int(self.get("seen") or "0") + 1))
        return {"event": event}
"""


def test_current_style_webhook_training(serve, tmp_path):
    cls = load_class(tmp_path / "c", CURRENT_MODEL, "Current")
    events = sys.modules[cls.__module__].EVENTS
    server = serve(cls)
    assert server.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG}).json() == {
        "model_version": "0.1.0"
    }
    r = server.post(
        "/webhook", json={"action": "START_TRAINING", "project": {"id": 12, "label_config": SEED_CONFIG}}
    )
    assert r.status_code == 201 and r.json()["status"] == "queued"
    assert r.elapsed.total_seconds() < 1
    status = wait_done(server)
    assert status["status"] == "succeeded"
    event, keys, had_config, workdir, annotations = events[0]
    assert event == "START_TRAINING" and keys == ["project"] and had_config
    assert workdir and workdir.endswith(status["version"])
    setup = server.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG}).json()
    assert setup["model_version"] == status["version"]
    p = server.post("/predict", json={"tasks": [{"id": 1}], "project": PROJECT}).json()
    assert p["results"][0]["score"] == 1.0, "the new model sees what fit stored with set()"
    # annotation events train too; other events do not
    server.post(
        "/webhook",
        json={
            "action": "ANNOTATION_CREATED",
            "project": {"id": 12},
            "annotation": {"id": 1},
            "task": {"id": 1},
        },
    )
    done = wait_done(server)
    assert [e[0] for e in events] == ["START_TRAINING", "ANNOTATION_CREATED"]
    # no /setup in between: the next /predict already serves the new version
    p = server.post("/predict", json={"tasks": [{"id": 1}], "project": PROJECT}).json()
    assert p["results"][0]["model_version"] == done["version"] and p["results"][0]["score"] == 2.0
    # legacy /train hands its annotations to a current-style fit that accepts them
    server.post(
        "/train", json={"annotations": [{"id": 9, "annotations": [{"result": []}]}], "project": PROJECT}
    )
    wait_done(server)
    assert events[-1][4] == [{"id": 9, "annotations": [{"result": []}]}] and annotations is None


def test_model_without_fit_reports_why(serve, tmp_path):
    cls = load_class(
        tmp_path / "p",
        """
        from label_studio_ml.model import LabelStudioMLBase
        class PredictOnly(LabelStudioMLBase):
            def predict(self, tasks, **kwargs):
                return [{"result": []} for _ in tasks]
    """,
        "PredictOnly",
    )
    server = serve(cls)
    server.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 5}})
    status = wait_done(server, "5")
    assert status["status"] == "failed" and "has no fit() method" in status["error"]


def fake_label_studio(token: str, tasks: list) -> LiveServer:
    """Plays Label Studio's export endpoint, checking the legacy token."""
    app = Flask("fake_ls")

    @app.get("/api/projects/<int:pid>/export")
    def export(pid):
        if request.headers.get("Authorization") != f"Token {token}":
            return jsonify({"detail": "Authentication credentials were not provided."}), 401
        return jsonify(tasks)

    return LiveServer(app)


def test_seed_fit_gets_annotations_from_label_studio(serve, tmp_path):
    cls = load_class(tmp_path / "s", SLOW_MODEL, "Slow")
    mod = sys.modules[cls.__module__]
    mod.GATE.set()
    ls = fake_label_studio("abc123", annotated("Boeing", 4))
    try:
        server = serve(cls, label_studio_url=ls.url, label_studio_api_key="abc123")
        r = server.post(
            "/webhook", json={"action": "START_TRAINING", "project": {"id": 12, "label_config": SEED_CONFIG}}
        )
        assert r.status_code == 201
        status = wait_done(server)
        assert status["status"] == "succeeded", status
        assert mod.CALLS == [4]
        p = server.post("/predict", json={"tasks": [{"id": 1}], "project": PROJECT}).json()
        assert p["results"][0]["result"][0]["value"]["choices"] == ["Boeing"]

        # the token /setup sends works too when no key is configured
        other = serve(cls, label_studio_url=None)
        other.post(
            "/setup",
            json={"project": "12.1", "schema": SEED_CONFIG, "hostname": ls.url, "access_token": "abc123"},
        )
        other.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 12}})
        assert wait_done(other)["status"] == "succeeded"
    finally:
        ls.close()


def test_seed_fit_without_label_studio_config_names_the_variables(serve, tmp_path):
    cls = load_class(tmp_path / "s", SLOW_MODEL, "Slow")
    server = serve(cls)
    server.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 7}})
    status = wait_done(server, "7")
    assert status["status"] == "failed"
    assert "LABEL_STUDIO_URL" in status["error"] and "LABEL_STUDIO_API_KEY" in status["error"]
