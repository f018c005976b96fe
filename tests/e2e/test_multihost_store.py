"""Several hosts, natively: two API hosts (host A: uWSGI with the generated ``uwsgi.ini``, two
processes; host B: ``label-studio-ml start``) with separate MODEL_DIR caches and one RQ worker (``label-studio-ml worker``), sharing only Redis (a private queue and
key namespace) and an S3-compatible bucket (``moto_server``), as machines with no shared file
system would (issue 20, item 4).

Train through one host, predict on both; both serve the new version at once (measured: the
time from the run's end to both hosts answering it); pin and roll back from either; kill the
worker mid-run: the run is reported failed on both hosts and the next one succeeds; a host
restarted with an empty cache serves after one download.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List

import pytest
import requests

from ..moto_support import SECRET_KEY, MotoServer, subprocess_env
from .conftest import DATA, LOCK_TTL, SUMMARY, TEXT_CONFIG, descendants, free_port, wait_for

pytestmark = pytest.mark.slow

PROJECT = "5.1719830400"
PID = "5"
REDIS = "redis://127.0.0.1:6379/0"
CLI = str(Path(sys.executable).with_name("label-studio-ml"))
UWSGI = str(Path(sys.executable).with_name("uwsgi"))


class Host:
    """One machine: a ``label-studio-ml`` process with its own MODEL_DIR and log."""

    def __init__(self, name: str, backend: Path, root: Path, env: Dict[str, str], *args: str) -> None:
        self.name, self.backend, self.args = name, backend, args
        self.model_dir = root / name / "models"
        self.log_path = root / name / "host.log"
        self.env = {**env, "MODEL_DIR": str(self.model_dir)}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.http = requests.Session()

    def start(self) -> None:
        self.model_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child writes it)
        if self.args[0] == "uwsgi":  # the generated uwsgi.ini: 2 processes (lazy-apps), HTTP on $PORT
            cmd = [UWSGI, "--ini", str(self.backend / "uwsgi.ini")]
            self.env["PORT"] = str(self.port)
        else:
            cmd = [
                CLI,
                *self.args,
                str(self.backend),
                *(["--port", str(self.port)] if self.args[0] == "start" else []),
            ]
        self.proc = subprocess.Popen(
            cmd, cwd=self.backend, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        if self.args[0] in ("start", "uwsgi"):
            wait_for(self._healthy, 30, what=f"{self.name} /health")

    def _healthy(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log()
        try:
            return self.http.get(self.url + "/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def kill(self) -> None:
        """SIGKILL to the process and every descendant (RQ's work horse has its own session): a
        machine lost."""
        if self.proc is not None and self.proc.poll() is None:
            for pid in [self.proc.pid, *descendants(self.proc.pid)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.http.get(self.url + path, timeout=30, **kw)

    def post(self, path: str, payload: Any, **kw: Any) -> requests.Response:
        return self.http.post(self.url + path, json=payload, timeout=30, **kw)

    def setup_version(self) -> str:
        answer = self.post("/setup", {"project": PROJECT, "schema": TEXT_CONFIG})
        assert answer.status_code == 200, answer.text
        return answer.json()["model_version"]

    def predict(self) -> Dict[str, Any]:
        body = {"project": PROJECT, "label_config": TEXT_CONFIG, "tasks": [{"id": 1, "data": {"text": "t"}}]}
        answer = self.post("/predict", body)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def status(self) -> Dict[str, Any]:
        return self.get(f"/training?project={PID}").json()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, bake_backend):
    root = tmp_path_factory.mktemp("multihost")
    backend = bake_backend("store_backend", DATA / "slow_model.py")
    moto = MotoServer(root)
    bucket = moto.new_bucket()
    queue = f"lsml-multihost-{uuid.uuid4().hex[:8]}"
    env = subprocess_env(
        moto, MODEL_STORE=f"s3://{bucket}/backends/slow", REDIS_URL=REDIS, RQ_QUEUE_NAME=queue,
        LSML_LOCK_TTL=str(LOCK_TTL), PRELOAD_MODELS="true", LOG_LEVEL="INFO",
    )  # fmt: skip
    for name in list(env):
        if name.startswith(("BASIC_AUTH_", "LABEL_STUDIO_")):
            del env[name]
    hosts = {
        "a": Host("a", backend, root, env, "uwsgi"),
        "b": Host("b", backend, root, env, "start"),
        "worker": Host("worker", backend, root, env, "worker"),
    }
    for h in hosts.values():
        h.start()
    yield hosts
    for h in hosts.values():
        h.stop()
    moto.close()
    import redis

    client = redis.Redis.from_url(REDIS)
    keys = list(client.scan_iter(f"lsml:{queue}:*")) + list(client.scan_iter(f"rq:*{queue}*"))
    if keys:
        client.delete(*keys)


def train(host: Host, seconds: float = 0.3, tag: str = "") -> str:
    answer = host.post(
        "/webhook",
        {"action": "START_TRAINING", "project": {"id": int(PID), "label_config": TEXT_CONFIG},
         "fit_seconds": seconds, "tag": tag},
    )  # fmt: skip
    assert answer.status_code == 201, answer.text
    return answer.json()["job_id"]


def wait_done(host: Host, job_id: str, timeout: float = 60) -> Dict[str, Any]:
    def done():
        status = host.status()
        return (
            status if status.get("job_id") == job_id and status["status"] in ("succeeded", "failed") else None
        )

    return wait_for(done, timeout, interval=0.05, what=f"job {job_id} on {host.name}")


def test_train_on_one_host_serve_on_both(cluster):
    a, b, worker = cluster["a"], cluster["b"], cluster["worker"]
    assert a.setup_version() == b.setup_version() == "initial"
    delays: List[float] = []
    for n in (1, 2):
        job = train(a, tag=f"run{n}")
        status = wait_done(b, job)  # b reports the run a queued: the status is in the bucket
        assert status["status"] == "succeeded", (status, worker.log())
        version = status["version"]
        seen = {}
        for host in (a, b):
            wait_for(
                lambda h=host, v=version: h.setup_version() == v,
                10,
                interval=0.01,
                what=f"{host.name} /setup",
            )
            seen[host.name] = time.time()
            answer = host.predict()
            # /predict never answers older than /setup just did, and its model is the trained one
            assert answer["model_version"] == version
            assert answer["results"][0]["artefact"]["tag"] == f"run{n}"
        delays.append(max(seen.values()) - status["ended_at"])
    assert a.get("/health").json()["store"].startswith("s3://")
    # host A is uWSGI with two processes; each version was downloaded once per host, not per process
    assert "spawned uWSGI worker 2" in a.log_path.read_text()
    for host in (a, b):
        downloads = [line for line in host.log_path.read_text().splitlines() if "downloaded version" in line]
        assert len(downloads) == 2, downloads
    SUMMARY.append(
        "multi-host store: run end -> /setup answers it on both hosts: "
        + ", ".join(f"{d * 1000:.0f} ms" for d in delays)
    )
    assert max(delays) < 5.0


def test_pin_and_roll_back_from_either_host(cluster):
    a, b = cluster["a"], cluster["b"]
    versions = b.get(f"/versions?project={PID}").json()
    assert len(versions["versions"]) >= 2
    newest, previous = versions["versions"][-1], versions["versions"][-2]
    assert versions["served"][PID]["version"] == newest
    rolled = b.post("/versions/rollback", {"project": PID})
    assert rolled.status_code == 200 and rolled.json()["version"] == previous
    for host in (a, b):
        assert host.setup_version() == previous
        assert host.predict()["model_version"] == previous
    # a run that finishes while pinned is stored, not served
    job = train(a, tag="while-pinned")
    stored = wait_done(a, job)["version"]
    assert stored in a.get(f"/versions?project={PID}").json()["versions"]
    assert a.predict()["model_version"] == b.predict()["model_version"] == previous
    assert a.post("/versions/unpin", {"project": PID}).json()["version"] == stored
    for host in (a, b):
        assert host.setup_version() == stored
        assert host.predict()["results"][0]["artefact"]["tag"] == "while-pinned"
    pinned = a.post("/versions/pin", {"project": PID, "version": newest})
    assert pinned.status_code == 200
    assert b.predict()["model_version"] == newest
    assert b.post("/versions/unpin", {"project": PID}).json()["version"] == stored


def test_a_killed_worker_fails_the_run_and_the_next_succeeds(cluster):
    a, b, worker = cluster["a"], cluster["b"], cluster["worker"]
    served = a.setup_version()
    job = train(a, seconds=60, tag="killed")
    wait_for(lambda: b.status().get("job_id") == job and b.status()["status"] == "running", 30,
             what="the run to start")  # fmt: skip
    worker.kill()
    status = wait_for(
        lambda: (s := b.status())["status"] == "failed" and s, LOCK_TTL + 15, interval=0.2, what="failed"
    )
    assert status["job_id"] == job and status["interrupted"] is True
    assert a.status()["status"] == "failed"  # every host reports it
    assert a.predict()["model_version"] == b.predict()["model_version"] == served  # the last good one
    worker.start()
    job = train(b, tag="after-kill")
    done = wait_done(a, job)
    assert done["status"] == "succeeded", worker.log()
    for host in (a, b):
        assert host.setup_version() == done["version"]
        assert host.predict()["results"][0]["artefact"]["tag"] == "after-kill"


def test_a_host_restarted_with_an_empty_cache_serves_after_one_download(cluster):
    b = cluster["b"]
    served = b.setup_version()
    b.stop()
    shutil.rmtree(b.model_dir)
    b.log_path.unlink()
    started = time.monotonic()
    b.start()
    answer = b.predict()
    first = time.monotonic() - started
    assert answer["model_version"] == served and answer["results"][0]["artefact"] is not None
    for _ in range(3):
        assert b.predict()["model_version"] == served
    downloads = [line for line in b.log().splitlines() if "downloaded version" in line]
    assert len(downloads) == 1 and served in downloads[0], b.log()
    SUMMARY.append(f"multi-host store: empty-cache host start -> first /predict {first:.2f} s")
    # the credentials never reach a log
    for host in cluster.values():
        assert SECRET_KEY not in host.log()
