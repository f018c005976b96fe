"""Both ends of the runtime's ranges: its lowest declared versions pass the runtime tier, and
``scripts/test.sh --latest`` runs the suite against the newest releases in a venv of its own.

The lowest-direct venv (``scripts/lowest.sh``: uv ``--resolution lowest-direct``) is cached in
``~/.cache/lsml/lowest-<hash>``, keyed by what decides its contents, so a CI run builds it once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache" / "lsml"
SEED = ROOT / "tests" / "template" / "data" / "seed_model.py"

pytestmark = pytest.mark.slow


def floors() -> dict[str, Version]:
    """{distribution: lowest version} of the runtime's dependencies and its init and s3 extras."""
    project = tomllib.loads((ROOT / "runtime" / "pyproject.toml").read_text())["project"]
    found = {}
    extras = project["optional-dependencies"]
    for line in [*project["dependencies"], *extras["init"], *extras["s3"]]:
        requirement = Requirement(line)
        (lowest,) = [s.version for s in requirement.specifier if s.operator == ">="]
        found[requirement.name] = Version(lowest)
    return found


@pytest.fixture(scope="module")
def lowest_venv() -> Path:
    """The venv of scripts/lowest.sh, cached per checkout (its editable runtime points here) and
    per content of what decides it; lowest.sh itself is a no-op on a complete venv."""
    inputs = [
        ROOT / "runtime" / "pyproject.toml",
        ROOT / "requirements-dev.txt",
        ROOT / "scripts" / "lowest.sh",
    ]
    key = hashlib.sha256(str(ROOT).encode() + b"".join(p.read_bytes() for p in inputs)).hexdigest()[:16]
    CACHE.mkdir(parents=True, exist_ok=True)
    venv = CACHE / f"lowest-{key}"
    with open(CACHE / f"lowest-{key}.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        proc = subprocess.run(
            ["bash", "scripts/lowest.sh", str(venv)], cwd=ROOT, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return venv


def venv_run(venv: Path, *args: str, cwd: Path = ROOT, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_lowest_venv_has_the_declared_floors(lowest_venv):
    code = (
        "import sys, importlib.metadata as m; print('\\n'.join(f'{n}={m.version(n)}' for n in sys.argv[1:]))"
    )
    out = venv_run(lowest_venv, str(lowest_venv / "bin" / "python"), "-c", code, *floors())
    assert out.returncode == 0, out.stderr
    installed = {line.split("=")[0]: Version(line.split("=")[1]) for line in out.stdout.split()}
    assert installed == floors()
    where = venv_run(lowest_venv, "python", "-c", "import label_studio_ml; print(label_studio_ml.__file__)")
    assert where.stdout.strip() == str(ROOT / "runtime" / "src" / "label_studio_ml" / "__init__.py")


def test_init_works_with_the_lowest_cookiecutter(lowest_venv, tmp_path):
    (tmp_path / "model.py").write_text(SEED.read_text())
    out = venv_run(lowest_venv, "label-studio-ml", "init", "low_backend", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "from model import DummyModel\n" in (tmp_path / "low_backend" / "wsgi.py").read_text()


@pytest.mark.timeout(900)
def test_runtime_tier_passes_at_the_lowest_versions(lowest_venv):
    """The whole tests/runtime tier (about 3 minutes) with flask, rq, redis, orjson and
    prometheus-client at their floors (needs the Redis of scripts/ensure_redis.sh, like the tier)."""
    out = venv_run(
        lowest_venv, "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/runtime", timeout=850
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and " failed" not in out.stdout


def test_test_sh_latest_builds_and_uses_its_own_venv():
    """scripts/test.sh --latest: bootstrap --latest makes .venv-latest (unlocked, newest), and
    pytest runs there. Only a collection here: CI runs the suite once, locked."""
    out = subprocess.run(
        ["bash", "scripts/test.sh", "--latest", "--collect-only", "-q", "tests/test_lint.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTEST_ADDOPTS")},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "the newest releases, unlocked, in .venv-latest" in out.stderr
    assert "tests/test_lint.py::" in out.stdout
    latest = ROOT / ".venv-latest" / "bin" / "python"
    assert latest.is_file() and latest.parent.parent.resolve() != Path(sys.prefix).resolve()
    probe = subprocess.run(
        [latest, "-c", "import label_studio_ml, flask, rq; print(label_studio_ml.__file__)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.strip().startswith(str(ROOT / "runtime" / "src"))
