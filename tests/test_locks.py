"""Every lock agrees with its inputs, and the development venv is what its lock says.

``bash scripts/lock.sh`` refreshes them all (it says so in each failure message):

* ``requirements-dev.lock``: requirements-dev.txt + the runtime's dependencies (init, sdk extras);
  ``scripts/bootstrap.sh`` installs it with ``--require-hashes``.
* ``{{cookiecutter.backend_name}}/requirements.lock`` and ``requirements-test.lock``: what a
  generated repo's image and CI install (the post-gen hook adds the vendored wheel's line), and
  their variants with the SDK line in ``.locks-sdk/``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "{{cookiecutter.backend_name}}"
REFRESH = "run `bash scripts/lock.sh` to refresh the locks"
DEV_LOCK = ROOT / "requirements-dev.lock"
TEMPLATE_LOCKS = [
    TEMPLATE / "requirements.lock",
    TEMPLATE / "requirements-test.lock",
    TEMPLATE / ".locks-sdk" / "requirements.lock",
    TEMPLATE / ".locks-sdk" / "requirements-test.lock",
]
SDK_REQUIREMENT = re.search(
    r'^SDK_REQUIREMENT = "(.*)"$', (ROOT / "hooks" / "lsml_hooklib.py").read_text(), re.M
).group(1)


def entries(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = (line.split(" #", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith(("#", "-"))]


def read_lock(path: Path) -> dict[str, list[tuple[str, str, bool]]]:
    """{name: [(version, marker, hashed)]}; asserts every entry is a pin."""
    pins: dict[str, list[tuple[str, str, bool]]] = {}
    for entry in entries(path):
        spec, *digests = entry.split(" --hash=")
        requirement = Requirement(spec.strip())
        (pinned,) = requirement.specifier
        assert pinned.operator == "==", f"{path.name}: {spec} is not a pin; {REFRESH}"
        marker = str(requirement.marker or "")
        pins.setdefault(canonicalize_name(requirement.name), []).append(
            (pinned.version, marker, bool(digests))
        )
    return pins


def applies(marker: str) -> bool:
    return not marker or Requirement(f"x; {marker}").marker.evaluate()


def assert_satisfied(lock: Path, requirements: list[str], source: str) -> None:
    pins = read_lock(lock)
    for line in requirements:
        requirement = Requirement(line)
        for extra in ("", *sorted(requirement.extras)):
            if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
                continue
            versions = [v for v, m, _ in pins.get(canonicalize_name(requirement.name), []) if applies(m)]
            assert versions, f"{lock.relative_to(ROOT)} does not pin {line} (from {source}); {REFRESH}"
            for version in versions:
                assert requirement.specifier.contains(version, prereleases=True), (
                    f"{lock.relative_to(ROOT)} pins {requirement.name}=={version}, which {source} "
                    f"does not allow ({line}); {REFRESH}"
                )


def runtime_requirements(*extras: str) -> list[str]:
    project = tomllib.loads((ROOT / "runtime" / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *(d for e in extras for d in project["optional-dependencies"][e])]


@pytest.mark.parametrize("lock", [DEV_LOCK, *TEMPLATE_LOCKS], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_entry_is_a_pin_with_hashes(lock):
    pins = read_lock(lock)
    assert pins, f"{lock} is empty"
    unhashed = [name for name, found in pins.items() if not all(hashed for *_, hashed in found)]
    assert not unhashed, f"{lock.name}: no --hash for {unhashed}; {REFRESH}"
    assert "./vendor/" not in lock.read_text(), "the hook writes the vendored wheel's line, not the lock"


def test_dev_lock_has_every_pin_of_requirements_dev_txt():
    lines = entries(ROOT / "requirements-dev.txt")
    assert all("==" in line for line in lines), "requirements-dev.txt pins its tools exactly"
    assert_satisfied(DEV_LOCK, lines, "requirements-dev.txt")


def test_dev_lock_satisfies_the_runtime():
    assert_satisfied(DEV_LOCK, runtime_requirements("init", "sdk"), "runtime/pyproject.toml")


@pytest.mark.parametrize("sdk", [False, True], ids=["base", "sdk"])
def test_template_locks_cover_what_a_bake_requires(sdk):
    image, ci = TEMPLATE_LOCKS[2:] if sdk else TEMPLATE_LOCKS[:2]
    # requirements.txt: line 1 is the runtime (the hook writes the wheel), then the template's pins
    base = entries(TEMPLATE / "requirements.txt")[1:] + ([SDK_REQUIREMENT] if sdk else [])
    tools = entries(TEMPLATE / "requirements-test.txt")
    for lock in (image, ci):
        assert_satisfied(lock, base, "the template's requirements.txt")
        assert_satisfied(lock, runtime_requirements(), "runtime/pyproject.toml (the vendored wheel)")
    assert_satisfied(ci, tools, "the template's requirements-test.txt")


def test_bootstrap_installs_the_lock():
    """The venv running these tests holds exactly the versions requirements-dev.lock pins."""
    if Path(sys.prefix).name != ".venv":
        pytest.skip(f"not the locked .venv of scripts/bootstrap.sh: {sys.prefix}")
    wrong = []
    for name, found in read_lock(DEV_LOCK).items():
        for version, marker, _ in found:
            if applies(marker) and metadata.version(name) != version:
                wrong.append(f"{name} {metadata.version(name)} (lock: {version})")
    assert not wrong, f"{wrong}: run bash scripts/bootstrap.sh"


@pytest.mark.slow
def test_lock_script_leaves_fresh_locks_unchanged(tmp_path):
    """scripts/lock.sh on a copy of this tree changes no lock: the committed ones are fresh.
    (Needs PyPI. Pins that still fit are kept, so only a changed input changes a lock.)"""
    copy = tmp_path / "repo"
    copy.mkdir()
    for part in ["cookiecutter.json", "hooks", "runtime", "scripts", "{{cookiecutter.backend_name}}"]:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, copy / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, copy / part)
    for name in ("requirements-dev.txt", "requirements-dev.lock"):
        shutil.copy2(ROOT / name, copy / name)
    (copy / ".venv").symlink_to(Path(sys.prefix))
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    proc = subprocess.run(
        ["bash", "scripts/lock.sh"], cwd=copy, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for lock in [DEV_LOCK, *TEMPLATE_LOCKS]:
        relative = lock.relative_to(ROOT)
        assert (copy / relative).read_text() == lock.read_text(), f"{relative} is stale; {REFRESH}"
