"""Install the model into the new project and prune what the answers do not need.

Runs on cookiecutter's interpreter with the project root as cwd. Standard library only;
idempotent, offline and non-interactive, so ``cruft create`` / ``cruft update`` can re-run it.
Reads (and deletes) ``.lsml-pregen.json``, written by pre_gen_project.py.
"""

from __future__ import annotations

import json
import re
import shutil
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


def wire_class(model_class: str) -> None:
    """Point wsgi.py at the detected class (the template renders the example's name)."""
    if not model_class:
        return
    wsgi = Path("wsgi.py")
    text = wsgi.read_text(encoding="utf-8")
    text = re.sub(r"^from model import \w+$", f"from model import {model_class}", text, flags=re.M)
    text = re.sub(r"create_app\(\w+,", f"create_app({model_class},", text)
    wsgi.write_text(text, encoding="utf-8")


def write_label_config(handoff: dict) -> bool:
    """Use the script's own labeling config for the tests, when it carries one."""
    config = handoff.get("label_config")
    if config:
        Path("tests", "label_config.xml").write_text(config, encoding="utf-8")
    return bool(config)


# Files that only make sense for the built-in example model.
EXAMPLE_ONLY = [Path("tests", "test_example_model.py")]


def prune(using_example: bool) -> None:
    if not using_example:
        for path in EXAMPLE_ONLY:
            remove(path)
    # pip byte-compiles the template copy bundled in the runtime wheel; never ship its caches
    for cache in sorted(Path(".").rglob("__pycache__")):
        remove(cache)


def main() -> int:
    handoff = read_handoff()
    origin = install_model(handoff)
    using_example = origin == "the built-in example"
    added = merge_requirements(handoff)
    sdk = add_sdk_requirement(handoff)
    if sdk:
        added.append(sdk)
    wire_class(handoff.get("model_class", ""))
    has_config = write_label_config(handoff)
    prune(using_example)

    name = CONTEXT["backend_name"]
    port = CONTEXT["port"]
    print(f"Created {name}/ with model.py from {origin}.")
    if added:
        print(f"Added to requirements.txt: {', '.join(added)}")
    if not using_example and not has_config:
        print(
            "NOTE: tests/label_config.xml is the example Image + Choices config; "
            "edit it to match your model's labeling config."
        )
    print("Next:")
    print(f"  cd {name} && pip install -r requirements.txt -r requirements-test.txt")
    print("  python -m pytest")
    print(f"  label-studio-ml start . --port {port}    # or: docker compose up")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
