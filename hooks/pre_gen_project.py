"""Validate the answers and find the model class before any file is written.

Runs on cookiecutter's interpreter with the new, still empty project directory as cwd.
Standard library only. Every problem is one line on stderr,
``ERROR: <what> <value> <why>. <fix>.``, and exit status 1 (cookiecutter then deletes
the directory it created). On success it leaves one file, ``.lsml-pregen.json`` (a
``lsml_hooklib.Handoff``), in the project directory for post_gen_project.py, which reads and
deletes it.

The work is in the hook modules beside it (not rendered, no answers in them): lsml_answers
(the answers), lsml_script (the script: where, which class; lsml_detect imports it in a child,
lsml_inspect reads its syntax tree), lsml_folder (what comes along from the model's folder).
"""

from __future__ import annotations

import json
import os
import sys

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
from lsml_answers import check_cli_keys, validate_answers  # noqa: E402
from lsml_folder import with_model_bundle  # noqa: E402
from lsml_hooklib import Handoff, HookError  # noqa: E402
from lsml_script import inspect_model  # noqa: E402


def plan(ctx: dict) -> Handoff:
    """Validate the answers, inspect the model they name, and list what comes with it."""
    validate_answers(ctx)
    return with_model_bundle(inspect_model(ctx))


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
