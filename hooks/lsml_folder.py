"""The model's folder: what comes along with the model file (docs/hooks.md, "What a bake
brings"), as a ``lsml_hooklib.Bundle`` for post_gen_project.py to put in place.

Imported by the hooks from the template's ``hooks/`` directory; not rendered by Jinja.
Standard library and the hooks' own modules only, Python 3.9 syntax.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
from pathlib import Path

from lsml_hooklib import Bundle, Handoff, fail, say, warn
from lsml_inspect import (
    BASE_CLASS,
    ast_classes,
    label_config_of,
    local_modules,
    parse_file,
    third_party_imports,
)

# The model's folder comes along with what the model needs (docs/hooks.md, "What a bake brings"):
# the modules and packages it and its tests import from the folder, the non-Python files beside
# them, its requirements*.txt, tests and README; never caches, virtualenvs, VCS data, build output
# or secrets; no file over BUNDLE_MAX_MB. ``.lsmlinclude`` beside the model overrides the rule.
INCLUDE_FILE = ".lsmlinclude"
BUNDLE_MAX_MB = 10
BUNDLE_MAX_ENTRIES = 5000
MODEL_TESTS = "tests/model_tests"
# Never brought: directories by name (plus any directory holding a virtualenv's pyvenv.cfg)
SKIPPED_DIRS = {
    ".git", ".hg", ".svn", ".venv", "venv", "env", "__pycache__", ".pytest_cache", ".ruff_cache",
    ".mypy_cache", ".tox", ".nox", ".ipynb_checkpoints", "build", "dist", "node_modules", "logs",
    ".idea", ".vscode", "htmlcov", ".eggs",
}  # fmt: skip
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".egg-info", ".swp", "~")
# Upstream boilerplate the generated repo has its own version of (requirements are merged).
REPLACED = {
    "Dockerfile", "docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml",
    ".dockerignore", ".gitignore", "_wsgi.py", "pyproject.toml", "setup.py", "setup.cfg",
    "uwsgi.ini", "supervisord.conf",
}  # fmt: skip
# What the generated repo holds at its top level: a module or file of the model's must not take
# one of these names (tests/template checks this list against the template).
GENERATED_NAMES = {
    "wsgi.py", "rq_settings.py", "vendor", "tests", ".github",
    ".pre-commit-config.yaml", ".gitattributes", "requirements.txt", "requirements-test.txt",
    "README.md", "example_model.py", "k8s", "lock.sh", "requirements.lock",
    "requirements-test.lock", "renovate.json", ".locks-sdk", "docker-entrypoint.sh",
}  # fmt: skip
REQUIREMENTS_RE = re.compile(r"^requirements([-_.][\w.-]+)?\.txt$", re.I)
TEST_REQUIREMENTS_RE = re.compile(r"^requirements[-_.](test|tests|dev)\.txt$", re.I)
README_RE = re.compile(r"^readme(\.(md|rst|txt))?$", re.I)
TEST_FILE_RE = re.compile(r"^(test_.*|.*_test|conftest)\.py$")


def find_model_file(folder: Path, wanted: str) -> Path:
    """``script=<folder>``: the one top-level .py file defining a LabelStudioMLBase subclass
    (``wanted`` when named), ``model.py`` first; found from the syntax tree, nothing imported."""
    found = model_files(folder, wanted)
    preferred = folder / "model.py"
    if preferred in found or (not found and preferred.is_file()):
        return preferred
    if len(found) == 1:
        return found[0]
    if not found:
        raise fail(
            "script",
            str(folder),
            f"is a folder whose .py files define no {BASE_CLASS} subclass"
            + (f" named {wanted}" if wanted else ""),
            say(
                f"Pass the model's file as script={folder / 'model.py'} (or folder/file.py:Class)",
                f"Pass the model's file as --script {folder / 'model.py'} (or --script folder/file.py:Class)",
            ),
        )
    names = ", ".join(p.name for p in found)
    raise fail(
        "script",
        str(folder),
        f"is a folder with several model files ({names})",
        say(
            f"Name one: script={found[0]} or script={folder}:<Class>",
            f"Name one: --script {found[0]} or --script {folder}:<Class>",
        ),
    )


def model_files(folder: Path, wanted: str) -> list[Path]:
    """The folder's top-level .py files (not tests, not _wsgi.py) that define a model class
    (``wanted``, when named)."""
    found: list[Path] = []
    for path in sorted(folder.glob("*.py")):
        if path.name == "_wsgi.py" or TEST_FILE_RE.match(path.name):
            continue
        try:
            classes = ast_classes(ast.parse(path.read_text(encoding="utf-8")))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        if classes and (not wanted or wanted in classes):
            found.append(path)
    return found


def include_rules(root: Path) -> list[tuple[bool, str]]:
    """``.lsmlinclude``: one glob per line relative to the model's folder; ``!glob`` leaves out."""
    path = root / INCLUDE_FILE
    if not path.is_file():
        return []
    rules = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            exclude = line.startswith("!")
            rules.append((not exclude, line.lstrip("!").strip().strip("/")))
    return rules


