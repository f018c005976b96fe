"""A generated repo's locks: the vendored wheel's line, the SDK variant, and what a bake cannot
lock offline (a WARNING naming the refresh command; the repo's own lock test fails naming it)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..support import clean_env

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "tests" / "template" / "data" / "seed_model.py"
SDK_SCRIPT = ROOT / "tests" / "compat" / "data" / "sentiment_sdk.py"
LOCKS = ("requirements.lock", "requirements-test.lock")
VENV_BIN = Path(sys.executable).parent


def generate(tmp_path: Path, name: str, *answers: str) -> tuple[Path, str]:
    """cookiecutter (the CLI, offline) -> (project, its output)."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    proc = subprocess.run(
        [VENV_BIN / "cookiecutter", "--no-input", str(ROOT), f"backend_name={name}", *answers],
        cwd=out, capture_output=True, text=True, timeout=300, env=clean_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out / name, proc.stdout + proc.stderr


def lock_test(project: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_lock.py"],
        cwd=project, capture_output=True, text=True, timeout=120, env=clean_env(),
    )  # fmt: skip


def refresh(project: Path) -> None:
    """The command the README, the WARNING and the failing test name (uv from this venv)."""
    env = clean_env()
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    proc = subprocess.run(
        ["sh", "lock.sh"], cwd=project, capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_locks_pin_the_vendored_wheel(tmp_path):
    project, output = generate(tmp_path, "locked")
    (wheel,) = (project / "vendor").glob("*.whl")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    for lock in LOCKS:
        text = (project / lock).read_text()
        assert f"./vendor/{wheel.name} \\\n    --hash=sha256:{digest}\n" in text
    assert not (project / ".locks-sdk").exists()
    assert "WARNING: requirements.lock" not in output
    assert "pip install --require-hashes -r requirements-test.lock" in output  # the next step
    assert lock_test(project).returncode == 0
    dockerfile = (project / "Dockerfile").read_text()
    assert "RUN pip install --no-cache-dir --require-hashes -r requirements.lock\n" in dockerfile
    assert "COPY requirements.lock ./\n" in dockerfile


def test_a_script_using_the_sdk_gets_the_sdk_locks(tmp_path):
    project, output = generate(tmp_path, "sdk_locked", f"script={SDK_SCRIPT}")
    assert "label-studio-sdk>=2.1,<3" in (project / "requirements.txt").read_text()
    for lock in LOCKS:
        assert "\nlabel-studio-sdk==" in (project / lock).read_text(), lock
    assert "WARNING: requirements.lock" not in output
    assert not (project / ".locks-sdk").exists()
    result = lock_test(project)
    assert result.returncode == 0, result.stdout


@pytest.mark.slow
def test_requirements_the_locks_lack_warn_then_refresh(tmp_path):
    """A script's own requirements.txt: one WARNING at the bake, the repo's lock test fails with
    the command, and after that command (PyPI) the test passes and the image's lock has it."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    shutil.copy(SEED, scripts / "model.py")
    (scripts / "requirements.txt").write_text("attrs>=23.1\n")
    project, output = generate(tmp_path, "needs_attrs", f"script={scripts / 'model.py'}")
    warnings = [line for line in output.splitlines() if line.startswith("WARNING: requirements.lock")]
    assert warnings == [
        "WARNING: requirements.lock does not pin attrs>=23.1 yet: run `sh lock.sh` in needs_attrs/ (it "
        "needs PyPI) to refresh the locks the Docker image and CI install from; tests/test_lock.py "
        "fails until then."
    ]
    assert "cd needs_attrs && pip install -r requirements.txt -r requirements-test.txt" in output
    before = lock_test(project)
    assert before.returncode != 0
    assert "does not pin attrs>=23.1 (from requirements.txt); run `sh lock.sh`" in before.stdout
    refresh(project)
    after = lock_test(project)
    assert after.returncode == 0, after.stdout
    assert "\nattrs==" in (project / "requirements.lock").read_text()


def test_runtime_requirement_answer_leaves_the_wheel_out_and_warns(tmp_path):
    project, output = generate(tmp_path, "pinned_runtime", "_runtime_requirement=lsml-runtime==0.1.0")
    for lock in LOCKS:
        assert "./vendor/" not in (project / lock).read_text()
    assert "WARNING: requirements.lock does not pin lsml-runtime==0.1.0 yet: run `sh lock.sh`" in output


@pytest.mark.slow
def test_refreshing_right_after_a_bake_changes_nothing(tmp_path):
    """The template's locks and the hook's wheel line are what the repo's own lock.sh writes."""
    project, _ = generate(tmp_path, "fresh")
    before = {lock: (project / lock).read_text() for lock in LOCKS}
    refresh(project)
    for lock in LOCKS:
        assert (project / lock).read_text() == before[lock], f"{lock}: run bash scripts/lock.sh"


def test_pip_checks_the_vendored_wheels_hash(tmp_path):
    """--require-hashes covers the local wheel too: a changed wheel does not install."""
    project, _ = generate(tmp_path, "tampered")
    lock = (project / "requirements.lock").read_text()
    entry = next(line for line in lock.splitlines() if line.startswith("./vendor/")).rstrip(" \\")
    digest = lock.split(f"{entry} \\\n    --hash=sha256:", 1)[1][:64]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)

    def pip_install(requirements: str) -> subprocess.CompletedProcess:
        (project / "only-the-wheel.txt").write_text(requirements)
        return subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps",
             "--no-index", "--require-hashes", "-r", "only-the-wheel.txt"],
            cwd=project, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    good = pip_install(f"{entry} --hash=sha256:{digest}\n")
    assert good.returncode == 0, good.stderr
    wrong = "0" * 64
    bad = pip_install(f"{entry} --hash=sha256:{wrong}\n")
    assert bad.returncode != 0 and "DO NOT MATCH THE HASHES" in bad.stderr, bad.stderr
    assert f"Expected sha256 {wrong}" in bad.stderr and f"Got        {digest}" in bad.stderr
