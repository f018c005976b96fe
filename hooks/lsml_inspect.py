"""What a Python file says, read from its syntax tree without running it: the model classes it
defines, whether it uses the SDK, its third-party imports, the labeling config it carries, the
modules of its folder it imports.

Imported by the other hook modules from the template's ``hooks/`` directory; not rendered by
Jinja. Standard library and lsml_hooklib only, Python 3.9 syntax.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from lsml_hooklib import PROVIDED_MODULES, SDK_PACKAGE, warn

BASE_CLASS = "LabelStudioMLBase"
SDK_MODULE = SDK_PACKAGE[1]


def ast_classes(tree: ast.Module) -> list[str]:
    """Top-level classes whose bases name LabelStudioMLBase (directly or via a local class)."""
    bases = {BASE_CLASS}  # plus the names it is imported as
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            bases.update(a.asname for a in node.names if a.name == BASE_CLASS and a.asname)
    found: list[str] = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for base in node.bases:
            name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
            if name in bases or name in found:
                found.append(node.name)
                break
    return found


def uses_sdk(tree: ast.Module) -> bool:
    """Whether the script imports label_studio_sdk or touches ``.label_interface``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            if any(alias.name.split(".")[0] == SDK_MODULE for alias in node.names):
                return True
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or "").split(".")[0] == SDK_MODULE:
                return True
        elif isinstance(node, ast.Attribute) and node.attr == "label_interface":
            return True
    return False


def imported_names(tree: ast.Module) -> set[str]:
    """The top-level names of the module's absolute imports, wherever they are."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def third_party_imports(tree: ast.Module, script_dir: Path) -> dict:
    """``{module: distribution}`` for the script's absolute imports that are neither the
    standard library, nor provided by the runtime, nor files next to the script.

    The distribution name comes from the installed packages where known (``sklearn`` ->
    ``scikit-learn``), else it is the module's name. Python 3.9 has no list of the standard
    library's modules: there the check is skipped (empty result).
    """
    stdlib = getattr(sys, "stdlib_module_names", None)
    if stdlib is None:
        return {}
    try:
        from importlib.metadata import packages_distributions

        dists = packages_distributions()
    except Exception:  # noqa: BLE001 - a broken metadata entry must not stop generation
        dists = {}
    found = {}
    for name in sorted(imported_names(tree)):
        local = (script_dir / f"{name}.py").is_file() or (script_dir / name).is_dir()
        if name in stdlib or name in PROVIDED_MODULES or name == "__future__" or local:
            continue
        found[name] = (dists.get(name) or [name])[0]
    return found


def label_config_of(tree: ast.Module) -> str | None:
    """A labeling config the script carries: a module-level string or a docstring with <View>."""
    texts: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if any("config" in n.lower() for n in names) and isinstance(node.value.value, str):
                texts.append(node.value.value)
    docs = [ast.get_docstring(tree, clean=False)]
    docs += [ast.get_docstring(n, clean=False) for n in tree.body if isinstance(n, ast.ClassDef)]
    texts += [d for d in docs if d]
    for text in texts:
        start, end = text.find("<View"), text.rfind("</View>")
        if start != -1 and end > start:
            return text[start : end + len("</View>")].strip() + "\n"
    return None


def local_modules(tree: ast.Module, root: Path) -> set[str]:
    """Top-level names of the absolute imports that are modules or packages in ``root``."""
    return {n for n in imported_names(tree) if (root / f"{n}.py").is_file() or (root / n).is_dir()}


def parse_file(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        warn(f"{path} is not valid Python; brought as it is, without following its imports.")
        return None
