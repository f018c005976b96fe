"""The base class model scripts subclass.

Importable with the standard library alone (no Flask, no RQ), so template hooks and tools can
import a user's script against it. Both Label Studio model styles run on it unchanged:

* seed style: ``__init__(**kwargs)``, ``predict(tasks, **kwargs) -> list``,
  ``fit(annotations, workdir=None, **kwargs) -> dict`` (the dict comes back as
  ``self.train_output`` in the next version's model);
* current style: ``setup()``, ``predict(tasks, context=None, **kwargs) -> ModelResponse | list``,
  ``fit(event, data, **kwargs)``, ``self.get/set/has`` and ``self.model_version``.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import json
import logging
import os
import re
import threading

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: in-process lock only
    fcntl = None  # type: ignore[assignment]
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

from .fileio import write_atomic
from .label_config import build_label_map as _build_label_map
from .label_config import get_first_tag_occurence as _first_tag
from .label_config import parse_config
from .label_config import sdk_label_interface as _sdk_label_interface
from .process import functions
from .response import ModelResponse  # noqa: F401  upstream scripts import it from here
from .settings import Settings, SettingsError

logger = logging.getLogger(__name__)

INITIAL_MODEL_VERSION = "initial"

# Values the runtime hands to the base constructor when a subclass's own ``__init__`` does not
# forward them (for example ``__init__(self, project_id=None, label_config=None)``).
_construction: contextvars.ContextVar[Optional[Dict[str, Any]]] = contextvars.ContextVar(
    "lsml_construction", default=None
)
_kv_lock = threading.Lock()
# shared(): one object per key per process, and one lock per key so it is loaded once
_shared: Dict[Any, Any] = {}
_shared_locks: Dict[Any, threading.Lock] = {}
_shared_guard = threading.Lock()
_interface_lock = threading.Lock()
_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)")


# Upstream's function style: ``@predict_fn`` / ``@update_fn`` register module-level functions
# that the base class's ``predict`` / ``fit`` call as ``f(tasks, context, helper=model)``; the
# registration is the process's (process.functions).
def predict_fn(f: Callable[..., Any]) -> Callable[..., Any]:
    """Register ``f(tasks, context, helper=model, **kwargs)`` as the base class's ``predict``."""
    functions.predict = f
    return f


def update_fn(f: Callable[..., Any]) -> Callable[..., Any]:
    """Register ``f(event, data, helper=model, **kwargs)`` as the base class's ``fit``."""
    functions.update = f
    return f


def version_served(trained: Optional[str], declared: Any, initial: Any) -> str:
    """The one rule for the version a project serves (the store's view and the model's agree).

    ``trained``: the store's ``LATEST`` (None before training); ``declared``: what the model
    stored with ``self.set("model_version", ...)`` (``kv.json``); ``initial``: the class's
    ``INITIAL_MODEL_VERSION``. The first that is set wins.
    """
    if trained:
        return trained
    if isinstance(declared, str) and declared:
        return declared
    return str(initial)


