"""Install the model into the new project and prune what the answers do not need.

Runs on cookiecutter's interpreter with the project root as cwd. Standard library only;
idempotent, offline and non-interactive, so ``cruft create`` / ``cruft update`` can re-run it.
Reads (and deletes) ``.lsml-pregen.json``, written by pre_gen_project.py.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path

CONTEXT = json.loads(r"""{{ cookiecutter | tojson }}""")

HANDOFF = Path(".lsml-pregen.json")
EXAMPLE = Path("example_model.py")
MODEL = Path("model.py")
# Lines of a script's own requirements.txt that this template already provides.
PROVIDED = re.compile(
    r"^\s*(label[-_.]studio[-_.]ml|lsml[-_.]runtime|uwsgi|supervisor)\s*([<>=!~;\[@]|$)", re.I
)


def remove(path: Path) -> None:
    """Delete a file or directory; a path that is already gone is fine."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def read_handoff() -> dict:
    if HANDOFF.is_file():
        data = json.loads(HANDOFF.read_text(encoding="utf-8"))
        remove(HANDOFF)
        return data
    # post_gen run on its own: keep whatever model.py is there.
    return {"script": "", "keep_model": MODEL.is_file(), "model_class": ""}


def install_model(handoff: dict) -> str:
    """Put the model in place as model.py; returns where it came from."""
    script = handoff.get("script") or ""
    if script and not handoff.get("keep_model"):
        source = Path(script)
        if not (MODEL.exists() and MODEL.samefile(source)):
            shutil.copyfile(source, MODEL)
        remove(EXAMPLE)
        return str(source)
    if handoff.get("keep_model") and MODEL.is_file():
        remove(EXAMPLE)
        return "the existing model.py"
    EXAMPLE.replace(MODEL)
    return "the built-in example"


def merge_requirements(handoff: dict) -> list[str]:
    """Append the script's sibling requirements.txt to ours (once; dependencies we pin win)."""
    source = handoff.get("requirements") or ""
    if not source or handoff.get("keep_model"):
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


def add_sdk_requirement(handoff: dict) -> str:
    """A script that uses label_studio_sdk gets the pinned SDK range (unless it pins its own)."""
    requirement = handoff.get("sdk_requirement") or ""
    if not handoff.get("needs_sdk") or not requirement:
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


def undeclared_imports(handoff: dict) -> list[str]:
    """The script's third-party imports whose distribution requirements.txt does not name,
    as ``"sklearn (scikit-learn)"`` or ``"numpy"``."""
    imports = handoff.get("imports") or {}
    if not imports or handoff.get("keep_model"):
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


def write_label_config(handoff: dict) -> bool:
    """Use the script's own labeling config for the tests, when it carries one."""
    config = handoff.get("label_config")
    if config:
        Path("tests", "label_config.xml").write_text(config, encoding="utf-8")
    return bool(config)


# ------------------------------------------------------------------ the runtime, vendored
# requirements.txt installs the runtime that generated this repo from vendor/, as a wheel this
# hook builds (reproducibly: same runtime, same bytes), so nothing but PyPI is needed to install.
VENDOR = Path("vendor")
DIST = "lsml-runtime"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
SKIPPED_INFO = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
# The runtime wheel bundles the template for label-studio-ml init; a backend does not need it,
# and leaving it out means a template change alone never changes vendor/.
BUNDLED_TEMPLATE = "label_studio_ml/template/"


class HookError(Exception):
    """One user-facing line."""


def find_runtime() -> tuple[str, Path] | None:
    """Where the runtime that generates this repo lives: ("source", <project dir with
    pyproject.toml>) or ("installed", <its .dist-info dir>); None when nowhere."""
    # 1. the template's own checkout or clone: <template repo>/runtime (cookiecutter, cruft)
    for repo in template_dirs():
        project = repo / "runtime"
        if (project / "pyproject.toml").is_file() and (repo / "cookiecutter.json").is_file():
            return "source", project
    # 2. label-studio-ml init says where its package lives; 3. the hook's own interpreter
    places = [os.environ["LSML_RUNTIME_SRC"]] if os.environ.get("LSML_RUNTIME_SRC") else []
    places += [p for p in sys.path if p and Path(p).is_dir()]
    for place in places:
        found = installed_runtime(Path(place))
        if found:
            return found
    return None


