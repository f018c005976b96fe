"""One source of truth per rule: each rule is written once and the other places derive from it."""

from __future__ import annotations

import ast
import re
import runpy
from pathlib import Path

import label_studio_ml
import pytest
from label_studio_ml import openapi
from label_studio_ml.settings import Settings, redis_url_from
from label_studio_ml.store import LS_PROJECT_RE, PROJECT_ID_RE

PACKAGE = Path(label_studio_ml.__file__).parent
TEMPLATE = Path(__file__).resolve().parents[2] / "{{cookiecutter.backend_name}}"


def _calls(module: Path, test) -> list:
    """(enclosing function, line) of every node of ``module`` that ``test`` accepts."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    found = []

    def visit(node, where):
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else where
            if test(child):
                found.append((name, child.lineno))
            visit(child, name)

    visit(tree, "<module>")
    return found


def _reads_env(node) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
            and isinstance(node.value, ast.Name) and node.value.id == "os")  # fmt: skip


# Allowed outside settings.py: the development server's --host/--port defaults, the old SDK's
# public get_env() helper (reads the variable its caller names), init handing the runtime's
# location to the template's hooks (a write), and the media cache under the OS's
# XDG_CACHE_HOME (label-studio-sdk's location, not a setting of ours).
ALLOWED_ENV = {
    ("cli.py", "build_parser"),
    ("cli.py", "cmd_init"),
    ("utils.py", "get_env"),
    ("utils.py", "_default_cache_dir"),
}


def test_only_settings_reads_the_environment():
    offenders = [
        f"{path.name}:{line} in {where}"
        for path in sorted(PACKAGE.glob("*.py"))
        if path.name != "settings.py"
        for where, line in _calls(path, _reads_env)
        if (path.name, where) not in ALLOWED_ENV
    ]
    assert offenders == []


def test_one_atomic_write():
    """Temporary file + rename lives in fileio.write_atomic only (store, kv cache, downloads use it)."""

    def renames(node) -> bool:
        return (
            isinstance(node, ast.Attribute)
            and node.attr in ("replace", "mkstemp")
            and (isinstance(node.value, ast.Name) and node.value.id in ("os", "tempfile"))
        )

    users = {path.name for path in PACKAGE.glob("*.py") if _calls(path, renames)}
    assert users == {"fileio.py"}


@pytest.mark.parametrize(
    "value",
    ["12", "12.1719830400", "a_b-C", "x" * 64, "x" * 65, "12.", ".5", "12.1.2", "1." + "9" * 21, "../x", ""],
)
def test_openapi_project_pattern_is_the_request_rule(value):
    assert bool(re.search(openapi.PROJECT_PATTERN, value)) == bool(LS_PROJECT_RE.fullmatch(value))
    query = openapi.PROJECT_QUERY["schema"]["pattern"]
    assert bool(re.search(query, value)) == (value == "" or bool(LS_PROJECT_RE.fullmatch(value)))
    assert LS_PROJECT_RE.pattern.startswith(f"({PROJECT_ID_RE.pattern})")


@pytest.mark.parametrize(
    "env",
    [{}, {"REDIS_HOST": "cache", "REDIS_PORT": "6380"}, {"REDIS_URL": "redis://r:1/2", "RQ_QUEUE_NAME": "q"}],
)
def test_rq_settings_use_the_runtime_settings(env, monkeypatch):
    for name in ("REDIS_URL", "REDIS_HOST", "REDIS_PORT", "RQ_QUEUE_NAME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rq = runpy.run_path(str(TEMPLATE / "rq_settings.py"))
    settings = Settings.from_env()
    assert rq["REDIS_URL"] == (settings.redis_url or redis_url_from("localhost"))
    assert rq["QUEUES"] == [settings.rq_queue_name]


def test_old_redis_spelling_builds_one_url(tmp_path, monkeypatch):
    from label_studio_ml.api import init_app

    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_HOST", raising=False)

    class M(label_studio_ml.LabelStudioMLBase):
        pass

    app = init_app(M, model_dir=str(tmp_path), redis_host="cache", redis_port=6380)
    url = app.extensions["lsml"].settings.redis_url
    assert (
        url
        == redis_url_from("cache", 6380)
        == Settings.from_env({"REDIS_HOST": "cache", "REDIS_PORT": "6380"}).redis_url
    )


def test_one_list_of_secrets():
    settings = Settings(
        label_studio_url="http://ls:8080", label_studio_api_key="key-1234", basic_auth_pass="pass-1234"
    )
    text = "key-1234 pass-1234 tok-1234 abc"
    assert settings.redact(text, "tok-1234", None) == "[redacted] [redacted] [redacted] abc"
    assert settings.secrets("t") == ("key-1234", "pass-1234", "t")


# ------------------------------------------------------------------ branch hooks (issue 19)
HOOKS = Path(__file__).resolve().parents[2] / "hooks"
HOOK_SCRIPTS = ("pre_gen_project.py", "post_gen_project.py")


def _hooklib():
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("lsml_hooklib", HOOKS / "lsml_hooklib.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("lsml_hooklib", module)
    spec.loader.exec_module(module)
    return module


def _top_level_names(path: Path) -> set:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def test_the_hooks_share_one_error_one_handoff_one_list_of_provided_packages():
    """HookError, the handoff and the packages the template provides live in lsml_hooklib;
    neither hook defines its own (they import them)."""
    shared = {"HookError", "Handoff", "Bundle", "HANDOFF", "PROVIDED", "PROVIDED_MODULES"}
    shared |= {"TEMPLATE_PACKAGES", "RUNTIME_PACKAGES"}
    assert shared <= _top_level_names(HOOKS / "lsml_hooklib.py")
    for hook in HOOK_SCRIPTS:
        assert _top_level_names(HOOKS / hook) & shared == set(), hook
        assert "from lsml_hooklib import" in (HOOKS / hook).read_text(encoding="utf-8"), hook


def test_the_hooks_find_their_shared_module_the_same_way():
    lines = [
        [line for line in (HOOKS / hook).read_text(encoding="utf-8").splitlines() if "TEMPLATE_DIR" in line]
        for hook in HOOK_SCRIPTS
    ]
    assert lines[0] == lines[1] and len(lines[0]) == 2


def test_the_runtime_packages_are_the_runtimes_dependencies():
    """RUNTIME_PACKAGES (a model folder's pins of these are left out) names what
    runtime/pyproject.toml installs, plus flask's werkzeug; TEMPLATE_PACKAGES' servers are the
    ones the template's requirements.txt pins."""
    import tomllib

    lib = _hooklib()
    pyproject = tomllib.loads((PACKAGE.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    declared = {
        re.match(r"[A-Za-z0-9._-]+", dep).group(0).lower() for dep in pyproject["project"]["dependencies"]
    }
    assert set(lib.RUNTIME_PACKAGES) == declared | {"werkzeug"}
    pinned = {
        re.match(r"[A-Za-z0-9._-]+", line).group(0).lower()
        for line in (TEMPLATE / "requirements.txt").read_text(encoding="utf-8").splitlines()[1:]
        if re.match(r"[A-Za-z0-9]", line)
    }
    assert set(lib.TEMPLATE_PACKAGES) - {"lsml-runtime", "label-studio-ml"} <= pinned
    assert lib.PROVIDED.match("label_studio.ml==1.0") and not lib.PROVIDED.match("uwsgi-tools")


def test_one_builder_of_the_runtime_wheel():
    """Only label_studio_ml.wheel writes a wheel; the hooks copy the one the template carries."""
    for path in [*HOOKS.glob("*.py"), *PACKAGE.rglob("*.py")]:
        if path.name != "wheel.py":
            assert "zipfile" not in path.read_text(encoding="utf-8"), path.name
