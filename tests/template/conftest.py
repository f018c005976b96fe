"""Fixtures for baking the template with pytest-cookies."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent
DATA = Path(__file__).resolve().parent / "data"
# model folders baked by the tests (their own tests run inside the generated repos)
collect_ignore_glob = ["data/*"]


@pytest.fixture
def default_context():
    """The answers every bake starts from: the hook vendors this working tree's runtime."""
    return {"backend_name": "my_ml_backend"}


@pytest.fixture
def bake(cookies, template_dir, default_context):
    """Bake with ``default_context`` updated by ``answers``; the Result of pytest-cookies."""

    def _bake(**answers):
        return cookies.bake(extra_context={**default_context, **answers}, template=str(template_dir))

    return _bake


@pytest.fixture
def seed_script():
    """The seed tutorial's DummyModel script."""
    return DATA / "seed_model.py"


def _run(cmd, cwd, timeout=120, **kwargs):
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs
    )
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture
def run():
    """run(cmd, cwd, timeout=120, **kw): a command that must succeed; returns the process."""
    return _run


@pytest.fixture
def tool():
    """tool(name): the path of a console script installed next to the test interpreter."""
    return lambda name: str(VENV_BIN / name)


@pytest.fixture
def free_port():
    """free_port(): a TCP port nothing listens on right now."""

    def _free_port():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    return _free_port
