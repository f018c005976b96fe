"""A reproducible ``py3-none-any`` wheel of this runtime, for a generated repo's ``vendor/``.

Two callers, one builder: ``scripts/build_runtime_wheel.py`` writes the wheel the template
carries (``{{cookiecutter.backend_name}}/vendor/``, checked fresh by ``tests/test_runtime_wheel.py``),
and ``label-studio-ml init`` puts a wheel of the runtime it runs from into the template it bakes.
The same files give the same bytes (sorted entries, fixed dates, a fresh RECORD). The copy of
the template that the runtime's own wheel bundles for ``init`` is left out: a backend does not
need it, and it would put the vendored wheel inside itself.

Standard library only (plus ``tomllib``, or pip's copy of tomli before Python 3.11).
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .fileio import atomic_file

DIST = "lsml-runtime"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
BUNDLED_TEMPLATE = "label_studio_ml/template/"
# what an installed dist-info holds that a wheel does not ship (pip writes them on install)
SKIPPED_INFO = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
GENERATOR = (
    b"Wheel-Version: 1.0\nGenerator: label_studio_ml.wheel\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
)

Files = Dict[str, bytes]


def wheel_name(name: str, version: str) -> str:
    return f"{stem(name, version)}-py3-none-any.whl"


def stem(name: str, version: str) -> str:
    return f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}"


# ------------------------------------------------------------------ from a source tree
def load_toml(path: Path) -> dict:
    try:
        import tomllib  # Python 3.11+
    except ImportError:  # pragma: no cover - older interpreters: pip's own copy of tomli
        from pip._vendor import tomli as tomllib
    return tomllib.loads(path.read_text(encoding="utf-8"))


def tree_files(source: Path, arc: str) -> Files:
    """A file or a directory as {archive name: bytes}, without byte-code."""
    if source.is_file():
        return {arc: source.read_bytes()}
    return {
        f"{arc}/{path.relative_to(source).as_posix()}": path.read_bytes()
        for path in sorted(source.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def metadata_text(project: dict, body: str) -> str:
    """METADATA (core metadata 2.1) from pyproject.toml's [project] table."""
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
        f"Summary: {project.get('description', '')}",
        f"License: {project.get('license', '')}",
        f"Requires-Python: {project.get('requires-python', '')}",
    ]
    lines += [f"Requires-Dist: {dep}" for dep in project.get("dependencies", [])]
    for extra, deps in project.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        for dep in deps:
            spec, _, marker = dep.partition(";")
            marker = f"({marker.strip()}) and " if marker.strip() else ""
            lines.append(f'Requires-Dist: {spec.strip()}; {marker}extra == "{extra}"')
    lines.append("Description-Content-Type: text/markdown")
    return "\n".join(lines) + "\n\n" + body


def source_files(root: Path) -> Tuple[str, str, Files]:
    """(name, version, files) of a runtime source tree (the directory of its pyproject.toml),
    the way pyproject.toml tells hatchling to build the wheel."""
    config = load_toml(root / "pyproject.toml")
    project = config["project"]
    target = config["tool"]["hatch"]["build"]["targets"]["wheel"]
    files: Files = {}
    for package in target["packages"]:
        files.update(tree_files(root / package, Path(package).name))
    for source, arc in target.get("force-include", {}).items():
        if not arc.startswith(BUNDLED_TEMPLATE):
            files.update(tree_files((root / source).resolve(), arc))
    readme = root / str(project.get("readme", "README.md"))
    body = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    info = f"{stem(project['name'], project['version'])}.dist-info"
    files[f"{info}/METADATA"] = metadata_text(project, body).encode()
    scripts = project.get("scripts", {})
    if scripts:
        entries = "".join(f"{name} = {target}\n" for name, target in scripts.items())
        files[f"{info}/entry_points.txt"] = f"[console_scripts]\n{entries}".encode()
    files[f"{info}/WHEEL"] = GENERATOR
    return project["name"], project["version"], files


# ------------------------------------------------------------------ from an installed runtime
def installed_files(dist: metadata.Distribution) -> Tuple[str, str, Files]:
    """(name, version, files) of an installed (non-editable) runtime: what its RECORD lists."""
    headers = Parser().parsestr(dist.read_text("METADATA") or "", headersonly=True)
    files: Files = {}
    for entry in dist.files or []:
        parts = entry.parts
        if ".." in parts or "__pycache__" in parts or entry.suffix == ".pyc":
            continue  # console scripts (../../bin) and byte-code are made by pip on install
        if parts[0].endswith(".dist-info") and parts[-1] in SKIPPED_INFO:
            continue
        files[entry.as_posix()] = Path(str(dist.locate_file(entry))).read_bytes()
    return headers["Name"], headers["Version"], files


def runtime_source() -> Optional[Path]:
    """The source tree this package runs from (a checkout, an editable install), or None."""
    root = Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and f'name = "{DIST}"' in pyproject.read_text(encoding="utf-8"):
        return root
    return None


def running_files() -> Tuple[str, str, Files]:
    """The files of the runtime this code runs from: its source tree, else its installed files."""
    root = runtime_source()
    return source_files(root) if root else installed_files(metadata.distribution(DIST))


# ------------------------------------------------------------------ the archive
def record(files: Files, info: str) -> bytes:
    lines = []
    for arc in sorted(files):
        digest = base64.urlsafe_b64encode(hashlib.sha256(files[arc]).digest()).rstrip(b"=")
        lines.append(f"{arc},sha256={digest.decode()},{len(files[arc])}")
    lines.append(f"{info}/RECORD,,")
    return ("\n".join(lines) + "\n").encode()


def write_wheel(name: str, version: str, files: Files, out_dir: Path) -> Path:
    """Write the wheel into ``out_dir`` (replacing any other wheel of the runtime there)."""
    info = f"{stem(name, version)}.dist-info"
    files = {arc: data for arc, data in files.items() if not arc.startswith(BUNDLED_TEMPLATE)}
    entries = {**files, f"{info}/RECORD": record(files, info)}
    target = out_dir / wheel_name(name, version)
    with atomic_file(target) as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as wheel:
        for arc in sorted(entries, key=lambda a: (a.startswith(info), a)):  # dist-info last
            item = zipfile.ZipInfo(arc, ZIP_DATE)
            item.external_attr = 0o644 << 16
            item.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(item, entries[arc])
    target.chmod(0o644)
    for old in wheels_in(out_dir):
        if old != target:
            old.unlink()
    return target


def build_from_source(root: Path, out_dir: Path) -> Path:
    """The wheel of the runtime source tree ``root`` (the directory of its pyproject.toml)."""
    return write_wheel(*source_files(root), out_dir)


def build_running(out_dir: Path) -> Path:
    """The wheel of the runtime this code runs from (``label-studio-ml init``)."""
    return write_wheel(*running_files(), out_dir)


def wheels_in(directory: Path) -> List[Path]:
    return sorted(directory.glob(f"{stem(DIST, '*')}-py3-none-any.whl"))
