"""The seed tutorial's model in production mode: supervisord runs uWSGI and the RQ worker.

Label Studio 1.23 drives it: /setup, /predict, the START_TRAINING webhook (the worker fetches
the annotations from Label Studio's export API, here a fake on loopback), the annotation
events, and legacy /train.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SHARED_REDIS = "redis://127.0.0.1:6379/0"
PROJECT = "7.1719830400"  # as Label Studio sends it: <id>.<timestamp>


@pytest.fixture(scope="module")
def seed(seed_backend, venv, fake_ls, deployment_factory, e2e):
    deployment = deployment_factory(
        seed_backend,
        venv,
        SHARED_REDIS,
        {"LABEL_STUDIO_URL": fake_ls.url, "LABEL_STUDIO_API_KEY": fake_ls.key},
    )
    deployment.start()
    line = f"seed backend cold start (supervisord start -> /health 200): {deployment.cold_start:.2f} s"
    print(line)
    e2e.summary.append(line)
    return deployment


def predict(seed, e2e, n=4):
    response = seed.post(
        "/predict",
        {"tasks": e2e.tasks(n), "project": PROJECT, "label_config": e2e.config, "params": {"context": None}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["results"]) == n
    return body


def predicts_version(seed, e2e, version):
    """/predict reports ``version`` within a second (each uWSGI process checks every 0.5 s)."""
    e2e.wait_for(lambda: predict(seed, e2e, 2)["model_version"] == version, 1.5, what=f"/predict {version}")


def test_health_and_cold_start(seed, record_property):
    record_property("cold_start_s", round(seed.cold_start, 3))
    body = seed.get("/health").json()
    assert body["status"] == "UP"
    assert body["mode"] == "production"
    assert body["model_class"] == "DummyModel"
    assert seed.program_pid("uwsgi") and seed.program_pid("rq")


def test_setup_predict_then_webhook_training_on_the_worker(seed, fake_ls, e2e):
    fake_ls.tasks["7"] = [e2e.annotated_task(i) for i in range(1, 4)] + [
        {"id": 9, "data": {"text": "not annotated"}, "annotations": []}
    ]
    setup = seed.post(
        "/setup",
        {"project": PROJECT, "schema": e2e.config, "hostname": fake_ls.url, "access_token": fake_ls.key},
    )
    assert setup.status_code == 200, setup.text
    assert setup.json()["model_version"] == "initial"
    before = predict(seed, e2e, 5)
    assert before["model_version"] == "initial"
    assert all(r["result"][0]["value"]["choices"] == ["pos"] for r in before["results"])

    webhook = seed.post(
        "/webhook",
        {"action": "START_TRAINING", "project": {"id": 7, "title": "e2e", "label_config": e2e.config}},
    )
    assert webhook.status_code == 201, webhook.text
    job_id = webhook.json()["job_id"]
    status = seed.wait_status("7", "succeeded", job_id=job_id)
    version = status["version"]
    assert status["served_version"] == version

    # the worker fetched the annotations from Label Studio with the legacy token
    exports = [r for r in fake_ls.requests if r["path"].startswith("/api/projects/7/export")]
    assert exports and all(r["authorization"] == f"Token {fake_ls.key}" for r in exports)

    assert seed.post("/setup", {"project": PROJECT, "schema": e2e.config}).json()["model_version"] == version
    predicts_version(seed, e2e, version)
    store = seed.backend / "data" / "models" / "7" / "versions" / version
    assert json.loads((store / "train_output.json").read_text()) == {"path/to/created/model": "my/model.bin"}

    # the job ran on the RQ worker: its log names it, the API's log does not run fit
    rq_log = (seed.backend / "logs" / "rq.log").read_text()
    assert job_id in rq_log and f"produced version {version}" in rq_log
    assert f"produced version {version}" not in (seed.backend / "logs" / "uwsgi.log").read_text()


def test_annotation_events_and_legacy_train(seed, fake_ls, e2e):
    event = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": 7, "label_config": e2e.config},
        "task": e2e.annotated_task(4),
        "annotation": e2e.annotated_task(4)["annotations"][0],
    }
    fake_ls.tasks["7"].append(e2e.annotated_task(4, "neg"))
    answers = [seed.post("/webhook", event) for _ in range(3)]
    job_ids = []
    for answer in answers:
        assert answer.status_code in (200, 201), answer.text
        body = answer.json()
        assert body["status"] in ("queued", "coalesced")
        if body["status"] == "coalesced":
            assert body["job_id"] in job_ids
        job_ids.append(body["job_id"])
    seed.wait_status("7", "succeeded", job_id=job_ids[-1])

    ignored = seed.post("/webhook", {"action": "TASKS_CREATED", "project": {"id": 7}})
    assert ignored.status_code == 200 and ignored.json()["status"] == "ignored"

    legacy = seed.post(
        "/train", {"project": "7", "label_config": e2e.config, "annotations": fake_ls.tasks["7"][:2]}
    )
    assert legacy.status_code == 201, legacy.text
    status = seed.wait_status("7", "succeeded", job_id=legacy.json()["job_id"])
    assert seed.post("/setup", {"project": PROJECT}).json()["model_version"] == status["version"]
    predicts_version(seed, e2e, status["version"])


def test_logs_land_where_the_seed_says(seed):
    logs = Path(seed.backend, "logs")
    uwsgi_log = (logs / "uwsgi.log").read_text()
    rq_log = (logs / "rq.log").read_text()
    assert "uWSGI" in uwsgi_log and "POST /predict" in uwsgi_log
    assert seed.queue in rq_log and "label_studio_ml.training" in rq_log
    assert (logs / "supervisord.log").is_file()
