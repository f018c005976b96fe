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


# process
# What belongs to the process is set in process.py only, and the entry points set it up.
def _runtime_modules() -> list:
    return sorted(PACKAGE.rglob("*.py"))


def _dotted(node) -> str:
    """``a.b.c`` for an attribute chain of names, else ""."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


PROCESS_WIDE_CALLS = {"gc.freeze", "sys.setswitchinterval", "logging.basicConfig"}


def test_process_wide_effects_live_in_process_py():
    """gc.freeze, the switch interval, the root log handler and Prometheus' value class."""

    def process_wide(node) -> bool:
        if isinstance(node, ast.Call):
            return _dotted(node.func) in PROCESS_WIDE_CALLS
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            return any(isinstance(t, ast.Attribute) and t.attr == "ValueClass" for t in targets)
        return False

    users = {
        f"{path.relative_to(PACKAGE)}:{where}": line
        for path in _runtime_modules()
        for where, line in _calls(path, process_wide)
    }
    assert set(users) == {
        "process.py:_configure_logging",
        "process.py:_freeze_startup_objects",
        "process.py:_name_metric_files_after_uwsgi_workers",
        "process.py:responsive",
    }, users


def test_the_entry_points_set_the_process_up():
    def sets_up(node) -> bool:
        return isinstance(node, ast.Call) and _dotted(node.func).endswith("setup_process")

    callers = {
        (str(path.relative_to(PACKAGE)), where)
        for path in _runtime_modules()
        for where, _ in _calls(path, sets_up)
    }
    # create_app: only when no entry point did (scripts, tests, an older wsgi.py)
    assert callers == {("api.py", "create_app"), ("cli.py", "cmd_worker"), ("worker.py", "work")}
    wsgi = ast.parse(
        (TEMPLATE / "wsgi.py")
        .read_text(encoding="utf-8")
        .replace('{{ cookiecutter.model_class or "NewModel" }}', "M")
    )
    order = [
        _dotted(node.value.func)
        for branch in ast.walk(wsgi)
        if isinstance(branch, ast.If)
        for node in branch.orelse  # uWSGI's import; python wsgi.py runs start, which imports it
        if isinstance(node, (ast.Expr, ast.Assign)) and isinstance(node.value, ast.Call)
    ]
    assert order == ["setup_process", "make_app"], "wsgi.py sets the process up, then builds its app"


def test_only_the_model_writes_its_served_version():
    def writes(node) -> bool:
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            return any(isinstance(t, ast.Attribute) and t.attr == "_served_version" for t in targets)
        return (
            isinstance(node, ast.Call)
            and _dotted(node.func) == "setattr"
            and any(isinstance(a, ast.Constant) and a.value == "_served_version" for a in node.args)
        )

    writers = {
        (str(path.relative_to(PACKAGE)), where)
        for path in _runtime_modules()
        for where, _ in _calls(path, writes)
    }
    assert writers == {("model.py", "__init__"), ("model.py", "serve_as")}


def _private_names_of(module: Path) -> set:
    """``self._x`` attributes and ``_x`` methods a module defines."""
    names = set()
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if (
            isinstance(node, (ast.FunctionDef, ast.ClassDef))
            and node.name.startswith("_")
            and not node.name.startswith("__")
        ):
            names.add(node.name)
        attr = node.attr if isinstance(node, ast.Attribute) else ""
        if _dotted(node) == f"self.{attr}" and attr.startswith("_") and not attr.startswith("__"):
            names.add(attr)
    return names


def test_the_registry_is_used_through_its_public_api():
    """No other module reads the registry's private attributes (``registry.info`` was one)."""
    registry_py = PACKAGE / "registry.py"
    private = _private_names_of(registry_py)
    assert {"_info", "_configs", "_live", "_Entry"} <= private

    def reaches_in(node) -> bool:
        if isinstance(node, ast.Attribute) and node.attr in private:
            return not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        return isinstance(node, ast.ImportFrom) and any(alias.name in private for alias in node.names)

    offenders = [
        f"{path.relative_to(PACKAGE)}:{line} in {where}"
        for path in _runtime_modules()
        if path != registry_py
        for where, line in _calls(path, reaches_in)
    ]
    assert offenders == []


def test_the_registry_declares_its_public_api():
    """The class docstring lists every public method, and nothing else."""
    from label_studio_ml.registry import ModelRegistry

    declared = set(re.findall(r":meth:`(\w+)`", ModelRegistry.__doc__ or ""))
    public = {
        name for name, value in vars(ModelRegistry).items() if callable(value) and not name.startswith("_")
    }
    assert declared == public
