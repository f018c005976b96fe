"""The answers, checked before anything is generated: the name, the port, the worker shape,
and (from cookiecutter's command line) a ``key=value`` whose key the template does not have.

Imported by pre_gen_project.py from the template's ``hooks/`` directory; not rendered by Jinja.
Standard library and lsml_hooklib only, Python 3.9 syntax (the hooks run on the user's
interpreter).
"""

from __future__ import annotations

import difflib
import keyword
import re
import subprocess
from pathlib import Path

from lsml_hooklib import HookError, fail, say, under_init, warn

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{1,62}$")
PYTHON_VERSIONS = ("3.11", "3.12", "3.13")
MAX_WORKERS = 64
MAX_THREADS = 256


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


def validate_answers(ctx: dict) -> None:
    check_names(ctx)
    check_serving(ctx)


def check_names(ctx: dict) -> None:
    """``backend_name`` and ``model_class``."""
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


def check_serving(ctx: dict) -> None:
    """The port, the image's Python, the GPU answer and the worker shape."""
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
