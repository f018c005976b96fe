"""/setup's connection across processes: two apps sharing only Redis, as uWSGI's processes do.

Real Redis (``LSML_TEST_REDIS_URL``), real HTTP on 127.0.0.1, a real RQ worker process, and a
loopback server playing Label Studio's export endpoint that checks the ``Authorization`` header.
"""

from __future__ import annotations

import json
import logging
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
from label_studio_ml.connections import KEEP_FOR, connection_key

from .conftest import SEED_CONFIG, load_class
from .test_production import REDIS_URL, _redis_up, wait_for
from .test_training import annotated, fake_label_studio

pytestmark = pytest.mark.skipif(
    not _redis_up(), reason=f"no Redis at {REDIS_URL} (scripts/ensure_redis.sh starts one)"
)

PROJECT = "31.1719830400"
PID = "31"

MODEL = """
from label_studio_ml.model import LabelStudioMLBase


class Connected(LabelStudioMLBase):
    def predict(self, tasks, **kwargs):
        if any(task.get("fail") for task in tasks):
            raise RuntimeError(f"cannot reach {self.hostname} with key {self.access_token}")
        return [{"result": [], "score": 0.5} for _ in tasks]

    def fit(self, annotations, workdir=None, **kwargs):
        return {"n": len(annotations)}
"""


@pytest.fixture
def shared(tmp_path: Path):
    """The model class, a fresh queue (the Redis namespace) and the model directory."""
    directory = tmp_path / "backend"
    cls = load_class(directory, MODEL, "Connected", f"connmodel_{uuid.uuid4().hex[:8]}")
    queue = f"lsml-conn-{uuid.uuid4().hex[:8]}"
    yield cls, queue, directory, tmp_path / "models"
    conn = redis.Redis.from_url(REDIS_URL)
    for key in conn.scan_iter(f"*{queue}*"):
        conn.delete(key)


def two_apps(serve, cls, queue, models, **overrides):
    """Apps A and B: one store, one Redis, nothing else in common (two uWSGI processes)."""
    settings = dict(model_dir=str(models), redis_url=REDIS_URL, rq_queue_name=queue, **overrides)
    return serve(cls, **settings), serve(cls, **settings)


def test_a_webhook_on_another_process_trains_with_setups_hostname_and_token(serve, shared):
    cls, queue, directory, models = shared
    token = f"tok-{uuid.uuid4().hex}"
    ls = fake_label_studio(token, annotated("Boeing", 3))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "REDIS_", "RQ_"))}
    env.update(MODEL_DIR=str(models), REDIS_URL=REDIS_URL, RQ_QUEUE_NAME=queue, LOG_LEVEL="INFO")
    log_path = directory.parent / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "label_studio_ml", "worker", str(directory)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        a, b = two_apps(serve, cls, queue, models)
        r = a.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG, "hostname": ls.url,
                                   "access_token": token, "extra_params": {"k": 1}})  # fmt: skip
        assert r.status_code == 200, r.text
        # B never got /setup: the webhook's run gets A's hostname and token from Redis
        r = b.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 31}})
        assert r.status_code == 201, r.text
        status = wait_for(
            lambda: (s := b.get(f"/training?project={PID}").json())["status"] in ("succeeded", "failed") and s,
            timeout=60, what="the worker's run",
        )  # fmt: skip
        assert status["status"] == "succeeded", (status, log_path.read_text())
        version = b.get(f"/versions?project={PID}").json()["versions"][0]
        assert json.loads((models / PID / "versions" / version / "train_output.json").read_text()) == {"n": 3}
        # a model built by B gets them too (in the background: /predict never waits on Redis)
        assert b.post("/predict", json={"project": PROJECT, "tasks": [{"id": 1}]}).status_code == 200
        registry = b.backend.registry
        wait_for(
            lambda: registry.acquire(PID, timeout=10).model.access_token == token, what="B's model token"
        )
        model = registry.acquire(PID, timeout=10).model
        assert (model.hostname, model.extra_params) == (ls.url, {"k": 1})
        for server in (a, b):
            for path in ("/health", f"/training?project={PID}", "/training", "/metrics"):
                assert token not in server.get(path).text
        assert token not in log_path.read_text()
    finally:
        worker.terminate()
        worker.wait(10)
        ls.close()


def test_the_later_setup_wins_and_its_expiry_is_refreshed(serve, shared):
    cls, queue, _, models = shared
    a, b = two_apps(serve, cls, queue, models)
    a.post("/setup", json={"project": PROJECT, "hostname": "http://ls:8080", "access_token": "old-token-1"})
    b.post("/setup", json={"project": PROJECT, "hostname": "http://ls:8080", "access_token": "new-token-2"})
    assert a.backend.registry.connection(PID).access_token == "new-token-2"
    assert b.backend.registry.connection(PID).access_token == "new-token-2"
    assert {"old-token-1", "new-token-2"} <= set(a.backend.registry.access_tokens())

    conn = redis.Redis.from_url(REDIS_URL)
    key = connection_key(queue, PID)
    assert KEEP_FOR - 60 < conn.ttl(key) <= KEEP_FOR
    conn.expire(key, 100)
    a.post("/setup", json={"project": PROJECT, "hostname": "http://ls:8080", "access_token": "new-token-2"})
    assert conn.ttl(key) > KEEP_FOR - 60


