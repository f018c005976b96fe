"""A real Label Studio 1.23.2 drives baked backends.

One Label Studio server per test session, started from the pre-migrated SQLite database that
``scripts/setup_labelstudio.sh`` prepares (outside the clone, cached between runs). Each test
makes its own project in it. Backends are baked from a model script with Cookiecutter and run
with this interpreter (the runtime is installed editable in the dev venv): development mode
(``python wsgi.py``) or production mode (supervisord + uWSGI + RQ worker + Redis).

Every Label Studio or backend failure message ends with the tail of the relevant log.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional

import pytest
import requests

LS_VERSION = "1.23.2"
LS_HOME = Path(
    os.environ.get("LSML_LS_HOME") or Path.home() / ".cache" / "lsml" / f"labelstudio-{LS_VERSION}"
)
LS_VENV = LS_HOME / "venv"
LS_TEMPLATE = LS_HOME / "data-template"
DATA = Path(__file__).resolve().parent / "data"
REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
REDIS_URL = os.environ.get("LSML_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Choices name="choice" toName="image" showInLine="true">
    <Choice value="Boeing" background="blue"/>
    <Choice value="Airbus" background="green" />
  </Choices>
</View>"""
LABELS = ("Boeing", "Airbus")

# Variables of the calling environment that must not reach Label Studio or a backend.
LS_STRIP = ("USERNAME", "PASSWORD", "HOST", "PORT")
BACKEND_STRIP_PREFIXES = ("LABEL_STUDIO_", "BASIC_AUTH_", "REDIS_", "RQ_")
BACKEND_STRIP = ("MODEL_DIR", "PORT", "HOST", "LOG_LEVEL")


# ------------------------------------------------------------------ small helpers
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def wait_for(
    check: Callable[[], Any],
    timeout: float,
    what: str,
    interval: float = 0.5,
    logs: Callable[[], str] = lambda: "",
) -> Any:
    """Call ``check`` until it returns something truthy; fail with ``what`` and the logs."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except (requests.RequestException, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}\n{logs()}"
            )
        time.sleep(interval)


def stop_process(proc: subprocess.Popen, grace: float = 40.0) -> None:
    """SIGTERM the process (its own session), then SIGKILL its group after ``grace`` seconds."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group (uWSGI workers, rq horses)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def clean_backend_env(extra: Dict[str, str]) -> Dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in BACKEND_STRIP and not k.startswith(BACKEND_STRIP_PREFIXES)
    }
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env["LOG_LEVEL"] = "DEBUG"
    env.update(extra)
    return env


