"""Production mode: the API enqueues on the real local Redis, a real RQ worker process trains."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import redis

from .conftest import SEED_CONFIG, load_class

REDIS_URL = os.environ.get("LSML_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PROJECT = "21.1719830400"

MODEL = """
import os
import time
from pathlib import Path
from label_studio_ml.model import LabelStudioMLBase


class Slow(LabelStudioMLBase):
    def predict(self, tasks, **kwargs):
        label = self.train_output.get("label", "none")
        return [{"result": [{"from_name": "choice", "to_name": "image", "type": "choices",
                             "value": {"choices": [label]}}],
                 "score": self.train_output.get("pid", 0)} for _ in tasks]

    def fit(self, annotations, workdir=None, **kwargs):
        gate = Path(os.environ["LSML_TEST_GATE"])
        (gate / "started").write_text(str(os.getpid()))
        deadline = time.time() + 30
        while not (gate / "open").exists():
            if time.time() > deadline:
                raise RuntimeError("gate never opened")
            time.sleep(0.02)
        label = annotations[-1]["annotations"][0]["result"][0]["value"]["choices"][0]
        return {"label": label, "pid": os.getpid()}
"""


def _redis_up() -> bool:
    try:
        return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False


pytestmark = pytest.mark.skipif(
    not _redis_up(), reason=f"no Redis at {REDIS_URL} (scripts/ensure_redis.sh starts one)"
)


def annotated(label: str) -> list:
    return [
        {
            "id": 1,
            "data": {},
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
    ]


@pytest.fixture
def backend(tmp_path: Path):
    directory = tmp_path / "backend"
    name = f"rqmodel_{uuid.uuid4().hex[:8]}"
    cls = load_class(directory, MODEL, "Slow", name)
    queue = f"lsml-test-{uuid.uuid4().hex[:8]}"
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {
        **os.environ,
        "MODEL_DIR": str(tmp_path / "models"),
        "REDIS_URL": REDIS_URL,
        "RQ_QUEUE_NAME": queue,
        "LSML_TEST_GATE": str(gate),
        "LOG_LEVEL": "INFO",
    }
    os.environ["LSML_TEST_GATE"] = str(gate)
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "label_studio_ml", "worker", str(directory)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield cls, queue, gate, tmp_path
    worker.terminate()
    worker.wait(10)
    log.close()
    conn = redis.Redis.from_url(REDIS_URL)
    for key in conn.scan_iter(f"*{queue}*"):
        conn.delete(key)


def wait_for(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_worker_process_trains_while_api_serves(serve, backend):
    cls, queue, gate, tmp_path = backend
    server = serve(cls, model_dir=str(tmp_path / "models"), redis_url=REDIS_URL, rq_queue_name=queue)
    assert server.get("/health").json()["mode"] == "production"
    assert (
        server.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG}).json()["model_version"]
        == "initial"
    )
    r = server.post("/train", json={"annotations": annotated("Airbus"), "project": PROJECT})
    assert r.status_code == 201, r.text
    assert r.elapsed.total_seconds() < 1
    wait_for(lambda: (gate / "started").exists(), what="the worker to start fit")
    worker_pid = int((gate / "started").read_text())
    assert worker_pid != os.getpid(), "fit runs in the worker, not the API process"
    assert server.get("/training?project=21").json()["status"] == "running"
    for _ in range(10):
        t0 = time.perf_counter()
        p = server.post("/predict", json={"tasks": [{"id": 1}], "project": PROJECT})
        assert p.status_code == 200 and time.perf_counter() - t0 < 1
        assert p.json()["results"][0]["result"][0]["value"]["choices"] == ["none"]
    # a burst during the run: one follow-up job, the rest coalesce into it
    burst = [
        server.post("/train", json={"annotations": annotated("Boeing"), "project": PROJECT}) for _ in range(4)
    ]
    assert [b.json()["status"] for b in burst] == ["queued", "coalesced", "coalesced", "coalesced"]
    (gate / "open").write_text("1")
    status = wait_for(
        lambda: (lambda s: s if s["status"] == "succeeded" and len(s["versions"]) == 2 else None)(
            server.get("/training?project=21").json()
        ),
        what="two versions",
    )
    new_version = status["versions"][-1]
    assert status["served_version"] == new_version
    # the API picks the new version up from the shared store, within a second of the job end
    setup = server.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG}).json()
    assert setup["model_version"] == new_version
    pred = server.post("/predict", json={"tasks": [{"id": 1}], "project": PROJECT}).json()
    assert pred["results"][0]["model_version"] == new_version
    assert pred["results"][0]["result"][0]["value"]["choices"] == ["Boeing"]
    # the follow-up ran in a worker process too (RQ forks a work horse per job)
    assert pred["results"][0]["score"] not in (0, os.getpid())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_down_gives_fast_503_and_predictions_continue(serve, seed_class, tmp_path):
    url = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens there
    server = serve(seed_class, redis_url=url)
    server.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG})
    t0 = time.perf_counter()
    r = server.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 21}})
    assert time.perf_counter() - t0 < 3
    assert r.status_code == 503
    assert r.json()["error"] == "training_unavailable" and "unreachable" in r.json()["detail"]
    assert server.get("/health").status_code == 200
    assert server.post("/predict", json={"tasks": [{"id": 1}], "project": PROJECT}).status_code == 200


def test_worker_without_redis_url_explains(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_HOST")}
    out = subprocess.run(
        [sys.executable, "-m", "label_studio_ml", "worker", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "REDIS_URL is not set" in out.stderr


def test_start_serves_a_backend_directory(tmp_path):
    directory = tmp_path / "b"
    directory.mkdir()
    (directory / "model.py").write_text(
        textwrap.dedent("""
        from label_studio_ml.model import LabelStudioMLBase
        class M(LabelStudioMLBase):
            def __init__(self, threshold=0.0, **kwargs):
                super().__init__(**kwargs)
                self.threshold = threshold
            def predict(self, tasks, **kwargs):
                return [{"result": [], "score": self.threshold} for _ in tasks]
    """)
    )
    (directory / "wsgi.py").write_text(
        textwrap.dedent("""
        import sys
        from label_studio_ml import create_app
        from model import M

        def make_app(**model_kwargs):
            return create_app(M, model_kwargs=model_kwargs)

        app = make_app()

        if __name__ == "__main__":
            from label_studio_ml.cli import main
            main(["start", __file__, *sys.argv[1:]])
    """)
    )
    port = _free_port()
    env = {**os.environ, "MODEL_DIR": str(tmp_path / "models")}
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, str(directory / "wsgi.py"), "--port", str(port), "--with", "threshold=0.75"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        import requests

        def up():
            try:
                return requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok
            except (requests.ConnectionError, requests.Timeout):
                return False

        wait_for(up, 20, "the development server")
        r = requests.post(f"http://127.0.0.1:{port}/predict", json={"tasks": [{"id": 1}]}, timeout=5)
        assert r.json()["results"][0]["score"] == 0.75
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert "development" in out


def test_worker_started_during_a_redis_outage_waits_for_it(tmp_path):
    port = _free_port()
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{port}/0", "RQ_QUEUE_NAME": "lsml-wait-test",
           "MODEL_DIR": str(tmp_path / "models")}  # fmt: skip
    log = (tmp_path / "worker.log").open("w+")
    worker = subprocess.Popen([sys.executable, "-m", "label_studio_ml", "worker", str(tmp_path)], env=env,
                              stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    server = None
    try:
        time.sleep(2)
        assert worker.poll() is None, "the worker must wait for Redis, not exit"
        server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no"], stdout=subprocess.DEVNULL)  # fmt: skip
        conn = redis.Redis(port=port)
        wait_for(lambda: any(True for _ in conn.smembers("rq:workers")) if _ping(conn) else False, 30,
                 "the worker to register once Redis is up")  # fmt: skip
        log.seek(0)
        assert "does not answer" in log.read()
    finally:
        worker.terminate()
        worker.wait(10)
        if server is not None:
            server.terminate()
            server.wait(10)


def _ping(conn) -> bool:
    try:
        return conn.ping()
    except redis.RedisError:
        return False


def test_setup_token_stays_out_of_redis_when_a_key_is_configured(serve, seed_class, tmp_path):
    queue = f"lsml-secret-{uuid.uuid4().hex[:8]}"
    server = serve(seed_class, redis_url=REDIS_URL, rq_queue_name=queue, label_studio_url="http://ls:8080",
                   label_studio_api_key="configured-key")  # fmt: skip
    conn = redis.Redis.from_url(REDIS_URL)
    job_id = "none"
    try:
        server.post(
            "/setup", json={"project": PROJECT, "schema": SEED_CONFIG, "access_token": "setup-tok-77"}
        )
        r = server.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 21}})
        assert r.status_code == 201
        job_id = r.json()["job_id"]
        from rq.job import Job

        job = Job.fetch(job_id, connection=conn)
        assert job.kwargs["request"]["project_id"] == "21", "the job's arguments are readable"
        assert "setup-tok-77" not in repr(job.kwargs)
    finally:
        for key in conn.scan_iter(f"*{queue}*"):
            conn.delete(key)
        conn.delete(f"rq:job:{job_id}")
