"""Helpers shared by the test tiers (import as ``from ..support import ...``)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import requests
from werkzeug.serving import make_server


def clean_env(**extra: str) -> dict:
    """A development-mode environment: no Redis, no auth, no Label Studio, no outer pytest."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_", "BASIC_AUTH_", "LABEL_STUDIO_", "PYTEST_"))
    }
    env.update(extra)
    return env


class LiveServer:
    """A real HTTP server on 127.0.0.1 serving a WSGI app from a thread."""

    def __init__(self, app) -> None:
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.http = requests.Session()

    @property
    def backend(self):
        return self.app.extensions["lsml"]

    def get(self, path: str, **kw):
        kw.setdefault("timeout", 10)
        return self.http.get(self.url + path, **kw)

    def post(self, path: str, **kw):
        kw.setdefault("timeout", 10)
        return self.http.post(self.url + path, **kw)

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(5)
        self.http.close()


def serve_wsgi(project: Path, port: int, model_dir: Path) -> Tuple[subprocess.Popen, str]:
    """Start ``python wsgi.py`` of a baked backend (development mode) and wait for ``/health``."""
    proc = subprocess.Popen(
        [sys.executable, "wsgi.py", "--host", "127.0.0.1", "--port", str(port)],
        cwd=project,
        env=clean_env(MODEL_DIR=str(model_dir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"{url}/health", timeout=1)
            return proc, url
        except (requests.ConnectionError, requests.Timeout):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"python wsgi.py did not come up:\n{proc.communicate()[0]}")
            time.sleep(0.2)


class Recorder:
    """A loopback HTTP server answering ``routes[path] = (status, headers, body)``; logs (path, Authorization)."""

    def __init__(self) -> None:
        self.routes: Dict[str, Tuple[int, Dict[str, str], bytes]] = {}
        self.seen: List[Tuple[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.seen.append((self.path, self.headers.get("Authorization", "")))
                status, headers, body = outer.routes.get(self.path, (404, {}, b"nope"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def redirect(self, path: str, to: str, code: int = 303) -> None:
        self.routes[path] = (code, {"Location": to}, b"")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def refresh_locks_if_stale(project: Path) -> bool:
    """Run the generated repo's ``sh lock.sh`` (as the bake's WARNING tells the user) when its
    requirements.txt names a package its requirements.lock does not pin; True if it ran."""
    import re

    lock = (project / "requirements.lock").read_text().lower()
    names = []
    for line in (project / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith(("-", "./", "/")):
            names.append(re.split(r"[\s;<>=!~\[@]", line, maxsplit=1)[0].lower().replace("_", "-"))
    if all(f"\n{name}==" in "\n" + lock.replace("_", "-") for name in names):
        return False
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["sh", "lock.sh"], cwd=project, env=env, check=True, capture_output=True, timeout=600)
    return True