# ------------------------------------------------------------------ Label Studio
class LabelStudio:
    """A running Label Studio, driven through its REST API as the web UI does."""

    def __init__(self, url: str, token: str, user: str, password: str, log: Path, proc: subprocess.Popen):
        self.url = url
        self.token = token
        self.user = user
        self.password = password
        self.log = log
        self.proc = proc
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {token}"

    def logs(self, lines: int = 80) -> str:
        return f"--- Label Studio log ({self.log}), last {lines} lines ---\n{tail(self.log, lines)}"

    def call(
        self,
        method: str,
        path: str,
        expect: Iterable[int] = (200, 201),
        timeout: float = 120,
        extra_logs: Callable[[], str] = lambda: "",
        **kwargs: Any,
    ) -> Any:
        """One API call; any other status than ``expect`` fails with the body and LS's log."""
        resp = self.http.request(method, self.url + path, timeout=timeout, **kwargs)
        if resp.status_code not in tuple(expect):
            raise AssertionError(
                f"Label Studio {method} {path} answered {resp.status_code}, expected {tuple(expect)}: "
                f"{resp.text[:2000]}\n{self.logs()}\n{extra_logs()}"
            )
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            return resp.text

    # projects and tasks
    def create_project(
        self, title: str, tasks: List[Dict[str, Any]], config: str = LABEL_CONFIG
    ) -> Dict[str, Any]:
        project = self.call("POST", "/api/projects", json={"title": title, "label_config": config})
        self.call("POST", f"/api/projects/{project['id']}/import", json=tasks)
        return project

    def import_tasks(self, project_id: int, tasks: List[Dict[str, Any]]) -> None:
        self.call("POST", f"/api/projects/{project_id}/import", json=tasks)

    def tasks(self, project_id: int) -> List[Dict[str, Any]]:
        out = self.call(
            "GET", "/api/tasks", params={"project": project_id, "page_size": 1000, "fields": "all"}
        )
        items = out["tasks"] if isinstance(out, dict) else out
        return sorted(items, key=lambda t: t["id"])

    def predictions(self, project_id: int) -> List[Dict[str, Any]]:
        out = self.call("GET", "/api/predictions", params={"project": project_id})
        items = out["results"] if isinstance(out, dict) and "results" in out else out
        return [p for p in items if p.get("project") in (None, project_id)]

    def annotate(
        self, task_id: int, label: str, from_name: str = "choice", to_name: str = "image", **kwargs: Any
    ) -> Dict[str, Any]:
        result = [
            {"from_name": from_name, "to_name": to_name, "type": "choices", "value": {"choices": [label]}}
        ]
        return self.call(
            "POST",
            f"/api/tasks/{task_id}/annotations",
            json={"result": result, "was_cancelled": False, "ground_truth": False},
            **kwargs,
        )

    # ML connections
    def connect(
        self, project_id: int, url: str, title: str, extra_logs: Callable[[], str] = lambda: "", **fields: Any
    ) -> Dict[str, Any]:
        """POST /api/ml: what "Connect Model" in the project's Model settings does."""
        return self.call(
            "POST",
            "/api/ml",
            json={"project": project_id, "url": url, "title": title, **fields},
            extra_logs=extra_logs,
        )

    def ml(self, ml_id: int, **kwargs: Any) -> Dict[str, Any]:
        """GET /api/ml/{id}: Label Studio re-checks the backend (/health, /setup) on every view."""
        return self.call("GET", f"/api/ml/{ml_id}", **kwargs)

    def retrieve_predictions(self, project_id: int, **kwargs: Any) -> Any:
        """Data Manager → Retrieve Predictions on every task of the project."""
        return self.call(
            "POST",
            "/api/dm/actions",
            params={"id": "retrieve_tasks_predictions", "project": project_id},
            json={"selectedItems": {"all": True, "excluded": []}, "project": project_id},
            **kwargs,
        )


def _start_label_studio(root: Path, host: str = "127.0.0.1") -> LabelStudio:
    """Label Studio listening on ``host`` (tests/containers: 0.0.0.0); driven on 127.0.0.1."""
    data_dir = root / "data"
    shutil.copytree(LS_TEMPLATE, data_dir)
    log = root / "label-studio.log"
    port = free_port()
    user, password = "lsml@example.com", secrets.token_hex(12)
    token = "lsml" + secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k not in LS_STRIP and not k.startswith("LABEL_STUDIO_")}
    env.update(
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
        ML_BLOCK_LOCAL_IP="false",
        SSRF_PROTECTION_ENABLED="false",
        LATEST_VERSION_CHECK="false",
        COLLECT_ANALYTICS="false",
        PYTHONUNBUFFERED="1",
    )
    cmd = [
        str(LS_VENV / "bin" / "label-studio"),
        "start",
        "--no-browser",
        "--internal-host",
        host,
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--username",
        user,
        "--password",
        password,
        "--user-token",
        token,
        "--enable-legacy-api-token",
    ]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            cmd,
            cwd=root,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    ls = LabelStudio(f"http://127.0.0.1:{port}", token, user, password, log, proc)
    started = time.monotonic()

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"Label Studio exited with {proc.returncode}\n{ls.logs()}")
        resp = requests.get(
            ls.url + "/api/current-user/whoami", headers={"Authorization": f"Token {token}"}, timeout=5
        )
        return resp.status_code == 200

    try:
        wait_for(ready, 180, f"Label Studio on port {port} to accept the token", interval=1, logs=ls.logs)
    except BaseException:
        stop_process(proc, grace=10)
        raise
    ls.startup_seconds = round(time.monotonic() - started, 1)
    return ls


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory) -> Iterable[LabelStudio]:
    if not (LS_VENV / "bin" / "label-studio").exists() or not (LS_TEMPLATE / ".lsml-migrated").exists():
        pytest.skip(
            f"Label Studio {LS_VERSION} is not installed in {LS_HOME}: run scripts/setup_labelstudio.sh "
            "(scripts/test.sh does) to run the tests/labelstudio tier"
        )
    ls = _start_label_studio(tmp_path_factory.mktemp("label-studio"))
    print(f"Label Studio {LS_VERSION} at {ls.url} started in {ls.startup_seconds} s (log {ls.log})")
    yield ls
    stop_process(ls.proc, grace=15)


