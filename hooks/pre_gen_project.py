"""Validate the answers and find the model class before any file is written.

Runs on cookiecutter's interpreter with the new, still empty project directory as cwd.
Standard library only. Every problem is one line on stderr,
``ERROR: <what> <value> <why>. <fix>.``, and exit status 1 (cookiecutter then deletes
the directory it created). On success it leaves one file, ``.lsml-pregen.json`` (a
``lsml_hooklib.Handoff``), in the project directory for post_gen_project.py, which reads and
deletes it.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import json
import keyword
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

# Every answer enters Python through tojson, never pasted into a string literal.
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
from lsml_hooklib import PROVIDED_MODULES, Bundle, Handoff, HookError  # noqa: E402

BASE_CLASS = "LabelStudioMLBase"
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{1,62}$")
PYTHON_VERSIONS = ("3.11", "3.12", "3.13")
MAX_WORKERS = 64
MAX_THREADS = 256
EXAMPLE_CLASS = "NewModel"
IMPORT_TIMEOUT = 120
MARKER = "@@lsml-detect@@"
# Kept equal to label_studio_ml.label_config.SDK_REQUIREMENT (a test checks): the hooks are
# stdlib-only and must not import the runtime.
SDK_MODULE = "label_studio_sdk"
SDK_REQUIREMENT = "label-studio-sdk>=2.1,<3"

# Runs in a child interpreter: import the script against label_studio_ml and report, as one
# JSON line after MARKER, the LabelStudioMLBase subclasses the script itself defines.
DETECT = r"""
import importlib.util, inspect, json, sys
path, marker = sys.argv[1], sys.argv[2]
def report(**out):
    sys.stdout.write("\n" + marker + json.dumps(out) + "\n")
    sys.stdout.flush()
    raise SystemExit(0)
try:
    from label_studio_ml.model import LabelStudioMLBase
except BaseException as exc:
    report(status="no_runtime", error="%s: %s" % (type(exc).__name__, exc))
name = "_lsml_user_model"
spec = importlib.util.spec_from_file_location(name, path)
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
try:
    spec.loader.exec_module(module)
except ImportError as exc:
    missing = getattr(exc, "name", None) or ""
    status = "runtime_import" if missing.split(".")[0] == "label_studio_ml" else "missing"
    version = ""
    if missing.split(".")[0] == "label_studio_sdk" and missing != "label_studio_sdk":
        try:  # the SDK is here, but not that module of it: written for another SDK version
            import label_studio_sdk
            from importlib.metadata import version as dist_version
            version = dist_version("label-studio-sdk")
        except Exception:
            version = ""
    report(status=status, module=missing, sdk=version, error="%s: %s" % (type(exc).__name__, exc))
except BaseException as exc:
    report(status="error", error="%s: %s" % (type(exc).__name__, exc))