def template_dirs() -> list[Path]:
    """Where the template being rendered may be, the surest first."""
    found = []
    # cookiecutter (and cruft, which renders a clone at the commit it diffs) runs hooks from the
    # template directory, with the project as the hook's cwd: the parent's cwd is the template
    proc = Path(f"/proc/{os.getppid()}/cwd")
    with contextlib.suppress(OSError):
        found.append(proc.resolve(strict=True))
    template = str(CONTEXT.get("_template") or "")
    for repo in (CONTEXT.get("_repo_dir"), template):
        if repo and "://" not in str(repo) and not str(repo).startswith("git@"):
            found.append(Path(str(repo)).expanduser().resolve())
    if template:  # a URL cookiecutter cloned into its cookiecutters_dir
        try:
            from cookiecutter.config import get_user_config

            clones = Path(get_user_config()["cookiecutters_dir"]).expanduser()
            name = template.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
            found.append(clones / (name[:-4] if name.endswith(".git") else name))
        except Exception:  # noqa: BLE001 - no cookiecutter config: nothing to add
            pass
    return found


def installed_runtime(place: Path) -> tuple[str, Path] | None:
    if (place.parent / "pyproject.toml").is_file() and (place / "label_studio_ml").is_dir():
        return "source", place.parent  # a source tree (<project>/src), e.g. an editable install
    for info in sorted(place.glob("lsml_runtime-*.dist-info")):
        direct = info / "direct_url.json"
        if direct.is_file():
            url = json.loads(direct.read_text(encoding="utf-8"))
            if url.get("dir_info", {}).get("editable") and url["url"].startswith("file://"):
                project = Path(url["url"][len("file://") :])
                if (project / "pyproject.toml").is_file():
                    return "source", project
                continue
        if (info / "RECORD").is_file():
            return "installed", info
    return None


def load_toml(path: Path) -> dict:
    try:
        import tomllib  # Python 3.11+
    except ImportError:  # pragma: no cover - older interpreters: pip's own copy of tomli
        from pip._vendor import tomli as tomllib
    return tomllib.loads(path.read_text(encoding="utf-8"))


def source_files(project: Path) -> tuple[dict, dict[str, bytes]]:
    """(metadata headers, {archive name: bytes}) of a runtime source tree, the way its
    pyproject.toml tells hatchling to build the wheel (packages + force-include)."""
    meta = load_toml(project / "pyproject.toml")
    info = meta["project"]
    wheel = meta["tool"]["hatch"]["build"]["targets"]["wheel"]
    files: dict[str, bytes] = {}

    def add_tree(source: Path, arc: str) -> None:
        if source.is_file():
            files[arc] = source.read_bytes()
            return
        for path in sorted(source.rglob("*")):
            rel = path.relative_to(source)
            if path.is_file() and "__pycache__" not in rel.parts and path.suffix != ".pyc":
                files[f"{arc}/{rel.as_posix()}"] = path.read_bytes()

    for package in wheel["packages"]:
        add_tree(project / package, Path(package).name)
    for source, arc in wheel.get("force-include", {}).items():
        add_tree((project / source).resolve(), arc)
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {info['name']}",
        f"Version: {info['version']}",
        f"Summary: {info.get('description', '')}",
        f"License: {info.get('license', '')}",
        f"Requires-Python: {info.get('requires-python', '')}",
    ]
    lines += [f"Requires-Dist: {dep}" for dep in info.get("dependencies", [])]
    for extra, deps in info.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        for dep in deps:
            spec, _, marker = dep.partition(";")
            marker = f"({marker.strip()}) and " if marker.strip() else ""
            lines.append(f'Requires-Dist: {spec.strip()}; {marker}extra == "{extra}"')
    readme = project / str(info.get("readme", "README.md"))
    body = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    lines.append("Description-Content-Type: text/markdown")
    distinfo = f"{wheel_stem(info['name'], info['version'])}.dist-info"
    files[f"{distinfo}/METADATA"] = ("\n".join(lines) + "\n\n" + body).encode()
    scripts = info.get("scripts", {})
    if scripts:
        entries = "".join(f"{name} = {target}\n" for name, target in scripts.items())
        files[f"{distinfo}/entry_points.txt"] = f"[console_scripts]\n{entries}".encode()
    files[f"{distinfo}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: lsml-template post_gen_project\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n"
    )
    return {"name": info["name"], "version": info["version"]}, files