def override(rel: str, rules: list[tuple[bool, str]]) -> bool | None:
    """The last ``.lsmlinclude`` rule matching ``rel`` (or a folder above it): True = bring,
    False = leave out, None = no rule matches."""
    import fnmatch

    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = None
    for include, pattern in rules:
        if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes):
            verdict = include
    return verdict


def skipped_dir(path: Path) -> bool:
    return (
        path.name in SKIPPED_DIRS or path.name.endswith(SKIPPED_SUFFIXES) or (path / "pyvenv.cfg").is_file()
    )


def walk_folder(root: Path, rules: list[tuple[bool, str]]) -> tuple[list[str], bool]:
    """Every file under ``root`` not in a skipped folder (``.lsmlinclude`` can bring one back),
    as sorted relative paths; True when the walk stopped at BUNDLE_MAX_ENTRIES."""
    files: list[str] = []
    for current, dirs, names in os.walk(root):
        here = Path(current)
        keep = []
        for d in sorted(dirs):
            rel = (here / d).relative_to(root).as_posix()
            if (skipped_dir(here / d) or d.startswith(".")) and override(rel, rules) is not True:
                continue
            if override(rel, rules) is False:
                continue
            keep.append(d)
        dirs[:] = keep
        for name in sorted(names):
            files.append((here / name).relative_to(root).as_posix())
            if len(files) >= BUNDLE_MAX_ENTRIES:
                return sorted(files), True
    return sorted(files), False


def code_only_listing(root: Path, rules: list[tuple[bool, str]]) -> list[str]:
    """The listing of a folder too big to walk: its top-level files, its packages (folders
    with an ``__init__.py``) and its tests/ folder."""
    files = [p.name for p in root.iterdir() if p.is_file()]
    for sub in sorted(root.iterdir()):
        if sub.is_dir() and ((sub / "__init__.py").is_file() or sub.name in ("tests", "test")):
            found, _ = walk_folder(sub, [])
            files += [
                f"{sub.name}/{rel}" for rel in found if override(f"{sub.name}/{rel}", rules) is not False
            ]
    return sorted(files)


def test_destination(rel: str) -> str | None:
    """Where a test file of the model's goes: its tests/ (or test/) folder and its top-level
    test_*.py, *_test.py and conftest.py all land in tests/model_tests/."""
    parts = rel.split("/")
    if parts[0] in ("tests", "test") and len(parts) > 1:
        return f"{MODEL_TESTS}/{'/'.join(parts[1:])}"
    if len(parts) == 1 and TEST_FILE_RE.match(rel):
        return f"{MODEL_TESTS}/{rel}"
    return None


@dataclasses.dataclass
class Folder:
    """The model's folder as model_bundle sees it."""

    root: Path
    rules: list[tuple[bool, str]]
    files: list[str]  # sorted paths relative to root
    truncated: bool  # too many files: only code, requirements, README and tests listed
    tests: dict[str, str]  # {test file: where it goes}
    python: set[str]  # the modules the model and its tests import, transitively
    alias: bool  # one of those (or a test) imports the model file by its own name
    foreign: set[str]  # subfolders with code the model does not import


def model_bundle(script: Path) -> Bundle:
    """What to bring from the model's folder besides the model file (which becomes model.py)."""
    folder = read_folder(script)
    bundle = Bundle(root=str(folder.root))
    bring: dict[str, str] = {}
    for rel in folder.files:
        if rel != script.name:
            sort_file(folder, rel, bundle, bring)
    check_collisions(folder.root, bring, script.stem)
    bundle.files = sorted(bring.items()) + beside_moved_tests(folder.root, folder.tests, bring)
    if folder.alias and script.stem != "model":
        bundle.alias = script.stem
    bundle.wsgi_shim = (folder.root / "_wsgi.py").is_file() or any(
        d.startswith(MODEL_TESTS) for d in bring.values()
    )
    return bundle


