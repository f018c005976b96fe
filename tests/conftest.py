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
    """The ``_runtime_requirement`` answer of the tests' bakes: empty, the default, so line 1 of
    requirements.txt is the wheel of this working tree's runtime that the hook vendors, with its
    sha256 in the locks (a ``file://`` directory cannot be hash-locked, and the generated repo's
    tests/test_lock.py would rightly fail)."""
    return ""
