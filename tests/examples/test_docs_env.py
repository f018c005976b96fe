"""The runtime's variables and error codes, checked everywhere they are written down.

docs/runtime.md's environment table, the generated .env.example, docker-compose.yml, Dockerfile
and README list what settings.ENV_VARS holds, with its defaults; runtime.md's error codes are
the ones the code answers with.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

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


# ------------------------------------------------------------------ generated files vs ENV_VARS
# Compose sets these itself (the ./data volume, the redis service); everything else it passes on.
SET_BY_COMPOSE = {"MODEL_DIR": "/data/models", "MODEL_ROOT": "/weights", "REDIS_URL": "redis://redis:6379/0"}
ONLY_BUILD_REDIS_URL = {"REDIS_HOST", "REDIS_PORT"}  # meaningless once Compose sets REDIS_URL
# Container paths the image sets instead of the runtime's relative default.
SET_BY_IMAGE = {"MODEL_DIR": "/data/models", "MODEL_ROOT": "/weights"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    from cookiecutter.main import cookiecutter

    out = tmp_path_factory.mktemp("env-bake")
    return Path(
        cookiecutter(str(ROOT), no_input=True, output_dir=str(out), extra_context={"backend_name": "envs"})
    )


def runtime_env_vars() -> dict:
    from label_studio_ml.settings import ENV_VARS

    return {name: default for name, (default, _) in ENV_VARS.items()}


def test_env_example_lists_every_variable_with_its_default(generated):
    env_vars = runtime_env_vars()
    pairs = [
        line.split("=", 1)
        for line in (generated / ".env.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), "a variable is listed twice"
    assert set(names) == set(env_vars) | {"PORT"}  # PORT: the host port Compose publishes
    for name, value in pairs:
        if name in env_vars:
            assert value in ("", env_vars[name]), f".env.example {name}={value}, settings: {env_vars[name]!r}"


def test_compose_passes_every_variable_with_its_default(generated):
    env_vars = runtime_env_vars()
    compose = yaml.safe_load((generated / "docker-compose.yml").read_text())
    environment = compose["services"]["backend"]["environment"]
    assert set(environment) - {"PORT"} == set(env_vars) - ONLY_BUILD_REDIS_URL
    for name, value in environment.items():
        if name in SET_BY_COMPOSE:
            assert value == SET_BY_COMPOSE[name], name
        elif name in env_vars:
            assert value == f"${{{name}:-{env_vars[name]}}}", f"compose {name}: {value}"


def test_dockerfile_defaults_match_the_runtime(generated):
    env_vars = runtime_env_vars()
    text = re.sub(r"\\\n\s*", " ", (generated / "Dockerfile").read_text())
    pairs = [pair.split("=", 1) for line in re.findall(r"^ENV (.*)$", text, re.M) for pair in line.split()]
    seen = {name: value for name, value in pairs if name in env_vars}
    assert seen, "the Dockerfile sets none of the runtime's variables"
    for name, value in seen.items():
        assert value == SET_BY_IMAGE.get(name, env_vars[name]), f"Dockerfile {name}={value}"


def test_generated_readme_table_lists_every_variable_with_its_default(generated):
    env_vars = runtime_env_vars()
    text = (generated / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    (table,) = re.findall(r"(?:^\|.*\n)+", section, flags=re.M)
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        (name,) = NAME.findall(cells[0])
        rows[name] = cells[1]
    assert set(rows) == set(env_vars) | {"PORT"}
    for name, default in env_vars.items():
        assert rows[name] == (f"`{default}`" if default else "unset"), f"README {name}: {rows[name]}"


# ------------------------------------------------------------------ error codes vs the code
ERROR_CALL = re.compile(r'(?:_error|ApiError)\(\s*(\d{3}),\s*"([a-z_]+)"')
ERROR_MAP = re.compile(r'(\d{3}): "([a-z_]+)"')
ERROR_BODY = re.compile(r'"error": "([a-z_]+)".{0,300}?start_response\(\s*"(\d{3})', re.S)


def code_error_pairs() -> set:
    """(status, code) of every error answer the runtime's source can produce."""
    from label_studio_ml.exceptions import HTTP_ANSWERS

    pairs = {(answer.status, answer.code) for answer in HTTP_ANSWERS.values()}  # the error -> HTTP table
    for path in RUNTIME_SRC.glob("*.py"):
        if path.name == "openapi.py":
            continue
        source = path.read_text()
        pairs |= {(int(s), c) for s, c in ERROR_CALL.findall(source)}
        pairs |= {(int(s), c) for s, c in ERROR_MAP.findall(source) if 400 <= int(s) < 600}
        pairs |= {(int(s), c) for c, s in ERROR_BODY.findall(source)}
    return pairs


def documented_error_pairs() -> set:
    """(status, code) from runtime.md's "Errors are ..." paragraph ("500 `a` or `b`": both 500)."""
    text = DOC.read_text()
    start = text.index("Errors are `{")
    paragraph = text[start : text.index("\n\n", start)]
    pairs, status = set(), None
    for number, code in re.findall(r"\b(\d{3})\b|`([a-z_]+)`", paragraph):
        if number:
            status = int(number)
        elif status:
            pairs.add((status, code))
    return pairs


def test_runtime_md_lists_every_error_code_with_its_status():
    from label_studio_ml.openapi import _SCHEMAS

    in_code = code_error_pairs()
    assert (500, "internal_error") in in_code and (401, "unauthorized") in in_code
    assert documented_error_pairs() == in_code
    # the OpenAPI description's list of codes is the same set (plus "error" for any other status)
    enum = set(_SCHEMAS["Error"]["properties"]["error"]["enum"])
    assert enum == {code for _, code in in_code} | {"error"}
