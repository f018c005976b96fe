"""The vendored runtime and the locks: requirements.txt's first line names the wheel the
template carries, and both locks get that wheel's entry with its sha256.

Used by post_gen_project.py, with the project root as cwd; it passes the answers in. Not
rendered by Jinja. Standard library only, Python 3.9 syntax (the hooks run on the user's
interpreter).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from lsml_hooklib import HookError, remove, say
from lsml_requirements import REQUIREMENT_NAME, normalized

# ------------------------------------------------------------------ the runtime, vendored
# requirements.txt installs the runtime from the wheel in vendor/: the one the template carries
# (scripts/build_runtime_wheel.py), or the one label-studio-ml init put in the template it bakes
# (a wheel of the runtime it runs from). post-gen only names it, so nothing but PyPI is needed.
VENDOR = Path("vendor")
DIST = "lsml-runtime"
WHEELS = "lsml_runtime-*-py3-none-any.whl"


def vendored_wheel() -> Path:
    """The wheel the template brought; an older one a re-run left beside it goes."""
    wheels = sorted(VENDOR.glob(WHEELS), key=lambda p: p.stat().st_mtime_ns)
    if not wheels:
        raise HookError(
            f"cannot find the {DIST} runtime to put in vendor/: the template's vendor/ holds no "
            f"{WHEELS}. "
            + say(
                "Run `python scripts/build_runtime_wheel.py` in the lsml-template checkout, use "
                'label-studio-ml init, or pass _runtime_requirement="<a pip requirement for lsml-runtime>"',
                "Reinstall lsml-runtime, or pass --runtime-requirement "
                '"<a pip requirement for lsml-runtime>"',
            )
        )
    for old in wheels[:-1]:
        old.unlink()
    return wheels[-1]


def vendor_runtime(ctx: dict) -> str:
    """Line 1 of requirements.txt: the _runtime_requirement answer (no wheel), else the wheel."""
    requirements = Path("requirements.txt")
    lines = requirements.read_text(encoding="utf-8").splitlines()
    if str(ctx.get("_runtime_requirement") or "").strip():
        for wheel in VENDOR.glob(WHEELS):
            wheel.unlink()
        return lines[0]
    lines[0] = f"./{VENDOR.as_posix()}/{vendored_wheel().name}"
    requirements.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines[0]


# ------------------------------------------------------------------ the locks
# requirements.lock (the image) and requirements-test.lock (CI) come rendered from the template,
# locked by its scripts/lock.sh the way the repo's own lock.sh does it, minus the vendored
# wheel, whose line (with its sha256) is written here, where uv would put it. A bake is offline:
# requirements it adds that the locks lack get a WARNING naming the refresh command.
LOCKS = (Path("requirements.lock"), Path("requirements-test.lock"))
SDK_LOCKS = Path(".locks-sdk")  # the same locks with the SDK line add_sdk_requirement writes
LOCK_COMMAND = "sh lock.sh"
VENDOR_ENTRY = re.compile(r"^\./vendor/")


def with_vendor_entry(lock: str, wheel: Path | None) -> str:
    """The lock's text with the ./vendor/ entry replaced by ``wheel``'s (or dropped: None)."""
    lines, skipping = [], False
    for line in lock.splitlines():
        if VENDOR_ENTRY.match(line):
            skipping = True
        elif not (skipping and line[:1].isspace()):
            skipping = False
            lines.append(line)
    if wheel is None:
        return "\n".join(lines) + "\n"
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    entry = [f"./{wheel.as_posix()} \\", f"    --hash=sha256:{digest}", "    # via -r requirements.txt"]
    # uv sorts entries by package name; the wheel's is the runtime's
    at = next(
        (
            i
            for i, line in enumerate(lines)
            if (match := REQUIREMENT_NAME.match(line)) and normalized(match.group(1)) > normalized(DIST)
        ),
        len(lines),
    )
    return "\n".join([*lines[:at], *entry, *lines[at:]]) + "\n"


def write_locks(sdk_added: bool) -> list[str]:
    """Put the wheel's entry in the locks; returns the requirements.txt lines they do not pin."""
    if sdk_added:
        for lock in LOCKS:
            if (SDK_LOCKS / lock).is_file():
                (SDK_LOCKS / lock).replace(lock)
    remove(SDK_LOCKS)
    requirements = Path("requirements.txt").read_text(encoding="utf-8").splitlines()
    first = requirements[0].strip() if requirements else ""
    wheel = Path(first[2:]) if first.startswith("./vendor/") and Path(first[2:]).is_file() else None
    pinned: set[str] = set()
    for lock in LOCKS:
        if lock.is_file():
            text = with_vendor_entry(lock.read_text(encoding="utf-8"), wheel)
            lock.write_text(text, encoding="utf-8")
            if lock == LOCKS[0]:
                pinned = {normalized(m.group(1)) for m in map(REQUIREMENT_NAME.match, text.splitlines()) if m}
    if not LOCKS[0].is_file():
        return []
    missing = []
    for line in requirements:
        line = line.strip()
        if not line or line.startswith(("#", "-")) or line == first and wheel is not None:
            continue
        match = REQUIREMENT_NAME.match(line)
        if not match or normalized(match.group(1)) not in pinned:
            missing.append(line)
    return missing
