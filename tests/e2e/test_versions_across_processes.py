"""Two uWSGI processes under the generated supervisord.conf never disagree about the version.

Once /setup (in either process) answered version V for a project, every /predict sent
afterwards, whichever process serves it, answers V or newer (issue 11, item 2). New versions
are committed to the store directly, as a training worker does.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests
from label_studio_ml.store import ModelStore

pytestmark = pytest.mark.slow

PROJECT = "5.1719830400"
PID_MODEL = Path(__file__).resolve().parent / "data" / "pid_model.py"


def version_number(version: str) -> int:
    """``"v3-20261127023015"`` -> 3; ``"initial"`` -> 0."""
    return int(version[1:].split("-")[0]) if version.startswith("v") else 0


@pytest.fixture(scope="module")
def deployment(bake_backend, venv, redis_server, deployment_factory, e2e):
    backend = bake_backend("pid_backend", PID_MODEL)
    deployment = deployment_factory(backend, venv, redis_server.url)
    deployment.start()
    return deployment


def test_no_process_answers_older_than_a_version_setup_answered(deployment, e2e):
    assert len(deployment.uwsgi_pids()) == 4, "master, http router and the 2 processes of uwsgi.ini"
    body = {"tasks": e2e.tasks(1), "project": PROJECT, "label_config": e2e.config}
    assert deployment.post("/setup", {"project": PROJECT, "schema": e2e.config}).status_code == 200
    store = ModelStore(deployment.env["MODEL_DIR"])
    answers = []  # (sent at, received at, pid, version)
    stop = threading.Event()

    def client():
        with requests.Session() as http:
            while not stop.is_set():
                sent = time.monotonic()
                r = http.post(deployment.url + "/predict", json=body, timeout=30)
                assert r.status_code == 200, r.text
                result = r.json()["results"][0]
                answers.append((sent, time.monotonic(), int(result["score"]), result["model_version"]))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    setups = []  # (version, answered at)
    try:
        for _ in range(5):
            time.sleep(1.0)  # both processes serve the current version for a while
            version, _ = store.new_version("5")
            store.commit_version("5", version, {"round": version}, {})
            r = deployment.post("/setup", {"project": PROJECT, "schema": e2e.config})
            assert r.status_code == 200 and r.json()["model_version"] == version, r.text
            setups.append((version, time.monotonic()))
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(40)
    checked = set()
    for version, answered in setups:
        later = [(pid, v) for sent, _, pid, v in answers if sent > answered]
        older = [(pid, v) for pid, v in later if version_number(v) < version_number(version)]
        assert not older, f"/setup answered {version}; then /predict answered {older[:5]}"
        checked |= {pid for pid, _ in later}
    assert len(checked) == 2, "both processes served /predict after a /setup"
