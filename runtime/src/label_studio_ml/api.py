"""The Flask app factory: Label Studio's ML backend HTTP API around one model class.

``create_app(MyModel)`` returns a new app holding all its state (settings, store, live models,
trainer, metrics), so tests and processes can build as many as they like. What belongs to the
process instead (logging, ``gc.freeze``, Prometheus' file naming) is :mod:`label_studio_ml.process`'s,
set once by the entry point; ``create_app`` sets it up when nobody did. Routes live in one
Blueprint; every error is JSON.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import traceback
from itertools import repeat
from typing import Any, Dict, Optional

from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import HTTPException

from . import __version__
from .checks import check_model_dir
from .exceptions import ApiError, LabelConfigError, ModelLoadError, ModelLoading, PredictionError, http_answer
from .gate import Gate
from .label_config import parse_config, parse_xml
from .launch import model_kwargs_for, parse_kwargs
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics
from .model import predict_takes_context
from .objectstore import open_store
from .process import setup_process
from .registry import LiveModel, ModelRegistry, served_version
from .response import normalize_predictions
from .settings import Settings, redis_url_from
from .store import ModelStore
from .training import Submitted, Trainer, TrainRequest, make_trainer, project_label_config
from .versions import bp as versions_bp
from .versions import listing as versions_listing
from .web import backend as _backend
from .web import body as _body
from .web import json_response as _json
from .web import project_id_of

__all__ = ["create_app", "init_app", "parse_kwargs", "project_id_of", "ApiError", "Backend"]

logger = logging.getLogger("label_studio_ml")
SETUP_WAIT = 0.5  # seconds /setup waits for a build before answering the store's version
bp = Blueprint("lsml", __name__)


REASON_MAX = 300  # characters of the detail repeated in the status line


def _reason(detail: str) -> str:
    """``detail`` as an HTTP reason phrase: one line of printable ASCII, at most REASON_MAX."""
    line = re.sub(r"\s+", " ", detail).strip()
    line = "".join(ch if " " <= ch <= "~" else "?" for ch in line)
    return line if len(line) <= REASON_MAX else line[: REASON_MAX - 3] + "..."


def _error(status: int, code: str, detail: str, headers: Optional[Dict[str, str]] = None) -> Response:
    resp = _json({"error": code, "detail": detail}, status, headers)
    # Label Studio shows a failed call as requests' "<status> Client Error: <reason> for url:
    # ..." (the connection's Error message) and never reads the body: the status line carries
    # the detail too, so the user sees the cause in Label Studio's UI.
    reason = _reason(detail)
    if reason:
        resp.status = f"{status} {reason}"
    return resp


class Backend:
    """Everything one app serves: settings, store, live models, trainer, metrics."""

    def __init__(self, model_class: type, settings: Settings, model_kwargs: Optional[Dict[str, Any]]) -> None:
        self.model_class = model_class
        self.settings = settings
        check_model_dir(settings.model_dir)  # refuse to start rather than answer 500s
        self.store: ModelStore = open_store(settings)  # MODEL_DIR, or a bucket cached there
        self.registry = ModelRegistry(
            model_class,
            self.store,
            model_kwargs,
            settings,
            max_live=settings.max_live_models,
            predict_concurrency=settings.predict_concurrency,
            slot_wait=settings.model_load_timeout,
        )
        self.metrics = Metrics(settings.metrics_dir)
        # development mode: runs finish in this process, the registry hears of new versions
        self.trainer: Trainer = make_trainer(
            model_class, self.store, settings, model_kwargs,
            on_commit=self.registry.invalidate, metrics=self.metrics,
        )  # fmt: skip
        self.passes_context = predict_takes_context(model_class)
        self.warned_version = False


def _redact(backend: Backend, text: str) -> str:
    """Cut every key the backend knows (LABEL_STUDIO_API_KEY, Basic password, /setup tokens)."""
    return backend.settings.redact(text, *backend.registry.access_tokens())


# ------------------------------------------------------------------ request parsing
def _check_config(backend: Backend, pid: str, config: Optional[str]) -> None:
    """A config not seen before must be well-formed XML before it is stored for the project."""
    if config and backend.registry.label_config(pid) != config:
        try:
            parse_xml(config)
        except LabelConfigError as exc:
            raise ApiError(400, "bad_request", f"the labeling config: {exc}") from None


def _live_model(backend: Backend, pid: str, config: Optional[str]) -> LiveModel:
    """The project's live model (waits for a build, bounded by MODEL_LOAD_TIMEOUT).

    A model that cannot be built without a config is a 400, on a config without control tags a
    422.
    """
    _check_config(backend, pid, config)
    try:
        return backend.registry.acquire(pid, config, backend.settings.model_load_timeout)
    except ModelLoadError as exc:
        if backend.registry.label_config(pid) is None:
            raise ApiError(
                400,
                "bad_request",
                f"{exc}, and project {pid} has no labeling config yet: send it as 'schema' "
                "(/setup) or 'label_config' (/predict), as Label Studio does",
            ) from None
        _config_without_controls(backend, pid, config, exc)
        raise


def _config_without_controls(backend: Backend, pid: str, config: Optional[str], exc: ModelLoadError) -> None:
    """A model that failed to build on a labeling config without any control tag: a 422.

    A new Label Studio project's config is ``<View></View>`` until its labeling interface is
    set, and a model that reads its first control tag (the seed tutorial's) fails on it.
    """
    config = config or backend.registry.label_config(pid)
    if config is None:
        return
    try:
        controls = parse_config(config)
    except LabelConfigError:
        return
    if not controls:
        raise ApiError(
            422,
            "label_config_without_controls",
            f"the labeling config of project {pid} has no control tag (such as <Choices>, "
            f"<Labels>, <TextArea>), and {exc}. Set the project's labeling interface in Label "
            "Studio (Settings > Labeling Interface; label-studio start --label-config FILE for a "
            "new project), then connect again",
        )


def _optional_str(body: Dict[str, Any], key: str) -> Optional[str]:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, "bad_request", f"'{key}' must be a string, got {type(value).__name__}")
    return value or None


# ------------------------------------------------------------------ routes
@bp.get("/")
@bp.get("/health")
def health() -> Response:
    backend = _backend()
    body: Dict[str, Any] = {
        "status": "UP",
        "model_class": backend.model_class.__name__,
        "mode": backend.trainer.mode,
        "runtime_version": __version__,
        "models": backend.registry.state(),
    }
    if backend.settings.model_store:
        body["store"] = backend.settings.model_store  # the URL only: credentials never leave boto3
    body.update(backend.trainer.health())  # production: the queue's workers, and a warning
    return _json(body)


@bp.post("/setup")
def setup() -> Response:
    backend = _backend()
    body = _body()
    pid = project_id_of(body.get("project"))
    schema = _optional_str(body, "schema") or _optional_str(body, "label_config")
    backend.registry.update_info(
        pid, body.get("hostname"), body.get("access_token"), body.get("extra_params")
    )
    _check_config(backend, pid, schema)
    # The model builds in the background: /setup answers within Label Studio's 3 s whatever the
    # model takes. A build that ends within SETUP_WAIT is reported (its version, or its error).
    key = backend.registry.request(pid, schema, retry=True)
    try:
        backend.registry.wait(pid, key, SETUP_WAIT)
    except ModelLoading:
        pass
    except ModelLoadError:
        # the 400 (no config), 422 (a config without control tags) or 500 (model_load_failed)
        _live_model(backend, pid, schema)
    return _json({"model_version": backend.registry.version_for(pid, key)})


@bp.post("/predict")
def predict() -> Response:
    backend = _backend()
    body = _body()
    tasks = body.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise ApiError(400, "bad_request", "'tasks' must be a non-empty list of task objects")
    if not all(map(isinstance, tasks, repeat(dict))):  # in C: ~15 µs per 1000 tasks
        raise ApiError(400, "bad_request", "every item of 'tasks' must be a JSON object")
    pid = project_id_of(body.get("project"))
    config = _optional_str(body, "label_config")
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise ApiError(400, "bad_request", "'params' must be a JSON object")
    live = _live_model(backend, pid, config)
    model, version = live.model, live.version
    kwargs = {k: v for k, v in params.items() if k != "context" and isinstance(k, str)}
    if backend.passes_context:
        kwargs["context"] = params.get("context")
    try:
        raw = live.predict(tasks, **kwargs)  # PREDICT_CONCURRENCY: at most that many at a time
        results, foreign, n_predictions = normalize_predictions(raw, len(tasks), version)
    except PredictionError as exc:
        logger.error("project %s: %s returned a bad answer: %s", pid, type(model).__name__, exc)
        raise ApiError(500, "predict_failed", str(exc)) from None
    except Exception as exc:
        trace = _redact(backend, traceback.format_exc())
        logger.error("project %s: %s.predict raised\n%s", pid, type(model).__name__, trace)
        detail = f"{type(model).__name__}.predict raised {type(exc).__name__}: {exc}"
        raise ApiError(500, "predict_failed", _redact(backend, detail)) from None
    if foreign is not None and not backend.warned_version:
        _warn_version(backend, foreign, version)
    backend.metrics.predicted(len(tasks), n_predictions)
    try:
        return _json({"results": results, "model_version": version})
    except PredictionError as exc:
        raise ApiError(500, "predict_failed", f"predictions are not JSON: {exc}") from None


def _warn_version(backend: Backend, own: Any, version: str) -> None:
    """Predictions leave with the served version (Label Studio dedupes on it): say so once."""
    backend.warned_version = True
    logger.warning(
        "%s stamps model_version %r on its predictions; serving them as %r, the "
        "version /setup reports, so Label Studio does not store duplicates",
        backend.model_class.__name__,
        own,
        version,
    )


def _train(
    pid: str, event: str, data: Dict[str, Any], *, annotations: Any = None, label_config: Optional[str] = None
) -> Response:
    backend = _backend()
    info = backend.registry.connection(pid)  # production: the later of Redis's copy and ours
    req = TrainRequest(
        project_id=pid,
        event=event,
        data=data,
        label_config=label_config or backend.registry.label_config(pid),
        annotations=annotations,
        hostname=info.hostname,
        # the configured key wins over /setup's token: then the token travels neither in the
        # job nor in the connection's Redis copy (connections.py)
        access_token=None if backend.settings.label_studio_api_key else info.access_token,
        extra_params=info.extra_params,
    )
    status, job_id = backend.trainer.submit(req)  # TrainingUnavailable: a 503 (exceptions.HTTP_ANSWERS)
    backend.metrics.training_requested(status.value)
    return _json(
        {"status": status.value, "job_id": job_id, "project": pid}, 201 if status is Submitted.QUEUED else 200
    )


@bp.post("/webhook")
def webhook() -> Response:
    backend = _backend()
    body = _body()
    action = body.get("action")
    if not isinstance(action, str) or not action:
        raise ApiError(400, "bad_request", "'action' must be a non-empty string (a Label Studio event)")
    if action not in backend.model_class.TRAIN_EVENTS:
        return _json({"status": "ignored", "action": action[:64]})
    pid = project_id_of(body.get("project"))
    if not request.environ.get("lsml.authenticated", True) and not backend.store.has_project(pid):
        # Label Studio's own webhooks carry no credentials; they may only train known projects.
        raise ApiError(404, "not_found", f"project {pid} is unknown to this backend")
    data = {k: v for k, v in body.items() if k != "action"}
    return _train(pid, action, data, label_config=project_label_config(data.get("project")))


@bp.post("/train")
def train() -> Response:
    body = _body()
    annotations = body.get("annotations", body.get("completions"))
    if not isinstance(annotations, list) or not annotations:
        raise ApiError(400, "bad_request", "'annotations' must be a non-empty list of annotated tasks")
    pid = project_id_of(body.get("project"))
    config = _optional_str(body, "label_config")
    if config:
        _check_config(_backend(), pid, config)
        _backend().registry.remember_config(pid, config)
    return _train(pid, "START_TRAINING", {}, annotations=annotations, label_config=config)


@bp.route("/versions", methods=["GET", "POST"])
def versions() -> Response:
    backend = _backend()
    body = _body() if request.method == "POST" else {}
    raw = body.get("project") or request.args.get("project")
    projects = [project_id_of(raw)] if raw else backend.store.projects()
    # Label Studio reads "versions"; "served" says which one each project serves and why
    return _json(versions_listing(backend.store, projects, backend.model_class))


@bp.get("/training")
def training() -> Response:
    backend = _backend()
    trainer = backend.trainer
    raw = request.args.get("project")
    if raw:
        return _json(trainer.report(project_id_of(raw)))
    projects = {pid: trainer.report(pid) for pid in backend.store.projects()}
    return _json({"mode": trainer.mode, "projects": projects})


@bp.get("/is_training")
def is_training() -> Response:
    backend = _backend()
    pid = project_id_of(request.args.get("project"))
    record = backend.trainer.status(pid)  # a run whose process is gone: interrupted
    return _json(
        {"is_training": record.busy, "model_version": backend.store.latest(pid), "job_id": record.job_id}
    )


@bp.get("/metrics")
def metrics() -> Response:
    backend = _backend()
    store = backend.store
    versions = {pid: served_version(store, pid, backend.model_class) for pid in store.projects()}
    body = backend.metrics.render(versions, backend.trainer.queue_length(), backend.trainer.mode)
    return Response(body, content_type=METRICS_CONTENT_TYPE)


@bp.get("/openapi.json")
def openapi() -> Response:
    from .openapi import build_spec

    return _json(build_spec(title=f"{_backend().model_class.__name__} (Label Studio ML backend)"))


# ------------------------------------------------------------------ errors
def _handle_http(exc: HTTPException) -> Response:
    codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    code = exc.code or 500
    detail = {
        404: f"no route {request.path[:100]}; see GET /health",
        405: f"{request.method} is not allowed on {request.path[:100]}",
        413: f"the request body is larger than {_backend().settings.max_request_bytes} bytes "
        "(MAX_REQUEST_MB)",
    }.get(code, exc.description or exc.name)
    return _error(
        code, codes.get(code, "error"), str(detail), dict(exc.get_headers()) if code == 405 else None
    )


def _handle_error(exc: Exception) -> Response:
    """Every error but werkzeug's: its answer in exceptions.HTTP_ANSWERS, else a logged 500."""
    answer = http_answer(exc)
    if answer is None:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal_error", f"{type(exc).__name__}; see the backend log")
    return _error(answer.status, answer.code, _redact(_backend(), str(exc)), dict(answer.headers) or None)


# ------------------------------------------------------------------ the old entry point
def init_app(model_class: type, **kwargs: Any) -> Flask:
    """Old ``_wsgi.py`` entry point: ``init_app(MyModel, model_dir=..., **model_kwargs)``.

    Accepts the old keyword names (``model_dir``, ``redis_queue``, ``redis_host``,
    ``redis_port``, ``basic_auth_user``, ``basic_auth_pass``) over the environment; everything
    else goes to the model's constructor.
    """
    settings = Settings.from_env()
    overrides: Dict[str, Any] = {}
    if kwargs.get("model_dir"):
        overrides["model_dir"] = kwargs.pop("model_dir")
    if kwargs.get("redis_queue"):
        overrides["rq_queue_name"] = kwargs.pop("redis_queue")
    host, port = kwargs.pop("redis_host", None), kwargs.pop("redis_port", None)
    if host and not settings.redis_url and kwargs.pop("use_redis", True):
        overrides["redis_url"] = redis_url_from(host, port)
    for key in ("basic_auth_user", "basic_auth_pass"):
        if kwargs.get(key):
            overrides[key] = kwargs.pop(key)
    for key in ("redis_queue", "use_redis", "model_dir"):
        kwargs.pop(key, None)
    return create_app(model_class, dataclasses.replace(settings, **overrides), kwargs)


# ------------------------------------------------------------------ factory
def create_app(
    model_class: type, settings: Optional[Settings] = None, model_kwargs: Optional[Dict[str, Any]] = None
) -> Flask:
    """Build the backend's Flask app around ``model_class``.

    The app holds everything it serves; nothing of it is global. The first app of a process that
    no entry point set up (a script, a test) also sets the process up, as an API process, with
    these settings (:func:`label_studio_ml.process.setup_process`: logging, ``gc.freeze``,
    Prometheus' file naming); later apps leave the process as it is.

    Args:
        model_class: A subclass of :class:`~label_studio_ml.model.LabelStudioMLBase`.
        settings: Configuration; read from the environment when omitted.
        model_kwargs: Extra keyword arguments for the model's constructor, over the backend's
            ``config.json`` and under ``start --with k=v`` (see :mod:`label_studio_ml.launch`).
    """
    settings = settings or Settings.from_env()
    setup_process(settings, role="api")  # once per process; nothing when an entry point did
    app = Flask(model_class.__module__ if model_class.__module__ != "__main__" else "lsml_backend")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    kwargs = model_kwargs_for(model_class, model_kwargs)
    app.extensions["lsml"] = Backend(model_class, settings, kwargs)
    logger.info(
        "app for %s built (%s mode); model arguments: %s",
        model_class.__name__,
        "production" if settings.production else "development",
        ", ".join(sorted(kwargs)) or "none",
    )
    app.register_blueprint(bp)
    app.register_blueprint(versions_bp)  # POST /versions/pin, /versions/rollback, /versions/unpin
    backend = app.extensions["lsml"]
    routes = frozenset(rule.rule for rule in app.url_map.iter_rules())
    app.wsgi_app = Gate(app.wsgi_app, backend, routes)  # type: ignore[method-assign]
    app.register_error_handler(HTTPException, _handle_http)
    app.register_error_handler(Exception, _handle_error)  # ApiError and exceptions.HTTP_ANSWERS
    if settings.preload_models:
        backend.registry.start_preload()
    return app