def installed_files(info: Path) -> tuple[dict, dict[str, bytes]]:
    """The same from an installed (non-editable) runtime: the files its RECORD lists."""
    site = info.parent
    headers = Parser().parsestr((info / "METADATA").read_text(encoding="utf-8"), headersonly=True)
    files: dict[str, bytes] = {}
    for line in (info / "RECORD").read_text(encoding="utf-8").splitlines():
        name = line.rsplit(",", 2)[0]
        parts = Path(name).parts
        if not name or ".." in parts or "__pycache__" in parts or name.endswith(".pyc"):
            continue  # console scripts (../../bin) and byte-code are made by pip on install
        if parts[0] == info.name and parts[-1] in SKIPPED_INFO:
            continue
        files[name] = (site / name).read_bytes()
    return {"name": headers["Name"], "version": headers["Version"]}, files


def wheel_stem(name: str, version: str) -> str:
    return f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}"


def build_wheel(meta: dict, files: dict[str, bytes], out_dir: Path) -> Path:
    """A reproducible py3-none-any wheel: sorted entries, fixed dates, a fresh RECORD."""
    stem = wheel_stem(meta["name"], meta["version"])
    distinfo = f"{stem}.dist-info"
    files = {arc: data for arc, data in files.items() if not arc.startswith(BUNDLED_TEMPLATE)}
    record = []
    for arc in sorted(files):
        digest = base64.urlsafe_b64encode(hashlib.sha256(files[arc]).digest()).rstrip(b"=")
        record.append(f"{arc},sha256={digest.decode()},{len(files[arc])}")
    record.append(f"{distinfo}/RECORD,,")
    entries = {**files, f"{distinfo}/RECORD": ("\n".join(record) + "\n").encode()}
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{stem}-py3-none-any.whl"
    with (
        tempfile.NamedTemporaryFile(dir=out_dir, suffix=".tmp", delete=False) as tmp,
        zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as wheel,
    ):
        # dist-info last, as the wheel spec recommends
        for arc in sorted(entries, key=lambda a: (a.startswith(distinfo), a)):
            item = zipfile.ZipInfo(arc, ZIP_DATE)
            item.external_attr = 0o644 << 16
            item.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(item, entries[arc])
    os.replace(tmp.name, target)
    return target


def vendor_runtime() -> str:
    """Line 1 of requirements.txt: the _runtime_requirement answer, else the vendored wheel."""
    requirements = Path("requirements.txt")
    lines = requirements.read_text(encoding="utf-8").splitlines()
    if str(CONTEXT.get("_runtime_requirement") or "").strip():
        return lines[0]
    found = find_runtime()
    if found is None:
        raise HookError(
            f"cannot find the {DIST} runtime to put in vendor/: this template's checkout has no "
            "runtime/ directory and this Python has no lsml-runtime installed. Run cookiecutter "
            "on a full checkout of lsml-template, use label-studio-ml init, or pass "
            '_runtime_requirement="<a pip requirement for lsml-runtime>"'
        )
    kind, where = found
    meta, files = source_files(where) if kind == "source" else installed_files(where)
    for old in VENDOR.glob("*.whl"):
        old.unlink()
    wheel = build_wheel(meta, files, VENDOR)
    lines[0] = f"./{VENDOR.as_posix()}/{wheel.name}"
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
RUNTIME_PINNED = {"flask", "werkzeug", "rq", "redis", "orjson", "prometheus-client", "gunicorn"}
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


