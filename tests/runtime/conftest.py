"""Fixtures for the runtime tests: model scripts on disk, apps, and live HTTP servers."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from label_studio_ml.api import create_app
from label_studio_ml.settings import Settings

from ..support import LiveServer  # noqa: F401  (re-exported for the tests)

SEED_CONFIG = (
    '<View><Image name="image" value="$image"/>'
    '<Choices name="choice" toName="image" showInLine="true">'
    '<Choice value="Boeing" background="blue"/><Choice value="Airbus" background="green"/>'
    "</Choices></View>"
)

# The seed tutorial's model, verbatim (one copy for every test tier).
SEED_MODEL = (Path(__file__).resolve().parents[1] / "template" / "data" / "seed_model.py").read_text()


def write_module(directory: Path, source: str, name: str | None = None) -> str:
    """Write ``source`` as an importable module in ``directory``; return its name."""
    name = name or f"lsml_test_model_{uuid.uuid4().hex[:10]}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    importlib.invalidate_caches()
    return name


def load_class(directory: Path, source: str, class_name: str, name: str | None = None) -> type:
    module = importlib.import_module(write_module(directory, source, name))
    return getattr(module, class_name)


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def seed_class(tmp_path: Path) -> type:
    return load_class(tmp_path / "src", SEED_MODEL, "DummyModel")


@pytest.fixture
def serve(models_dir: Path) -> Iterator:
    """``serve(ModelClass, **settings)`` → a started :class:`LiveServer`."""
    servers = []

    def start(model_class: type, **overrides) -> LiveServer:
        overrides.setdefault("model_dir", str(models_dir))
        settings = Settings(**overrides)
        server = LiveServer(create_app(model_class, settings))
        servers.append(server)
        return server

    yield start
    for server in servers:
        trainer = server.app.extensions["lsml"].trainer
        if hasattr(trainer, "wait_idle"):
            trainer.wait_idle(10)
        server.close()
