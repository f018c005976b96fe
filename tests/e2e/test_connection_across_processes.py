"""/setup reaches one of uwsgi.ini's two processes; the other one and the RQ worker use it too.

No LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY: the process /setup reached is killed (uWSGI starts a
new one, as it does when a process is recycled: max-requests, reload-on-rss), so no process
keeps /setup's connection in memory; the webhook that starts training lands on one of them, and
the worker's run fetches the annotations from a loopback Label Studio that checks the token
/setup sent. A model built in either process gets /setup's hostname and token as well.
(A stopped process is no stand-in for "the other process": uWSGI may still hand it the next
connection, which then waits.)
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PROJECT = "8.1719830400"
MODEL = Path(__file__).resolve().parent / "data" / "connection_model.py"


@pytest.fixture(scope="module")
def deployment(bake_backend, venv, redis_server, deployment_factory):
    backend = bake_backend("connection_backend", MODEL)
    deployment = deployment_factory(backend, venv, redis_server.url)
    deployment.start()
    return deployment


def pids_of(deployment, route: str) -> list:
    """The uWSGI processes that served ``route``, in order (uWSGI's request log)."""
    log = (deployment.backend / "logs" / "uwsgi.log").read_text(errors="replace")
    return [int(pid) for pid in re.findall(rf"\[pid: (\d+)\|[^\n]*\] POST {re.escape(route)} =>", log)]


def test_a_process_without_setups_connection_trains_and_predicts_with_it(deployment, fake_ls, e2e):
    assert len(deployment.uwsgi_pids()) == 4, "master, http router and the 2 processes of uwsgi.ini"
    fake_ls.tasks["8"] = [e2e.annotated_task(i) for i in range(1, 4)]
    setup = {"project": PROJECT, "schema": e2e.config, "hostname": fake_ls.url, "access_token": fake_ls.key}
    assert deployment.post("/setup", setup).status_code == 200
    got_setup = e2e.wait_for(lambda: pids_of(deployment, "/setup"), 10, what="/setup in uwsgi.log")[-1]
    body = {"tasks": e2e.tasks(1), "project": PROJECT, "label_config": e2e.config}

    os.kill(got_setup, signal.SIGKILL)  # its memory goes with it; uWSGI's master starts another
    e2e.wait_for(
        lambda: got_setup not in deployment.uwsgi_pids() and len(deployment.uwsgi_pids()) == 4,
        20,
        what="uWSGI to replace the killed process",
    )
    webhook = {"action": "START_TRAINING", "project": {"id": 8, "label_config": e2e.config}}
    r = deployment.post("/webhook", webhook)
    assert r.status_code == 201, r.text
    webhooks = e2e.wait_for(lambda: pids_of(deployment, "/webhook"), 10, what="/webhook in uwsgi.log")
    assert webhooks[-1] != got_setup
    status = deployment.wait_status("8", {"succeeded", "failed"}, timeout=60)
    assert status["status"] == "succeeded", (status, deployment.logs())

    def connected():
        result = deployment.post("/predict", body).json()["results"][0]
        assert int(result["score"]) != got_setup
        return result["result"][0]["value"]["choices"] == [fake_ls.url, "token"]

    e2e.wait_for(connected, 20, what="a new process's model to get /setup's connection")

    exports = [r for r in fake_ls.requests if r["path"].startswith("/api/projects/8/export")]
    assert exports and all(r["authorization"] == f"Token {fake_ls.key}" for r in exports)
    assert fake_ls.key not in deployment.get("/training?project=8").text
    assert fake_ls.key not in deployment.get("/health").text + deployment.get("/metrics").text
    for log in (deployment.backend / "logs").glob("*.log"):
        assert fake_ls.key not in log.read_text(errors="replace"), log.name