def install_bundle(handoff: dict) -> list[str]:
    """Bring the model's neighbours; returns lines to print. Without a bundle (a single script,
    the example, a re-run) only drops the _wsgi.py shim nothing asked for."""
    bundle = handoff.get("bundle") or {}
    if not bundle or handoff.get("keep_model"):
        if not (handoff.get("keep_model") and MODEL_TESTS.is_dir()):  # a re-run keeps its shim
            remove(WSGI_SHIM)
        if handoff.get("keep_model"):  # a re-run: what an earlier bake brought stays the user's
            exclude_from_ruff(brought_earlier())
        return []
    root = Path(bundle["root"])
    notes = []
    brought = []
    for rel, dest in bundle["files"]:
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
        brought.append(dest)
    if any(Path(d).parts[:2] == MODEL_TESTS.parts for d in brought):
        (MODEL_TESTS / "__init__.py").touch()  # a package: its test_api.py is not ours
    alias = bundle.get("alias") or ""
    if alias:
        Path(f"{alias}.py").write_text(ALIAS_SHIM.format(alias=alias), encoding="utf-8")
        notes.append(f"{alias}.py imports model.py under its old name ({alias}).")
    if not bundle.get("wsgi_shim"):
        remove(WSGI_SHIM)
    if bundle.get("readme"):
        shutil.copyfile(root / bundle["readme"], MODEL_README)
        with Path("README.md").open("a", encoding="utf-8") as readme:
            readme.write(
                f"\n## The model's own notes\n\n[{MODEL_README}]({MODEL_README}) is the README that "
                f"came with the model ({bundle['readme']} of its folder).\n"
            )
    added = merge_into(
        Path("requirements.txt"),
        [root / r for r in bundle.get("requirements", [])],
        "# from the requirements files of the model's folder",
    )
    added_tests = merge_into(
        Path("requirements-test.txt"),
        [root / r for r in bundle.get("test_requirements", [])],
        "# from the test requirements of the model's folder",
        also=Path("requirements.txt"),
    )
    dropped = drop_runtime_pins(Path("requirements.txt"))
    exclude_from_ruff([d for d in brought if d.endswith(".py") or d.startswith(MODEL_TESTS.as_posix())])
    unignore_data(brought)
    if brought:
        notes.append(f"Brought from {root}: {', '.join(brought)}")
    if added or added_tests:
        notes.append(f"Merged requirements: {', '.join([*added, *added_tests])}")
    if dropped:
        notes.append(f"Left out of requirements.txt (the runtime installs its own): {', '.join(dropped)}")
    if bundle.get("replaced"):
        notes.append(f"Replaced by this repo's own files: {', '.join(bundle['replaced'])}")
    return notes


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
    using_example = origin == "the built-in example"
    added = merge_requirements(handoff)
    bundle_notes = install_bundle(handoff)
    sdk = add_sdk_requirement(handoff)
    if sdk:
        added.append(sdk)
    unlocked = write_locks(bool(sdk))
    wire_class(handoff.get("model_class", ""))
    has_config = write_label_config(handoff)
    prune(using_example)

    name = CONTEXT["backend_name"]
    port = CONTEXT["port"]
    print(f"Created {name}/ with model.py from {origin}.")
    if added:
        print(f"Added to requirements.txt: {', '.join(added)}")
    for note in bundle_notes:
        print(note)
    missing = undeclared_imports(handoff)
    if missing:
        print(
            f"WARNING: model.py imports {', '.join(missing)}, which requirements.txt does not list: "
            "add them, pinned, or the backend fails with ModuleNotFoundError on a fresh machine."
        )
    if unlocked:
        print(
            f"WARNING: requirements.lock does not pin {', '.join(unlocked)} yet: run `{LOCK_COMMAND}` "
            f"in {name}/ (it needs PyPI) to refresh the locks the Docker image and CI install from; "
            "tests/test_lock.py fails until then."
        )
    if not using_example and not has_config:
        print(
            "NOTE: tests/label_config.xml is the example Image + Choices config; "
            "edit it to match your model's labeling config."
        )
    print("Next:")
    if unlocked or not LOCKS[1].is_file():
        print(f"  cd {name} && pip install -r requirements.txt -r requirements-test.txt")
    else:
        print(f"  cd {name} && pip install --require-hashes -r requirements-test.lock")
    print("  python -m pytest")
    print(f"  label-studio-ml start . --port {port}    # or: docker compose up")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
