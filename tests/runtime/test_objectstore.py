"""MODEL_STORE=s3://...: versions in a real S3-compatible server (moto_server), shared by hosts.

"Hosts" here are stores (and apps) with separate MODEL_DIR caches that share only the bucket
and Redis (a unique key namespace per test), as processes on different machines would.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from label_studio_ml.api import create_app
from label_studio_ml.objectstore import POLL, RemoteStore, open_store
from label_studio_ml.settings import Settings, SettingsError
from label_studio_ml.store import ModelStore, StoreError, StoreUnavailable
from label_studio_ml.training import TrainRequest, execute, new_job_id
from label_studio_ml.versions import rollback

from ..moto_support import SECRET_KEY, MotoServer, PrivateRedis, boto_env_applied, subprocess_env
from .conftest import LiveServer, load_class

REDIS = "redis://127.0.0.1:6379/0"
CONFIG = '<View><Text name="text" value="$text"/><Choices name="label" toName="text"><Choice value="a"/><Choice value="b"/></Choices></View>'
TASKS = [{"id": i, "data": {"text": f"t{i}"}, "annotations": [{"result": []}]} for i in range(3)]

MODEL = '''
import os
from label_studio_ml.model import LabelStudioMLBase


class StoreModel(LabelStudioMLBase):
    """fit writes a weights file in a sub-folder; the built model reads it back."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.trained_on = None
        name = self.train_output.get("weights")
        if name:
            with open(os.path.join(self.workdir, name)) as fh:
                self.trained_on = int(fh.read())

    def predict(self, tasks, **kwargs):
        score = (self.trained_on or 0) / 100
        return [{"result": [], "score": score} for _ in tasks]

    def fit(self, annotations, workdir=None, **kwargs):
        os.makedirs(os.path.join(workdir, "sub"))
        with open(os.path.join(workdir, "sub", "weights.txt"), "w") as fh:
            fh.write(str(len(annotations)))
        return {"weights": "sub/weights.txt"}
