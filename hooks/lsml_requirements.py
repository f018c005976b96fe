"""The generated repo's requirement files: what the model's script and folder add to them.

Used by post_gen_project.py, with the project root as cwd. Not rendered by Jinja: no answers
here. Standard library only, Python 3.9 syntax (the hooks run on the user's interpreter).
"""

from __future__ import annotations

import re
from pathlib import Path

from lsml_hooklib import PROVIDED, RUNTIME_PACKAGES, Bundle, Handoff

REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def merge_requirements(handoff: Handoff) -> list[str]:
    """Append the script's sibling requirements.txt to ours (once; dependencies we pin win)."""
    source = handoff.requirements
    if not source or handoff.keep_model:
        return []
    ours = Path("requirements.txt")
    lines = ours.read_text(encoding="utf-8").splitlines()
    present = {line.strip() for line in lines}
    added = [
        line.strip()
        for line in Path(source).read_text(encoding="utf-8").splitlines()
        if line.strip()
        and not line.strip().startswith("#")
        and not PROVIDED.match(line)
        and line.strip() not in present
    ]
    if added:
        header = f"# from {Path(source).name} next to the model script"
        block = [header] if header not in present else []
        ours.write_text("\n".join([*lines, *block, *added]) + "\n", encoding="utf-8")
    return added


SDK_LINE = re.compile(r"^\s*label[-_.]studio[-_.]sdk\s*([<>=!~;\[@]|$)", re.I)


def add_sdk_requirement(handoff: Handoff) -> str:
    """A script that uses label_studio_sdk gets the pinned SDK range (unless it pins its own)."""
    requirement = handoff.sdk_requirement
    if not handoff.needs_sdk or not requirement:
        return ""
    ours = Path("requirements.txt")
    lines = ours.read_text(encoding="utf-8").splitlines()
    if any(SDK_LINE.match(line) for line in lines):
        return ""
    ours.write_text("\n".join([*lines, requirement]) + "\n", encoding="utf-8")
    return requirement


def undeclared_imports(handoff: Handoff) -> list[str]:
    """The script's third-party imports whose distribution requirements.txt does not name,
    as ``"sklearn (scikit-learn)"`` or ``"numpy"``."""
    imports = handoff.imports
    if not imports or handoff.keep_model:
        return []
    listed = {
        normalized(match.group(1))
        for line in Path("requirements.txt").read_text(encoding="utf-8").splitlines()
        if (match := REQUIREMENT_NAME.match(line))
    }
    return [
        module if normalized(dist) == normalized(module) else f"{module} ({dist})"
        for module, dist in imports.items()
        if normalized(dist) not in listed
    ]


# ------------------------------------------------------------------ a model folder's requirement files
# Requirement lines of a model's folder that the generated repo replaces: the runtime and its
# servers (PROVIDED) and upstream's gunicorn (uWSGI serves here).
REPLACED_REQUIREMENT = re.compile(r"^\s*gunicorn\s*([<>=!~;\[@]|$)", re.I)

# What the runtime itself installs, at the versions it needs: a model folder's pins of these
# (often years old) would make pip's resolution fail, so they are left out, and said so.
RUNTIME_PINNED = {*RUNTIME_PACKAGES, "gunicorn"}
INCLUDE_LINE = re.compile(r"^\s*-[rc]\s|^\s*--(requirement|constraint)[\s=]")


def requirement_lines(path: Path) -> list[str]:
    """The requirement lines of a file, without comments, blanks and -r/-c includes (the files
    they include are merged on their own)."""
    return [
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#") and not INCLUDE_LINE.match(line)
    ]


def merge_into(target: Path, sources: list[Path], header: str, also: Path | None = None) -> list[str]:
    """Append the sources' requirements that ``target`` (or ``also``) does not name yet (by
    distribution: a pin already there wins), minus what the template provides or replaces."""
    lines = target.read_text(encoding="utf-8").splitlines()
    others = also.read_text(encoding="utf-8").splitlines() if also else []
    # -r lines the model's own requirements.txt brought in point at files that are not here
    lines = [line for line in lines if not (INCLUDE_LINE.match(line) and not include_exists(line))]
    named = {normalized(m.group(1)) for line in lines + others if (m := REQUIREMENT_NAME.match(line))}
    added = []
    for source in sources:
        for line in requirement_lines(source):
            match = REQUIREMENT_NAME.match(line)
            key = normalized(match.group(1)) if match else line
            if PROVIDED.match(line) or REPLACED_REQUIREMENT.match(line) or key in named:
                continue
            named.add(key)
            added.append(line)
    block = [header, *added] if added else []
    target.write_text("\n".join([*lines, *block]) + "\n", encoding="utf-8")
    return added


def include_exists(line: str) -> bool:
    name = re.split(r"[\s=]+", line.strip(), maxsplit=1)[-1].strip()
    return Path(name).is_file()


def merge_bundle_requirements(root: Path, bundle: Bundle) -> tuple[list[str], list[str]]:
    """Merge the folder's requirements files into ours; returns (added, dropped)."""
    added = merge_into(
        Path("requirements.txt"),
        [root / r for r in bundle.requirements],
        "# from the requirements files of the model's folder",
    )
    added += merge_into(
        Path("requirements-test.txt"),
        [root / r for r in bundle.test_requirements],
        "# from the test requirements of the model's folder",
        also=Path("requirements.txt"),
    )
    return added, drop_runtime_pins(Path("requirements.txt"))


def drop_runtime_pins(requirements: Path) -> list[str]:
    """Remove the model's lines for what the runtime installs (RUNTIME_PINNED); returns them."""
    lines = requirements.read_text(encoding="utf-8").splitlines()
    kept, dropped = lines[:1], []
    for line in lines[1:]:
        match = REQUIREMENT_NAME.match(line)
        if match and normalized(match.group(1)) in RUNTIME_PINNED:
            dropped.append(line.strip())
        else:
            kept.append(line)
    if dropped:
        requirements.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return dropped
