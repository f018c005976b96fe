"""Production mode as users run it: ``docker-compose up`` in a baked backend, on a real engine.

A backend is baked from a model script (the runtime vendored as a wheel, as for any user), its
image built with the Compose implementation under test, and its ``docker-compose.yml`` started
as generated. Each stack gets its own Compose project name, its own copy of the backend and a
``.env`` with ``PORT=<a free port>`` and ``BIND_ADDRESS=127.0.0.1`` (published on loopback
only); teardown is ``down -v`` of that project name. The base images are those the generated
files name; ``scripts/setup_containers.sh`` provides them (stand-ins built from Debian packages
where no registry answers) and starts ``dockerd`` when none answers.

Skips, with the reason, when no engine answers or the base images are missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
HOME = Path(os.environ.get("LSML_CONTAINERS_HOME") or Path.home() / ".cache" / "lsml" / "containers")
PODMAN_COMPOSE = HOME / "podman-compose-1.6.0" / "bin" / "podman-compose"
COMPOSE_V2 = HOME / "compose-v2-2.40.3" / "bin" / "docker-compose"
IMAGES = ("python:3.11-slim", "redis:7-alpine")
PYTHON_VERSION = "3.11"  # the stand-in base image is Debian 12's Python
SETUP = "run scripts/setup_containers.sh (scripts/test.sh does) to set up the container tier"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(
    cmd: List[str], timeout: float = 300, check: bool = True, **kwargs: Any
) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited with {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}"
            f"\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    return proc


def wait_for(
    check: Callable[[], Any],
    timeout: float,
    what: str,
    interval: float = 0.5,
    logs: Callable[[], str] = lambda: "",
) -> Any:
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


# ------------------------------------------------------------------ engines
@dataclass
class Compose:
    """One Compose implementation on one engine."""

    name: str  # docker-compose | docker compose | podman-compose
    argv: List[str]
    engine: str  # docker | podman
    env: Dict[str, str] = field(default_factory=dict)

    def environ(self) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_BUILDKIT"))}
        # every variable the compose file reads comes from .env, never from this shell
        for name in ("PORT", "HOST_GATEWAY", "BIND_ADDRESS", "REDIS_URL", "MODEL_DIR", "LOG_LEVEL"):
            env.pop(name, None)
        for name in list(env):
            if name.startswith(("LABEL_STUDIO_", "BASIC_AUTH_", "RQ_")):
                env.pop(name)
        env.update(self.env)
        return env


def _answers(cmd: List[str], env: Optional[Dict[str, str]] = None) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=20, env=env).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _podman_env() -> Dict[str, str]:
    env = {"BUILDAH_FORMAT": "docker"}  # keep HEALTHCHECK (the OCI image format has none)
    if (HOME / "containers.conf").is_file():
        env["CONTAINERS_CONF"] = str(HOME / "containers.conf")
    return env


def docker_composes() -> List[Compose]:
    if not shutil.which("docker") or not _answers(["docker", "version", "--format", "{{.Server.Version}}"]):
        return []
    found = []
    if shutil.which("docker-compose") and _answers(["docker-compose", "version"]):
        found.append(Compose("docker-compose", ["docker-compose"], "docker"))
    if _answers(["docker", "compose", "version"]):
        found.append(Compose("docker compose", ["docker", "compose"], "docker"))
    elif COMPOSE_V2.exists() and _answers([str(COMPOSE_V2), "version"]):
        found.append(Compose("compose v2", [str(COMPOSE_V2)], "docker"))  # setup_containers.sh
    return found


def podman_compose() -> Optional[Compose]:
    env = {**os.environ, **_podman_env()}
    if not PODMAN_COMPOSE.exists() or not shutil.which("podman") or not _answers(["podman", "info"], env):
        return None
    return Compose("podman-compose", [str(PODMAN_COMPOSE)], "podman", _podman_env())


@pytest.fixture(scope="session")
def composes() -> List[Compose]:
    """The Compose implementations that run here on Docker (first: the one the tests use)."""
    if os.environ.get("LSML_SKIP_CONTAINERS") == "1":
        pytest.skip("LSML_SKIP_CONTAINERS=1")
    found = docker_composes()
    if not found:
        pytest.skip(f"no Docker engine with docker-compose or docker compose answers: {SETUP}")
    missing = [image for image in IMAGES if not _answers(["docker", "image", "inspect", image])]
    if missing:
        pytest.skip(f"base images missing in Docker: {', '.join(missing)}: {SETUP}")
    return found


@pytest.fixture(scope="session")
def compose(composes) -> Compose:
    return composes[0]


@pytest.fixture(scope="session")
def podman() -> Compose:
    """podman-compose on Podman: the second engine."""
    if os.environ.get("LSML_SKIP_CONTAINERS") == "1":
        pytest.skip("LSML_SKIP_CONTAINERS=1")
    found = podman_compose()
    if found is None:
        pytest.skip(f"no Podman with podman-compose answers here: {SETUP}")
    env = {**os.environ, **found.env}
    missing = [image for image in IMAGES if not _answers(["podman", "image", "exists", image], env)]
    if missing:
        pytest.skip(f"base images missing in Podman: {', '.join(missing)}: {SETUP}")
    return found


def stack_wait(check: Callable[[], Any], timeout: float, what: str, stack: Any, interval: float = 0.3) -> Any:
    """Call ``check`` until it returns something truthy; fail with ``what`` and the stack's logs.
    Unlike :func:`wait_for`, an exception from ``check`` ends the wait at once."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{stack.logs()}")
        time.sleep(interval)


