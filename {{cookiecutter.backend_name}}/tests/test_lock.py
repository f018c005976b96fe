"""The locks pin what requirements.txt and requirements-test.txt ask for.

The Docker image installs requirements.lock and CI installs requirements-test.lock, both with
``pip install --require-hashes``: what is not in them is not installed. After you edit a
requirements file, refresh them with ``sh lock.sh`` (it needs uv and PyPI).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
REFRESH = "run `sh lock.sh` in this directory to refresh the locks"

# the locks are made for Python 3.10-3.13 (lock.sh); on 3.9 install the requirements files
pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 10), reason="the locks cover Python 3.10+ (3.9: requirements*.txt)"
)


def entries(path: Path) -> list[str]:
    """The requirement lines of a requirements file, continuation lines joined."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = (line.split(" #", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith(("#", "-"))]


def read_lock(path: Path) -> tuple[dict[str, list[tuple[str, str]]], dict[str, set[str]]]:
    """({name: [(version, marker)]}, {path or name==version: sha256 hashes}) of a lock."""
    pins: dict[str, list[tuple[str, str]]] = {}
    hashes: dict[str, set[str]] = {}
    for entry in entries(path):
        spec, *digests = entry.split(" --hash=")
        spec = spec.strip()
        hashes[spec] = {d.strip().removeprefix("sha256:") for d in digests}
        if spec.startswith(("./", "/")):
            continue
        requirement = Requirement(spec)
        (pinned,) = requirement.specifier
        assert pinned.operator == "==", f"{path.name}: {spec} is not pinned; {REFRESH}"
        marker = str(requirement.marker or "")
        pins.setdefault(canonicalize_name(requirement.name), []).append((pinned.version, marker))
    return pins, hashes


def applies(marker: str) -> bool:
    return not marker or Requirement(f"x; {marker}").marker.evaluate()


@pytest.mark.parametrize(
    ("lock", "sources"),
    [
        ("requirements.lock", ["requirements.txt"]),
        ("requirements-test.lock", ["requirements.txt", "requirements-test.txt"]),
    ],
)
def test_lock_pins_every_requirement(lock, sources):
    pins, hashes = read_lock(ROOT / lock)
    assert all(hashes.values()), f"{lock}: an entry without --hash; {REFRESH}"
    for source in sources:
        for line in entries(ROOT / source):
            if line.startswith(("./", "/")):  # a local file (the vendored runtime): its hash
                digest = hashlib.sha256((ROOT / line).read_bytes()).hexdigest()
                assert digest in hashes.get(line, set()), (
                    f"{lock} does not have {line} with its current sha256; {REFRESH}"
                )
                continue
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate():
                continue
            name = canonicalize_name(requirement.name)
            versions = [v for v, m in pins.get(name, []) if applies(m)]
            assert versions, f"{lock} does not pin {line} (from {source}); {REFRESH}"
            assert all(requirement.specifier.contains(v, prereleases=True) for v in versions), (
                f"{lock} pins {requirement.name}=={versions[0]}, which {source} does not allow "
                f"({line}); {REFRESH}"
            )


def test_ci_tests_what_the_image_runs():
    """On this Python, CI's lock installs the versions the image's lock installs."""
    image, _ = read_lock(ROOT / "requirements.lock")
    ci, _ = read_lock(ROOT / "requirements-test.lock")
    for name, pinned in image.items():
        here = {v for v, m in pinned if applies(m)}
        in_ci = {v for v, m in ci.get(name, []) if applies(m)}
        assert here <= in_ci, (
            f"requirements-test.lock pins {name} {sorted(in_ci)}, "
            f"requirements.lock {sorted(here)}; {REFRESH}"
        )
