"""A model whose fit takes seconds, in production mode on a private Redis: training runs on the
RQ worker while /predict keeps answering, and the deployment survives faults (a worker killed
mid-fit, Redis stopped and started, uWSGI killed). Then a second worker splits a burst.

The tests of this module share one deployment and run in file order.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import threading
import time

import pytest
import requests

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slow(slow_backend, venv, redis_server, deployment_factory, e2e):
    deployment = deployment_factory(slow_backend, venv, redis_server.url)
    deployment.start()
    line = f"slow backend cold start (supervisord start -> /health 200): {deployment.cold_start:.2f} s"
    print(line)
    e2e.summary.append(line)
    return deployment


def predict(slow, e2e, project, n=3):
    response = slow.post(
        "/predict", {"tasks": e2e.tasks(n), "project": f"{project}.1719830400", "label_config": e2e.config}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["results"]) == n
    return body


def served(slow, e2e, project, version):
    """The first /predict answer that serves ``version`` (each uWSGI process checks every 0.5 s)."""

    def attempt():
        body = predict(slow, e2e, project)
        return body if body["model_version"] == version else None

    return e2e.wait_for(attempt, 1.5, what=f"/predict of project {project} on {version}")


def train(slow, e2e, project, action="START_TRAINING", **data):
    response = slow.post(
        "/webhook", {"action": action, "project": {"id": int(project), "label_config": e2e.config}, **data}
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def meta(slow, project, version):
    path = slow.backend / "data" / "models" / project / "versions" / version / "meta.json"
    return json.loads(path.read_text())


def test_training_runs_on_the_worker_while_predict_answers(slow, e2e, record_property):
    record_property("cold_start_s", round(slow.cold_start, 3))
    assert slow.post("/setup", {"project": "1.1719830400", "schema": e2e.config}).json() == {
        "model_version": "initial"
    }
    first = predict(slow, e2e, "1", 5)
    assert first["model_version"] == "initial" and first["results"][0]["train_output"] == {}
    uwsgi_pids = slow.uwsgi_pids()
    worker = slow.program_pid("rq")
    assert len(uwsgi_pids) >= 3 and worker

    # watch /setup from now on: when does the new version show up?
    seen = {}
    stop = threading.Event()

    def watch():
        session = requests.Session()
        while not stop.is_set():
            try:
                version = session.post(slow.url + "/setup", json={"project": "1"}, timeout=5).json()
                seen.setdefault(version["model_version"], time.time())
            except requests.RequestException:
                pass
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        job = train(slow, e2e, "1", fit_seconds=3, tag="first")
        assert job["status"] == "queued"
        slow.wait_status("1", "running", timeout=15)
        # events during the run: one follow-up job, the rest coalesce into it
        events = [
            train(slow, e2e, "1", "ANNOTATION_CREATED", fit_seconds=0.5, tag="follow") for _ in range(3)
        ]
        assert events[0]["status"] == "queued" and events[0]["job_id"] != job["job_id"]
        assert [e["status"] for e in events[1:]] == ["coalesced", "coalesced"]
        assert {e["job_id"] for e in events} == {events[0]["job_id"]}
        # /predict keeps answering while the worker trains
        latencies = []
        while slow.status("1").get("job_id") == job["job_id"]:
            started = time.perf_counter()
            assert predict(slow, e2e, "1")["model_version"] in ("initial", *slow.status("1")["versions"])
            latencies.append(time.perf_counter() - started)
        assert len(latencies) >= 10 and max(latencies) < 1.0, latencies
        final = slow.wait_status("1", "succeeded", job_id=events[0]["job_id"], timeout=20)
        time.sleep(0.3)
    finally:
        stop.set()
        watcher.join(5)

    versions = final["versions"]
    assert len(versions) == 2, final  # the first run and exactly one follow-up
    v1, v2 = sorted(versions, key=lambda v: int(v[1:].split("-")[0]))
    assert final["version"] == final["served_version"] == v2
    delay = seen[v1] - meta(slow, "1", v1)["ended_at"]
    line = (
        f"job end -> new version on /setup: {delay * 1000:.0f} ms; /predict during training: "
        f"median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms "
        f"({len(latencies)} requests)"
    )
    print(line)
    e2e.summary.append(line)
    record_property("version_delay_s", round(delay, 3))
    assert delay <= 1.0

    # fit ran in the RQ work horse (a child of the worker), not in a uWSGI process
    body = served(slow, e2e, "1", v2)
    output = body["results"][0]["train_output"]
    assert output["event"] == "ANNOTATION_CREATED" and output["tag"] == "follow"
    assert output["pid"] not in uwsgi_pids and output["ppid"] not in uwsgi_pids
    assert output["ppid"] == worker and output["pid"] != worker
    assert body["results"][0]["pid"] in uwsgi_pids
    assert body["results"][0]["artefact"]["job_id"] == events[0]["job_id"]  # read from the workdir
    assert body["results"][0]["result"][0]["value"]["choices"] == ["neg"]
    assert meta(slow, "1", v1)["job_id"] == job["job_id"]
    assert slow.post("/setup", {"project": "1.1719830400"}).json()["model_version"] == v2


def test_worker_killed_mid_fit(slow, e2e):
    good = train(slow, e2e, "2", fit_seconds=0.2)
    good_version = slow.wait_status("2", "succeeded", job_id=good["job_id"])["version"]
    doomed = train(slow, e2e, "2", fit_seconds=60, tag="doomed")
    slow.wait_status("2", "running", job_id=doomed["job_id"])
    time.sleep(0.3)
    worker = slow.program_pid("rq")
    horse = slow.horse_pid(worker)
    assert horse, "no work horse under the RQ worker"
    killed = time.monotonic()
    os.kill(horse, signal.SIGKILL)  # the work horse runs in a session of its own
    os.killpg(os.getpgid(worker), signal.SIGKILL)

    restarted = e2e.wait_for(
        lambda: (slow.program_pid("rq") or worker) != worker and slow.program_pid("rq"),
        15,
        what="supervisord to restart the RQ worker",
    )
    failed = slow.wait_status("2", "failed", job_id=doomed["job_id"], timeout=e2e.lock_ttl + 10)
    detected = time.monotonic() - killed
    assert "worker" in failed["error"]
    assert failed["served_version"] == good_version
    assert predict(slow, e2e, "2")["model_version"] == good_version
    line = f"worker killed mid-fit: restarted (pid {worker} -> {restarted}), job reported failed after {detected:.1f} s"
    print(line)
    e2e.summary.append(line)

    retry = train(slow, e2e, "2", fit_seconds=0.2, tag="after-kill")
    assert retry["status"] == "queued"
    done = slow.wait_status("2", "succeeded", job_id=retry["job_id"], timeout=30)
    assert done["version"] != good_version and done["served_version"] == done["version"]
    assert served(slow, e2e, "2", done["version"])["results"][0]["train_output"]["ppid"] == restarted


def test_redis_outage(slow, e2e, redis_server):
    redis_server.stop()
    try:
        assert slow.get("/health").status_code == 200
        assert predict(slow, e2e, "1")["model_version"]
        started = time.monotonic()
        response = slow.post("/webhook", {"action": "START_TRAINING", "project": {"id": 3}})
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "training_unavailable"
        assert elapsed < 3, f"the training request took {elapsed:.1f} s with Redis down"
        time.sleep(1.5)  # the worker notices too
        assert slow.get("/health").status_code == 200
    finally:
        redis_server.start()
    # nothing restarted: the same processes train again
    job = train(slow, e2e, "3", fit_seconds=0.2, tag="after-outage")
    assert job["status"] == "queued"
    done = slow.wait_status("3", "succeeded", job_id=job["job_id"], timeout=45)
    assert served(slow, e2e, "3", done["version"])["results"][0]["train_output"]["tag"] == "after-outage"


def test_uwsgi_killed_is_restarted(slow, e2e):
    master = slow.program_pid("uwsgi")
    old = slow.uwsgi_pids()
    killed = time.monotonic()
    os.kill(master, signal.SIGKILL)
    e2e.wait_for(lambda: (slow.program_pid("uwsgi") or master) != master, 15, what="a new uWSGI master")
    e2e.wait_for(lambda: slow.get("/health", timeout=1).status_code == 200, 30, what="/health after restart")
    # the dead master's workers and HTTP router do not linger
    e2e.wait_for(lambda: not any(e2e.alive(p) for p in old), 15, what="the old uWSGI processes to exit")
    line = f"uWSGI master killed: serving again after {time.monotonic() - killed:.1f} s"
    print(line)
    e2e.summary.append(line)
    assert predict(slow, e2e, "1")["model_version"] == slow.status("1")["served_version"]


def test_two_workers_split_a_burst(slow, e2e):
    extra = slow.start_worker()
    log = slow.backend / "logs" / "rq-extra-1.log"
    e2e.wait_for(lambda: log.is_file() and "Listening on" in log.read_text(), 20, what="the second worker")
    projects = [str(p) for p in range(11, 17)]
    jobs = {p: train(slow, e2e, p, fit_seconds=1, tag=f"burst-{p}") for p in projects}
    assert all(j["status"] == "queued" for j in jobs.values())
    ran_on = set()
    for p in projects:
        status = slow.wait_status(p, "succeeded", job_id=jobs[p]["job_id"], timeout=40)
        assert status["served_version"] == status["version"]
        output = served(slow, e2e, p, status["version"])["results"][0]["train_output"]
        assert output["project"] == p and output["tag"] == f"burst-{p}"
        ran_on.add(output["ppid"])
    assert ran_on == {slow.program_pid("rq"), extra.pid}, ran_on
