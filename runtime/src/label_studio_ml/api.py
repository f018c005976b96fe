"""The Flask app factory: Label Studio's ML backend HTTP API around one model class.

``create_app(MyModel)`` returns a new app; nothing is global, so tests and processes can build
as many as they like. Routes live in one Blueprint; every error is JSON.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import time
import traceback
from typing import Any, Dict, Optional, Tuple

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from . import __version__
from .label_config import LabelConfigError, parse_xml
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics
from .model import predict_takes_context
from .registry import ModelLoadError, ModelRegistry
from .response import PredictionError, dumps, loads, normalize_predictions
from .settings import Settings
from .store import PROJECT_ID_RE, ModelStore, StoreError
from .training import RQTrainer, ThreadTrainer, TrainingUnavailable, TrainRequest, redact

logger = logging.getLogger("label_studio_ml")
bp = Blueprint("lsml", __name__)


class ApiError(Exception):
    """An error answered as ``{"error": code, "detail": detail}``."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def _json(payload: Any, status: int = 200, headers: Optional[Dict[str, str]] = None) -> Response:
    return Response(dumps(payload), status=status, mimetype="application/json", headers=headers)


def _error(status: int, code: str, detail: str, headers: Optional[Dict[str, str]] = None) -> Response:
    return _json({"error": code, "detail": detail}, status, headers)


class Backend:
    """Everything one app serves: settings, store, live models, trainer, metrics."""

    def __init__(self, model_class: type, settings: Settings, model_kwargs: Optional[Dict[str, Any]]) -> None:
        self.model_class = model_class
        self.settings = settings
        self.store = ModelStore(settings.model_dir)
        self.registry = ModelRegistry(model_class, self.store, model_kwargs)
        trainer_class = RQTrainer if settings.production else ThreadTrainer
        self.trainer = trainer_class(model_class, self.store, settings, model_kwargs)
        if isinstance(self.trainer, ThreadTrainer):
            self.trainer.on_commit = self.registry.invalidate
        self.metrics = Metrics()
        if isinstance(self.trainer, ThreadTrainer):
            self.trainer.metrics = self.metrics  # runs finish in this process: count them here
        self.passes_context = predict_takes_context(model_class)
        self.warned_version = False


def _backend() -> Backend:
    return current_app.extensions["lsml"]


def _redact(backend: Backend, text: str) -> str:
    """Cut every key the backend knows (LABEL_STUDIO_API_KEY, Basic password, /setup tokens)."""
    tokens = [info.access_token for info in list(backend.registry.info.values())]
    return redact(text, [backend.settings.label_studio_api_key, backend.settings.basic_auth_pass, *tokens])


