"""What the hooks share: their one error type and how its lines are worded, the handoff between
them, and the packages the template provides.

Not a hook itself (cookiecutter runs only ``pre_gen_project`` and ``post_gen_project``): each
hook imports it from the template's ``hooks/`` directory. Not rendered by Jinja: no answers
here. Standard library only, Python 3.9 syntax (the hooks run on the user's interpreter).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

HANDOFF = Path(".lsml-pregen.json")


class HookError(Exception):
    """One user-facing line; the hook prints it as ``ERROR: <line>`` and exits 1."""


def remove(path: Path) -> None:
    """Delete a file or directory; a path that is already gone is fine."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


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
    """``<what> <value> <why>. <fix>.``, ``what`` being the answer as the user's command names it."""
    if under_init():
        what = INIT_WORDS.get(what, what)
    return HookError(f"{what} {value!r} {why}. {fix}.")


def warn(message: str) -> None:
    print(f"WARNING: {message}", file=sys.stderr)


# ------------------------------------------------------------------ the packages the template provides
# By distribution name, with the module each one is imported as.
# The template's own requirements.txt installs these: a script's requirement line for one of
# them is dropped (an old label-studio-ml line would replace the runtime).
TEMPLATE_PACKAGES = {
    "lsml-runtime": "label_studio_ml",
    "label-studio-ml": "label_studio_ml",
    "uwsgi": "uwsgi",
    "supervisor": "supervisor",
}
# The runtime installs these at the versions it needs (runtime/pyproject.toml and flask's
# werkzeug): a model folder's pins of them are left out, and said so.
RUNTIME_PACKAGES = {
    "flask": "flask",
    "werkzeug": "werkzeug",
    "rq": "rq",
    "redis": "redis",
    "orjson": "orjson",
    "prometheus-client": "prometheus_client",
}
# Added to requirements.txt, as SDK_REQUIREMENT, when the script uses it.
SDK_PACKAGE = ("label-studio-sdk", "label_studio_sdk")
# Kept equal to label_studio_ml.label_config.SDK_REQUIREMENT (a test checks; scripts/lock.sh
# reads this line): the hooks are stdlib-only and must not import the runtime.
SDK_REQUIREMENT = "label-studio-sdk>=2.1,<3"
# Modules a script may import without listing them in requirements.txt.
PROVIDED_MODULES = frozenset([*TEMPLATE_PACKAGES.values(), *RUNTIME_PACKAGES.values(), SDK_PACKAGE[1]])
# A requirement line naming one of TEMPLATE_PACKAGES (any of - _ . as the separator).
PROVIDED = re.compile(
    r"^\s*(" + "|".join(n.replace("-", "[-_.]") for n in TEMPLATE_PACKAGES) + r")\s*([<>=!~;\[@]|$)",
    re.I,
)


# ------------------------------------------------------------------ the handoff
@dataclass
class Bundle:
    """What comes from the model's folder besides the model file (docs/hooks.md)."""

    root: str
    files: List[Tuple[str, str]] = field(default_factory=list)  # (path in the folder, in the repo)
    requirements: List[str] = field(default_factory=list)
    test_requirements: List[str] = field(default_factory=list)
    readme: str = ""
    replaced: List[str] = field(default_factory=list)
    left_out: List[str] = field(default_factory=list)
    alias: str = ""
    wsgi_shim: bool = False


@dataclass
class Handoff:
    """What pre_gen_project found, for post_gen_project: written as JSON, read once, deleted."""

    script: str = ""  # the model file to install as model.py ("" = none)
    keep_model: bool = False  # a re-run: the project's model.py stays
    uses_example: bool = False  # no model of the user's: the built-in example becomes model.py
    model_class: str = ""
    label_config: Optional[str] = None
    needs_sdk: bool = False
    sdk_requirement: str = ""
    imports: Dict[str, str] = field(default_factory=dict)  # {module: distribution}
    requirements: str = ""  # the script's sibling requirements.txt ("" = none)
    bundle: Optional[Bundle] = None

    def write(self) -> None:
        HANDOFF.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def take(cls) -> Optional[Handoff]:
        """The handoff pre_gen left in the project (deleting it), or None."""
        if not HANDOFF.is_file():
            return None
        data = json.loads(HANDOFF.read_text(encoding="utf-8"))
        HANDOFF.unlink()
        bundle = data.pop("bundle", None)
        if bundle:
            bundle["files"] = [(rel, dest) for rel, dest in bundle["files"]]
        return cls(**data, bundle=Bundle(**bundle) if bundle else None)
