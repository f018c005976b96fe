"""Fixtures of the hardening tier: the seed tutorial's model served over real HTTP on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Iterator

import pytest
from label_studio_ml.api import create_app
from label_studio_ml.settings import Settings

from ..support import LiveServer  # noqa: F401  (re-exported for the tests)

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