# ------------------------------------------------------------------ backends
class Backend:
    """A baked backend served on loopback, in development or production mode."""

    def __init__(
        self,
        directory: Path,
        url: str,
        proc: subprocess.Popen,
        logs: List[Path],
        auth: Optional[tuple] = None,
        mode: str = "development",
    ):
        self.dir = directory
        self.url = url
        self.proc = proc
        self.log_paths = logs
        self.auth = auth
        self.mode = mode

    def logs(self, lines: int = 60) -> str:
        out = []
        for path in self.log_paths:
            out.append(f"--- backend log {path}, last {lines} lines ---\n{tail(path, lines)}")
        return "\n".join(out)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("auth", self.auth)
        return requests.get(self.url + path, timeout=10, **kwargs)

    def training(self, project_id: int) -> Dict[str, Any]:
        resp = self.get("/training", params={"project": project_id})
        assert resp.status_code == 200, f"GET /training: {resp.status_code} {resp.text}\n{self.logs()}"
        return resp.json()

    def wait_idle(self, project_id: int, timeout: float = 90) -> Dict[str, Any]:
        """Wait until no training job of the project is queued or running."""

        def idle() -> Optional[Dict[str, Any]]:
            status = self.training(project_id)
            return status if status.get("status") not in ("queued", "running") else None

        return wait_for(idle, timeout, f"training of project {project_id} to finish", logs=self.logs)


def bake_backend(root: Path, script: Path, name: str) -> Path:
    from cookiecutter.main import cookiecutter

    repo_root = Path(__file__).resolve().parents[2]
    out = cookiecutter(
        str(repo_root),
        no_input=True,
        output_dir=str(root),
        extra_context={
            "backend_name": name,
            "script": str(script),
            "_runtime_requirement": f"lsml-runtime @ file://{repo_root / 'runtime'}",
        },
    )
    return Path(out)


def _data_file(script: str) -> Path:
    """This tier's models, and the seed tutorial's model shared with the template tests."""
    own = DATA / script
    return own if own.is_file() else REPO / "tests" / "template" / "data" / script


@pytest.fixture(scope="session")
def baked(tmp_path_factory) -> Callable[[str, str], Path]:
    """baked(script_file_in_data, name) -> a fresh copy of a backend baked once per session."""
    cache: Dict[str, Path] = {}
    root = tmp_path_factory.mktemp("baked")

    def _baked(script: str, name: str) -> Path:
        if script not in cache:
            cache[script] = bake_backend(
                root / "pristine", _data_file(script), f"lsml-{Path(script).stem.replace('_', '-')}"
            )
        copy = root / f"{name}-{uuid.uuid4().hex[:6]}"
        shutil.copytree(cache[script], copy)
        return copy

    return _baked


def _wait_up(backend: Backend, timeout: float = 60) -> None:
    def up() -> bool:
        if backend.proc.poll() is not None:
            raise AssertionError(f"backend exited with {backend.proc.returncode}\n{backend.logs()}")
        return backend.get("/health").status_code == 200

    wait_for(up, timeout, f"backend {backend.url}/health", logs=backend.logs)


