"""The repository's own code is lint-clean (the generated repo is linted by tests/template)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).parent / "ruff"


@pytest.mark.parametrize(
    "args",
    [["check", "--config", "pyproject.toml", "."], ["format", "--config", "pyproject.toml", "--check", "."]],
    ids=["check", "format"],
)
def test_ruff(args):
    out = subprocess.run([str(RUFF), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
