"""Find the model classes by importing the script in a child interpreter, against the
template's own runtime when it has one; None (with a WARNING) when only reading it will do.

Imported by lsml_script.py from the template's ``hooks/`` directory; not rendered by Jinja.
Standard library and the hooks' own modules only, Python 3.9 syntax.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lsml_hooklib import SDK_REQUIREMENT, fail, warn
from lsml_inspect import SDK_MODULE

IMPORT_TIMEOUT = 120
MARKER = "@@lsml-detect@@"

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
        warn_missing(script, out["module"], out.get("sdk"))
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


def warn_missing(script: Path, module: str, sdk: str | None) -> None:
    """The script imports ``module``, which is not here (or, ``sdk``: not in this SDK)."""
    if sdk:
        warn(
            f"script {str(script)!r} imports {module!r}, which label-studio-sdk {sdk} "
            "does not have (the script was written for another SDK version; in 2.x "
            "PredictionValue is in label_studio_sdk.label_interface.objects); found the model "
            "class by reading the file instead of importing it."
        )
        return
    later = ""
    if module.split(".")[0] == SDK_MODULE:
        later = f" (the generated requirements.txt installs {SDK_REQUIREMENT})"
    warn(
        f"script {str(script)!r} needs {module!r}, which is not installed here{later}; "
        "found the model class by reading the file instead of importing it."
    )
