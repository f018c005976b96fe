"""docs/hooks.md's error catalogue, run: every row's answers or arguments, by the route the
table names, in a directory that plays ``/home/me`` (it holds the scripts the rows name).

Each table follows ``<!-- test: catalogue ROUTE -->``; a row is ``| problem | `input` |
`message` |``. ``cookiecutter``: the message is the first line of what ``cookiecutter
<template> --no-input backend_name=my_backend INPUT`` prints; ``cookiecutter-last``: its last
line; ``init``: all that ``label-studio-ml init INPUT`` prints. ``...`` in a message stands for
any text. Nothing may be generated.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from ..support import clean_env

ROOT = Path(__file__).resolve().parents[2]
HOOKS_MD = ROOT / "docs" / "hooks.md"
TABLE = re.compile(r"<!-- test: catalogue ([\w-]+) -->\n((?:\|.*\n)+)")
ROW = re.compile(r"^\| [^|]+ \| `([^`]*)` \| `([^`]*)` \|$")
GOOD = """from label_studio_ml.model import LabelStudioMLBase


class Good(LabelStudioMLBase):
    def predict(self, tasks, **kwargs):
        return []
"""
SCRIPTS = {
    "model.py": GOOD,
    "good.py": GOOD,
    "two.py": GOOD + "\n\nclass Other(LabelStudioMLBase):\n    pass\n",
    "plain.py": "class NotAModel:\n    pass\n",
    "syntax.py": "def broken(:\n",
    "gpu.py": GOOD + "\nraise RuntimeError('no GPU here')\n",
    "helper.py": "from label_studio_ml.utils import no_such_helper_here\n" + GOOD,
    "model.txt": GOOD,
}

# model folders (script may name a folder, or a file whose folder comes along)
FOLDERS = {
    "several": {"a.py": GOOD, "b.py": GOOD.replace("Good", "Other")},
    "clash": {"model.py": "import wsgi  # noqa: F401\n" + GOOD, "wsgi.py": "app = None\n"},
}

pytestmark = pytest.mark.slow


def rows():
    found = []
    for route, table in TABLE.findall(HOOKS_MD.read_text()):
        for line in table.splitlines()[2:]:
            match = ROW.match(line)
            assert match, f"a catalogue row must be | problem | `input` | `message` |: {line}"
            found.append((route, *match.groups()))
    return found


def test_the_catalogue_has_every_route():
    routes = {route for route, *_ in rows()}
    assert routes == {"cookiecutter", "cookiecutter-last", "init"}, routes


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("home-me")
    for name, text in SCRIPTS.items():
        (directory / name).write_text(text)
    (directory / "models").mkdir()
    for folder, files in FOLDERS.items():
        (directory / folder).mkdir()
        for name, text in files.items():
            (directory / folder / name).write_text(text)
    return directory


@pytest.mark.parametrize(("route", "given", "message"), rows(), ids=lambda v: v[:40])
def test_catalogue_row_is_what_the_user_sees(route, given, message, home, tool):
    before = sorted(p.name for p in home.iterdir())
    if route == "init":
        cmd = [tool("label-studio-ml"), "init", *shlex.split(given)]
    else:
        answers = shlex.split(given)
        if not any(a.startswith("backend_name=") for a in answers):
            answers.insert(0, "backend_name=my_backend")
        cmd = [tool("cookiecutter"), str(ROOT), "--no-input", *answers]
    proc = subprocess.run(
        cmd, cwd=home, capture_output=True, text=True, env=clean_env(PWD=str(home)), timeout=120
    )
    assert proc.returncode != 0, proc.stdout + proc.stderr
    seen = (proc.stderr + proc.stdout).replace(str(home), "/home/me")
    lines = [line for line in seen.splitlines() if line.strip()]
    pattern = re.compile(".*".join(map(re.escape, message.split("..."))))
    if route == "cookiecutter":
        assert pattern.fullmatch(lines[0]), f"first line {lines[0]!r}, documented {message!r}\n{seen}"
    elif route == "cookiecutter-last":
        assert pattern.fullmatch(lines[-1]), f"last line {lines[-1]!r}, documented {message!r}\n{seen}"
    else:
        assert len(lines) == 1 and pattern.fullmatch(lines[0]), f"{seen!r}, documented {message!r}"
        assert "Traceback" not in seen
    assert sorted(p.name for p in home.iterdir()) == before, "a refused answer generated files"
