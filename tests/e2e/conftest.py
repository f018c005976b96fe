"""Production mode, natively: the generated supervisord.conf runs uWSGI and an RQ worker.

Docker is not available here, so the tests do what the image does: a fresh virtual
environment installed from the baked repo's own requirements.txt, then
``supervisord -c supervisord.conf`` in the backend directory with the environment
docker-compose sets (MODEL_DIR, REDIS_URL, RQ_QUEUE_NAME, PORT, LOG_LEVEL).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import requests

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SEED_MODEL = HERE.parent / "template" / "data" / "seed_model.py"
SLOW_MODEL = DATA / "slow_model.py"
LOCK_TTL = 3  # LSML_LOCK_TTL for the workers: a killed worker's job is reported failed in seconds
SUMMARY: List[str] = []  # lines printed at the end of the run (cold start, training delay)

TEXT_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="label" toName="text">
    <Choice value="pos"/>
    <Choice value="neg"/>
  </Choices>
</View>"""


def pytest_terminal_summary(terminalreporter):
    if SUMMARY:
        terminalreporter.section("production mode (e2e)")
        for line in SUMMARY:
            terminalreporter.write_line(line)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; that value is returned."""
    deadline = time.monotonic() + timeout
    last_exc: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (requests.RequestException, OSError, ValueError) as exc:
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last_exc!r})")


# ------------------------------------------------------------------ processes (/proc, no psutil)
def _stat(pid: int) -> Optional[List[str]]:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields after "pid (comm) "


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def children(pid: int) -> List[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry.name))
    return sorted(out)


def descendants(pid: int) -> List[int]:
    out, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        out += kids
        todo += kids
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


# ------------------------------------------------------------------ the environment
@pytest.fixture(scope="session")
def bake_backend(tmp_path_factory, runtime_requirement):
    """bake_backend(name, script): a baked backend directory (cookiecutter, like pytest-cookies)."""
    from cookiecutter.main import cookiecutter

    root = tmp_path_factory.mktemp("e2e-bakes")

    def _bake(name: str, script: Path) -> Path:
        out = cookiecutter(
            str(HERE.parent.parent),
            no_input=True,
            output_dir=str(root),
            extra_context={
                "backend_name": name,
                "script": str(script),
                "_runtime_requirement": runtime_requirement,
            },
        )
        return Path(out)

    return _bake


@pytest.fixture(scope="session")
def seed_backend(bake_backend) -> Path:
    return bake_backend("seed_backend", SEED_MODEL)


@pytest.fixture(scope="session")
def slow_backend(bake_backend) -> Path:
    return bake_backend("slow_backend", SLOW_MODEL)


@pytest.fixture(scope="session")
def venv(tmp_path_factory, seed_backend, slow_backend) -> Path:
    """One fresh virtual environment per session, installed from a baked requirements.txt.

    Both bakes' requirements.txt are the same (runtime from the working tree, uWSGI,
    supervisor); pip's own cache (built uWSGI wheel) makes this take seconds after the first run.
    """
    requirements = (seed_backend / "requirements.txt").read_text()
    assert requirements == (slow_backend / "requirements.txt").read_text()
    path = tmp_path_factory.mktemp("e2e-venv") / "venv"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    proc = subprocess.run(
        [str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-r", "requirements.txt"],
        cwd=seed_backend, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, f"pip install -r requirements.txt failed:\n{proc.stdout}\n{proc.stderr}"
    for tool in ("supervisord", "uwsgi", "label-studio-ml"):
        assert (path / "bin" / tool).is_file(), f"{tool} is not installed by requirements.txt"
    SUMMARY.append(f"fresh venv from requirements.txt: {time.monotonic() - started:.1f} s")
    return path


class RedisServer:
    """A private redis-server on a free loopback port: the tests stop and restart this one."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if not exe:
            pytest.skip("redis-server is not installed")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

        def pong():
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")

        wait_for(pong, 10, what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


class FakeLabelStudio:
    """``GET /api/projects/<id>/export`` with ``Authorization: Token <key>``, on loopback."""

    def __init__(self) -> None:
        self.key = uuid.uuid4().hex
        self.requests: List[Dict[str, Any]] = []
        self.tasks: Dict[str, List[Dict[str, Any]]] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, payload: Any) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                auth = self.headers.get("Authorization", "")
                fake.requests.append({"path": self.path, "authorization": auth})
                if auth != f"Token {fake.key}":
                    return self._send(401, {"detail": "Authentication credentials were not provided."})
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) == 4 and parts[:2] == ["api", "projects"] and parts[3] == "export":
                    return self._send(200, fake.tasks.get(parts[2], []))
                return self._send(404, {"detail": "Not found."})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def fake_ls():
    fake = FakeLabelStudio()
    yield fake
    fake.close()


