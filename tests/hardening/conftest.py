"""Fixtures of the hardening tier: the seed tutorial's model served over real HTTP on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path
from typing import Iterator

import pytest
import requests
from label_studio_ml.api import create_app
from label_studio_ml.settings import Settings
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parents[2]
SEED_MODEL = ROOT / "tests" / "template" / "data" / "seed_model.py"
SEED_CONFIG = (
    '<View><Image name="image" value="$image"/>'
    '<Choices name="choice" toName="image" showInLine="true">'
    '<Choice value="Boeing" background="blue"/><Choice value="Airbus" background="green"/>'
    "</Choices></View>"
)


def load_seed_class() -> type:
    spec = importlib.util.spec_from_file_location("lsml_hardening_seed_model", SEED_MODEL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DummyModel


class LiveServer:
    """A threaded werkzeug server on 127.0.0.1 (free port) serving an app."""

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


@pytest.fixture(scope="session")
def seed_class() -> type:
    return load_seed_class()


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def serve(models_dir: Path) -> Iterator:
    """``serve(ModelClass, **settings)`` -> a started :class:`LiveServer`."""
    servers = []

    def start(model_class: type, **overrides) -> LiveServer:
        overrides.setdefault("model_dir", str(models_dir))
        server = LiveServer(create_app(model_class, Settings(**overrides)))
        servers.append(server)
        return server

    yield start
    for server in servers:
        trainer = server.backend.trainer
        if hasattr(trainer, "wait_idle"):
            trainer.wait_idle(20)
        server.close()
    logging.getLogger("label_studio_ml").handlers.clear()