def test_a_configured_key_keeps_setups_token_out_of_redis(serve, shared):
    cls, queue, _, models = shared
    a, b = two_apps(
        serve, cls, queue, models, label_studio_url="http://ls:8080", label_studio_api_key="k" * 20
    )
    a.post("/setup", json={"project": PROJECT, "hostname": "http://ls:8080", "access_token": "setup-token-3"})
    raw = redis.Redis.from_url(REDIS_URL).get(connection_key(queue, PID))
    assert b"setup-token-3" not in raw and json.loads(raw)["hostname"] == "http://ls:8080"
    assert b.backend.registry.connection(PID).hostname == "http://ls:8080"


def test_a_token_known_from_redis_is_redacted_on_the_other_process(serve, shared, caplog):
    cls, queue, _, models = shared
    a, b = two_apps(serve, cls, queue, models)
    token = f"secret-{uuid.uuid4().hex}"
    a.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG, "hostname": "http://ls:8080",
                           "access_token": token})  # fmt: skip
    assert b.post("/predict", json={"project": PROJECT, "tasks": [{"id": 1}]}).status_code == 200
    registry = b.backend.registry
    wait_for(lambda: registry.acquire(PID, timeout=10).model.access_token == token, what="B's model token")
    with caplog.at_level(logging.INFO):
        r = b.post("/predict", json={"project": PROJECT, "tasks": [{"id": 1, "fail": True}]})
    assert r.status_code == 500 and r.json()["error"] == "predict_failed"
    assert "http://ls:8080 with key [redacted]" in r.json()["detail"]
    assert token not in r.text and token not in r.reason and token not in caplog.text


@pytest.fixture
def silent_redis():
    """A Redis URL whose server accepts connections and never answers (a hung Redis)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    sock.close()


@pytest.mark.parametrize("down", ["refused", "silent"])
def test_setup_answers_at_once_when_redis_is_down(serve, shared, silent_redis, caplog, down):
    cls, queue, _, models = shared
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    url = closed if down == "refused" else silent_redis
    app = serve(cls, model_dir=str(models), redis_url=url, rq_queue_name=queue)
    token = f"secret-{uuid.uuid4().hex}"
    body = {"project": PROJECT, "schema": SEED_CONFIG, "hostname": "http://ls:8080", "access_token": token}
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            started = time.monotonic()
            r = app.post("/setup", json=body)
            assert r.status_code == 200, r.text
            assert time.monotonic() - started < 2.0
    # the process keeps its copy; one warning for the outage; no token anywhere
    assert app.backend.registry.connection(PID).access_token == token
    warnings = [rec for rec in caplog.records if "connections Label Studio's /setup sent" in rec.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert token not in caplog.text
    r = app.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 31}})
    assert r.status_code == 503 and token not in r.text


def test_development_mode_never_touches_redis(tmp_path):
    """One process: /setup keeps the connection in memory, redis is never even imported."""
    pid = f"dev{uuid.uuid4().hex[:8]}"
    code = textwrap.dedent(
        f"""
        import sys
        from label_studio_ml import create_app, Settings
        from label_studio_ml.model import LabelStudioMLBase

        class M(LabelStudioMLBase):
            def predict(self, tasks, **kwargs):
                return [{{"result": []}} for _ in tasks]

        app = create_app(M, Settings(model_dir={str(tmp_path / "m")!r}, preload_models=False))
        client = app.test_client()
        body = {{"project": "{pid}", "hostname": "http://ls:8080", "access_token": "dev-token-4"}}
        assert client.post("/setup", json=body).status_code == 200
        client.post("/webhook", json={{"action": "START_TRAINING", "project": {{"id": "{pid}"}}}})
        registry = app.extensions["lsml"].registry
        assert registry.connection("{pid}").access_token == "dev-token-4"
        assert "redis" not in sys.modules and "rq" not in sys.modules, "loaded"
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "LABEL_STUDIO_", "RQ_"))}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=env)
    conn = redis.Redis.from_url(REDIS_URL)
    assert list(conn.scan_iter(f"lsml:*:{pid}:connection")) == []


def test_security_md_names_the_key_and_the_expiry_the_code_uses():
    text = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text(encoding="utf-8")
    section = text.split("## Where `/setup`'s token is kept", 1)[1].split("\n## ", 1)[0]
    assert f"`{connection_key('<RQ_QUEUE_NAME>', '<project>')}`" in section
    assert KEEP_FOR == 30 * 24 * 3600 and "expiring 30 days after" in " ".join(section.split())
