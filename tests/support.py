"""Helpers shared by the test tiers (import as ``from ..support import ...``)."""

from __future__ import annotations

import os
import threading

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
