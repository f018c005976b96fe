"""The ``script`` answer: where the model's file is, that it is Python, and which class it
serves; the handoff for it (the model's folder is lsml_folder's).

Imported by pre_gen_project.py from the template's ``hooks/`` directory; not rendered by Jinja.
Standard library and the hooks' own modules only, Python 3.9 syntax.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import tempfile
from pathlib import Path

from lsml_detect import import_classes
from lsml_folder import find_model_file
from lsml_hooklib import SDK_REQUIREMENT, Handoff, fail, say, warn
from lsml_inspect import BASE_CLASS, ast_classes, label_config_of, third_party_imports, uses_sdk

EXAMPLE_CLASS = "NewModel"


def split_script(value: str) -> tuple[str, str]:
    """``path.py:Class`` -> (path, Class); a Windows drive colon is left alone."""
    path, sep, cls = value.rpartition(":")
    if sep and cls.isidentifier() and path and not path.endswith(("/", "\\")):
        return path, cls
    return value, ""


def base_dirs(ctx: dict) -> list[Path]:
    """Where a relative script path may be relative to, most likely first.

    ``_output_dir`` is the shell's directory unless ``-o`` was given (absent under cruft);
    ``PWD`` is the shell's directory (the hook's own cwd is the new project directory);
    the project's parent is the output directory.
    """
    dirs = []
    for candidate in (ctx.get("_output_dir"), os.environ.get("PWD"), str(Path.cwd().parent)):
        if candidate:
            path = Path(candidate).resolve()
            if path not in dirs:
                dirs.append(path)
    return dirs


def resolve_script(raw: str, ctx: dict) -> Path:
    path = Path(os.path.expanduser(raw))
    if path.is_absolute():
        return path
    tried = [base / path for base in base_dirs(ctx)]
    for candidate in tried:
        if candidate.exists():
            return candidate.resolve()
    return tried[0]


def is_rerun(ctx: dict) -> bool:
    """A regeneration of an existing project (cruft update, or init --force)."""
    if Path("model.py").is_file():
        return True
    # cruft renders into temp directories and passes no _output_dir.
    in_tmp = str(Path.cwd().resolve()).startswith(str(Path(tempfile.gettempdir()).resolve()))
    return "_output_dir" not in ctx and in_tmp


def inspect_script(raw: str, ctx: dict) -> Handoff:
    """Resolve, check and import the script; returns the handoff for post_gen (without what
    comes from the model's folder: lsml_folder.with_model_bundle adds that)."""
    path_text, script_class = split_script(raw)
    wanted = wanted_class(raw, script_class, str(ctx.get("model_class", "")))
    script = resolve_script(path_text, ctx)
    if not script.exists():
        return missing_script(script, wanted, ctx)
    script = checked_file(script, wanted)
    tree = parse_script(script)
    candidates = import_classes(script, ctx)
    if candidates is None:
        candidates = ast_classes(tree)
    chosen = choose_class(script, path_text, wanted, candidates)
    requirements = script.parent / "requirements.txt"
    return Handoff(
        script=str(script),
        model_class=chosen,
        label_config=label_config_of(tree),
        needs_sdk=uses_sdk(tree),
        sdk_requirement=SDK_REQUIREMENT,
        imports=third_party_imports(tree, script.parent),
        requirements=str(requirements) if requirements.is_file() else "",
    )


def wanted_class(raw: str, script_class: str, model_class: str) -> str:
    """The class the answers name (``path:Class`` or ``model_class``; "" = detect it)."""
    if script_class and model_class and script_class != model_class:
        raise fail(
            "script",
            raw,
            f"names class {script_class} but model_class is {model_class}",
            "Give the class once",
        )
    return script_class or model_class


def missing_script(script: Path, wanted: str, ctx: dict) -> Handoff:
    """A re-run keeps the project's model.py (a warning); a fresh bake stops (an error)."""
    if not is_rerun(ctx):
        raise fail(
            "script",
            str(script),
            "does not exist",
            say(
                "Pass an absolute path, or a path relative to the directory you ran cookiecutter in",
                "Pass --script the path of your model's .py file, absolute or relative to the "
                "current directory",
            ),
        )
    warn(f"script {str(script)!r} no longer exists; keeping the existing model.py.")
    if Path("model.py").is_file():
        return keep_existing_model(ctx)
    return Handoff(keep_model=True, uses_example=True, model_class=wanted)


def checked_file(script: Path, wanted: str) -> Path:
    """The model's .py file (a folder's found by find_model_file)."""
    if script.is_dir():
        script = find_model_file(script, wanted)
    if not script.is_file():
        raise fail("script", str(script), "is not a file", "Pass the model's .py file, not a folder")
    if script.suffix != ".py":
        raise fail("script", str(script), "is not a Python file", "Pass a .py file")
    return script


def parse_script(script: Path) -> ast.Module:
    try:
        return ast.parse(script.read_text(encoding="utf-8"), filename=str(script))
    except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        where = f" at line {line}" if line else ""
        raise fail(
            "script", str(script), f"is not valid Python{where} ({type(exc).__name__})", "Fix it"
        ) from exc


def choose_class(script: Path, path_text: str, wanted: str, candidates: list[str]) -> str:
    """The named class when it is a candidate, else the only candidate."""
    if wanted:
        return named_class(script, wanted, candidates)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise fail(
            "script",
            str(script),
            f"defines no {BASE_CLASS} subclass",
            f"Subclass label_studio_ml.model.{BASE_CLASS} in it",
        )
    raise fail(
        "script",
        str(script),
        f"defines several {BASE_CLASS} subclasses ({', '.join(candidates)})",
        say(
            f"Pick one with script={path_text}:{candidates[0]} or model_class={candidates[0]}",
            f"Pick one with --script {script}:{candidates[0]}",
        ),
    )


def named_class(script: Path, wanted: str, candidates: list[str]) -> str:
    """``wanted``, when the script defines it."""
    if wanted in candidates:
        return wanted
    listed = ", ".join(candidates) or "none"
    raise fail(
        "model class",
        wanted,
        f"is not a {BASE_CLASS} subclass in {script} (found: {listed})",
        say(
            f"Name one of the found classes (script={script}:{candidates[0]}), or fix the script",
            f"Name one of the found classes (--script {script}:{candidates[0]}), or fix the script",
        )
        if candidates
        else "Fix the script",
    )


def keep_existing_model(ctx: dict) -> Handoff:
    """Regenerating over an existing project (init --force): keep and re-inspect its model.py."""
    return dataclasses.replace(inspect_script(str(Path("model.py").resolve()), ctx), keep_model=True)


def inspect_model(ctx: dict) -> Handoff:
    """The handoff for the model the answers name: the script, else (a re-run) the project's
    own model.py, else the built-in example."""
    raw = str(ctx.get("script", "")).strip()
    if raw:
        return inspect_script(raw, ctx)
    if Path("model.py").is_file():
        return keep_existing_model(ctx)
    return Handoff(uses_example=True, model_class=str(ctx.get("model_class") or EXAMPLE_CLASS))
