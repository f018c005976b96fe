"""Validate the answers and find the model class before any file is written.

Runs on cookiecutter's interpreter with the new, still empty project directory as cwd.
Standard library only. Every problem is one line on stderr,
``ERROR: <what> <value> <why>. <fix>.``, and exit status 1 (cookiecutter then deletes
the directory it created). On success it leaves one file, ``.lsml-pregen.json``, in the
project directory for post_gen_project.py, which reads and deletes it.
"""

from __future__ import annotations

import ast
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

HANDOFF = ".lsml-pregen.json"
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


class HookError(Exception):
    """One user-facing line: what, value, why, and how to fix it."""


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
    out = json.loads(lines[-1][len(MARKER) :])
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


# Modules every generated backend installs with the runtime (its requirements.txt pins them).
PROVIDED_MODULES = {
    "label_studio_ml", "label_studio_sdk", "flask", "werkzeug", "rq", "redis", "orjson",
    "prometheus_client", "uwsgi", "supervisor",
}  # fmt: skip


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


def inspect_script(raw: str, ctx: dict) -> dict:
    """Resolve, check and import the script; returns the handoff for post_gen."""
    path_text, script_class = split_script(raw)
    model_class = str(ctx.get("model_class", ""))
    if script_class and model_class and script_class != model_class:
        raise fail(
            "script",
            raw,
            f"names class {script_class} but model_class is {model_class}",
            "Give the class once",
        )
    wanted = script_class or model_class
    script = resolve_script(path_text, ctx)
    if not script.exists():
        if is_rerun(ctx):
            warn(f"script {str(script)!r} no longer exists; keeping the existing model.py.")
            if Path("model.py").is_file():
                return keep_existing_model(ctx)
            return {"script": "", "keep_model": True, "model_class": wanted}
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
    if not script.is_file():
        raise fail("script", str(script), "is not a file", "Pass the model's .py file, not a folder")
    if script.suffix != ".py":
        raise fail("script", str(script), "is not a Python file", "Pass a .py file")
    try:
        source = script.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(script))
    except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        where = f" at line {line}" if line else ""
        raise fail(
            "script", str(script), f"is not valid Python{where} ({type(exc).__name__})", "Fix it"
        ) from exc
    candidates = import_classes(script, ctx)
    if candidates is None:
        candidates = ast_classes(tree)
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
        chosen = wanted
    elif len(candidates) == 1:
        chosen = candidates[0]
    elif not candidates:
        raise fail(
            "script",
            str(script),
            f"defines no {BASE_CLASS} subclass",
            f"Subclass label_studio_ml.model.{BASE_CLASS} in it",
        )
    else:
        raise fail(
            "script",
            str(script),
            f"defines several {BASE_CLASS} subclasses ({', '.join(candidates)})",
            say(
                f"Pick one with script={path_text}:{candidates[0]} or model_class={candidates[0]}",
                f"Pick one with --script {script}:{candidates[0]}",
            ),
        )
    requirements = script.parent / "requirements.txt"
    return {
        "script": str(script),
        "keep_model": False,
        "model_class": chosen,
        "label_config": label_config_of(tree),
        "needs_sdk": uses_sdk(tree),
        "sdk_requirement": SDK_REQUIREMENT,
        "imports": third_party_imports(tree, script.parent),
        "requirements": str(requirements) if requirements.is_file() else "",
    }


def keep_existing_model(ctx: dict) -> dict:
    """Regenerating over an existing project (init --force): keep and re-inspect its model.py."""
    return {**inspect_script(str(Path("model.py").resolve()), ctx), "keep_model": True}


def plan(ctx: dict) -> dict:
    validate_answers(ctx)
    raw = str(ctx.get("script", "")).strip()
    if raw:
        return inspect_script(raw, ctx)
    if Path("model.py").is_file():
        return keep_existing_model(ctx)
    return {"script": "", "keep_model": False, "model_class": ctx.get("model_class") or EXAMPLE_CLASS}


def main() -> int:
    try:
        check_cli_keys(CONTEXT, os.getppid())
        handoff = plan(CONTEXT)
    except HookError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    Path(HANDOFF).write_text(json.dumps(handoff, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