found = [
    key for key, obj in vars(module).items()
    if inspect.isclass(obj) and issubclass(obj, LabelStudioMLBase)
    and obj is not LabelStudioMLBase and obj.__module__ == name
]
report(status="ok", classes=found)
"""


# ------------------------------------------------------------------ the user's own words
# `label-studio-ml init NAME --script PATH[:Class]` runs Cookiecutter for the user and sets
# LSML_COMMAND=init: its errors name init's arguments, plain Cookiecutter's name its variables.
INIT_WORDS = {"script": "--script", "backend_name": "backend name"}


def under_init() -> bool:
    return os.environ.get("LSML_COMMAND") == "init"


def say(cookiecutter: str, init: str) -> str:
    """The words for the command the user ran."""
    return init if under_init() else cookiecutter


def fail(what: str, value: object, why: str, fix: str) -> HookError:
    if under_init():
        what = INIT_WORDS.get(what, what)
    return HookError(f"{what} {value!r} {why}. {fix}.")


def cookiecutter_cli_args(pid: int) -> tuple[list[str], bool] | None:
    """The ``key=value`` arguments of the cookiecutter command line that runs this hook, and
    whether they are exact.

    The hook's parent is the cookiecutter process. Linux: ``/proc/<pid>/cmdline`` (exact);
    elsewhere ``ps`` (split at spaces, so a value with spaces may look like two arguments).
    None when the parent is not the cookiecutter CLI (its Python API, cruft, init, a test runner).
    """
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        argv, exact = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a], True
    except OSError:
        try:
            out = subprocess.run(
                ["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, timeout=10
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        argv, exact = out.split(), False
    for i, arg in enumerate(argv):
        if Path(arg).name in ("cookiecutter", "cookiecutter.exe") or (
            arg == "cookiecutter" and i and argv[i - 1] == "-m"
        ):
            return [a for a in argv[i + 1 :] if "=" in a and not a.startswith("-")], exact
    return None


def check_cli_keys(ctx: dict, pid: int) -> None:
    """``scirpt=model.py``: Cookiecutter drops a key its template does not have, silently.

    An error naming the nearest variable; a warning when the command line is not exact.
    """
    found = None if under_init() else cookiecutter_cli_args(pid)
    if not found:
        return
    args, exact = found
    known = [key for key in ctx if not key.startswith("_")]
    for arg in args:
        key, value = arg.split("=", 1)
        if key.isidentifier() and key not in ctx:
            near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"Did you mean {near[0]}=...? " if near else ""
            message = (
                f"{key} {value!r} is not a variable of this template (Cookiecutter would ignore "
                f"it). {hint}The variables are: {', '.join(known)}."
            )
            if not exact:
                warn(message)
                continue
            raise HookError(message)


def warn(message: str) -> None:
    print(f"WARNING: {message}", file=sys.stderr)


def validate_answers(ctx: dict) -> None:
    name = str(ctx.get("backend_name", ""))
    if not NAME_RE.match(name):
        raise fail(
            "backend_name",
            name,
            "is not a valid name",
            "Use 2-63 characters: a lowercase letter, then lowercase letters, digits, '-' or '_'"
            + say(" (e.g. backend_name=my_backend)", " (e.g. label-studio-ml init my_backend)"),
        )
    model_class = str(ctx.get("model_class", ""))
    if model_class and (not model_class.isidentifier() or keyword.iskeyword(model_class)):
        raise fail(
            "model_class",
            model_class,
            "is not a Python class name",
            "Use an identifier such as MyModel, or leave it empty to detect it",
        )
    port = str(ctx.get("port", ""))
    if not (port.isdigit() and 1 <= int(port) <= 65535):
        raise fail("port", port, "is not a TCP port", "Use a number from 1 to 65535 (e.g. 9090)")
    version = str(ctx.get("python_version", ""))
    if version not in PYTHON_VERSIONS:
        raise fail("python_version", version, "is not supported", f"Use one of {', '.join(PYTHON_VERSIONS)}")
    gpu = str(ctx.get("gpu", "no"))
    if gpu not in ("no", "yes"):
        raise fail("gpu", gpu, "is not yes or no", "Use gpu=yes for an NVIDIA GPU image, else gpu=no")
    for key, most, example in (("workers", MAX_WORKERS, "2"), ("threads", MAX_THREADS, "4")):
        value = str(ctx.get(key, ""))
        if not (value.isdigit() and 1 <= int(value) <= most):
            why = f"is not a whole number from 1 to {most}"
            raise fail(key, value, why, f"Use e.g. {key}={example}")
    if gpu == "yes" and int(str(ctx.get("workers"))) > 1:
        warn(
            f"workers={ctx.get('workers')} with gpu=yes: every uWSGI process loads its own copy of the "
            "models into GPU memory; one process with several threads is the usual shape"
        )


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


def runtime_src(ctx: dict) -> Path | None:
    """The template's own runtime source (<template repo>/runtime/src), when there is one.

    None: import against whatever label_studio_ml the interpreter has installed.
    """
    candidates = [
        Path(repo).expanduser().resolve() / "runtime" / "src"
        for repo in (ctx.get("_repo_dir"), ctx.get("_template"))
        if repo
    ]
    # label-studio-ml init says where its own package lives (a template bundled in a wheel).
    if os.environ.get("LSML_RUNTIME_SRC"):
        candidates.append(Path(os.environ["LSML_RUNTIME_SRC"]))
    for src in candidates:
        if (src / "label_studio_ml").is_dir():
            return src
    return None


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


def import_classes(script: Path, ctx: dict) -> list[str] | None:
    """Import the script in a child interpreter; None means "use the syntax tree"."""
    env = dict(os.environ)
    paths = [str(script.parent)]
    src = runtime_src(ctx)
    if src:
        paths.insert(0, str(src))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", DETECT, str(script), MARKER],
            cwd=str(script.parent),
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=IMPORT_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        warn(f"importing {script} took over {IMPORT_TIMEOUT} s; found the class by reading it.")
        return None
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise fail("script", str(script), f"could not be imported ({tail})", "Fix the script")
    return detected_classes(script, json.loads(lines[-1][len(MARKER) :]))


def detected_classes(script: Path, out: dict) -> list[str] | None:
    """The classes the child found; None (with a warning) to read the syntax tree instead."""
    status = out["status"]
    if status == "ok":
        return out["classes"]
    if status == "missing":
        module = out["module"]
        if out.get("sdk"):
            warn(
                f"script {str(script)!r} imports {module!r}, which label-studio-sdk {out['sdk']} "
                "does not have (the script was written for another SDK version; in 2.x "
                "PredictionValue is in label_studio_sdk.label_interface.objects); found the model "
                "class by reading the file instead of importing it."
            )
            return None
        later = ""
        if module.split(".")[0] == SDK_MODULE:
            later = f" (the generated requirements.txt installs {SDK_REQUIREMENT})"
        warn(
            f"script {str(script)!r} needs {module!r}, which is not installed here{later}; "
            "found the model class by reading the file instead of importing it."
        )
        return None
    if status == "no_runtime":
        warn(
            f"label_studio_ml is not importable here ({out['error']}); "
            "found the model class by reading the script instead of importing it."
        )
        return None
    if status == "runtime_import":
        raise fail(
            "script",
            str(script),
            f"imports something the runtime does not provide ({out['error']})",
            "Import LabelStudioMLBase from label_studio_ml.model",
        )
    raise fail("script", str(script), f"raised {out['error']} on import", "Fix the script and run again")


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
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    try:
        from importlib.metadata import packages_distributions

        dists = packages_distributions()
    except Exception:  # noqa: BLE001 - a broken metadata entry must not stop generation
        dists = {}
    found = {}
    for name in sorted(names):
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


def inspect_script(raw: str, ctx: dict) -> Handoff:
    """Resolve, check and import the script; returns the handoff for post_gen."""
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
    handoff = Handoff(
        script=str(script),
        model_class=chosen,
        label_config=label_config_of(tree),
        needs_sdk=uses_sdk(tree),
        sdk_requirement=SDK_REQUIREMENT,
        imports=third_party_imports(tree, script.parent),
        requirements=str(requirements) if requirements.is_file() else "",
    )
    return with_model_bundle(handoff, script)


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
        if wanted not in candidates:
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
        return wanted
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


def keep_existing_model(ctx: dict) -> Handoff:
    """Regenerating over an existing project (init --force): keep and re-inspect its model.py."""
    return dataclasses.replace(inspect_script(str(Path("model.py").resolve()), ctx), keep_model=True)


def plan(ctx: dict) -> Handoff:
    validate_answers(ctx)
    raw = str(ctx.get("script", "")).strip()
    if raw:
        return inspect_script(raw, ctx)
    if Path("model.py").is_file():
        return keep_existing_model(ctx)
    return Handoff(uses_example=True, model_class=str(ctx.get("model_class") or EXAMPLE_CLASS))


# ------------------------------------------------------------------ a model with its neighbours
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
            f"Pass the model's file as script={folder / 'model.py'} (or folder/file.py:Class)",
        )
    names = ", ".join(p.name for p in found)
    raise fail(
        "script",
        str(folder),
        f"is a folder with several model files ({names})",
        f"Name one: script={found[0]} or script={folder}:<Class>",
    )


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


def local_modules(tree: ast.Module, root: Path) -> set[str]:
    """Top-level names of the absolute imports that are modules or packages in ``root``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if (root / f"{n}.py").is_file() or (root / n).is_dir()}


def parse_file(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        warn(f"{path} is not valid Python; brought as it is, without following its imports.")
        return None


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


def with_model_bundle(handoff: Handoff, script: Path) -> Handoff:
    """Add the model's neighbours to the handoff (not for the project's own model.py on a
    re-run), and count the third-party imports of every module brought, not only the model's."""
    if script.parent.resolve() == Path.cwd().resolve():
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


def main() -> int:
    try:
        check_cli_keys(CONTEXT, os.getppid())
        handoff = plan(CONTEXT)
    except HookError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    handoff.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
