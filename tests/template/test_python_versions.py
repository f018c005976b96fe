"""Every Python the docs claim: a generated repo installs from its own requirements files and
passes its own tests (production mode included, against the local Redis) on each.

The claim is in three places, checked here against ``CLAIMED``: the README ("Python 3.9+"),
the generated README ("Python 3.9 or later") and the generated ``pyproject.toml``
(``requires-python = ">=3.9"``). Each version runs in a fresh virtualenv made by that
interpreter: ``pythonX.Y`` on PATH, else pyenv's ``~/.pyenv/versions/X.Y.*``. A version that is
not installed on this machine is skipped with a message (pip's cache keeps the built uWSGI
wheel, so a second run takes seconds per version).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .install_check import ROOT, install_and_test

CLAIMED = ("3.9", "3.10", "3.11", "3.12", "3.13")
REDIS_URL = os.environ.get("LSML_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PYENV = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"

pytestmark = pytest.mark.slow


def interpreter(version: str) -> str | None:
    """A ``python`` of exactly ``version`` (X.Y) on this machine, or None."""
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(str(p / "bin" / "python") for p in PYENV.glob(f"{version}.*"))
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


def test_the_docs_claim_exactly_these_versions(bake, seed_script):
    floor = CLAIMED[0]
    assert f"Python {floor}+" in (ROOT / "README.md").read_text()
    result = bake(backend_name="claims", script=str(seed_script))
    assert result.exit_code == 0, result.exception
    project = Path(result.project_path)
    assert f"Python {floor} or later" in " ".join((project / "README.md").read_text().split())
    assert f'requires-python = ">={floor}"' in (project / "pyproject.toml").read_text()
    assert re.search(
        rf'target-version = "py{floor.replace(".", "")}"', (project / "pyproject.toml").read_text()
    )


@pytest.mark.parametrize("version", CLAIMED)
def test_generated_repo_installs_and_passes_its_tests(version, bake, seed_script, tmp_path):
    python = interpreter(version)
    if python is None:
        pytest.skip(
            f"Python {version} is not installed here (python{version} on PATH or {PYENV}/{version}.*)"
        )
    result = bake(backend_name=f"py{version.replace('.', '')}", script=str(seed_script))
    assert result.exit_code == 0, result.exception
    moved = install_and_test(Path(result.project_path), tmp_path, python, TEST_REDIS_URL=REDIS_URL)
    assert (moved / "model.py").is_file()
