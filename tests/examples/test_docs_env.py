"""docs/runtime.md's environment table lists exactly what settings.py reads, with its defaults."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "runtime" / "src" / "label_studio_ml" / "settings.py"
RUNTIME_SRC = ROOT / "runtime" / "src" / "label_studio_ml"
DOC = ROOT / "docs" / "runtime.md"
NAME = re.compile(r"`([A-Z][A-Z0-9_]+)`")


def settings_names():
    """(ENV_VARS: name -> default, aliases): parsed from settings.py's syntax tree."""
    tree = ast.parse(SETTINGS.read_text())
    env_vars, aliases = {}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "ENV_VARS" for t in node.targets):
            for key, value in zip(node.value.keys, node.value.values):
                env_vars[key.value] = value.elts[0].value
        # _get(env, "NAME", "ALIAS", ...): every further string is a variable read too
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "_get":
            for arg in node.args[2:]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    aliases.add(arg.value)
    return env_vars, aliases - set(env_vars)


def doc_table():
    """Rows of the one table under '## Environment variables': [(names, default cell)]."""
    text = DOC.read_text()
    section = text.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    tables = re.findall(r"(?:^\|.*\n)+", section, flags=re.M)
    assert len(tables) == 1, "docs/runtime.md: the environment variables must be ONE table"
    rows = []
    for line in tables[0].splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append((NAME.findall(cells[0]), cells[1]))
    return rows


def test_table_names_match_settings():
    env_vars, aliases = settings_names()
    assert env_vars, "no ENV_VARS in settings.py"
    documented = [name for names, _ in doc_table() for name in names]
    assert len(documented) == len(set(documented)), "a variable is listed twice"
    assert set(documented) == set(env_vars) | aliases


def test_table_defaults_match_settings():
    env_vars, _ = settings_names()
    for names, default in doc_table():
        primary = names[0]
        want = f"`{env_vars[primary]}`" if env_vars[primary] else "unset"
        assert default == want, f"{primary}: docs say {default}, settings.py says {want}"


def test_other_variables_mentioned_are_read_by_the_runtime():
    """Names in the prose below the table (HOST, PORT, ...) are read somewhere in the runtime."""
    section = DOC.read_text().split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    source = "\n".join(p.read_text() for p in RUNTIME_SRC.glob("*.py"))
    for name in set(NAME.findall(section)):
        short = name.removeprefix("LABEL_STUDIO_")
        assert f'"{name}"' in source or f'"{short}"' in source, f"{name} is not read by the runtime"
