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
        for path in sorted(PACKAGE.rglob("*.py"))
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

    users = {path.name for path in PACKAGE.rglob("*.py") if _calls(path, renames)}
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


# errors
# ------------------------------------------------------------------ one exception base, one table
RUNTIME_MODULES = sorted(PACKAGE.rglob("*.py"))  # training/ may be a package: every file, at any depth


def _module_name(path: Path) -> str:
    parts = ["label_studio_ml", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_runtime_exception_derives_from_the_base_and_lives_in_exceptions_py():
    import importlib

    from label_studio_ml import exceptions

    # statically: no module but exceptions.py defines an exception class
    def exception_class(node) -> bool:
        names = {
            b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in getattr(node, "bases", [])
        }
        return isinstance(node, ast.ClassDef) and any(
            n.endswith(("Error", "Exception", "Unavailable", "Loading"))
            or n in ("Exception", "BaseException")
            for n in names
        )

    defined_elsewhere = [
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in RUNTIME_MODULES
        if path.name != "exceptions.py"
        for _, line in _calls(path, exception_class)
    ]
    assert defined_elsewhere == []
    # at run time: every exception class any runtime module holds is one of exceptions.py's
    own = {
        obj for obj in vars(exceptions).values() if isinstance(obj, type) and issubclass(obj, BaseException)
    }
    assert own and all(issubclass(cls, exceptions.LabelStudioMLError) for cls in own)
    assert set(exceptions.__all__) >= {cls.__name__ for cls in own}
    for path in RUNTIME_MODULES:
        if path.name == "__main__.py":
            continue  # runs the CLI
        module = importlib.import_module(_module_name(path))
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, BaseException)
                and obj.__module__.startswith("label_studio_ml")
            ):
                assert obj in own, f"{module.__name__}.{obj.__name__}"


# Where each exception was defined before exceptions.py: old imports keep working, and the
# standard base users catch (``except ValueError``) is kept.
OLD_HOMES = [
    ("api", "ApiError", Exception),
    ("label_config", "LabelConfigError", ValueError),
    ("label_config", "SDKNotInstalledError", ImportError),
    ("lsclient", "LabelStudioError", RuntimeError),
    ("registry", "ModelLoadError", RuntimeError),
    ("registry", "ModelLoading", RuntimeError),
    ("response", "PredictionError", ValueError),
    ("settings", "SettingsError", ValueError),
    ("store", "StoreError", ValueError),
    ("store", "StoreUnavailable", OSError),
    ("training", "TrainingUnavailable", RuntimeError),
    ("training", "TrainingError", RuntimeError),
]


@pytest.mark.parametrize("module, name, base", OLD_HOMES, ids=[f"{m}.{n}" for m, n, _ in OLD_HOMES])
def test_exceptions_stay_importable_from_their_old_modules_with_their_old_bases(module, name, base):
    import importlib

    from label_studio_ml import exceptions

    cls = getattr(importlib.import_module(f"label_studio_ml.{module}"), name)
    assert cls is getattr(exceptions, name)
    assert issubclass(cls, base) and issubclass(cls, exceptions.LabelStudioMLError)


def test_the_http_answer_is_looked_up_along_the_mro():
    from label_studio_ml.exceptions import HTTP_ANSWERS, ApiError, ModelLoading, StoreError, http_answer

    class Narrower(StoreError):
        pass

    assert http_answer(Narrower("x")) is HTTP_ANSWERS[StoreError]
    assert http_answer(ModelLoading("7", 1)).headers == {"Retry-After": "5"}
    own = http_answer(ApiError(418, "teapot", "d"))
    assert own is not None and (own.status, own.code) == (418, "teapot")
    assert http_answer(ValueError("x")) is None and http_answer(KeyError("x")) is None


def test_api_maps_errors_by_the_table_not_by_isinstance_or_rewrapping():
    """No ``isinstance(exc, SomeError)`` in api.py, and no ``except X: raise ApiError(...)`` that only
    repeats the table's answer for X."""
    from label_studio_ml import exceptions

    errors = {
        name
        for name, obj in vars(exceptions).items()
        if isinstance(obj, type) and issubclass(obj, BaseException)
    }
    tree = ast.parse((PACKAGE / "api.py").read_text(encoding="utf-8"))
    chains = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "isinstance"
        and len(node.args) == 2
        for arg in ast.walk(node.args[1])
        if isinstance(arg, ast.Name) and (arg.id in errors or arg.id.endswith("Error"))
    ]
    assert chains == []
    answers = {cls.__name__: (a.status, a.code) for cls, a in exceptions.HTTP_ANSWERS.items()}
    rewraps = []
    for handler in (n for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler) and n.type is not None):
        caught = {n.id for n in ast.walk(handler.type) if isinstance(n, ast.Name)}
        for node in ast.walk(handler):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "ApiError"
                and len(node.args) >= 2
            ):
                said = tuple(getattr(arg, "value", None) for arg in node.args[:2])
                rewraps += [(name, handler.lineno) for name in caught if answers.get(name) == said]
    assert rewraps == []