class Deployment:
    """``supervisord -c supervisord.conf`` in a baked backend, with docker-compose's env."""

    def __init__(self, backend: Path, venv: Path, redis_url: str, extra_env: Optional[Dict[str, str]] = None):
        self.backend, self.venv = backend, venv
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.queue = f"e2e-{backend.name}-{uuid.uuid4().hex[:8]}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "RQ_", "LABEL_STUDIO_"))}
        env.pop("VIRTUAL_ENV", None)
        env.update(
            PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            VIRTUAL_ENV=str(venv),
            MODEL_DIR=str(backend / "data" / "models"),
            REDIS_URL=redis_url,
            RQ_QUEUE_NAME=self.queue,
            PORT=str(self.port),
            LOG_LEVEL="INFO",
            LSML_LOCK_TTL=str(LOCK_TTL),
        )
        env.update(extra_env or {})
        self.env = env
        self.proc: Optional[subprocess.Popen] = None
        self.extra: List[subprocess.Popen] = []
        self.cold_start: Optional[float] = None
        self.session = requests.Session()

    # -- lifecycle
    def start(self, timeout: float = 60) -> float:
        self.console = open(self.backend / "logs" / "supervisord.console", "ab")  # noqa: SIM115
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(self.venv / "bin" / "supervisord"), "-c", "supervisord.conf"],
            cwd=self.backend, env=self.env, stdout=self.console, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

        def healthy():
            assert self.proc.poll() is None, f"supervisord exited {self.proc.returncode}: {self.logs()}"
            return self.session.get(self.url + "/health", timeout=1).status_code == 200

        wait_for(healthy, timeout, what="/health after supervisord start")
        self.cold_start = time.monotonic() - started
        return self.cold_start

    def stop(self) -> None:
        for proc in self.extra:
            if proc.poll() is None:
                proc.terminate()
        groups = {os.getpgid(p) for p in self.all_pids() if alive(p)} if self.proc else set()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for proc in self.extra:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for group in groups:  # anything supervisord left behind (a killed program's children)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)

    def start_worker(self) -> subprocess.Popen:
        """Another ``label-studio-ml worker DIR`` with the same env (scale-out: another machine)."""
        log = open(self.backend / "logs" / f"rq-extra-{len(self.extra) + 1}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [str(self.venv / "bin" / "label-studio-ml"), "worker", str(self.backend)],
            cwd=self.backend, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.extra.append(proc)
        return proc

    # -- processes
    def all_pids(self) -> List[int]:
        return [self.proc.pid, *descendants(self.proc.pid)] + [
            q for p in self.extra for q in [p.pid, *descendants(p.pid)]
        ]

    def program_pid(self, name: str) -> Optional[int]:
        """The pid supervisord started for ``[program:<name>]`` (uwsgi or rq)."""
        marker = {"uwsgi": "uwsgi --ini", "rq": "label-studio-ml worker"}[name]
        for pid in children(self.proc.pid):
            if marker in cmdline(pid):
                return pid
        return None

    def uwsgi_pids(self) -> List[int]:
        master = self.program_pid("uwsgi")
        return [master, *descendants(master)] if master else []

    def horse_pid(self, worker: int) -> Optional[int]:
        kids = children(worker)
        return kids[0] if kids else None

    def logs(self) -> str:
        out = []
        for path in sorted((self.backend / "logs").glob("*.log")) + [
            self.backend / "logs" / "supervisord.console"
        ]:
            if path.is_file():
                out.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(out)

    # -- HTTP
    def get(self, path: str, **kw) -> requests.Response:
        return self.session.get(self.url + path, timeout=kw.pop("timeout", 10), **kw)

    def post(self, path: str, payload: Any, **kw) -> requests.Response:
        return self.session.post(self.url + path, json=payload, timeout=kw.pop("timeout", 10), **kw)

    def status(self, project: str) -> Dict[str, Any]:
        response = self.get(f"/training?project={project}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_status(self, project: str, wanted, timeout: float = 30, job_id: Optional[str] = None):
        wanted = {wanted} if isinstance(wanted, str) else set(wanted)

        def done():
            status = self.status(project)
            if job_id and status.get("job_id") != job_id:
                return None
            return status if status["status"] in wanted else None

        try:
            return wait_for(done, timeout, interval=0.1, what=f"project {project} training {wanted}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nlast status: {self.status(project)}\n{self.logs()}") from None


@pytest.fixture(scope="module")
def deployment_factory():
    """deployment_factory(backend, venv, redis_url, extra_env=None): stopped at the end of the module."""
    made: List[Deployment] = []

    def _make(*args, **kwargs) -> Deployment:
        deployment = Deployment(*args, **kwargs)
        made.append(deployment)
        return deployment

    yield _make
    for deployment in made:
        deployment.stop()


def tasks(n: int) -> List[Dict[str, Any]]:
    return [{"id": i + 1, "data": {"text": f"text number {i + 1}"}} for i in range(n)]


def annotated_task(i: int, label: str = "pos") -> Dict[str, Any]:
    region = {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}
    return {
        "id": i,
        "data": {"text": f"text number {i}"},
        "annotations": [{"id": 100 + i, "result": [region], "was_cancelled": False}],
    }


@pytest.fixture(scope="session")
def e2e():
    """Helpers for the test modules (conftest is not importable under --import-mode=importlib)."""
    import types

    return types.SimpleNamespace(
        tasks=tasks,
        annotated_task=annotated_task,
        wait_for=wait_for,
        alive=alive,
        children=children,
        summary=SUMMARY,
        config=TEXT_CONFIG,
        lock_ttl=LOCK_TTL,
    )