@pytest.fixture
def serve(tmp_path) -> Iterable[Callable[..., Backend]]:
    """serve(backend_dir, mode="development"|"production", env={...}, auth=(user, pass)) -> Backend."""
    started: List[Backend] = []

    def _serve(
        directory: Path,
        mode: str = "development",
        env: Optional[Dict[str, str]] = None,
        auth: Optional[tuple] = None,
    ) -> Backend:
        port = free_port()
        extra = {"MODEL_DIR": str(tmp_path / f"models-{port}")}
        if auth:
            extra.update(BASIC_AUTH_USER=auth[0], BASIC_AUTH_PASS=auth[1])
        extra.update(env or {})
        if mode == "development":
            log = directory / "logs" / "dev.log"
            log.parent.mkdir(exist_ok=True)
            cmd = [sys.executable, "wsgi.py", "--host", "127.0.0.1", "--port", str(port)]
            logs = [log]
        else:
            extra.setdefault("REDIS_URL", REDIS_URL)
            extra.setdefault("RQ_QUEUE_NAME", f"lsml-ls-{uuid.uuid4().hex[:12]}")
            extra["PORT"] = str(port)
            log = directory / "logs" / "supervisord.out"
            log.parent.mkdir(exist_ok=True)
            cmd = [str(VENV_BIN / "supervisord"), "-c", "supervisord.conf", "-n"]
            logs = [log, directory / "logs" / "uwsgi.log", directory / "logs" / "rq.log"]
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                cmd,
                cwd=directory,
                env=clean_backend_env(extra),
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        backend = Backend(directory, f"http://127.0.0.1:{port}", proc, logs, auth=auth, mode=mode)
        started.append(backend)
        _wait_up(backend, 90 if mode == "production" else 60)
        return backend

    yield _serve
    for backend in started:
        stop_process(backend.proc)


@pytest.fixture
def project_title(request) -> str:
    return f"{request.node.name[:40]}-{uuid.uuid4().hex[:6]}"


def image_tasks(n: int, start: int = 0) -> List[Dict[str, Any]]:
    return [{"data": {"image": f"https://example.com/planes/{i}.jpg"}} for i in range(start, start + n)]


def choice_of(prediction: Dict[str, Any]) -> str:
    """The one choice label of a stored prediction (fails on anything else)."""
    result = prediction["result"]
    assert isinstance(result, list) and len(result) == 1, (
        f"unexpected prediction result {json.dumps(prediction)}"
    )
    choices = result[0]["value"]["choices"]
    assert len(choices) == 1, prediction
    return choices[0]


@pytest.fixture(scope="session")
def helpers():
    """Plain functions the tests share (conftest is not importable with --import-mode=importlib)."""

    class H:
        LABEL_CONFIG = LABEL_CONFIG
        LABELS = LABELS
        image_tasks = staticmethod(image_tasks)
        choice_of = staticmethod(choice_of)
        wait_for = staticmethod(wait_for)

    return H


# ------------------------------------------------------------------ S3 on loopback (moto)
class MotoS3:
    """``moto_server`` (PyPI ``moto[server]``): a real S3 HTTP endpoint on loopback."""

    ACCESS_KEY = "lsml-test-access"
    SECRET_KEY = "lsml-test-secret"
    REGION = "us-east-1"

    def __init__(self, url: str, proc: subprocess.Popen, log: Path):
        self.url = url
        self.proc = proc
        self.log = log

    def logs(self, lines: int = 40) -> str:
        return f"--- moto_server log ({self.log}), last {lines} lines ---\n{tail(self.log, lines)}"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.ACCESS_KEY,
            aws_secret_access_key=self.SECRET_KEY,
            region_name=self.REGION,
        )


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory) -> Iterable[MotoS3]:
    """One ``moto_server`` per session on a free loopback port, stopped by its PID."""
    binary = VENV_BIN / "moto_server"
    if not binary.exists():
        pytest.skip("moto_server is not installed: pip install -r requirements-dev.txt (moto[server])")
    root = tmp_path_factory.mktemp("moto")
    log = root / "moto.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(port)],
            cwd=root,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    moto = MotoS3(f"http://127.0.0.1:{port}", proc, log)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"moto_server exited with {proc.returncode}\n{moto.logs()}")
        return requests.get(moto.url + "/moto-api/", timeout=2).status_code < 500

    try:
        wait_for(up, 60, f"moto_server on port {port}", interval=0.3, logs=moto.logs)
    except BaseException:
        stop_process(proc, grace=5)
        raise
    yield moto
    stop_process(proc, grace=10)
