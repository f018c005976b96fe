"""Install the model into the new project and prune what the answers do not need.

Runs on cookiecutter's interpreter with the project root as cwd. Standard library only;
idempotent, offline and non-interactive, so ``cruft create`` / ``cruft update`` can re-run it.
Reads (and deletes) ``.lsml-pregen.json``, written by pre_gen_project.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

CONTEXT = json.loads(r"""{{ cookiecutter | tojson }}""")


# hooks/lsml_hooklib.py holds what both hooks share. cookiecutter names the template's directory
# (_repo_dir): absolute for a clone, as typed for a local path (relative to where cookiecutter
# was run: $PWD). cruft names none but runs hooks from there (the parent's working directory).
def _template_dir() -> str:
    given = CONTEXT.get("_repo_dir") or ""
    places = (given, os.path.join(os.environ.get("PWD", ""), given), f"/proc/{os.getppid()}/cwd")
    for place in places:
        if place and os.path.isfile(os.path.join(place, "hooks", "lsml_hooklib.py")):
            return os.path.realpath(place)
    return given


TEMPLATE_DIR = _template_dir()
sys.path.insert(0, os.path.join(TEMPLATE_DIR, "hooks"))
sys.dont_write_bytecode = True  # no __pycache__ in the template
from lsml_hooklib import PROVIDED, RUNTIME_PACKAGES, Bundle, Handoff, HookError, say  # noqa: E402, F401

EXAMPLE = Path("example_model.py")
MODEL = Path("model.py")


def remove(path: Path) -> None:
    """Delete a file or directory; a path that is already gone is fine."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


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


REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


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


# ------------------------------------------------------------------ the runtime, vendored
# requirements.txt installs the runtime from the wheel in vendor/: the one the template carries
# (scripts/build_runtime_wheel.py), or the one label-studio-ml init put in the template it bakes
# (a wheel of the runtime it runs from). This hook only names it, so nothing but PyPI is needed.
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


def vendor_runtime() -> str:
    """Line 1 of requirements.txt: the _runtime_requirement answer (no wheel), else the wheel."""
    requirements = Path("requirements.txt")
    lines = requirements.read_text(encoding="utf-8").splitlines()
    if str(CONTEXT.get("_runtime_requirement") or "").strip():
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
# README.model.md, its requirements merged into ours.
WSGI_SHIM = Path("_wsgi.py")
MODEL_README = Path("README.model.md")
MODEL_TESTS = Path("tests", "model_tests")
# Requirement lines of a model's folder that the generated repo replaces: the runtime and its
# servers (PROVIDED) and upstream's gunicorn (uWSGI serves here).
REPLACED_REQUIREMENT = re.compile(r"^\s*gunicorn\s*([<>=!~;\[@]|$)", re.I)
# What the runtime itself installs, at the versions it needs: a model folder's pins of these
# (often years old) would make pip's resolution fail, so they are left out, and said so.
RUNTIME_PINNED = {*RUNTIME_PACKAGES, "gunicorn"}
INCLUDE_LINE = re.compile(r"^\s*-[rc]\s|^\s*--(requirement|constraint)[\s=]")
ALIAS_SHIM = '''"""`import {alias}` is `import model`: the bake installed {alias}.py as model.py.

Code beside the model (its tests, its helpers) imports it under its old name; this keeps that
working with one module object, so classes and module state are shared.
"""

import sys

import model

sys.modules[__name__] = model
'''


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


def main() -> int:
    handoff = read_handoff()
    try:
        vendor_runtime()
    except HookError as exc:
        print(f"ERROR: {exc}.", file=sys.stderr)
        return 1
    origin = install_model(handoff)
    added = merge_requirements(handoff)
    bundle_notes = install_bundle(handoff)
    sdk = add_sdk_requirement(handoff)
    if sdk:
        added.append(sdk)
    unlocked = write_locks(bool(sdk))
    wire_class(handoff.model_class)
    has_config = write_label_config(handoff)
    prune(handoff.uses_example)
    print(f"Created {CONTEXT['backend_name']}/ with model.py from {origin}.")
    if added:
        print(f"Added to requirements.txt: {', '.join(added)}")
    for note in bundle_notes:
        print(note)
    print_warnings(handoff, unlocked, has_config)
    print_next(unlocked)
    return 0


def print_warnings(handoff: Handoff, unlocked: list[str], has_config: bool) -> None:
    missing = undeclared_imports(handoff)
    if missing:
        print(
            f"WARNING: model.py imports {', '.join(missing)}, which requirements.txt does not list: "
            "add them, pinned, or the backend fails with ModuleNotFoundError on a fresh machine."
        )
    if unlocked:
        print(
            f"WARNING: requirements.lock does not pin {', '.join(unlocked)} yet: run `{LOCK_COMMAND}` "
            f"in {CONTEXT['backend_name']}/ (it needs PyPI) to refresh the locks the Docker image "
            "and CI install from; tests/test_lock.py fails until then."
        )
    if not handoff.uses_example and not has_config:
        print(
            "NOTE: tests/label_config.xml is the example Image + Choices config; "
            "edit it to match your model's labeling config."
        )


def print_next(unlocked: list[str]) -> None:
    name = CONTEXT["backend_name"]
    print("Next:")
    if unlocked or not LOCKS[1].is_file():
        print(f"  cd {name} && pip install -r requirements.txt -r requirements-test.txt")
    else:
        print(f"  cd {name} && pip install --require-hashes -r requirements-test.lock")
    print("  python -m pytest")
    print(f"  label-studio-ml start . --port {CONTEXT['port']}    # or: docker compose up")


if __name__ == "__main__":
    raise SystemExit(main())