'''


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    yield server
    server.close()


@pytest.fixture
def s3(moto, monkeypatch) -> str:
    """A fresh bucket; boto3's environment points at moto. Returns the MODEL_STORE URL."""
    boto_env_applied(monkeypatch, moto)
    return f"s3://{moto.new_bucket()}/models"


@pytest.fixture
def namespace() -> str:
    """A private Redis key namespace (RQ_QUEUE_NAME) for the test; its keys are removed after."""
    name = f"lsml-store-{uuid.uuid4().hex[:8]}"
    yield name
    import redis

    client = redis.Redis.from_url(REDIS)
    keys = list(client.scan_iter(f"lsml:{name}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def model_class(tmp_path):
    return load_class(tmp_path / "src", MODEL, "StoreModel")


def train(model_class, store, n: int = 3, project: str = "7") -> str:
    """One real training run through the runtime's own code path; returns the new version."""
    settings = Settings(model_dir=str(store.root))
    request = TrainRequest(
        project_id=project, event="START_TRAINING", annotations=TASKS[:n], label_config=CONFIG
    )
    status = execute(model_class, store, settings, request, new_job_id(project))
    assert status["status"] == "succeeded", status
    return status["version"]


def host(tmp_path: Path, name: str, url: str, namespace: str, redis_url=REDIS) -> RemoteStore:
    return RemoteStore(tmp_path / name, url, redis_url, namespace)


# ------------------------------------------------------------------ settings
def test_model_store_setting(tmp_path):
    assert Settings.from_env({}).model_store is None
    assert isinstance(open_store(Settings(model_dir=str(tmp_path))), ModelStore)
    assert Settings.from_env({"MODEL_STORE": "s3://bucket-1/a/b/"}).model_store == "s3://bucket-1/a/b"
    with pytest.raises(
        SettingsError, match=r"MODEL_STORE='/srv/models' is not valid: use s3://bucket/prefix"
    ):
        Settings.from_env({"MODEL_STORE": "/srv/models"})
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"MODEL_STORE": "s3://AKIAX:hunter2secret@bucket/p"})
    assert "hunter2secret" not in str(err.value) and "must not contain credentials" in str(err.value)


# ------------------------------------------------------------------ versions across hosts
def test_a_version_trained_on_one_host_serves_on_another_after_one_download(
    tmp_path, s3, namespace, model_class
):
    a, b = host(tmp_path, "a", s3, namespace), host(tmp_path, "b", s3, namespace)
    assert b.latest("7") is None and b.versions("7") == []
    version = train(model_class, a)
    assert a.latest("7") == b.latest("7") == version  # at once: Redis holds the current version
    assert b.versions("7") == [version]
    assert not (b.version_dir("7", version)).exists()
    assert b.train_output("7", version) == {"weights": "sub/weights.txt"}
    assert (b.version_dir("7", version) / "sub" / "weights.txt").read_text() == "3"
    assert b.downloads == 1
    b.train_output("7", version)
    assert b.downloads == 1  # cached
    restarted = host(tmp_path, "b", s3, namespace)
    assert restarted.train_output("7", version) == {"weights": "sub/weights.txt"}
    assert restarted.downloads == 0  # a restart serves from the cache
    # the training status is shared too: GET /training on any host reports the run
    assert b.status("7")["status"] == "succeeded" and b.status("7")["version"] == version
    # the next run on the other host continues the numbering
    second = train(model_class, b, n=2)
    assert second.startswith("v2-") and a.latest("7") == second


def test_half_a_version_is_never_seen(tmp_path, s3, namespace, model_class):
    a, b = host(tmp_path, "a", s3, namespace), host(tmp_path, "b", s3, namespace)
    first = train(model_class, a)
    version, path = a.new_version("7")
    (path / "weights.bin").write_bytes(b"x" * 1000)
    meta = {"version": version}
    files = a.upload_version("7", version, {"weights": "weights.bin"}, meta)
    assert set(files) == {"weights.bin", "meta.json", "train_output.json"}
    # every file is in the bucket, but without its manifest no reader sees the version
    assert b.versions("7") == [first] and b.latest("7") == first
    with pytest.raises(StoreError, match="is not in the store"):
        b.ensure_local("7", version)
    a.publish_version("7", version, files, meta)
    assert b.versions("7") == [first, version] and b.latest("7") == version
    assert b.ensure_local("7", version).joinpath("weights.bin").stat().st_size == 1000


def test_a_run_that_died_before_publishing_leaves_nothing_visible(tmp_path, s3, namespace, model_class):
    a, b = host(tmp_path, "a", s3, namespace), host(tmp_path, "b", s3, namespace)
    version, path = a.new_version("7")
    (path / "w").write_text("half")
    a.upload_version("7", version, {}, {})
    assert a.bucket.list(a._key("7", "versions", version) + "/")
    b.discard_version("7", version, only_incomplete=True)  # what interrupt() does on any host
    assert a.bucket.list(a._key("7", "versions", version) + "/") == []
    assert b.versions("7") == [] and b.latest("7") is None


# ------------------------------------------------------------------ pin, rollback, unpin
@pytest.mark.parametrize("redis_url", [REDIS, None], ids=["redis", "store-only"])
def test_pin_rollback_unpin_for_every_host(tmp_path, s3, namespace, model_class, redis_url):
    a, b = host(tmp_path, "a", s3, namespace, redis_url), host(tmp_path, "b", s3, namespace, redis_url)
    v1, v2 = train(model_class, a, 1), train(model_class, a, 2)
    wait = 0 if redis_url else POLL + 0.1  # without Redis, hosts read the control file every POLL s
    time.sleep(wait)
    assert b.latest("7") == v2 and b.follows_newest("7")
    pin = rollback(b, "7")
    assert pin["version"] == v1 and pin["reason"] == f"rolled back from {v2}"
    time.sleep(wait)
    assert a.latest("7") == v1 and not a.follows_newest("7")
    # a run that finishes while pinned is stored, not served
    v3 = train(model_class, a, 3)
    time.sleep(wait)
    assert b.versions("7") == [v1, v2, v3] and b.latest("7") == v1 and a.newest("7") == v3
    with pytest.raises(StoreError, match="no version older than"):
        rollback(a, "7")
    with pytest.raises(StoreError, match="has no version v9-20990101000000"):
        a.pin("7", "v9-20990101000000")
    a.pin("7", v2)
    time.sleep(wait)
    assert b.latest("7") == v2
    assert b.unpin("7") == v3
    time.sleep(wait)
    assert a.latest("7") == v3 and a.pinned("7") is None


def test_local_store_pins_too(tmp_path, model_class):
    store = ModelStore(tmp_path / "models")
    v1, v2 = train(model_class, store, 1), train(model_class, store, 2)
    assert rollback(store, "7")["version"] == v1
    assert store.latest("7") == v1 and not store.follows_newest("7")
    v3 = train(model_class, store, 3)
    assert store.latest("7") == v1 and store.newest("7") == v3
    assert store.unpin("7") == v3 and store.latest("7") == v3
    assert store.versions("7") == [v1, v2, v3]


# ------------------------------------------------------------------ Redis lost and back
def test_losing_redis_serves_the_last_known_version_and_recovers(tmp_path, s3, model_class):
    redis = PrivateRedis(tmp_path)
    try:
        a = host(tmp_path, "a", s3, "ns", redis.url)
        b = host(tmp_path, "b", s3, "ns", redis.url)
        v1 = train(model_class, a)
        assert b.latest("7") == v1
        redis.stop()
        started = time.monotonic()
        answers = [b.latest("7") for _ in range(50)]
        assert answers == [v1] * 50
        assert time.monotonic() - started < 3  # one timed-out ask, then the last known version
        with pytest.raises(StoreUnavailable, match="does not answer"):
            b.pin("7", v1)  # no changes while Redis is away
        fresh = host(tmp_path, "c", s3, "ns", redis.url)  # a host that never asked: the bucket's copy
        assert fresh.latest("7") == v1
        redis.start()  # empty: it lost every key
        time.sleep(1.1)  # REDIS_RETRY
        assert b.latest("7") == v1  # the bucket's copy is put back
        v2 = train(model_class, a, 2)
        assert b.latest("7") == v2
        # Redis holding an older copy (it missed a write): the bucket's newer one wins
        import redis as redis_py

        client = redis_py.Redis.from_url(redis.url)
        client.set("lsml:ns:7:control", json.dumps({"newest": v1, "seq": 1}))
        assert host(tmp_path, "d", s3, "ns", redis.url).latest("7") == v2
        assert json.loads(client.get("lsml:ns:7:control"))["newest"] == v2
    finally:
        redis.stop()


# ------------------------------------------------------------------ HTTP: two apps, one store
@pytest.fixture
def two_apps(tmp_path, s3, namespace, model_class):
    servers = []

    def start(name: str, **extra) -> LiveServer:
        settings = Settings(
            model_dir=str(tmp_path / name), model_store=s3, redis_url=REDIS, rq_queue_name=namespace,
            preload_models=False, **extra,
        )  # fmt: skip
        server = LiveServer(create_app(model_class, settings))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_predict_never_answers_older_than_setup_on_another_host(tmp_path, two_apps, model_class):
    a, b = two_apps("a"), two_apps("b")
    body = {"project": "7.1700000000", "label_config": CONFIG, "tasks": [{"id": 1, "data": {"text": "x"}}]}
    assert b.post("/predict", json=body).json()["model_version"] == "initial"
    store = a.backend.store
    for n in (1, 2, 3):
        version = train(model_class, store, n)
        # the moment the run ended: both hosts answer it in /setup, and /predict waits for it
        for server in (a, b):
            assert server.post("/setup", json={"project": "7.1700000000", "schema": CONFIG}).json() == {
                "model_version": version
            }
            answer = server.post("/predict", json=body).json()
            assert answer["model_version"] == version and answer["results"][0]["score"] == n / 100
    assert a.backend.store.downloads == 0 and b.backend.store.downloads == 3  # a trained them itself


def test_versions_http_shows_why_and_changes_need_auth(tmp_path, two_apps, model_class):
    a = two_apps("a", basic_auth_user="admin", basic_auth_pass="pw-1234")
    b = two_apps("b", basic_auth_user="admin", basic_auth_pass="pw-1234")
    auth = ("admin", "pw-1234")
    v1, v2 = train(model_class, a.backend.store, 1), train(model_class, a.backend.store, 2)
    listing = b.get("/versions", auth=auth).json()
    assert listing["versions"] == [v1, v2] and listing["projects"] == ["7"]
    assert (
        listing["served"]["7"]["version"] == v2 and listing["served"]["7"]["why"] == "newest trained version"
    )
    denied = b.post("/versions/rollback", json={"project": "7"})
    assert denied.status_code == 401 and denied.json()["error"] == "unauthorized"
    answer = b.post("/versions/rollback", json={"project": "7"}, auth=auth)
    assert answer.status_code == 200 and answer.json()["version"] == v1
    assert answer.json()["why"] == f"pinned (rolled back from {v2}); newest is {v2}"
    predict = {"project": "7", "label_config": CONFIG, "tasks": [{"id": 1, "data": {"text": "x"}}]}
    for server in (a, b):
        assert server.post("/predict", json=predict, auth=auth).json()["model_version"] == v1
        assert server.get("/versions?project=7", auth=auth).json()["served"]["7"]["pinned"]["version"] == v1
    bad = a.post("/versions/pin", json={"project": "7", "version": "v7-20990101000000"}, auth=auth)
    assert bad.status_code == 400 and "has no version v7-20990101000000" in bad.json()["detail"]
    assert a.post("/versions/pin", json={"project": "7"}, auth=auth).status_code == 400
    assert a.post("/versions/unpin", json={"project": "7"}, auth=auth).json()["version"] == v2
    assert b.post("/predict", json=predict, auth=auth).json()["model_version"] == v2


def test_without_auth_only_the_backends_own_host_changes_versions(tmp_path, model_class):
    app = create_app(model_class, Settings(model_dir=str(tmp_path / "m"), preload_models=False))
    train(model_class, app.extensions["lsml"].store, 1)
    train(model_class, app.extensions["lsml"].store, 2)
    client = app.test_client()
    far = client.post("/versions/rollback", json={"project": "7"}, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert far.status_code == 403 and far.get_json()["error"] == "forbidden"
    near = client.post("/versions/rollback", json={"project": "7"}, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert near.status_code == 200 and near.get_json()["version"].startswith("v1-")


# ------------------------------------------------------------------ credentials stay out
def test_credentials_never_in_logs_health_or_errors(tmp_path, s3, moto, namespace, model_class, caplog):
    caplog.set_level(logging.DEBUG)
    settings = Settings(model_dir=str(tmp_path / "a"), model_store=s3, preload_models=False)
    server = LiveServer(create_app(model_class, settings))
    try:
        train(model_class, server.backend.store, 1)
        health = server.get("/health")
        assert health.json()["store"] == s3
        texts = [health.text, server.get("/versions").text, server.get("/training?project=7").text]
        # a store that cannot answer: a 503 naming the store, never the key
        broken = Settings(
            model_dir=str(tmp_path / "b"), model_store="s3://no-such-bucket-lsml/x", preload_models=False
        )
        other = LiveServer(create_app(model_class, broken))
        try:
            answer = other.get("/versions")
            assert answer.status_code == 503 and answer.json()["error"] == "store_unavailable"
            assert "s3://no-such-bucket-lsml/x" in answer.json()["detail"]
            texts.append(answer.text)
        finally:
            other.close()
    finally:
        server.close()
    texts.append(caplog.text)
    for text in texts:
        assert SECRET_KEY not in text


# ------------------------------------------------------------------ command line
def test_versions_cli_acts_on_every_host(tmp_path, s3, moto, namespace, model_class):
    a = host(tmp_path, "a", s3, namespace)
    v1, v2 = train(model_class, a, 1), train(model_class, a, 2)
    env = subprocess_env(
        moto, MODEL_DIR=str(tmp_path / "cli"), MODEL_STORE=s3, REDIS_URL=REDIS, RQ_QUEUE_NAME=namespace
    )

    def cli(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "label_studio_ml", "versions", *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)

    listed = json.loads(cli("list").stdout)
    assert listed["versions"] == [v1, v2] and listed["served"]["7"]["version"] == v2
    done = cli("rollback", "7")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version"] == v1 and a.latest("7") == v1
    assert json.loads(cli("unpin", "7").stdout)["version"] == v2 and a.latest("7") == v2
    assert json.loads(cli("pin", "7", v1).stdout)["pinned"]["version"] == v1 and a.latest("7") == v1
    bad = cli("pin", "7", "v5-20990101000000")
    assert bad.returncode == 2 and bad.stderr.startswith("ERROR: project 7 has no version v5-20990101000000")
    assert SECRET_KEY not in bad.stderr + done.stdout
    requests.Session().close()


def test_development_mode_trains_into_the_bucket(tmp_path, s3, model_class):
    """No Redis: /train runs in the API process, publishes to the bucket, and serves at once."""
    settings = Settings(model_dir=str(tmp_path / "dev"), model_store=s3, preload_models=False)
    server = LiveServer(create_app(model_class, settings))
    try:
        answer = server.post("/train", json={"project": "7", "label_config": CONFIG, "annotations": TASKS})
        assert answer.status_code == 201, answer.text
        assert server.backend.trainer.wait_idle(30)
        status = server.get("/training?project=7").json()
        assert status["status"] == "succeeded", status
        body = {"project": "7", "label_config": CONFIG, "tasks": [{"id": 1, "data": {"text": "x"}}]}
        predicted = server.post("/predict", json=body).json()
        assert predicted["model_version"] == status["version"] and predicted["results"][0]["score"] == 0.03
    finally:
        server.close()
    other = host(tmp_path, "other", s3, "unused", redis_url=None)
    assert other.versions("7") == [status["version"]] and other.latest("7") == status["version"]


def test_predict_keeps_answering_while_redis_is_away(tmp_path, s3, model_class):
    redis = PrivateRedis(tmp_path)
    try:
        settings = Settings(
            model_dir=str(tmp_path / "api"), model_store=s3, redis_url=redis.url, rq_queue_name="ns",
            preload_models=False,
        )  # fmt: skip
        server = LiveServer(create_app(model_class, settings))
        try:
            worker = host(tmp_path, "worker", s3, "ns", redis.url)
            train(model_class, worker, 1)
            version = train(model_class, worker, 2)
            body = {"project": "7", "label_config": CONFIG, "tasks": [{"id": 1, "data": {"text": "x"}}]}
            assert server.post("/predict", json=body).json()["model_version"] == version
            redis.stop()
            for _ in range(5):
                answer = server.post("/predict", json=body)
                assert answer.status_code == 200 and answer.json()["model_version"] == version
            assert (
                server.post("/setup", json={"project": "7", "schema": CONFIG}).json()["model_version"]
                == version
            )
            denied = server.post("/versions/rollback", json={"project": "7"})  # a change needs Redis
            assert denied.status_code == 503 and denied.json()["error"] == "store_unavailable"
            redis.start()
            time.sleep(1.1)
            assert server.post("/predict", json=body).json()["model_version"] == version
        finally:
            server.close()
    finally:
        redis.stop()


def test_versions_cli_on_the_local_store(tmp_path, model_class):
    store = ModelStore(tmp_path / "models")
    v1, v2 = train(model_class, store, 1), train(model_class, store, 2)
    env = {
        k: v for k, v in __import__("os").environ.items() if not k.startswith(("MODEL_", "REDIS_", "PYTEST_"))
    }
    env["MODEL_DIR"] = str(tmp_path / "models")
    cmd = [sys.executable, "-m", "label_studio_ml", "versions"]
    done = subprocess.run([*cmd, "rollback", "7"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["why"] == f"pinned (rolled back from {v2}); newest is {v2}"
    assert store.latest("7") == v1
    listed = json.loads(
        subprocess.run([*cmd, "list"], env=env, capture_output=True, text=True, timeout=60).stdout
    )
    assert listed["served"]["7"]["pinned"]["version"] == v1 and listed["versions"] == [v1, v2]
    subprocess.run([*cmd, "unpin", "7"], env=env, check=True, capture_output=True, timeout=60)
    assert store.latest("7") == v2


def test_missing_boto3_is_a_clear_setting_error(tmp_path):
    code = (
        "import sys; sys.modules['boto3'] = None\n"
        "from label_studio_ml.settings import Settings\n"
        "from label_studio_ml.objectstore import open_store\n"
        f"open_store(Settings(model_dir={str(tmp_path)!r}, model_store='s3://bucket-1/p'))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert (
        "SettingsError: MODEL_STORE=s3://bucket-1/p needs boto3: pip install 'lsml-runtime[s3]'"
        in proc.stderr
    )