# ------------------------------------------------------------------ request parsing
def _body() -> Dict[str, Any]:
    data = request.get_data(cache=True)  # honours MAX_CONTENT_LENGTH (413)
    # chunked: werkzeug stops quietly at the limit; anything left means the body is too large
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is None and len(data) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    if not data:
        return {}
    try:
        body = loads(data)
    except (ValueError, RecursionError):
        raise ApiError(400, "bad_request", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(
            400, "bad_request", f"the request body must be a JSON object, got {type(body).__name__}"
        )
    return body


# Label Studio's "<id>.<created_at>": the id part is the store's project id (fullmatch)
_PROJECT_RE = re.compile(rf"({PROJECT_ID_RE.pattern})(?:\.[0-9]+)?")


def project_id_of(value: Any) -> str:
    """``"12.1719830400"`` → ``"12"``; ints and ``{"id": 12}`` work too; missing → ``default``."""
    if value is None or value == "":
        return "default"
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ApiError(
            400, "bad_request", f"'project' must be a string like '12.1719830400', got {type(value).__name__}"
        )
    match = _PROJECT_RE.fullmatch(str(value))
    if not match:
        raise ApiError(
            400, "bad_request", f"'project' {str(value)[:80]!r} is not a project id like '12.1719830400'"
        )
    return match.group(1)


def _check_config(backend: Backend, pid: str, config: Optional[str]) -> None:
    """A config not seen before must be well-formed XML before it is stored for the project."""
    if config and backend.registry.remember_config(pid, None) != config:
        try:
            parse_xml(config)
        except LabelConfigError as exc:
            raise ApiError(400, "bad_request", f"the labeling config: {exc}") from None


def _live_model(backend: Backend, pid: str, config: Optional[str], fresh: bool = False) -> Tuple[Any, str]:
    """The project's live model; a model that cannot be built without a config is a 400."""
    _check_config(backend, pid, config)
    try:
        return backend.registry.get(pid, config, fresh=fresh)
    except ModelLoadError as exc:
        if backend.registry.remember_config(pid, None) is None:
            raise ApiError(
                400,
                "bad_request",
                f"{exc}, and project {pid} has no labeling config yet: send it as 'schema' "
                "(/setup) or 'label_config' (/predict), as Label Studio does",
            ) from None
        raise


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
    return _json(
        {
            "status": "UP",
            "model_class": backend.model_class.__name__,
            "mode": backend.trainer.mode,
            "runtime_version": __version__,
        }
    )


@bp.post("/setup")
def setup() -> Response:
    backend = _backend()
    body = _body()
    pid = project_id_of(body.get("project"))
    schema = _optional_str(body, "schema") or _optional_str(body, "label_config")
    backend.registry.update_info(
        pid, body.get("hostname"), body.get("access_token"), body.get("extra_params")
    )
    _, version = _live_model(backend, pid, schema, fresh=True)
    return _json({"model_version": version})


@bp.post("/predict")
def predict() -> Response:
    backend = _backend()
    body = _body()
    tasks = body.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise ApiError(400, "bad_request", "'tasks' must be a non-empty list of task objects")
    if not all(isinstance(t, dict) for t in tasks):
        raise ApiError(400, "bad_request", "every item of 'tasks' must be a JSON object")
    pid = project_id_of(body.get("project"))
    config = _optional_str(body, "label_config")
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise ApiError(400, "bad_request", "'params' must be a JSON object")
    model, version = _live_model(backend, pid, config)
    kwargs = {k: v for k, v in params.items() if k != "context" and isinstance(k, str)}
    if backend.passes_context:
        kwargs["context"] = params.get("context")
    try:
        raw = model.predict(tasks, **kwargs)
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
    info = backend.registry.info.get(pid)
    req = TrainRequest(
        project_id=pid,
        event=event,
        data=data,
        label_config=label_config or backend.registry.remember_config(pid, None),
        annotations=annotations,
        hostname=info.hostname if info else None,
        # the configured key wins over /setup's token: then the token need not travel via Redis
        access_token=info.access_token if info and not backend.settings.label_studio_api_key else None,
        extra_params=info.extra_params if info else {},
    )
    try:
        status, job_id = backend.trainer.submit(req)
    except TrainingUnavailable as exc:
        raise ApiError(503, "training_unavailable", str(exc)) from None
    backend.metrics.training_requested(status)
    return _json({"status": status, "job_id": job_id, "project": pid}, 201 if status == "queued" else 200)


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
    project = data.get("project")
    config = project.get("label_config") if isinstance(project, dict) else None
    return _train(pid, action, data, label_config=config if isinstance(config, str) else None)


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
    found: list = []
    for pid in projects:
        for version in backend.store.versions(pid):
            if version not in found:
                found.append(version)
    return _json({"versions": found, "projects": projects})


def _status(pid: str) -> Dict[str, Any]:
    backend = _backend()
    status = dict(backend.store.status(pid))
    status.setdefault("status", "idle")
    if status["status"] == "running" and isinstance(backend.trainer, RQTrainer):
        started = status.get("started_at") or 0
        alive = backend.trainer.worker_alive(pid)
        if alive is False and time.time() - started > 2:
            status = backend.store.update_status(
                pid,
                status="failed",
                ended_at=round(time.time(), 3),
                error="the training worker stopped before the job finished (killed or crashed)",
            )
    if status.get("pending_job_id") and status["status"] not in ("running", "queued"):
        status["status"] = "queued"
    status["project"] = pid
    status["served_version"] = backend.store.latest(pid)
    status["versions"] = backend.store.versions(pid)
    return status


@bp.get("/training")
def training() -> Response:
    backend = _backend()
    raw = request.args.get("project")
    if raw:
        return _json(_status(project_id_of(raw)))
    return _json(
        {"mode": backend.trainer.mode, "projects": {pid: _status(pid) for pid in backend.store.projects()}}
    )


@bp.get("/is_training")
def is_training() -> Response:
    status = _status(project_id_of(request.args.get("project")))
    return _json(
        {
            "is_training": status["status"] in ("queued", "running"),
            "model_version": status["served_version"],
            "job_id": status.get("job_id"),
        }
    )


def _served_version(backend: Backend, pid: str) -> str:
    """What /setup would answer, without building a model (the registry's rule)."""
    latest = backend.store.latest(pid)
    if latest:
        return latest
    own = backend.store.read_json(pid, "kv.json").get("model_version")
    return own if isinstance(own, str) and own else str(backend.model_class.INITIAL_MODEL_VERSION)


@bp.get("/metrics")
def metrics() -> Response:
    backend = _backend()
    versions = {pid: _served_version(backend, pid) for pid in backend.store.projects()}
    body = backend.metrics.render(versions, backend.trainer.queue_length(), backend.trainer.mode)
    return Response(body, content_type=METRICS_CONTENT_TYPE)


@bp.get("/openapi.json")
def openapi() -> Response:
    from .openapi import build_spec

    return _json(build_spec(title=f"{_backend().model_class.__name__} (Label Studio ML backend)"))


# ------------------------------------------------------------------ auth and errors
_METHODS = frozenset(("GET", "POST", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"))


class _Gate:
    """WSGI middleware in front of Flask: HTTP Basic auth and request metrics.

    Doing this outside Flask's dispatch keeps the per-request cost of both to a few
    microseconds (``/predict`` for one task is dominated by fixed costs).
    """

    def __init__(self, wsgi_app: Any, backend: Backend, routes: frozenset) -> None:
        self.wsgi_app, self.backend, self.routes = wsgi_app, backend, routes
        settings = backend.settings
        self.auth = settings.basic_auth
        self.user = (settings.basic_auth_user or "").encode()
        self.password = (settings.basic_auth_pass or "").encode()

    def _authorized(self, header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        # both comparisons always run, in constant time for equal lengths
        ok_user = hmac.compare_digest(user, self.user)
        ok_password = hmac.compare_digest(password, self.password)
        return ok_user and ok_password

    def __call__(self, environ: Dict[str, Any], start_response: Any) -> Any:
        started = time.perf_counter()
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        route = path if path in self.routes else "unmatched"
        if method not in _METHODS:
            method = "OTHER"  # metric labels stay bounded whatever a client sends
        if self.auth:
            header = environ.get("HTTP_AUTHORIZATION", "")
            ok = self._authorized(header)
            environ["lsml.authenticated"] = ok
            # Label Studio's webhooks come without credentials: what they may do is restricted in webhook()
            if not ok and not (path == "/webhook" and method == "POST" and not header):
                body = dumps({"error": "unauthorized", "detail": "valid HTTP Basic credentials are required"})
                start_response("401 UNAUTHORIZED", [
                    ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                    ("WWW-Authenticate", 'Basic realm="Label Studio ML backend"'),
                ])  # fmt: skip
                self.backend.metrics.observe(route, method, 401, time.perf_counter() - started)
                return [body]
        status: list = []

        def recording_start_response(code: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, headers, exc_info)

        result = self.wsgi_app(environ, recording_start_response)
        code = int(status[0][:3]) if status else 500
        self.backend.metrics.observe(route, method, code, time.perf_counter() - started)
        return result


def _handle_api_error(exc: ApiError) -> Response:
    return _error(exc.status, exc.code, exc.detail)


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


def _handle_other(exc: Exception) -> Response:
    if isinstance(exc, StoreError):
        return _error(400, "bad_request", str(exc))
    if isinstance(exc, ModelLoadError):
        return _error(500, "model_load_failed", _redact(_backend(), str(exc)))
    logger.exception("unhandled error on %s %s", request.method, request.path)
    return _error(500, "internal_error", f"{type(exc).__name__}; see the backend log")


# ------------------------------------------------------------------ factory
def create_app(
    model_class: type, settings: Optional[Settings] = None, model_kwargs: Optional[Dict[str, Any]] = None
) -> Flask:
    """Build the backend's Flask app around ``model_class``.

    Args:
        model_class: A subclass of :class:`~label_studio_ml.model.LabelStudioMLBase`.
        settings: Configuration; read from the environment when omitted.
        model_kwargs: Extra keyword arguments for the model's constructor (``--with k=v``).
    """
    settings = settings or Settings.from_env()
    logging.basicConfig(
        level=settings.log_level, format="[%(asctime)s] [%(levelname)s] [%(name)s] %(message)s"
    )
    logging.getLogger("label_studio_ml").setLevel(settings.log_level)
    app = Flask(model_class.__module__ if model_class.__module__ != "__main__" else "lsml_backend")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["lsml"] = Backend(model_class, settings, model_kwargs)
    app.register_blueprint(bp)
    backend = app.extensions["lsml"]
    routes = frozenset(rule.rule for rule in app.url_map.iter_rules())
    app.wsgi_app = _Gate(app.wsgi_app, backend, routes)  # type: ignore[method-assign]
    app.register_error_handler(ApiError, _handle_api_error)
    app.register_error_handler(HTTPException, _handle_http)
    app.register_error_handler(Exception, _handle_other)
    return app


def init_app(model_class: type, **kwargs: Any) -> Flask:
    """Old ``_wsgi.py`` entry point: ``init_app(MyModel, model_dir=..., **model_kwargs)``.

    Accepts the old keyword names (``model_dir``, ``redis_queue``, ``redis_host``,
    ``redis_port``, ``basic_auth_user``, ``basic_auth_pass``) over the environment; everything
    else goes to the model's constructor.
    """
    import dataclasses

    settings = Settings.from_env()
    overrides: Dict[str, Any] = {}
    if kwargs.get("model_dir"):
        overrides["model_dir"] = kwargs.pop("model_dir")
    if kwargs.get("redis_queue"):
        overrides["rq_queue_name"] = kwargs.pop("redis_queue")
    host, port = kwargs.pop("redis_host", None), kwargs.pop("redis_port", None)
    if host and not settings.redis_url and kwargs.pop("use_redis", True):
        overrides["redis_url"] = f"redis://{host}:{port or 6379}/0"
    for key in ("basic_auth_user", "basic_auth_pass"):
        if kwargs.get(key):
            overrides[key] = kwargs.pop(key)
    for key in ("redis_queue", "use_redis", "model_dir"):
        kwargs.pop(key, None)
    return create_app(model_class, dataclasses.replace(settings, **overrides), kwargs)


def parse_kwargs(pairs: Tuple[str, ...]) -> Dict[str, Any]:
    """``("a=1", "b=true", "c=x")`` → ``{"a": 1, "b": True, "c": "x"}`` (the ``--with`` rule)."""
    out: Dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--with {pair!r} is not KEY=VALUE with a Python name as KEY")
        value: Any = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            for cast in (int, float):
                try:
                    value = cast(raw)
                    break
                except ValueError:
                    continue
        out[key] = value
    return out
