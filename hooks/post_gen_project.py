"""Install the model into the new project and prune what the answers do not need.

Runs on cookiecutter's interpreter with the project root as cwd. Standard library only;
idempotent, offline and non-interactive, so ``cruft create`` / ``cruft update`` can re-run it.
Reads (and deletes) ``.lsml-pregen.json``, written by pre_gen_project.py. The work is in the
hook modules beside it (not rendered, no answers in them): lsml_install (the model and what
comes with it), lsml_requirements (requirements.txt), lsml_locks (the wheel and the locks).
"""

from __future__ import annotations

import json
import os
import sys

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
from lsml_hooklib import Handoff, HookError  # noqa: E402
from lsml_install import install_bundle, install_model, prune, read_handoff, wire_class, write_label_config  # noqa: E402
from lsml_locks import LOCK_COMMAND, LOCKS, vendor_runtime, write_locks  # noqa: E402
from lsml_requirements import add_sdk_requirement, merge_requirements, undeclared_imports  # noqa: E402


def main() -> int:
    handoff = read_handoff()
    try:
        vendor_runtime(CONTEXT)
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