class LabelStudioMLBase:
    """Subclass this and override :meth:`predict` (and :meth:`fit` to train).

    The runtime constructs one instance per project and model version and reuses it for every
    request, so load weights in ``__init__`` or :meth:`setup`, not in :meth:`predict`.

    Attributes:
        project_id: Label Studio project id (``"12"``), ``"default"`` when none was sent.
        label_config: The labeling config XML, or None.
        parsed_label_config: The config parsed into a dict keyed by control tag name.
        train_output: What the last successful ``fit`` returned (``{}`` before training).
        model_dir: The project's directory in the model store.
        workdir: The directory of the version being served (None before training).
        hostname, access_token: Label Studio URL and token sent by ``/setup``.
        extra_params: The connection's extra params from Label Studio (a dict).
    """

    INITIAL_MODEL_VERSION = INITIAL_MODEL_VERSION
    TRAIN_EVENTS = (
        "START_TRAINING",
        "ANNOTATION_CREATED",
        "ANNOTATION_UPDATED",
        "ANNOTATION_DELETED",
        "ANNOTATIONS_CREATED",
        "ANNOTATIONS_DELETED",
        "PROJECT_UPDATED",
    )

    def __init__(
        self,
        project_id: Optional[str] = None,
        label_config: Optional[str] = None,
        train_output: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        ctx = dict(_construction.get() or {})
        ctx.update({k: v for k, v in kwargs.items() if v is not None})
        if project_id is None:
            project_id = ctx.get("project_id")
        if label_config is None:
            label_config = ctx.get("label_config")
        if train_output is None:
            train_output = ctx.get("train_output")
        self.project_id: str = str(project_id) if project_id not in (None, "") else "default"
        self.label_config: Optional[str] = label_config
        self.parsed_label_config: Dict[str, Any] = parse_config(label_config)
        self.train_output: Dict[str, Any] = dict(train_output or {})
        self.model_dir: Optional[str] = ctx.get("model_dir")
        self.workdir: Optional[str] = ctx.get("workdir")
        settings = ctx.get("settings")
        self._settings: Optional[Settings] = settings if isinstance(settings, Settings) else None
        self.hostname: Optional[str] = ctx.get("hostname") or self._runtime_settings().label_studio_url
        self.access_token: Optional[str] = ctx.get("access_token")
        extra = ctx.get("extra_params")
        self.extra_params: Dict[str, Any] = extra if isinstance(extra, dict) else {}
        self._served_version: Optional[str] = ctx.get("served_version")
        known = {
            "model_dir",
            "workdir",
            "hostname",
            "access_token",
            "extra_params",
            "served_version",
            "settings",
            "project_id",
            "label_config",
            "train_output",
        }
        self.extra_kwargs: Dict[str, Any] = {k: v for k, v in ctx.items() if k not in known}
        for key, value in self.extra_kwargs.items():
            # Old scripts read their --with options as attributes (``self.threshold``).
            if not hasattr(self, key):
                with contextlib.suppress(AttributeError):
                    setattr(self, key, value)
        self.setup()

    def _runtime_settings(self) -> Settings:
        """The runtime's settings (from the environment, once, when built outside the runtime)."""
        if getattr(self, "_settings", None) is None:
            try:
                self._settings = Settings.from_env()
            except SettingsError as exc:
                logger.warning("%s; %s uses the default settings", exc, type(self).__name__)
                self._settings = Settings()
        return self._settings  # type: ignore[return-value]

    # ----------------------------------------------------------------- override these
    def setup(self) -> None:
        """Override this: one-off configuration, called once per instance after construction."""

    def predict(
        self, tasks: List[Dict[str, Any]], context: Optional[Dict[str, Any]] = None, **kwargs: Any
    ) -> Any:
        """Override this: return one prediction per task, in order.

        Args:
            tasks: Label Studio tasks (``task["data"]`` holds the values to label).
            context: Interactive pre-annotation input (the regions a user drew), else None.
            **kwargs: The rest of the request's ``params`` (``login``, ``password``).

        Returns:
            A list with one prediction dict (``{"result": [...], "score": 0.9}``) per task, or a
            :class:`~label_studio_ml.response.ModelResponse`.
        """
        if functions.predict is not None:  # registered with @predict_fn (upstream's function style)
            return functions.predict(tasks, context, helper=self, **kwargs)
        raise NotImplementedError(f"{type(self).__name__} must override predict()")

    def fit(self, event: Any, data: Any = None, **kwargs: Any) -> Any:
        """Override this to train. See the module docstring for the two accepted signatures."""
        if functions.update is not None:  # registered with @update_fn
            return functions.update(event, data, helper=self, **kwargs)
        raise NotImplementedError(f"{type(self).__name__} does not implement fit()")

    # ----------------------------------------------------------------- versions
    @property
    def model_version(self) -> str:
        """The version this instance serves (set by the runtime, else the model's own)."""
        return self._served_version or version_served(
            None, self.get("model_version"), self.INITIAL_MODEL_VERSION
        )

    @model_version.setter
    def model_version(self, value: str) -> None:
        self.set("model_version", str(value))

    @property
    def served_version(self) -> Optional[str]:
        """The version the runtime serves this instance as (:meth:`serve_as`); None outside it."""
        return getattr(self, "_served_version", None)

    def serve_as(self, trained: Optional[str]) -> str:
        """Runtime: fix the version this instance answers with, and return it.

        ``trained`` is the store's version the instance was built from (None before training);
        without one, the version the model declared (``self.set("model_version", ...)``), else
        ``INITIAL_MODEL_VERSION`` (:func:`version_served`). Fixed here, once, so a request does
        not read ``kv.json``; the only writer of the served version besides the constructor.
        """
        declared = None if trained else self.get("model_version")
        self._served_version = version_served(trained, declared, self.INITIAL_MODEL_VERSION)
        return self._served_version

    def get_model_version(self) -> str:
        """Alias of :attr:`model_version` for older scripts."""
        return self.model_version

    def set_model_version(self, value: str) -> None:
        """Alias of ``self.model_version = value`` for older scripts."""
        self.model_version = value

    # ----------------------------------------------------------------- key/value cache
    def _kv_path(self) -> Optional[Path]:
        return Path(self.model_dir) / "kv.json" if self.model_dir else None

    def _kv_read(self) -> Dict[str, str]:
        if not hasattr(self, "_kv_memory"):
            self._kv_memory: Dict[str, str] = {}
        path = self._kv_path()
        if path is None:
            return self._kv_memory
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}

    def get(self, key: str) -> Optional[str]:
        """Read a value this project's model stored with :meth:`set` (None if absent)."""
        return self._kv_read().get(key)

    def has(self, key: str) -> bool:
        """Whether :meth:`set` stored ``key`` for this project."""
        return key in self._kv_read()

    def set(self, key: str, value: str) -> None:
        """Store a string value for this project; it persists across restarts and processes."""
        if not isinstance(value, str):
            raise ValueError(f"set({key!r}, ...) takes a str value, got {type(value).__name__}")
        path = self._kv_path()
        if path is None:
            with _kv_lock:
                self._kv_memory = {**self._kv_read(), key: value}
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # a file lock: API processes and training workers may write the same project's cache
        with _kv_lock, open(path.with_name(".kv.lock"), "a+") as lock:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            write_atomic(path, json.dumps({**self._kv_read(), key: value}))

    # ----------------------------------------------------------------- shared weights
    @classmethod
    def shared(cls, key: Any, load: Callable[[], Any]) -> Any:
        """One object per ``key`` per process, built once by ``load()`` and shared by every model.

        The runtime builds one model instance per project (and per version); weights that do
        not depend on the project belong here, so ten projects hold one copy::

            def setup(self):
                self.net = self.shared(("yolo", WEIGHTS), lambda: load_weights(WEIGHTS))

        ``key`` is any hashable value naming what is loaded (a path, a model name, with a
        device). Concurrent callers with the same key wait for the one load; a ``load`` that
        raises is not remembered, so the next call tries again. The object lives as long as
        the process: it is not counted by ``MAX_LIVE_MODELS``.
        """
        try:
            return _shared[key]
        except KeyError:
            pass
        with _shared_guard:
            lock = _shared_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in _shared:
                _shared[key] = load()
            return _shared[key]

    # ----------------------------------------------------------------- helpers
    def get_first_tag_occurence(
        self, control_type: Any, object_type: Any, name_filter: Any = None, to_name_filter: Any = None
    ) -> tuple:
        """``(from_name, to_name, value)`` of the first control of ``control_type``."""
        return _first_tag(self.parsed_label_config, control_type, object_type, name_filter, to_name_filter)

    def build_label_map(self, tag_name: str, model_names: List[str]) -> Dict[str, str]:
        """Map the model's class names to the config's labels of ``tag_name``."""
        return _build_label_map(self.parsed_label_config, tag_name, model_names)

    def get_local_path(
        self,
        url: str,
        project_dir: Optional[str] = None,
        ls_host: Optional[str] = None,
        ls_access_token: Optional[str] = None,
        task_id: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> str:
        """Download (or locate) a task's media file and return a local path.

        Same signature as the current SDK's. Cloud storage URIs (``s3://``, ``gs://``,
        ``azure-blob://``) need ``task_id``. Label Studio is ``LABEL_STUDIO_URL`` with
        ``LABEL_STUDIO_API_KEY``, else what ``/setup`` sent (``ls_host`` with
        ``ls_access_token`` override that pair); see :func:`label_studio_ml.utils.get_local_path`.
        """
        from .utils import get_local_path

        if ls_host is None:
            ls_host = self.hostname
            if ls_access_token is None:
                ls_access_token = self.access_token  # /setup's token, with /setup's hostname only
        return get_local_path(
            url,
            *args,
            project_dir=project_dir,
            hostname=ls_host,
            access_token=ls_access_token,
            task_id=task_id,
            **kwargs,
        )

    def get_annotated_tasks(self, project_id: Any = None) -> List[Dict[str, Any]]:
        """Fetch this project's annotated tasks from Label Studio (export format).

        Uses ``LABEL_STUDIO_URL``/``LABEL_STUDIO_API_KEY`` when set, else what ``/setup`` sent.
        Current-style ``fit(event, data)`` can call it on ``START_TRAINING``, which carries no
        annotations.
        """
        from .lsclient import make_client

        settings = self._runtime_settings()
        client = make_client(
            settings.label_studio_url, settings.label_studio_api_key, self.hostname, self.access_token
        )
        return client.get_annotated_tasks(project_id or self.project_id)

    # ----------------------------------------------------------------- current SDK surface
    # label_studio_ml at label-studio-ml-backend HEAD: label_interface, preload_task_data,
    # use_label_config, set_extra_params, bump_model_version, get_label_studio_access_token.
    @property
    def label_interface(self) -> Any:
        """The project's labeling config as a ``label_studio_sdk.label_interface.LabelInterface``.

        Built on first use, once per live model instance (and again only if ``label_config``
        changes). Needs the optional ``label-studio-sdk`` package (``lsml-runtime[sdk]``).

        Raises:
            ImportError: label-studio-sdk is not installed (the message says what to install).
            ValueError: The project has no labeling config yet.
        """
        cached = self.__dict__.get("_lsml_label_interface")
        if cached is not None and cached[0] == self.label_config:
            return cached[1]
        with _interface_lock:
            cached = self.__dict__.get("_lsml_label_interface")
            if cached is None or cached[0] != self.label_config:
                cached = (self.label_config, _sdk_label_interface(self.label_config))
                self.__dict__["_lsml_label_interface"] = cached
        return cached[1]

    @label_interface.setter
    def label_interface(self, value: Any) -> None:
        self.__dict__["_lsml_label_interface"] = (self.label_config, value)

    def use_label_config(self, label_config: str) -> None:
        """Switch this instance to another labeling config (``label_config``, parsed, interface)."""
        self.parsed_label_config = parse_config(label_config)
        self.label_config = label_config
        self.__dict__.pop("_lsml_label_interface", None)

    def set_extra_params(self, extra_params: Any) -> None:
        """Replace the connection's extra params (a dict, or its JSON text)."""
        if isinstance(extra_params, str):
            extra_params = json.loads(extra_params) if extra_params.strip() else {}
        self.extra_params = dict(extra_params or {})

    def bump_model_version(self) -> str:
        """Raise the minor part of a ``X.Y.Z`` model version (``1.4.2`` → ``1.5.0``); returns it.

        Raises:
            ValueError: The current version is not ``X.Y.Z``.
        """
        current = str(self.get("model_version") or self.INITIAL_MODEL_VERSION)
        match = _SEMVER.fullmatch(current)
        if not match:
            raise ValueError(f"bump_model_version() needs an X.Y.Z model_version, not {current!r}")
        new = f"{match.group(1)}.{int(match.group(2)) + 1}.0"
        self.set("model_version", new)
        return new

    def get_label_studio_access_token(self) -> Optional[str]:
        """The Label Studio key: ``LABEL_STUDIO_API_KEY`` (or ``_ACCESS_TOKEN``), else ``/setup``'s."""
        return self._runtime_settings().label_studio_api_key or self.access_token

    def preload_task_data(self, task: Dict[str, Any], value: Any = None, read_file: bool = True) -> Any:
        """Replace URLs, storage URIs and paths in ``value`` with their files' text (or paths).

        Dicts and lists are walked recursively (dicts in place). A string that names media
        (``/data/upload/...``, ``/data/local-files/?d=...``, ``s3://``/``gs://``/``azure-blob://``,
        an ``http(s)`` URL or an existing path) goes through :meth:`get_local_path`; anything
        else comes back unchanged, ``None`` included.

        Args:
            task: The task ``value`` belongs to (its ``id`` resolves cloud storage URIs).
            value: Usually ``task["data"]`` or one of its values.
            read_file: Return the file's text (True) or its local path (False).
        """
        from .utils import is_preload_needed

        if isinstance(value, dict):
            for key, item in value.items():
                value[key] = self.preload_task_data(task=task, value=item, read_file=read_file)
            return value
        if isinstance(value, list):
            return [self.preload_task_data(task=task, value=item, read_file=read_file) for item in value]
        if isinstance(value, str) and is_preload_needed(value):
            path = self.get_local_path(url=value, task_id=task.get("id"))
            if not read_file:
                return path
            with open(path, encoding="utf-8") as fh:
                return fh.read()
        return value

    def process_event(self, event: str, data: Any, job_id: Any = None, additional_params: Any = None) -> Any:
        """Old SDK entry point: call ``fit`` for training events."""
        if event in self.TRAIN_EVENTS:
            return self.fit(event, data, job_id=job_id, **(additional_params or {}))
        return None


# --------------------------------------------------------------------- runtime side
@contextlib.contextmanager
def construction(**values: Any) -> Iterator[None]:
    """Provide constructor values to :class:`LabelStudioMLBase` for one construction."""
    token = _construction.set(values)
    try:
        yield
    finally:
        _construction.reset(token)


def accepted_kwargs(func: Any, values: Dict[str, Any]) -> Dict[str, Any]:
    """The subset of ``values`` that ``func`` accepts as keyword arguments."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return dict(values)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(values)
    names = {
        n
        for n, p in params.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    return {k: v for k, v in values.items() if k in names}


def build_model(model_class: type, **values: Any) -> LabelStudioMLBase:
    """Construct ``model_class`` passing only the keyword arguments its ``__init__`` accepts.

    Everything in ``values`` also reaches the base constructor through the construction
    context, so a subclass ``__init__`` with a narrow signature still gets a complete model.
    """
    public = {k: v for k, v in values.items() if k not in ("served_version", "workdir", "settings")}
    kwargs = accepted_kwargs(model_class.__init__, public)
    with construction(**values):
        model = model_class(**kwargs)
    if values.get("served_version"):
        model.serve_as(values["served_version"])
    if values.get("workdir") and not getattr(model, "workdir", None):
        model.workdir = values["workdir"]
    return model


def fit_style(model_class: type) -> str:
    """``"current"`` for ``fit(event, data, **kwargs)``, else ``"seed"`` (``fit(annotations)``)."""
    fit = getattr(model_class, "fit", None)
    if fit is LabelStudioMLBase.fit and functions.update is not None:
        return "current"  # the base fit calls the @update_fn function
    if fit is None or fit is LabelStudioMLBase.fit:
        return "none"
    try:
        params = [p for p in inspect.signature(fit).parameters.values() if p.name != "self"]
    except (TypeError, ValueError):
        return "seed"
    positional = [
        p
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if positional and positional[0].name == "event":
        return "current"
    return "seed"


def predict_takes_context(model_class: type) -> bool:
    """Whether ``predict`` accepts ``context=`` (explicitly or through ``**kwargs``)."""
    return bool(accepted_kwargs(model_class.predict, {"context": None}))


def get_all_classes_inherited_LabelStudioMLBase(script_file: str) -> List[str]:  # noqa: N802 - upstream name
    """Names of the :class:`LabelStudioMLBase` subclasses a script defines (imports it)."""
    import importlib.util
    import sys

    path = os.path.abspath(script_file)
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {script_file}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(path))
    try:
        sys.modules[name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(os.path.dirname(path))
    return sorted(
        key
        for key, obj in vars(module).items()
        if inspect.isclass(obj) and issubclass(obj, LabelStudioMLBase) and obj is not LabelStudioMLBase
    )
