"""Bundle the template into the runtime's wheel (for ``label-studio-ml init``), file by file.

force-include takes a directory whole, with no exclusions; the template's
``vendor/lsml_runtime-*.whl`` (a wheel of this runtime, scripts/build_runtime_wheel.py) must stay
out: a wheel inside itself, stale by construction. ``init`` builds a wheel of the installed
runtime instead (label_studio_ml.wheel).
"""

from __future__ import annotations

from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

TEMPLATE = "{{cookiecutter.backend_name}}"
TARGET = f"label_studio_ml/template/{TEMPLATE}"


def bundled(root: Path) -> dict[str, str]:
    """{source path: path in the wheel} for every template file but the vendored wheel."""
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        vendored = rel.parts[0] == "vendor" and path.suffix == ".whl"
        if path.is_file() and not vendored and "__pycache__" not in rel.parts:
            files[str(path)] = f"{TARGET}/{rel.as_posix()}"
    return files


class TemplateHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name == "wheel":
            build_data["force_include"].update(bundled(Path(self.root).parent / TEMPLATE))
