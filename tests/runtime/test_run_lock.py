"""The production run lock: two real RQ workers race on one project while the lock expires mid-run.

Worker A trains project 31 and is frozen (SIGSTOP) for longer than the lock lasts, so its lock
expires and worker B, waiting with the follow-up job, takes the project. When A wakes up it must
notice it lost the lock: never take the lock back from B, never delete B's lock, never commit
its version or overwrite B's status. B's run is the one that lands.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

from .conftest import SEED_CONFIG, load_class
from .test_production import REDIS_URL, _redis_up, annotated, wait_for

pytestmark = pytest.mark.skipif(not _redis_up(), reason=f"no Redis at {REDIS_URL}")

PROJECT = "31.1719830400"
LOCK_TTL = 2  # seconds (LSML_LOCK_TTL): the heartbeat extends it every 2/3 s

MODEL = """
import os
import time
from pathlib import Path
from label_studio_ml.model import LabelStudioMLBase


class Gated(LabelStudioMLBase):
    def predict(self, tasks, **kwargs):
        return [{"result": [], "score": 0.0} for _ in tasks]

    def fit(self, annotations, workdir=None, job_id=None, **kwargs):
        gate = Path(os.environ["LSML_TEST_GATE"])
        (gate / f"started-{job_id}").write_text(str(os.getpid()))
        deadline = time.time() + 60
        while not (gate / f"open-{job_id}").exists():
            if time.time() > deadline:
                raise RuntimeError("gate never opened")
            time.sleep(0.02)
        return {"job": job_id}
"""


@pytest.fixture
def lock_backend(serve, tmp_path):
    """A served backend of MODEL in production mode on its own queue, the gate directory and the
    environment its workers get; the queue's Redis keys are deleted afterwards."""
    directory = tmp_path / "backend"
    cls = load_class(directory, MODEL, "Gated", f"lockmodel_{uuid.uuid4().hex[:8]}")
    queue = f"lsml-lock-{uuid.uuid4().hex[:8]}"
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {**os.environ, "MODEL_DIR": str(tmp_path / "models"), "REDIS_URL": REDIS_URL,
           "RQ_QUEUE_NAME": queue, "LSML_TEST_GATE": str(gate), "LSML_LOCK_TTL": str(LOCK_TTL)}  # fmt: skip
    conn = redis.Redis.from_url(REDIS_URL)
    server = serve(cls, model_dir=str(tmp_path / "models"), redis_url=REDIS_URL, rq_queue_name=queue)
    yield SimpleNamespace(directory=directory, queue=queue, gate=gate, env=env, conn=conn, server=server)
    for key in conn.scan_iter(f"*{queue}*"):
        conn.delete(key)


def _worker(directory: Path, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "label_studio_ml", "worker", str(directory), "--nice", "0"],
        env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def test_two_workers_race_and_the_lock_expires_mid_run(lock_backend, tmp_path):
    directory, gate, env, conn, server = (
        lock_backend.directory,
        lock_backend.gate,
        lock_backend.env,
        lock_backend.conn,
        lock_backend.server,
    )
    lock_key = f"lsml:{lock_backend.queue}:31:running"
    server.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG})
    workers = [_worker(directory, env, tmp_path / "a.log")]
    horse_a = None
    try:
        first = server.post("/train", json={"annotations": annotated("Airbus"), "project": PROJECT}).json()
        job1 = first["job_id"]
        wait_for(lambda: (gate / f"started-{job1}").exists(), 30, "worker A to start fit")
        horse_a = int((gate / f"started-{job1}").read_text())
        assert conn.get(lock_key) == job1.encode(), "the lock names the job that holds it"

        # worker B takes the follow-up job and waits for the project's lock
        workers.append(_worker(directory, env, tmp_path / "b.log"))
        second = server.post("/train", json={"annotations": annotated("Boeing"), "project": PROJECT}).json()
        job2 = second["job_id"]
        assert second["status"] == "queued" and job2 != job1
        from rq.job import Job

        wait_for(lambda: Job.fetch(job2, connection=conn).get_status() == "started", 30, "B to take job 2")
        assert not (gate / f"started-{job2}").exists(), "one run per project: B waits for A"

        os.kill(horse_a, signal.SIGSTOP)  # A can no longer extend its lock: it expires
        wait_for(lambda: (gate / f"started-{job2}").exists(), 30, "B to get the lock and start fit")
        assert conn.get(lock_key) == job2.encode()
        os.kill(horse_a, signal.SIGCONT)
        wait_for(lambda: "lost its project's run lock" in (tmp_path / "a.log").read_text(), 30,
                 "A to notice it lost the lock")  # fmt: skip
        assert conn.get(lock_key) == job2.encode(), "A's heartbeat must not take the lock back"
        assert conn.pttl(lock_key) > 0

        (gate / f"open-{job1}").write_text("1")  # A finishes fit after losing the project
        wait_for(lambda: Job.fetch(job1, connection=conn).get_status() == "failed", 30, "A's job to fail")
        assert "lost" in (Job.fetch(job1, connection=conn).latest_result().exc_string or "")
        assert conn.get(lock_key) == job2.encode(), "A's release must not delete B's lock"
        status = server.get("/training?project=31").json()
        assert status["status"] == "running" and status["job_id"] == job2, status
        assert status["versions"] == [], "A's version was not committed"

        (gate / f"open-{job2}").write_text("1")
        done = wait_for(
            lambda: (lambda s: s if s["status"] == "succeeded" else None)(
                server.get("/training?project=31").json()
            ),
            30,
            "B's run to succeed",
        )
        assert done["job_id"] == job2 and done["versions"] == [done["version"]]
        assert server.backend.store.train_output("31", done["version"]) == {"job": job2}
        assert sorted(p.name for p in (tmp_path / "models" / "31" / "versions").iterdir()) == [
            done["version"]
        ]
        assert conn.get(lock_key) is None, "B released its lock"
    finally:
        if horse_a is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(horse_a, signal.SIGCONT)
        for worker in workers:
            worker.terminate()
            worker.wait(15)


def test_killed_worker_run_is_interrupted_and_its_directory_removed(lock_backend, tmp_path):
    directory, gate, env, server = (
        lock_backend.directory,
        lock_backend.gate,
        lock_backend.env,
        lock_backend.server,
    )
    worker = _worker(directory, env, tmp_path / "w.log")
    try:
        job = server.post("/train", json={"annotations": annotated("Airbus"), "project": PROJECT}).json()[
            "job_id"
        ]
        wait_for(lambda: (gate / f"started-{job}").exists(), 30, "the worker to start fit")
        versions = tmp_path / "models" / "31" / "versions"
        [leftover] = [p.name for p in versions.iterdir()]
        assert server.get("/training?project=31").json()["status"] == "running"
        os.kill(int((gate / f"started-{job}").read_text()), signal.SIGKILL)
        worker.kill()
        worker.wait(10)
        status = wait_for(
            lambda: (lambda s: s if s["status"] == "failed" else None)(
                server.get("/training?project=31").json()
            ),
            LOCK_TTL + 15,
            "the run to be reported failed",
        )
        assert status["interrupted"] is True and status["job_id"] == job
        assert status["error"].startswith("interrupted: the training worker stopped"), status
        assert not (versions / leftover).exists(), "the half-written version is removed"
        assert status["versions"] == [] and status["served_version"] is None
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
