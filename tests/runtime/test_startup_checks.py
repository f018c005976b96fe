"""Dead ends that used to be silent now say what is wrong, where the user looks.

* ``REDIS_URL`` set with no RQ worker on the queue: ``/health``, ``/training`` and ``start`` say so;
* ``MODEL_DIR`` not writable: the API and the worker refuse to start, naming the directory and user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis
from label_studio_ml.api import create_app
from label_studio_ml.settings import Settings, SettingsError

from .conftest import SEED_CONFIG, SEED_MODEL, load_class
from .test_production import REDIS_URL, _redis_up, annotated, wait_for

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "31.1719830400"
NO_WORKER = "no RQ worker consumes queue"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend_dir(tmp_path: Path) -> Path:
    """A backend directory `label-studio-ml start` and `worker` accept: model.py + wsgi.py."""
    directory = tmp_path / f"backend_{uuid.uuid4().hex[:8]}"
    directory.mkdir()
    (directory / "model.py").write_text(SEED_MODEL)
    (directory / "wsgi.py").write_text(
        textwrap.dedent(
            """
            from label_studio_ml.api import create_app
            from model import DummyModel

            app = create_app(DummyModel)
            """
        )
    )
    return directory


def cli(*args: str, env: dict, cwd: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "label_studio_ml", *args], env=env, cwd=cwd, text=True, **kw
    )


def dev_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "RQ_", "MODEL_DIR", "PYTEST_"))}
    env.update(extra)
    return env


needs_redis = pytest.mark.skipif(not _redis_up(), reason=f"no Redis at {REDIS_URL}")


@pytest.fixture
def queue():
    name = f"lsml-noworker-{uuid.uuid4().hex[:8]}"
    yield name
    conn = redis.Redis.from_url(REDIS_URL)
    for key in conn.scan_iter(f"*{name}*"):
        conn.delete(key)


# ------------------------------------------------------------------ REDIS_URL without a worker
@needs_redis
def test_health_and_training_say_no_worker_consumes_the_queue(serve, tmp_path, queue):
    directory = backend_dir(tmp_path)
    cls = load_class(directory, SEED_MODEL, "DummyModel", f"seed_{uuid.uuid4().hex[:8]}")
    models = tmp_path / "models"
    server = serve(cls, model_dir=str(models), redis_url=REDIS_URL, rq_queue_name=queue)
    health = server.get("/health").json()
    assert health["status"] == "UP" and health["mode"] == "production"
    assert health["workers"] == 0
    assert NO_WORKER in health["warning"] and repr(queue) in health["warning"]
    server.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG})
    r = server.post("/train", json={"annotations": annotated("Airbus"), "project": PROJECT})
    assert r.status_code == 201 and r.json()["status"] == "queued", r.text
    status = server.get("/training?project=31").json()
    assert status["status"] == "queued" and NO_WORKER in status["warning"]

    # a worker on that queue: the warnings go, the queued run trains
    env = dev_env(REDIS_URL=REDIS_URL, RQ_QUEUE_NAME=queue, MODEL_DIR=str(models))
    log = (tmp_path / "worker.log").open("w")
    worker = cli("worker", str(directory), env=env, cwd=directory, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: server.get("/health").json()["workers"] == 1, what="the worker to register")
        assert "warning" not in server.get("/health").json()
        done = wait_for(
            lambda: (lambda s: s if s["status"] == "succeeded" else None)(
                server.get("/training?project=31").json()
            ),
            what="the queued run to succeed",
        )
        assert "warning" not in done
    finally:
        worker.terminate()
        worker.wait(15)
        log.close()


def test_health_says_redis_does_not_answer(serve, seed_class):
    server = serve(seed_class, redis_url=f"redis://127.0.0.1:{_free_port()}/0")
    health = server.get("/health")
    assert health.status_code == 200
    assert health.json()["workers"] is None and "does not answer" in health.json()["warning"]


@needs_redis
@pytest.mark.parametrize("variable", ["REDIS_URL", "REDIS_HOST"])
def test_start_warns_at_startup_when_no_worker(tmp_path, queue, variable):
    """The warning names the variable the user set (REDIS_HOST is the old spelling)."""
    directory = backend_dir(tmp_path)
    if variable == "REDIS_URL":
        redis = {"REDIS_URL": REDIS_URL}
    else:
        parsed = urlparse(REDIS_URL)
        redis = {"REDIS_HOST": parsed.hostname, "REDIS_PORT": str(parsed.port or 6379)}
    env = dev_env(**redis, RQ_QUEUE_NAME=queue, MODEL_DIR=str(tmp_path / "models"))
    proc = cli(
        "start", str(directory), "--port", str(_free_port()),
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    lines: list = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any(NO_WORKER in line for line in lines), what="the startup warning")
    finally:
        proc.terminate()
        proc.wait(10)
    warning = next(line for line in lines if NO_WORKER in line)
    assert warning.startswith(f"WARNING: {variable} is set; ") and repr(queue) in warning
    assert "label-studio-ml worker" in warning and f"unset {variable} " in warning
    other = {"REDIS_URL": "REDIS_HOST", "REDIS_HOST": "REDIS_URL"}[variable]
    assert other not in warning, warning


# ------------------------------------------------------------------ MODEL_DIR not writable
def test_model_dir_below_a_file_refuses_to_start(seed_class, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file")
    bad = blocker / "models"
    with pytest.raises(SettingsError) as info:
        create_app(seed_class, Settings(model_dir=str(bad)))
    message = str(info.value)
    assert f"MODEL_DIR={str(bad)!r}" in message and "is not writable by user" in message
    assert "a parent of it is a file" in message


def test_start_and_worker_refuse_an_unwritable_model_dir(tmp_path):
    directory = backend_dir(tmp_path)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file")
    bad = str(blocker / "models")
    start = cli("start", str(directory), "--port", str(_free_port()), env=dev_env(MODEL_DIR=bad),
                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    out, err = start.communicate(timeout=60)
    assert start.returncode == 2, out + err
    assert err.startswith(f"ERROR: MODEL_DIR={bad!r}") and "not writable by user" in err
    assert "Traceback" not in err
    worker = cli("worker", str(directory), "--burst", env=dev_env(MODEL_DIR=bad, REDIS_URL=REDIS_URL),
                 cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 2 and f"MODEL_DIR={bad!r}" in err, out + err


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser"), reason="needs root and runuser")
def test_model_dir_owned_by_another_user_names_the_user():
    """As a regular user (nobody), a root-owned 0755 directory: os.access and the probe say no."""
    with tempfile.TemporaryDirectory(prefix="lsml-owned-") as top:
        Path(top).chmod(0o755)  # pytest's tmp_path is private to root; nobody must reach this
        owned = Path(top) / "root-owned"
        owned.mkdir(mode=0o755)
        for parent in owned.parents:
            if parent.stat().st_mode & 0o001 == 0:
                pytest.skip(f"{parent} is not searchable by other users")
        _check_as_nobody(owned)


def _check_as_nobody(owned: Path) -> None:
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    code = (
        "import sys\n"
        "from label_studio_ml.checks import check_model_dir\n"
        "try:\n    check_model_dir(sys.argv[1])\n"
        "except ValueError as exc:\n    print(exc); sys.exit(3)\n"
    )
    proc = subprocess.run(
        [shutil.which("runuser"), "-u", "nobody", "--", python, "-c", code, str(owned / "models")],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "runtime" / "src")},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if "Permission denied" in proc.stderr and "runuser" in proc.stderr:
        pytest.skip(f"nobody cannot run {python}")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "is not writable by user nobody (uid 65534)" in proc.stdout
    assert str(owned / "models") in proc.stdout