# ------------------------------------------------------------------ no import circle
def _imports(path: Path) -> set:
    """Runtime modules ``path`` imports, at module level or inside functions (TYPE_CHECKING aside)."""
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()

    def visit(node) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.dump(child.test):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.startswith("label_studio_ml"))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.rsplit(".", child.level - 1)[0] if child.level > 1 else package
                    target = f"{base}.{child.module}" if child.module else base
                else:
                    target = child.module or ""
                if target.startswith("label_studio_ml"):
                    found.add(target)
                    found.update(f"{target}.{a.name}" for a in child.names)  # `from . import x`
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def test_the_runtime_has_no_import_circle():
    modules = {_module_name(path): path for path in RUNTIME_MODULES}
    graph = {}
    for name, path in modules.items():
        edges = set()
        for target in _imports(path):
            # importing a.b.c runs a.b's __init__ too; names that are not modules are attributes
            parts = target.split(".")
            found = [".".join(parts[:i]) for i in range(2, len(parts) + 1) if ".".join(parts[:i]) in modules]
            # ...unless the importer lies inside a.b: a package is initialised before any module
            # in it runs (training/__init__ re-exports its modules, which import each other);
            # importing the package itself (`from . import x`) still counts
            edges.update(m for m in found if m == found[-1] or not name.startswith(f"{m}."))
        graph[name] = edges - {name}
    assert graph["label_studio_ml.api"] >= {"label_studio_ml.launch", "label_studio_ml.exceptions"}
    assert "label_studio_ml.api" not in graph["label_studio_ml.launch"]
    state: dict = {}
    stack: list = []

    def walk(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                circle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import circle: " + " -> ".join(circle))
            if nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            walk(name)


def test_exceptions_py_needs_the_standard_library_only():
    found = _imports(PACKAGE / "exceptions.py")
    tree = ast.parse((PACKAGE / "exceptions.py").read_text(encoding="utf-8"))
    top = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    top |= {
        n.module.split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module and not n.level
    }
    assert found == set() and top <= {"__future__", "dataclasses", "typing"}


# ------------------------------------------------------------------ true/false words, defaults
BOOL_WORDS = {"1", "0", "true", "false", "yes", "no", "on", "off", "y", "n", "t", "f", "not"}
# --with types its values as JSON does (true/false, numbers): `--with flag=yes` stays the string
# "yes"; that is not the environment's true/false words.
ALLOWED_BOOL_LISTS = {("launch.py", "parse_kwargs")}


def test_the_true_false_words_have_one_owner():
    def word_list(node) -> bool:
        if not isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return False
        words = {
            e.value.lower() for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
        }
        return len(words & BOOL_WORDS) >= 2

    offenders = [
        f"{path.relative_to(PACKAGE)}:{line} in {where}"
        for path in RUNTIME_MODULES
        if path.name != "settings.py"
        for where, line in _calls(path, word_list)
        if (path.name, where) not in ALLOWED_BOOL_LISTS
    ]
    assert offenders == []


def test_settings_and_get_env_read_the_same_words(monkeypatch):
    from label_studio_ml import settings
    from label_studio_ml.settings import SettingsError
    from label_studio_ml.utils import get_env

    for flag, words in ((True, settings.TRUE_WORDS), (False, settings.FALSE_WORDS)):
        for word in words:
            for spelled in (word, word.upper(), f" {word} "):
                assert Settings.from_env({"PRELOAD_MODELS": spelled}).preload_models is flag
                monkeypatch.setenv("LSML_ONE_SOURCE_FLAG", spelled)
                assert get_env("LSML_ONE_SOURCE_FLAG", is_bool=True) is flag
    # get_env's older, looser words are its own: the runtime's variables take the documented ones
    for flag, words in ((True, settings.LOOSE_TRUE_WORDS), (False, settings.LOOSE_FALSE_WORDS)):
        for word in set(words) - set(settings.TRUE_WORDS + settings.FALSE_WORDS):
            monkeypatch.setenv("LSML_ONE_SOURCE_FLAG", word)
            assert get_env("LSML_ONE_SOURCE_FLAG", is_bool=True) is flag
            if word:
                with pytest.raises(SettingsError, match="use true or false"):
                    Settings.from_env({"PRELOAD_MODELS": word})


def test_settings_defaults_are_env_vars_defaults_by_construction(monkeypatch):
    import dataclasses

    from label_studio_ml import settings as module

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert Settings() == Settings.from_env({})
    # every field's default is _DEFAULTS[<the field>] (what from_env reads from ENV_VARS alone)
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings"]
    literal = []
    for stmt in cls.body:
        if not isinstance(stmt, ast.AnnAssign) or stmt.value is None:
            continue
        field = stmt.target.id
        value = stmt.value
        if isinstance(value, ast.Call):  # dataclasses.field(default=... | default_factory=...)
            kws = {k.arg: k.value for k in value.keywords}
            if "default_factory" in kws:
                continue
            value = kws["default"]
        derived = (
            isinstance(value, ast.Subscript)
            and getattr(value.value, "id", None) == "_DEFAULTS"
            and getattr(value.slice, "value", None) == field
        )
        if not derived:
            literal.append(field)
    assert literal == []
    # and ENV_VARS is what they come from: change a default there, the dataclass follows
    assert Settings().rq_job_timeout == int(module.ENV_VARS["RQ_JOB_TIMEOUT"][0])
    assert Settings().max_request_bytes == int(module.ENV_VARS["MAX_REQUEST_MB"][0]) * 1024 * 1024
    assert Settings().preload_models is module.parse_bool(module.ENV_VARS["PRELOAD_MODELS"][0])
    assert module.redis_url_from("h") == f"redis://h:{module.ENV_VARS['REDIS_PORT'][0]}/0"
    assert {f.name for f in dataclasses.fields(Settings)} == set(module._fields({}))


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


# training
def _module(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def test_status_words_are_spelled_in_the_enum_module_only():
    """queued, running, ... are RunStatus/Submitted members everywhere but training/status.py."""
    from label_studio_ml.training import RunStatus, Submitted

    words = {s.value for s in RunStatus} | {s.value for s in Submitted}
    # "failed" is also a model build state: /health's models.failed (the registry, its schema)
    build_state = {("registry.py", "state"), ("openapi.py", "<module>")}
    offenders = [
        f"{_module(path)}:{line} in {where}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if _module(path) != "training/status.py"
        for word in sorted(words)
        for where, line in _calls(
            path, lambda node, w=word: isinstance(node, ast.Constant) and node.value == w
        )
        if not (word == RunStatus.FAILED.value and (_module(path), where) in build_state)
    ]
    assert offenders == []


def test_only_the_run_book_writes_a_run_record():
    """status.json changes through RunBook.change (a named transition) and nothing else."""

    def writes_status(node) -> bool:
        return isinstance(node, ast.Attribute) and node.attr in ("change_status", "update_status")

    def names_the_file(node) -> bool:
        return isinstance(node, ast.Constant) and node.value == "status.json"

    writers = {_module(path) for path in PACKAGE.rglob("*.py") if _calls(path, writes_status)}
    assert writers == {"training/status.py"}
    files = {_module(path) for path in PACKAGE.rglob("*.py") if _calls(path, names_the_file)}
    assert files == {"store.py", "objectstore.py"}


def test_one_owner_of_the_model_construction_arguments():
    """construct() assembles build_model's arguments; the registry and training runs call it."""

    def calls(name):
        return lambda node: (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
        )

    builders = {_module(path) for path in PACKAGE.rglob("*.py") if _calls(path, calls("build_model"))}
    assert builders == {"construct.py"}
    users = {_module(path) for path in PACKAGE.rglob("*.py") if _calls(path, calls("construct"))}
    assert users == {"registry.py", "training/run.py"}


def test_one_reader_of_a_projects_labeling_config():
    """A Label Studio project object's label_config (a webhook's, or GET /api/projects/<id>)
    is read by training.project_label_config only; model.py reads its construction context."""

    def reads(node) -> bool:
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and bool(node.args)
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value == "label_config"
        )

    readers = {
        (_module(path), where) for path in sorted(PACKAGE.rglob("*.py")) for where, _ in _calls(path, reads)
    }
    assert readers == {("training/base.py", "project_label_config"), ("model.py", "__init__")}


def test_nothing_outside_training_looks_inside_a_trainer():
    """The API and the CLI use the Trainer interface: no trainer class, no isinstance, no .redis."""

    def peeks(node) -> bool:
        if isinstance(node, (ast.Name, ast.alias)):
            return (node.id if isinstance(node, ast.Name) else node.name) in ("RQTrainer", "ThreadTrainer")
        if isinstance(node, ast.Attribute) and node.attr == "redis":
            owner = node.value
            return (owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")) == "trainer"
        return False

    offenders = [
        f"{_module(path)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if not _module(path).startswith("training/")
        for _, line in _calls(path, peeks)
    ]
    assert offenders == []


# layers
ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def _declared_layers() -> dict:
    """``{module: layer}`` from the "Import layers" table of docs/architecture.md."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("### Import layers", 1)[1].split("\n### ", 1)[0]
    layers = {}
    for row in re.findall(r"^\| (\d+) \| (.+) \|$", section, flags=re.M):
        for name in re.findall(r"`([\w.]+)`", row[1]):
            layers[name] = int(row[0])
    return layers


def _top(module: str) -> str:
    """``label_studio_ml.training.run`` -> ``training``; the package root -> ``""``."""
    parts = module.split(".")[1:]
    return parts[0] if parts else ""


def test_the_import_layers_in_architecture_md():
    """Every runtime module is in the table, and imports only from lower layers (a package's
    modules import each other freely; the root's ``__version__`` and lazy exports aside)."""
    layers = _declared_layers()
    modules = {_module_name(path): path for path in RUNTIME_MODULES}
    assert {_top(m) for m in modules} - {""} == set(layers), "docs/architecture.md lists other modules"
    assert layers["exceptions"] == 0 and layers["api"] > layers["training"] > layers["model"]
    wrong = []
    for name, path in sorted(modules.items()):
        own = _top(name)
        if not own:
            continue
        for target in sorted(_imports(path)):
            other = _top(target)
            if other in ("", own) or other not in layers:  # the root; the same module or package
                continue
            if layers[other] >= layers[own]:
                wrong.append(f"{name} (layer {layers[own]}) imports {target} (layer {layers[other]})")
    assert wrong == []


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
    """The few lines that find lsml_hooklib (they cannot live in it) are the same in both hooks."""

    def locator(hook: str) -> str:
        text = (HOOKS / hook).read_text(encoding="utf-8")
        start = text.index("# hooks/lsml_hooklib.py holds")
        return text[start : text.index("sys.dont_write_bytecode", start)]

    blocks = [locator(hook) for hook in HOOK_SCRIPTS]
    assert blocks[0] == blocks[1] and "TEMPLATE_DIR = _template_dir()" in blocks[0]


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


# ------------------------------------------------------------------ branch connection
def test_one_owner_of_the_shared_connection():
    """Only connections.py names the connection's Redis key or fills a ProjectInfo; the
    registry and the API reach Redis through it (never a module-level redis import)."""
    for path in RUNTIME_MODULES:
        text = path.read_text(encoding="utf-8")
        if path.name != "connections.py":
            assert ":connection" not in text and not re.search(r"ProjectInfo\((?!\))", text), path.name
    for name in ("registry.py", "api.py", "connections.py"):
        tree = ast.parse((PACKAGE / name).read_text(encoding="utf-8"))
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in top if isinstance(n, ast.ImportFrom)}
        assert not {m for m in names if m.split(".")[0] in ("redis", "rq")}, name


# ------------------------------------------------------------------ pregen
# The hooks' shape (issue 19): pre_gen_project.py is a short script, its work in modules beside
# it, one concern each, importing one way (a module imports only lower layers).
HOOK_LAYERS = {
    "lsml_hooklib": 0,  # HookError and its wording, the handoff, the template's packages
    "lsml_answers": 1,  # the answers, the command line's unknown keys
    "lsml_inspect": 1,  # a file's syntax tree
    "lsml_detect": 2,  # the script imported in a child interpreter
    "lsml_folder": 2,  # what comes along from the model's folder
    "lsml_script": 3,  # the script answer: where, which class
    "lsml_requirements": 1,  # requirements.txt: what the script and its folder add (postgen)
    "lsml_locks": 2,  # the vendored runtime wheel, its line and sha256 in the locks (postgen)
    "lsml_install": 2,  # model.py and what comes with it, wsgi.py's class, pruning (postgen)
    "pre_gen_project": 4,
    "post_gen_project": 4,
}
MAX_HOOK_FUNCTION = 35  # lines; cookiecutter's own hooks.py has none over 31
# Cookiecutter's words for the answers that init gives another name (or none): under init the
# hooks must say init's (lsml_hooklib.say).
COOKIECUTTER_WORDS = re.compile(r"\b(script|backend_name|model_class|_runtime_requirement)=")
HOOK_SCRIPTS_STEMS = {Path(h).stem for h in HOOK_SCRIPTS}


def _hook_trees() -> dict:
    return {p.stem: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(HOOKS.glob("*.py"))}


def test_every_hook_module_has_a_layer():
    assert set(_hook_trees()) == set(HOOK_LAYERS)


def test_hook_modules_import_the_standard_library_and_lower_hook_modules_only():
    """The hooks run on the user's interpreter, before anything is installed: the standard
    library, and the hooks' own modules (found in hooks/), each below the importer."""
    import sys

    wrong = []
    for name, tree in _hook_trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                targets = [node.module.split(".")[0]] if node.level == 0 else ["<relative>"]
            else:
                continue
            for target in targets:
                if target in HOOK_LAYERS:
                    if HOOK_LAYERS[target] >= HOOK_LAYERS[name]:
                        wrong.append(f"{name} imports {target} (not a lower layer)")
                elif target not in sys.stdlib_module_names and target != "__future__":
                    wrong.append(f"{name} imports {target} (not the standard library)")
    assert wrong == []


def test_no_hook_function_is_longer_than_the_limit():
    long = [
        f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for name, tree in _hook_trees().items()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_HOOK_FUNCTION
    ]
    assert long == []


def test_pre_gen_is_a_short_script():
    """Read the answers, validate, inspect, plan, write the handoff (or one ERROR): the work is
    in the modules it imports."""
    tree = _hook_trees()["pre_gen_project"]
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert functions == ["_template_dir", "plan", "main"]  # _template_dir finds the modules
    assert len((HOOKS / "pre_gen_project.py").read_text(encoding="utf-8").splitlines()) < 80


def test_only_the_two_hooks_are_rendered():
    """Cookiecutter renders the hook scripts with Jinja; the modules beside them are imported as
    they are, so a Jinja expression in one would be read as Python text."""
    for path in sorted(HOOKS.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if path.stem in HOOK_SCRIPTS_STEMS:
            assert text.count("{{") == 1 and 'json.loads(r"""{{ cookiecutter | tojson }}""")' in text
        else:
            assert "{{" not in text and "{%" not in text, path.name
            assert "cookiecutter |" not in text and "CONTEXT" not in text, path.name


def test_every_answer_named_in_cookiecutters_words_has_inits_words_too():
    """A string naming an answer as ``script=...`` (``backend_name=``, ``model_class=``,
    ``_runtime_requirement=``) is only ever the first, Cookiecutter, argument of ``say``: under
    ``label-studio-ml init`` the second is printed instead."""
    wrong = []
    for name, tree in _hook_trees().items():
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            if not COOKIECUTTER_WORDS.search(node.value) or isinstance(parents.get(node), ast.Expr):
                continue  # no answer named, or a docstring
            expr = node
            while isinstance(parents.get(expr), (ast.JoinedStr, ast.BinOp, ast.FormattedValue)):
                expr = parents[expr]
            call = parents.get(expr)
            is_say = isinstance(call, ast.Call) and getattr(call.func, "id", "") == "say"
            if not (is_say and call.args and call.args[0] is expr):
                wrong.append(f"{name}:{node.lineno}: {node.value[:60]!r}")
    assert wrong == []


# ------------------------------------------------------------------ postgen
# post_gen_project.py is a short script too (issue 19): read the handoff, install the model and
# what comes with it, merge requirements, name the wheel and hash it into the locks, prune, print.
def test_post_gen_is_a_short_script():
    """Its work is in lsml_install, lsml_requirements and lsml_locks; it keeps the order of the
    steps and the summary it prints."""
    tree = _hook_trees()["post_gen_project"]
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert functions == ["_template_dir", "main", "print_warnings", "print_next"]
    assert len((HOOKS / "post_gen_project.py").read_text(encoding="utf-8").splitlines()) < 100
    imported = {n.module for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert {"lsml_install", "lsml_requirements", "lsml_locks"} <= imported


def test_the_post_gen_modules_take_the_answers_as_arguments():
    """Only the hook scripts hold the answers (CONTEXT); the modules post-gen calls get them
    passed in: vendor_runtime(ctx) decides on _runtime_requirement."""
    for name in ("lsml_install", "lsml_requirements", "lsml_locks"):
        text = (HOOKS / f"{name}.py").read_text(encoding="utf-8")
        assert "CONTEXT" not in text and "_repo_dir" not in text, name
    tree = _hook_trees()["lsml_locks"]
    vendor = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "vendor_runtime")
    assert [a.arg for a in vendor.args.args] == ["ctx"]
