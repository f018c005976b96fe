"""Install the model into the new project: model.py, what comes with it from its folder (modules,
data, tests, README), the class wsgi.py serves, the tests' labeling config; and prune what the
answers do not need.

Used by post_gen_project.py, with the project root as cwd. Not rendered by Jinja: no answers
here. Standard library only, Python 3.9 syntax (the hooks run on the user's interpreter).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from lsml_hooklib import Bundle, Handoff, remove
from lsml_requirements import merge_bundle_requirements

EXAMPLE = Path("example_model.py")
MODEL = Path("model.py")


def read_handoff() -> Handoff:
    handoff = Handoff.take()
    if handoff is not None:
        return handoff
    # post_gen run on its own: keep whatever model.py is there.
    kept = MODEL.is_file()
    return Handoff(keep_model=kept, uses_example=not kept)


def install_model(handoff: Handoff) -> str:
    """Put the model in place as model.py; returns where it came from."""
    if handoff.uses_example:
        EXAMPLE.replace(MODEL)
        return "the built-in example"
    remove(EXAMPLE)
    if handoff.keep_model:
        return "the existing model.py"
    source = Path(handoff.script)
    if not (MODEL.exists() and MODEL.samefile(source)):
        shutil.copyfile(source, MODEL)
    return str(source)


def wire_class(model_class: str) -> None:
    """Point wsgi.py at the detected class (the template renders the example's name)."""
    if not model_class:
        return
    wsgi = Path("wsgi.py")
    text = wsgi.read_text(encoding="utf-8")
    text = re.sub(r"^from model import \w+$", f"from model import {model_class}", text, flags=re.M)
    text = re.sub(r"create_app\(\w+,", f"create_app({model_class},", text)
    wsgi.write_text(text, encoding="utf-8")
    readme = Path("README.md")
    if readme.is_file():  # "(class `NewModel`, served by wsgi.py)": name the class it serves
        text = readme.read_text(encoding="utf-8")
        text = re.sub(r"\(class `\w+`, served by", f"(class `{model_class}`, served by", text, count=1)
        readme.write_text(text, encoding="utf-8")


def write_label_config(handoff: Handoff) -> bool:
    """Use the script's own labeling config for the tests, when it carries one."""
    config = handoff.label_config
    if config:
        Path("tests", "label_config.xml").write_text(config, encoding="utf-8")
    return bool(config)


# Files that only make sense for the built-in example model.
EXAMPLE_ONLY = [Path("tests", "test_example_model.py")]


def prune(using_example: bool) -> None:
    if not using_example:
        for path in EXAMPLE_ONLY:
            remove(path)
    # pip byte-compiles the template copy bundled in the runtime wheel; never ship its caches
    for cache in sorted(Path(".").rglob("__pycache__")):
        remove(cache)


# ------------------------------------------------------------------ a model with its neighbours
# pre_gen lists what comes from the model's folder ("bundle"; docs/hooks.md); this puts it in
# place: modules and data at the same paths as in the folder (so imports and paths relative to
# __file__ work unchanged), the model's tests in tests/model_tests/, its README as
# README.model.md, its requirements merged into ours (lsml_requirements).
WSGI_SHIM = Path("_wsgi.py")
MODEL_README = Path("README.model.md")
MODEL_TESTS = Path("tests", "model_tests")
ALIAS_SHIM = '''"""`import {alias}` is `import model`: the bake installed {alias}.py as model.py.

Code beside the model (its tests, its helpers) imports it under its old name; this keeps that
working with one module object, so classes and module state are shared.
"""

import sys

import model

sys.modules[__name__] = model
'''


def install_bundle(handoff: Handoff) -> list[str]:
    """Bring the model's neighbours; returns lines to print. Without a bundle (a single script,
    the example, a re-run) only drops the _wsgi.py shim nothing asked for."""
    bundle = handoff.bundle
    if bundle is None or handoff.keep_model:
        keep_earlier_bundle(handoff.keep_model)
        return []
    root = Path(bundle.root)
    brought = copy_bundle(root, bundle)
    notes = (
        [f"{bundle.alias}.py imports model.py under its old name ({bundle.alias})."] if bundle.alias else []
    )
    if not bundle.wsgi_shim:
        remove(WSGI_SHIM)
    if bundle.readme:
        add_model_readme(root, bundle.readme)
    added, dropped = merge_bundle_requirements(root, bundle)
    exclude_from_ruff([d for d in brought if d.endswith(".py") or d.startswith(MODEL_TESTS.as_posix())])
    unignore_data(brought)
    if brought:
        notes.append(f"Brought from {root}: {', '.join(brought)}")
    if added:
        notes.append(f"Merged requirements: {', '.join(added)}")
    if dropped:
        notes.append(f"Left out of requirements.txt (the runtime installs its own): {', '.join(dropped)}")
    if bundle.replaced:
        notes.append(f"Replaced by this repo's own files: {', '.join(bundle.replaced)}")
    return notes


def keep_earlier_bundle(rerun: bool) -> None:
    """No bundle this time: a re-run keeps what an earlier bake brought (the user's now)."""
    if not (rerun and MODEL_TESTS.is_dir()):  # a re-run keeps its shim
        remove(WSGI_SHIM)
    if rerun:
        exclude_from_ruff(brought_earlier())


def copy_bundle(root: Path, bundle: Bundle) -> list[str]:
    """Copy the bundle's files (and its alias module); returns where they went."""
    brought = []
    for rel, dest in bundle.files:
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
        brought.append(dest)
    if any(Path(d).parts[:2] == MODEL_TESTS.parts for d in brought):
        (MODEL_TESTS / "__init__.py").touch()  # a package: its test_api.py is not ours
    if bundle.alias:
        Path(f"{bundle.alias}.py").write_text(ALIAS_SHIM.format(alias=bundle.alias), encoding="utf-8")
    return brought


def add_model_readme(root: Path, readme: str) -> None:
    shutil.copyfile(root / readme, MODEL_README)
    with Path("README.md").open("a", encoding="utf-8") as ours:
        ours.write(
            f"\n## The model's own notes\n\n[{MODEL_README}]({MODEL_README}) is the README that "
            f"came with the model ({readme} of its folder).\n"
        )


def brought_earlier() -> list[str]:
    """On a re-run, the model's code an earlier bake brought: top-level modules and packages
    that are not the template's, and tests/model_tests."""
    ours = {"model.py", "wsgi.py", "rq_settings.py", WSGI_SHIM.name, EXAMPLE.name}
    found = [p.name for p in sorted(Path(".").glob("*.py")) if p.name not in ours]
    found += [
        f"{p.name}/{m.name}"
        for p in sorted(Path(".").iterdir())
        if p.is_dir() and p.name not in ("tests", "vendor") and (p / "__init__.py").is_file()
        for m in sorted(p.rglob("*.py"))
        if "__pycache__" not in m.parts
    ]
    return found + ([MODEL_TESTS.as_posix()] if MODEL_TESTS.is_dir() else [])


def exclude_from_ruff(paths: list[str]) -> None:
    """The model's code is the user's, as model.py is: ruff (CI, pre-commit) leaves it alone."""
    if not paths:
        return
    pyproject = Path("pyproject.toml")
    text = pyproject.read_text(encoding="utf-8")
    tops = sorted({p if not p.startswith(MODEL_TESTS.as_posix()) else MODEL_TESTS.as_posix() for p in paths})
    listed = ", ".join(json.dumps(p) for p in ["model.py", *tops])
    text = re.sub(r"^extend-exclude = \[.*\]$", f"extend-exclude = [{listed}]", text, count=1, flags=re.M)
    pyproject.write_text(text, encoding="utf-8")


def unignore_data(brought: list[str]) -> None:
    """The model's own data/ shares the folder with the model store (data/models, ignored), its
    weights/ the one for large files (MODEL_ROOT): git and docker build must still see what the
    model brought there."""
    tops = sorted({"/".join(Path(d).parts[:2]) for d in brought if Path(d).parts[0] in ("data", "weights")})
    if not tops:
        return
    for ignore in (Path(".gitignore"), Path(".dockerignore")):
        if ignore.is_file():
            lines = ignore.read_text(encoding="utf-8").splitlines()
            extra = [f"!{top}" for top in tops if f"!{top}" not in lines]
            if extra:
                block = ["# the model's own files (data/models is the model store)", *extra]
                ignore.write_text("\n".join([*lines, *block]) + "\n", encoding="utf-8")
