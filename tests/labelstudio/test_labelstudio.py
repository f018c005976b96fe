"""Label Studio 1.23.2 drives baked backends through its REST API, as a user clicks.

See docs/labelstudio.md for what each Label Studio button sends the backend. One Label
Studio serves the whole session (conftest.py); every test makes its own project.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import requests

pytestmark = pytest.mark.slow

CONNECTED = "CO"
ERROR = "ER"


def _connected(ls, ml_id, backend, timeout=30):
    """GET /api/ml/{id} until the connection is Connected (LS re-runs /health and /setup)."""

    deadline = time.monotonic() + timeout
    while True:
        ml = ls.ml(ml_id, extra_logs=backend.logs)
        if ml["state"] == CONNECTED:
            return ml
        if time.monotonic() > deadline:
            raise AssertionError(
                f"connection {ml_id} is {ml['state']!r} ({ml.get('error_message')!r})\n{ls.logs()}\n{backend.logs()}"
            )
        time.sleep(0.5)


def _by_task(predictions):
    out = {}
    for p in predictions:
        out.setdefault(p["task"], []).append(p)
    return out


# ---------------------------------------------------------------------------------------------
def test_connect_test_request_retrieve_and_open_task(label_studio, baked, serve, project_title, helpers):
    """Seed tutorial model, development mode: connect, Send Test Request, Retrieve Predictions
    (twice: no duplicates), and opening an unpredicted task predicts it."""
    ls = label_studio
    backend = serve(baked("seed_model.py", "seed-dev"))
    project = ls.create_project(project_title, helpers.image_tasks(3))
    pid = project["id"]

    ml = ls.connect(pid, backend.url, "seed dev", is_interactive=False, extra_logs=backend.logs)
    ml = _connected(ls, ml["id"], backend)
    version = ml["model_version"]
    assert version, f"Label Studio stored no model_version from /setup: {ml}"
    setup = requests.post(
        backend.url + "/setup", json={"project": f"{pid}.0", "schema": helpers.LABEL_CONFIG}, timeout=10
    ).json()
    assert version == setup["model_version"], (ml, setup)
    health = backend.get("/health").json()
    assert health["status"] == "UP" and health["mode"] == "development", health

    # Send Test Request
    # Send Test Request: LS shows the backend's answer (and stores nothing)
    test = ls.call(
        "POST", f"/api/ml/{ml['id']}/predict/test", params={"random": "true"}, extra_logs=backend.logs
    )
    assert test["status"] == 200 and not test.get("error_message"), f"{test}\n{backend.logs()}"
    assert len(test["response"]) == 1, test
    assert helpers.choice_of(test["response"][0]) in helpers.LABELS, test
    assert test["response"][0]["model_version"] == version, test

    # Retrieve Predictions: one per task, a label of the config, the /setup version
    ls.retrieve_predictions(pid, extra_logs=backend.logs)
    tasks = ls.tasks(pid)
    preds = ls.predictions(pid)
    by_task = _by_task(preds)
    assert sorted(by_task) == [t["id"] for t in tasks], f"predictions {preds}\n{backend.logs()}\n{ls.logs()}"
    for task_id, items in by_task.items():
        assert len(items) == 1, f"task {task_id} has {len(items)} predictions: {items}"
        assert helpers.choice_of(items[0]) in helpers.LABELS
        assert items[0]["model_version"] == version, (items[0], version)

    # Retrieve again: nothing new
    ls.retrieve_predictions(pid, extra_logs=backend.logs)
    again = ls.predictions(pid)
    assert len(again) == len(preds), f"second Retrieve Predictions stored duplicates: {again}"

    # Opening a task that has no prediction yet predicts it
    ls.import_tasks(pid, helpers.image_tasks(1, start=100))
    new_task = [t for t in ls.tasks(pid) if t["id"] not in by_task]
    assert len(new_task) == 1
    opened = ls.call("GET", f"/api/tasks/{new_task[0]['id']}", extra_logs=backend.logs)
    mine = [p for p in ls.predictions(pid) if p["task"] == new_task[0]["id"]]
    assert len(mine) == 1, f"opening task {new_task[0]['id']} stored {mine}\n{ls.logs()}\n{backend.logs()}"
    assert helpers.choice_of(mine[0]) in helpers.LABELS
    assert mine[0]["model_version"] == version
    assert opened["id"] == new_task[0]["id"]

    ml = _connected(ls, ml["id"], backend)
    assert not ml.get("error_message"), ml


def test_annotation_webhook_with_basic_auth(label_studio, baked, serve, project_title, helpers):
    """A backend behind HTTP Basic: LS connects with BASIC_AUTH, predicts, and annotating
    (whose webhook comes without credentials) breaks nothing."""
    ls = label_studio
    auth = ("lsml", "s3cret-pass")
    backend = serve(baked("seed_model.py", "seed-auth"), auth=auth)
    assert backend.get("/health", auth=None).status_code == 401, "the backend does not enforce Basic auth"
    project = ls.create_project(project_title, helpers.image_tasks(2))
    pid = project["id"]

    ml = ls.connect(
        pid,
        backend.url,
        "seed auth",
        is_interactive=False,
        auth_method="BASIC_AUTH",
        basic_auth_user=auth[0],
        basic_auth_pass=auth[1],
        extra_logs=backend.logs,
    )
    ml = _connected(ls, ml["id"], backend)

    ls.retrieve_predictions(pid, extra_logs=backend.logs)
    tasks = ls.tasks(pid)
    assert len(ls.predictions(pid)) == len(tasks), f"{ls.logs()}\n{backend.logs()}"

    ann = ls.annotate(tasks[0]["id"], "Airbus")
    assert ann["id"], ann
    # the ANNOTATION_CREATED webhook reached the backend and started a training run
    status = helpers.wait_for(
        lambda: backend.training(pid).get("job_id") and backend.training(pid),
        30,
        "the ANNOTATION_CREATED webhook to reach the backend",
        logs=backend.logs,
    )
    status = backend.wait_idle(pid)
    assert status.get("status") == "succeeded", f"training after the webhook: {status}\n{backend.logs()}"
    ml = _connected(ls, ml["id"], backend)
    assert not ml.get("error_message"), ml
    assert ml["model_version"] == status["served_version"], (ml, status)

    # Start Training goes through LS's ML client, with the Basic credentials
    first_job = status["job_id"]
    ls.call("POST", f"/api/ml/{ml['id']}/train", extra_logs=backend.logs)
    clicked = ls.ml(ml["id"])
    assert clicked["state"] != ERROR and not clicked.get("error_message"), f"{clicked}\n{backend.logs()}"
    status = helpers.wait_for(
        lambda: (
            lambda st: st if st.get("job_id") != first_job and st.get("status") == "succeeded" else None
        )(backend.training(pid)),
        60,
        "a training run started by Start Training",
        logs=backend.logs,
    )
    ml = _connected(ls, ml["id"], backend)
    assert ml["model_version"] == status["served_version"], (ml, status)

    # predictions keep working after the annotation and the training (new version, one each)
    ls.retrieve_predictions(pid, extra_logs=backend.logs)
    fresh = [p for p in ls.predictions(pid) if p["model_version"] == ml["model_version"]]
    assert len(fresh) == len(tasks), f"{fresh}\n{backend.logs()}"


@pytest.mark.parametrize("mode", ["development", "production"])
def test_training_cycle(mode, label_studio, baked, serve, project_title, helpers):
    """A model that really trains: annotate, Start Training, a new version that LS picks up,
    predictions that reflect it, interactive pre-annotation with context, the version list.

    development: the backend reads annotations with /setup's hostname and access_token.
    production: supervisord + uWSGI + RQ + Redis, LABEL_STUDIO_URL/LABEL_STUDIO_API_KEY.
    """
    ls = label_studio
    env = {}
    if mode == "production":
        env = {"LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": ls.token}
    backend = serve(baked("majority_model.py", f"majority-{mode}"), mode=mode, env=env)
    project = ls.create_project(project_title, helpers.image_tasks(4))
    pid = project["id"]
    ml = ls.connect(pid, backend.url, f"majority {mode}", is_interactive=True, extra_logs=backend.logs)
    ml = _connected(ls, ml["id"], backend)
    initial = ml["model_version"]
    assert backend.get("/health").json()["mode"] == mode

    # before training: the first label of the config, score 0
    ls.retrieve_predictions(pid, extra_logs=backend.logs)
    preds = ls.predictions(pid)
    assert len(preds) == 4 and {helpers.choice_of(p) for p in preds} == {"Boeing"}, preds

    # annotate three tasks (each sends ANNOTATION_CREATED; the backend may train on them)
    tasks = ls.tasks(pid)
    for task in tasks[:3]:
        ls.annotate(task["id"], "Airbus")
    backend.wait_idle(pid, timeout=120)
    before = _connected(ls, ml["id"], backend)["model_version"]

    # Start Training
    ls.call("POST", f"/api/ml/{ml['id']}/train", extra_logs=backend.logs)
    after_click = ls.ml(ml["id"])
    assert after_click["state"] != ERROR and not after_click.get("error_message"), (
        f"Start Training left the connection in error: {after_click}\n{backend.logs()}"
    )

    def new_version():
        current = ls.ml(ml["id"], extra_logs=backend.logs)
        assert current["state"] != ERROR, f"{current}\n{backend.logs()}"
        return current["model_version"] if current["model_version"] not in (before, initial) else None

    trained = helpers.wait_for(
        new_version,
        60,
        "Label Studio to see a new model version after Start Training",
        interval=1,
        logs=lambda: f"{backend.logs()}\n{ls.logs(40)}",
    )
    status = backend.wait_idle(pid)
    assert status.get("error") in (None, ""), status

    # newly retrieved predictions carry the new version and the trained majority label
    ls.retrieve_predictions(pid, extra_logs=backend.logs)
    by_task = _by_task(ls.predictions(pid))
    for task in tasks:
        latest = [p for p in by_task.get(task["id"], []) if p["model_version"] == trained]
        assert len(latest) == 1, (
            f"task {task['id']}: {by_task.get(task['id'])} (trained {trained})\n{backend.logs()}"
        )
        assert helpers.choice_of(latest[0]) == "Airbus", latest[0]
        assert latest[0]["score"] == pytest.approx(1.0), latest[0]
    # no duplicates of the trained version on a second retrieve
    ls.retrieve_predictions(pid, extra_logs=backend.logs)
    counts = Counter((p["task"], p["model_version"]) for p in ls.predictions(pid))
    assert max(counts.values()) == 1, counts

    # interactive pre-annotation: the user's context reaches predict
    region = {"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": ["Boeing"]}}
    answer = ls.call(
        "POST",
        f"/api/ml/{ml['id']}/interactive-annotating",
        json={"task": tasks[3]["id"], "context": {"result": [region]}},
        extra_logs=backend.logs,
    )
    assert "errors" not in answer, (
        f"interactive pre-annotation failed: {answer}\n{backend.logs()}\n{ls.logs()}"
    )
    data = answer["data"]
    assert [r["value"]["choices"] for r in data["result"]] == [["Boeing"]], answer

    # the model version list shows every trained version
    listed = ls.call("GET", f"/api/ml/{ml['id']}/versions", extra_logs=backend.logs)
    own = backend.training(pid).get("versions") or []
    assert trained in listed["versions"], f"{listed} lacks {trained}\n{backend.logs()}"
    assert set(own) <= set(listed["versions"]), (listed, own)
    assert "message" not in listed, listed  # LS's "Upgrade your ML backend" fallback
    print(f"{mode}: initial {initial}, after annotations {before}, trained {trained}, listed {listed}")


def test_personal_access_token(label_studio, baked, serve, project_title, helpers):
    """LABEL_STUDIO_API_KEY holds a personal access token (a refresh JWT): with legacy tokens
    switched off in the organization, the /setup access_token is useless and training must
    read the annotations with the personal token (Bearer)."""
    ls = label_studio
    pat = ls.call("POST", "/api/token/", expect=(200, 201))
    refresh = pat["token"] if isinstance(pat, dict) else pat
    backend = serve(
        baked("majority_model.py", "majority-pat"),
        env={"LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": refresh},
    )
    project = ls.create_project(project_title, helpers.image_tasks(3))
    pid = project["id"]
    ml = ls.connect(pid, backend.url, "majority pat", is_interactive=False, extra_logs=backend.logs)
    ml = _connected(ls, ml["id"], backend)
    initial = ml["model_version"]

    access = ls.call("POST", "/api/token/refresh/", json={"refresh": refresh})["access"]
    legacy_header = ls.http.headers["Authorization"]
    ls.http.headers["Authorization"] = f"Bearer {access}"
    try:
        ls.call(
            "POST", "/api/jwt/settings", json={"api_tokens_enabled": True, "legacy_api_tokens_enabled": False}
        )
        probe = requests.get(
            ls.url + "/api/current-user/whoami", headers={"Authorization": legacy_header}, timeout=10
        )
        assert probe.status_code == 401, f"legacy token still accepted: {probe.status_code}"

        tasks = ls.tasks(pid)
        for task in tasks[:2]:
            ls.annotate(task["id"], "Airbus")
        backend.wait_idle(pid, timeout=120)
        ls.call("POST", f"/api/ml/{ml['id']}/train", extra_logs=backend.logs)

        def trained_version():
            status = backend.training(pid)
            if status.get("status") in ("queued", "running"):
                return None
            current = ls.ml(ml["id"])
            return current["model_version"] if current["model_version"] != initial else None

        trained = helpers.wait_for(
            trained_version,
            90,
            "a version trained with the personal access token",
            interval=1,
            logs=backend.logs,
        )
        ls.retrieve_predictions(pid, extra_logs=backend.logs)
        latest = [p for p in ls.predictions(pid) if p["model_version"] == trained]
        assert len(latest) == len(tasks), f"{latest}\n{backend.logs()}"
        assert {helpers.choice_of(p) for p in latest} == {"Airbus"}, f"{latest}\n{backend.logs()}"
    finally:
        ls.call(
            "POST", "/api/jwt/settings", json={"api_tokens_enabled": True, "legacy_api_tokens_enabled": True}
        )
        ls.http.headers["Authorization"] = legacy_header


def test_model_that_loads_for_6_s_connects_on_the_first_try(
    label_studio, baked, serve, project_title, helpers
):
    """Label Studio gives /setup 3 s: the backend answers at once and loads in the background;
    Send Test Request and Retrieve Predictions wait for the load (Label Studio gives them 100 s)."""
    ls = label_studio
    backend = serve(baked("slow_load_model.py", "slow-load"))
    project = ls.create_project(project_title, helpers.image_tasks(2))
    pid = project["id"]

    ml = ls.connect(pid, backend.url, "slow load", is_interactive=False, extra_logs=backend.logs)
    assert ml.get("state") != ERROR and not ml.get("error_message"), f"{ml}\n{backend.logs()}"
    ml = _connected(ls, ml["id"], backend, timeout=5)
    version = ml["model_version"]
    assert version == "initial", ml

    test = ls.call(
        "POST", f"/api/ml/{ml['id']}/predict/test", params={"random": "true"}, extra_logs=backend.logs
    )
    assert test["status"] == 200 and not test.get("error_message"), f"{test}\n{backend.logs()}"
    assert helpers.choice_of(test["response"][0]) == "Boeing", test
    assert backend.get("/health").json()["models"]["loaded"] == [str(pid)]

    ls.retrieve_predictions(pid, extra_logs=backend.logs)
    preds = ls.predictions(pid)
    assert len(preds) == 2 and {p["model_version"] for p in preds} == {version}, preds
