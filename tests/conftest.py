"""Fixtures shared by every test tier."""

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (also the Cookiecutter template directory)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def template_dir() -> Path:
    """The template to bake: the repository root, as an absolute path."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def runtime_requirement() -> str:
    """The generated requirements.txt line that installs the runtime from this working tree."""
    return f"lsml-runtime @ file://{REPO_ROOT / 'runtime'}"
