"""Helpers shared by the test tiers (import as ``from ..support import ...``)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Tuple

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
        except requests.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"python wsgi.py did not come up:\n{proc.communicate()[0]}")
            time.sleep(0.2)
