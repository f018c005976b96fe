"""`label-studio-ml init` from a regular (non-editable) install: the template bundled in the wheel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "tests" / "template" / "data" / "seed_model.py"


@pytest.mark.slow
def test_init_from_an_installed_wheel(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", f"{ROOT / 'runtime'}[init]"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr[-2000:]
    work = tmp_path / "work"
    work.mkdir()
    (work / "model.py").write_text(SEED.read_text())
    # the seed tutorial's form: no --script means ./model.py
    out = subprocess.run([str(venv / "bin" / "label-studio-ml"), "init", "my_backend"], cwd=work,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    backend = work / "my_backend"
    assert (backend / "model.py").read_text() == SEED.read_text()
    assert "from model import DummyModel" in (backend / "wsgi.py").read_text()
    assert not list(backend.rglob("__pycache__")), "no byte-code from the installed template copy"
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import label_studio_ml, sys; print(label_studio_ml.__file__)"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "site-packages" in installed, "the test must exercise the wheel, not the checkout"
    again = subprocess.run([str(venv / "bin" / "label-studio-ml"), "init", "my_backend"], cwd=work,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert again.returncode == 1 and "already exists" in again.stderr and "--force" in again.stderr