def read_folder(script: Path) -> Folder:
    root = script.parent
    rules = include_rules(root)
    files, truncated = walk_folder(root, rules)
    if truncated:
        files = code_only_listing(root, rules)
        warn(
            f"{root} holds over {BUNDLE_MAX_ENTRIES} files; brought only what the model imports, "
            f"its requirements, README and tests. List the data files it reads in {root / INCLUDE_FILE}."
        )
    tests = {rel: dest for rel in files if (dest := test_destination(rel))}
    python, alias = imported_modules(root, files, script, tests)
    # A subfolder with Python files of which the model imports none is another project's
    # (another model, a tool set): left out whole, its data too.
    foreign = {
        rel.rsplit("/", 1)[0]
        for rel in files
        if rel.endswith(".py") and "/" in rel and rel not in python and rel not in tests
    }
    foreign = {d for d in foreign if not any(p.startswith(f"{d}/") for p in python)}
    return Folder(root, rules, files, truncated, tests, python, alias, foreign)


def imported_modules(
    root: Path, files: list[str], script: Path, tests: dict[str, str]
) -> tuple[set[str], bool]:
    """What the model and its tests import from the folder, followed transitively (a package
    it imports comes whole); and whether one of them imports the model by its file's name."""
    python: set[str] = set()
    queue = [script.name, *[rel for rel in tests if rel.endswith(".py")]]
    seen: set[str] = set()
    by_name = False
    while queue:
        rel = queue.pop()
        tree = None if rel in seen else parse_file(root / rel)
        seen.add(rel)
        names = local_modules(tree, root) if tree is not None else set()
        by_name = by_name or (script.stem in names and rel != script.name)
        # the model itself (under its own name) and the generated repo's own _wsgi.py stay out
        for name in sorted(names - {script.stem, "_wsgi"}):
            if (root / f"{name}.py").is_file():
                found = [f"{name}.py"]
            else:
                found = [f for f in files if f.startswith(f"{name}/") and f.endswith(".py")]
            for module in found:
                if module not in python and module not in tests:
                    python.add(module)
                    queue.append(module)
    return python, by_name


def sort_file(folder: Folder, rel: str, bundle: Bundle, bring: dict[str, str]) -> None:
    """File ``rel`` of the folder: brought (into ``bring``), merged, or left out."""
    verdict = override(rel, folder.rules)
    if left_out(folder, rel, verdict) or claimed_by_name(rel, verdict, bundle):
        return
    dest = destination(folder, rel, verdict)
    if dest is None:
        return
    if too_big(folder.root, rel, verdict):
        bundle.left_out.append(rel)
        return
    bring[rel] = dest


def left_out(folder: Folder, rel: str, verdict: bool | None) -> bool:
    if verdict is False or (rel.startswith("data/models/") and verdict is None):
        return True  # data/models: a model store the model's own runs left (MODEL_DIR)
    foreign = any(rel.startswith(f"{d}/") for d in folder.foreign)
    return verdict is None and rel not in folder.tests and foreign


def claimed_by_name(rel: str, verdict: bool | None, bundle: Bundle) -> bool:
    """Top-level requirements files (merged), the README and upstream boilerplate (replaced)."""
    if "/" in rel or verdict is not None:
        return False
    if REQUIREMENTS_RE.match(rel):
        (bundle.test_requirements if TEST_REQUIREMENTS_RE.match(rel) else bundle.requirements).append(rel)
    elif README_RE.match(rel) and not bundle.readme:
        bundle.readme = rel
    elif rel in REPLACED:
        bundle.replaced.append(rel)
    else:
        return False
    return True


def destination(folder: Folder, rel: str, verdict: bool | None) -> str | None:
    """Where ``rel`` goes in the repo, or None to leave it out."""
    name = rel.rsplit("/", 1)[-1]
    if name.endswith(SKIPPED_SUFFIXES) or (name.startswith(".") and verdict is None):
        return None
    if rel in folder.tests:
        return folder.tests[rel]
    if verdict is None and folder.truncated and not rel.endswith(".py"):
        return None  # too big a folder to tell the model's data from the rest
    if verdict is None and rel.endswith(".py") and rel not in folder.python:
        return None  # code nothing imports: another script, a tool (list it to bring it)
    return rel