# ------------------------------------------------------------------ baked backends and images
def bake(root: Path, script: Path, name: str) -> Path:
    from cookiecutter.main import cookiecutter

    out = cookiecutter(
        str(REPO),
        no_input=True,
        output_dir=str(root),
        extra_context={"backend_name": name, "script": str(script), "python_version": PYTHON_VERSION},
    )
    return Path(out)


class Images:
    """Backends baked once per session and their images built with Compose (removed at the end)."""

    def __init__(self, root: Path, session: str):
        self.root = root
        self.session = session
        self.built: Dict[str, Path] = {}
        self.names: List[str] = []

    def backend(self, script: str, compose: Compose) -> Path:
        key = f"{script}:{compose.engine}"
        if key not in self.built:
            name = f"lsml-{Path(script).stem.replace('_', '-')}-{self.session}"
            source = (
                DATA / script
                if (DATA / script).is_file()
                else REPO / "tests" / "labelstudio" / "data" / script
            )
            directory = bake(self.root / compose.engine, source, name)
            run(
                [*compose.argv, "-p", f"build{self.session}", "build"],
                cwd=directory,
                env=compose.environ(),
                timeout=900,
            )
            self.built[key] = directory
            self.names.append(f"{compose.engine}:{name}:latest")
        return self.built[key]

    def remove(self) -> None:
        for entry in self.names:
            engine, image = entry.split(":", 1)
            env = {**os.environ, **_podman_env()} if engine == "podman" else None
            subprocess.run([engine, "rmi", "-f", image], capture_output=True, env=env, timeout=120)


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> Iterable[Images]:
    built = Images(tmp_path_factory.mktemp("ctr-baked"), uuid.uuid4().hex[:6])
    yield built
    built.remove()