def too_big(root: Path, rel: str, verdict: bool | None) -> bool:
    size = (root / rel).stat().st_size
    if size <= BUNDLE_MAX_MB * 1024 * 1024 or verdict is True:
        return False
    warn(
        f"{root / rel} is {size / 1024 / 1024:.1f} MB, over the {BUNDLE_MAX_MB} MB limit for "
        "files baked into the repo: left out. Put it in the weights folder (MODEL_ROOT, "
        "./weights, mounted by docker compose) or download it at image build or first "
        f"start (docs/hooks.md); or list it in {root / INCLUDE_FILE} to bake it in anyway."
    )
    return True


def beside_moved_tests(root: Path, tests: dict[str, str], bring: dict[str, str]) -> list[tuple[str, str]]:
    """A top-level test file moves to tests/model_tests/; what it names as a path (a string
    argument of a call, ``os.path.join(os.path.dirname(__file__), "test_images", ...)``, or
    after ``/``) among the data brought to the top goes there too, so its paths relative to
    ``__file__`` still work."""
    named: set[str] = set()
    for rel in tests:
        if "/" not in rel and rel.endswith(".py"):
            tree = parse_file(root / rel)
            for node in ast.walk(tree) if tree is not None else ():
                if isinstance(node, ast.Call):
                    parts = node.args
                elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                    parts = [node.right]
                else:
                    continue
                for part in parts:
                    if isinstance(part, ast.Constant) and isinstance(part.value, str):
                        named.add(part.value.strip("./").split("/")[0])
    return [
        (rel, f"{MODEL_TESTS}/{rel}")
        for rel, dest in sorted(bring.items())
        if dest == rel and not rel.endswith(".py") and rel.split("/")[0] in named
    ]


def check_collisions(root: Path, bring: dict[str, str], stem: str) -> None:
    """A file of the model's may not take a name the generated repo needs for itself."""
    for rel, dest in bring.items():
        top = dest.split("/")[0]
        clash = ""
        if top in GENERATED_NAMES and not dest.startswith(MODEL_TESTS):
            clash = f"{top} is a file of the generated repo"
        elif dest == "model.py" or (dest.startswith("model/") and stem != "model"):
            clash = "model.py is where the model goes"
        elif dest.startswith("data/models/") or dest == "data/models":
            clash = "data/models is the model store (MODEL_DIR)"
        if clash:
            raise fail(
                "script",
                str(root / rel),
                f"cannot be brought along: {clash}",
                f"Rename it in {root}, or leave it out with '!{rel}' in {root / INCLUDE_FILE}",
            )


def folder_label_config(root: Path, bundle: Bundle) -> str | None:
    """A model without a labeling config of its own: the folder's label_config.xml, else one
    its tests carry (a module-level ``*config*`` string or a docstring with ``<View>``)."""
    xml = root / "label_config.xml"
    if xml.is_file():
        text = xml.read_text(encoding="utf-8").strip()
        if text.startswith("<View"):
            return text + "\n"
    for rel, dest in bundle.files:
        if dest.startswith(MODEL_TESTS) and rel.endswith(".py"):
            tree = parse_file(root / rel)
            config = label_config_of(tree) if tree is not None else None
            if config:
                return config
    return None


def with_model_bundle(handoff: Handoff) -> Handoff:
    """Add the model's neighbours to the handoff (not for the example, nor for the project's own
    model.py on a re-run), and count the third-party imports of every module brought, not only
    the model's."""
    script = Path(handoff.script)
    if not handoff.script or script.parent.resolve() == Path.cwd().resolve():
        return handoff
    bundle = model_bundle(script)
    imports = dict(handoff.imports)
    for rel, dest in bundle.files:
        if rel.endswith(".py") and not dest.startswith(MODEL_TESTS):
            tree = parse_file(script.parent / rel)
            if tree is not None:
                for module, dist in third_party_imports(tree, script.parent).items():
                    imports.setdefault(module, dist)
    label_config = handoff.label_config or folder_label_config(script.parent, bundle)
    if "requirements.txt" in bundle.requirements:
        bundle.requirements.remove("requirements.txt")  # merged by merge_requirements already
    return dataclasses.replace(
        handoff, label_config=label_config, imports=dict(sorted(imports.items())), bundle=bundle
    )