# ------------------------------------------------------------------ stacks
class Stack:
    """One `compose up` of a copy of a baked backend, under its own project name."""

    def __init__(self, directory: Path, compose: Compose, project: str, port: int):
        self.dir = directory
        self.compose = compose
        self.project = project
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    # compose and engine commands
    def run(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        return run(
            [*self.compose.argv, "-p", self.project, *args],
            cwd=self.dir,
            env=self.compose.environ(),
            timeout=timeout,
            check=check,
        )

    def engine(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        return run([self.compose.engine, *args], env=self.compose.environ(), timeout=timeout, check=check)

    def container(self, service: str = "backend") -> str:
        out = self.engine(
            "ps",
            "-aq",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
        ).stdout.split()
        assert len(out) == 1, f"containers of {service} in {self.project}: {out}"
        return out[0]

    def exec(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.engine("exec", self.container(), *cmd, check=check)

    def health_status(self) -> str:
        return self.engine("inspect", "--format", "{{.State.Health.Status}}", self.container()).stdout.strip()

    def compose_logs(self) -> str:
        proc = self.run("logs", "--no-color", "backend", check=False, timeout=60)
        return proc.stdout + proc.stderr

    def logs(self, lines: int = 60) -> str:
        out = [
            f"--- compose logs backend ({self.project}), last {lines} lines ---",
            "\n".join(self.compose_logs().splitlines()[-lines:]),
        ]
        for name in ("uwsgi.log", "rq.log", "supervisord.log"):
            path = self.dir / "logs" / name
            text = path.read_text(errors="replace") if path.exists() else "(none)"
            out.append(f"--- {path}, last {lines} lines ---\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(out)

    # lifecycle
    def up(self, timeout: float = 120) -> float:
        """`compose up -d`, then wait for /health; returns the seconds it took."""
        started = time.monotonic()
        self.run("up", "-d", timeout=600)
        self.wait_up(timeout)
        return time.monotonic() - started

    def wait_up(self, timeout: float = 120) -> None:
        wait_for(
            lambda: self.get("/health").status_code == 200, timeout, f"{self.url}/health", logs=self.logs
        )

    def wait_healthy(self, timeout: float = 120) -> str:
        """Docker's HEALTHCHECK verdict (the image's own check, run by the engine)."""
        return wait_for(
            lambda: self.health_status() == "healthy" and "healthy",
            timeout,
            "the container's HEALTHCHECK to pass",
            logs=self.logs,
        )

    def down(self) -> None:
        self.run("down", "-v", "--timeout", "10", check=False, timeout=300)

    # HTTP
    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, body: Any) -> requests.Response:
        return requests.post(self.url + path, json=body, timeout=120)

    def predict(self, project: str, n: int = 2) -> Dict[str, Any]:
        tasks = [{"id": i, "data": {"text": f"task {i}"}} for i in range(n)]
        resp = self.post(
            "/predict", {"tasks": tasks, "project": f"{project}.1", "label_config": LABEL_CONFIG}
        )
        assert resp.status_code == 200, f"{resp.status_code} {resp.text}\n{self.logs()}"
        return resp.json()

    def train(self, project: str, **data: Any) -> Dict[str, Any]:
        body = {
            "action": "START_TRAINING",
            "project": {"id": int(project), "label_config": LABEL_CONFIG},
            **data,
        }
        resp = self.post("/webhook", body)
        assert resp.status_code in (200, 201), f"{resp.status_code} {resp.text}\n{self.logs()}"
        return resp.json()

    def training(self, project: str) -> Dict[str, Any]:
        resp = self.get("/training", params={"project": project})
        assert resp.status_code == 200, f"{resp.status_code} {resp.text}\n{self.logs()}"
        return resp.json()

    def wait_status(
        self, project: str, status: str, job_id: Optional[str] = None, timeout: float = 60
    ) -> Dict[str, Any]:
        def reached() -> Optional[Dict[str, Any]]:
            current = self.training(project)
            if job_id and current.get("job_id") != job_id:
                return None
            return current if current.get("status") == status else None

        return wait_for(
            reached,
            timeout,
            f"project {project} training {status} (job {job_id})",
            logs=lambda: f"{self.training(project)}\n{self.logs()}",
        )

    def versions(self, project: str) -> List[str]:
        return self.training(project).get("versions") or []


LABEL_CONFIG = (DATA / "container_model.py").read_text().split("<View>", 1)[1].split("</View>", 1)[0]
LABEL_CONFIG = f"<View>{LABEL_CONFIG}</View>"


class Stacks:
    """stacks(backend_dir, compose, env={...}, owner=uid) -> a Stack, not yet up; close(): ``down -v``."""

    def __init__(self, root: Path):
        self.root = root
        self.made: List[Stack] = []

    def __call__(
        self,
        backend: Path,
        compose: Compose,
        env: Optional[Dict[str, str]] = None,
        owner: Optional[int] = None,
    ) -> Stack:
        project = f"lsmlct{uuid.uuid4().hex[:8]}"
        directory = self.root / project
        shutil.copytree(backend, directory)
        port = free_port()
        lines = {"PORT": str(port), "BIND_ADDRESS": "127.0.0.1", **(env or {})}
        (directory / ".env").write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        if owner is not None:
            for path in [directory, *directory.rglob("*")]:
                os.lchown(path, owner, owner)
        stack = Stack(directory, compose, project, port)
        self.made.append(stack)
        return stack

    def close(self) -> None:
        for stack in self.made:
            stack.down()


@pytest.fixture
def stacks(tmp_path) -> Iterable[Stacks]:
    made = Stacks(tmp_path)
    yield made
    made.close()


@pytest.fixture(scope="module")
def module_stacks(tmp_path_factory) -> Iterable[Stacks]:
    made = Stacks(tmp_path_factory.mktemp("stacks"))
    yield made
    made.close()


# ------------------------------------------------------------------ Label Studio on the host
def ls_support() -> Any:
    """tests/labelstudio/conftest.py as a module (its LabelStudio driver and starter)."""
    spec = importlib.util.spec_from_file_location(
        "lsml_ls_support", REPO / "tests" / "labelstudio" / "conftest.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session", name="ls_support")
def ls_support_fixture() -> Any:
    return ls_support()


@pytest.fixture(scope="session")
def host_label_studio(tmp_path_factory, composes, ls_support) -> Iterable[Any]:
    """A Label Studio 1.23.2 listening on 0.0.0.0 (containers reach it through the host
    gateway); the tests talk to it on 127.0.0.1 only."""
    support = ls_support
    if (
        not (support.LS_VENV / "bin" / "label-studio").exists()
        or not (support.LS_TEMPLATE / ".lsml-migrated").exists()
    ):
        pytest.skip(f"Label Studio is not installed in {support.LS_HOME}: run scripts/setup_labelstudio.sh")
    ls = support._start_label_studio(tmp_path_factory.mktemp("ls-host"), host="0.0.0.0")
    yield ls
    support.stop_process(ls.proc, grace=15)


def tail_text(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)[:3000]


@contextlib.contextmanager
def timed() -> Iterable[List[float]]:
    out: List[float] = []
    started = time.monotonic()
    yield out
    out.append(time.monotonic() - started)
