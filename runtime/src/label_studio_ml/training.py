"""Training runs: requested by the API, executed off the request path.

* Development mode: :class:`ThreadTrainer` runs ``fit`` in a background thread of the API process.
* Production mode: :class:`RQTrainer` enqueues :func:`run_job` on an RQ queue; an ``rq worker``
  (``label-studio-ml worker DIR``) in another process runs it.

In both, at most one run per project executes at a time, and requests that arrive while a run
is waiting coalesce into it, so a burst of annotation events gives at most one follow-up run.
A run that fails removes its half-written version; the last good version keeps serving.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import os
import threading
import time
import traceback
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

from .lsclient import LabelStudioError, make_client
from .metrics import record_training
from .model import accepted_kwargs, build_model, fit_style
from .settings import Settings
from .store import ModelStore

logger = logging.getLogger(__name__)


def _lock_ttl(raw: Optional[str]) -> int:
    try:
        return max(int(raw or 30), 2)
    except ValueError:
        return 30


# Seconds; a running job refreshes its project lock every LOCK_TTL / 3, and a job whose worker
# died is reported failed once the lock expires. LSML_LOCK_TTL (worker env) shortens it for tests.
LOCK_TTL = _lock_ttl(os.environ.get("LSML_LOCK_TTL"))


class TrainingUnavailable(RuntimeError):
    """The queue (Redis) cannot take the request."""


class TrainingError(RuntimeError):
    """A training run cannot start (nothing to train on, no fit, ...)."""


@dataclasses.dataclass
class TrainRequest:
    """Everything a run needs, JSON-serialisable so it can travel through Redis."""

    project_id: str
    event: str
    data: Dict[str, Any] = dataclasses.field(default_factory=dict)
    label_config: Optional[str] = None
    annotations: Optional[List[Dict[str, Any]]] = None
    hostname: Optional[str] = None
    access_token: Optional[str] = dataclasses.field(default=None, repr=False)
    extra_params: Dict[str, Any] = dataclasses.field(default_factory=dict)


def new_job_id(project_id: str) -> str:
    return f"train-{project_id}-{uuid.uuid4().hex[:12]}"


def model_ref(model_class: type) -> str:
    """Import path of a model class (``"model:DummyModel"``) for workers to import."""
    return f"{model_class.__module__}:{model_class.__qualname__}"


def import_model(ref: str) -> type:
    module_name, _, qualname = ref.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _now() -> float:
    return round(time.time(), 3)


def _annotations_for(request: TrainRequest, settings: Settings) -> List[Dict[str, Any]]:
    """Seed-style ``fit`` takes annotated tasks: from ``/train``, else from Label Studio."""
    if request.annotations is not None:
        return request.annotations
    client = make_client(
        settings.label_studio_url,
        settings.label_studio_api_key,
        hostname=request.hostname,
        access_token=request.access_token,
    )
    project = request.data.get("project")
    project_id = project.get("id") if isinstance(project, dict) else None
    return client.get_annotated_tasks(project_id or request.project_id)


def _project_config(data: Dict[str, Any]) -> Optional[str]:
    """The label config of a webhook's project object (events may carry a bare id instead)."""
    project = data.get("project")
    config = project.get("label_config") if isinstance(project, dict) else None
    return config if isinstance(config, str) else None


def execute(
    model_class: type,
    store: ModelStore,
    settings: Settings,
    request: TrainRequest,
    job_id: str,
    model_kwargs: Optional[Dict[str, Any]] = None,
    on_commit: Optional[Callable[[str], None]] = None,
    metrics: Any = None,
) -> Dict[str, Any]:
    """Run one training and record it. Returns the final status; raises if ``fit`` failed.

    The run is counted in the Prometheus metrics of this process (``metrics``, else the
    process-wide set: the RQ work horse writes to ``PROMETHEUS_MULTIPROC_DIR``).
    """
    pid = request.project_id
    started = _now()
    store.update_status(
        pid,
        job_id=job_id,
        status="running",
        started_at=started,
        ended_at=None,
        error=None,
        event=request.event,
    )
    version, workdir = store.new_version(pid)
    try:
        style = fit_style(model_class)
        if style == "none":
            raise TrainingError(f"{model_class.__name__} has no fit() method: add one to train")
        previous = store.latest(pid)
        config = request.label_config or _project_config(request.data) or store.label_config(pid)
        model = build_model(
            model_class,
            project_id=pid,
            label_config=config,
            train_output=store.train_output(pid, previous),
            model_dir=str(store.project_dir(pid)),
            workdir=str(store.version_dir(pid, previous)) if previous else None,
            hostname=request.hostname or settings.label_studio_url,
            access_token=request.access_token,
            extra_params=request.extra_params,
            served_version=previous,
            **(model_kwargs or {}),
        )
        options = {"workdir": str(workdir), "job_id": job_id}
        if style == "seed":
            annotations = _annotations_for(request, settings)
            options.update(event=request.event, data=request.data)
            result = model.fit(annotations, **accepted_kwargs(model.fit, options))
        else:
            if request.annotations is not None:  # legacy /train carries them: offer them
                options["annotations"] = request.annotations
            result = model.fit(request.event, request.data, **accepted_kwargs(model.fit, options))
        train_output = result if isinstance(result, dict) else {}
        json.dumps(train_output)  # fail here, not at load time, if it is not JSON
        ended = _now()
        store.commit_version(
            pid,
            version,
            train_output,
            {
                "version": version,
                "job_id": job_id,
                "event": request.event,
                "started_at": started,
                "ended_at": ended,
                "model_class": model_class.__name__,
            },
        )
        if on_commit is not None:
            on_commit(pid)  # before "succeeded" is visible: no window where the old model serves
        logger.info(
            "project %s: training %s produced version %s in %.1fs", pid, job_id, version, ended - started
        )
        _record(metrics, "succeeded", ended - started)
        return store.update_status(
            pid,
            status="succeeded",
            version=version,
            ended_at=ended,
            duration_s=round(ended - started, 3),
            error=None,
            last_good_version=version,
        )
    except BaseException as exc:
        store.discard_version(pid, version)
        message = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, (LabelStudioError, TrainingError)):
            message = str(exc)
        # Label Studio (or a proxy, or the model) may echo a key in an error: never keep it
        secrets = (request.access_token, settings.label_studio_api_key, settings.basic_auth_pass)
        message = redact(message, secrets)
        trace = redact(traceback.format_exc(), secrets)
        logger.error("project %s: training %s failed: %s\n%s", pid, job_id, message, trace)
        ended = _now()
        store.update_status(
            pid, status="failed", error=message, ended_at=ended, duration_s=round(ended - started, 3)
        )
        _record(metrics, "failed", ended - started)
        raise


def redact(text: str, secrets: Any) -> str:
    """``text`` with every known secret (token, key, password) replaced by ``[redacted]``."""
    for secret in secrets:
        if isinstance(secret, str) and len(secret) >= 4 and secret in text:
            text = text.replace(secret, "[redacted]")
    return text


def _record(metrics: Any, outcome: str, seconds: float) -> None:
    if metrics is not None:
        metrics.training_finished(outcome, seconds)
    else:
        record_training(outcome, seconds)


class Trainer:
    """What both trainers share: the model class, the store, the settings."""

    mode = ""

    def __init__(
        self,
        model_class: type,
        store: ModelStore,
        settings: Settings,
        model_kwargs: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.model_class, self.store, self.settings = model_class, store, settings
        self.model_kwargs = dict(model_kwargs or {})

    def submit(self, request: TrainRequest) -> Tuple[str, str]:  # pragma: no cover - abstract
        raise NotImplementedError


class ThreadTrainer(Trainer):
    """Development mode: runs in a daemon thread per project, follow-ups coalesced."""

    mode = "development"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._running: Dict[str, str] = {}
        self._pending: Dict[str, Tuple[TrainRequest, str]] = {}
        self.on_commit: Optional[Callable[[str], None]] = None  # called when a version lands
        self.metrics: Any = None  # the app's Metrics: runs are counted there

    def submit(self, request: TrainRequest) -> Tuple[str, str]:
        """Start or queue a run; returns ``(status, job_id)``: ``queued`` or ``coalesced``."""
        pid = request.project_id
        with self._lock:
            if pid in self._pending:
                job_id = self._pending[pid][1]
                self._pending[pid] = (request, job_id)
                return "coalesced", job_id
            job_id = new_job_id(pid)
            if pid in self._running:
                self._pending[pid] = (request, job_id)
                self.store.update_status(pid, pending_job_id=job_id)
                return "queued", job_id
            self._running[pid] = job_id
            self.store.update_status(
                pid, job_id=job_id, status="queued", queued_at=_now(), pending_job_id=None
            )
        thread = threading.Thread(
            target=self._loop, args=(request, job_id), daemon=True, name=f"lsml-train-{pid}"
        )
        thread.start()
        return "queued", job_id

    def _loop(self, request: TrainRequest, job_id: str) -> None:
        pid = request.project_id
        while True:
            # a failure is recorded in status.json and the log by execute()
            with contextlib.suppress(BaseException):
                execute(
                    self.model_class, self.store, self.settings, request, job_id, self.model_kwargs,
                    on_commit=self.on_commit, metrics=self.metrics,
                )  # fmt: skip
            with self._lock:
                follow = self._pending.pop(pid, None)
                if follow is None:
                    self._running.pop(pid, None)
                    return
                request, job_id = follow
                self._running[pid] = job_id
                self.store.update_status(pid, pending_job_id=None)

    def is_active(self, project_id: str) -> bool:
        with self._lock:
            return project_id in self._running

    def queue_length(self) -> int:
        """1 while a run is active or waiting in this process, else 0 (for /metrics)."""
        with self._lock:
            return 1 if self._running or self._pending else 0

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no run is active (tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._running:
                    return True
            time.sleep(0.02)
        return False


def _keys(queue: str, project_id: str) -> Tuple[str, str]:
    base = f"lsml:{queue}:{project_id}"
    return f"{base}:queued", f"{base}:running"


class RQTrainer(Trainer):
    """Production mode: jobs on an RQ queue, executed by ``rq worker`` processes."""

    mode = "production"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from redis import Redis
        from rq import Queue

        super().__init__(*args, **kwargs)
        settings = self.settings
        self.ref = model_ref(self.model_class)
        self.redis = Redis.from_url(
            settings.redis_url, socket_connect_timeout=1, socket_timeout=2, retry_on_timeout=False
        )
        self.queue = Queue(
            settings.rq_queue_name, connection=self.redis, default_timeout=settings.rq_job_timeout
        )

    def submit(self, request: TrainRequest) -> Tuple[str, str]:
        from redis.exceptions import RedisError

        pid = request.project_id
        queued_key, _ = _keys(self.settings.rq_queue_name, pid)
        job_id = new_job_id(pid)
        try:
            if not self.redis.set(queued_key, job_id, nx=True, ex=self.settings.rq_job_timeout):
                existing = self.redis.get(queued_key)
                if existing:
                    return "coalesced", existing.decode()
                self.redis.set(queued_key, job_id, ex=self.settings.rq_job_timeout)
            self.queue.enqueue_call(
                run_job,
                kwargs={
                    "model_ref": self.ref,
                    "request": dataclasses.asdict(request),
                    "model_kwargs": self.model_kwargs,
                },
                job_id=job_id,
                timeout=self.settings.rq_job_timeout,
                result_ttl=86400,
                failure_ttl=7 * 86400,
                description=f"train {self.model_class.__name__} for project {pid} ({request.event})",
            )
        except RedisError as exc:
            raise TrainingUnavailable(
                f"the training queue at {_safe_url(self.settings.redis_url)} is unreachable "
                f"({type(exc).__name__}); predictions still work, retry training when Redis is back"
            ) from None
        self.store.update_status(pid, pending_job_id=job_id, queued_at=_now())
        return "queued", job_id

    def queue_length(self) -> Optional[int]:
        """Jobs waiting in the RQ queue (None when Redis does not answer), for /metrics."""
        from redis.exceptions import RedisError

        try:
            return int(self.queue.count)
        except RedisError:
            return None

    def worker_alive(self, project_id: str) -> Optional[bool]:
        """Whether a worker holds the project's run lock (None when Redis does not answer)."""
        from redis.exceptions import RedisError

        try:
            return bool(self.redis.exists(_keys(self.settings.rq_queue_name, project_id)[1]))
        except RedisError:
            return None


def _safe_url(url: Optional[str]) -> str:
    """A Redis URL without its password, for messages."""
    from urllib.parse import urlparse

    parsed = urlparse(url or "")
    return f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 6379}"


def run_job(
    model_ref: str, request: Dict[str, Any], model_kwargs: Optional[Dict[str, Any]] = None
) -> Dict[str, Any]:
    """The RQ job: take the project's run lock, run :func:`execute`, release the lock.

    Runs inside an ``rq worker``; settings come from the worker's environment (``MODEL_DIR``
    must name the same store as the API processes).
    """
    from rq import get_current_job

    job = get_current_job()
    settings = Settings.from_env()
    store = ModelStore(settings.model_dir)
    req = TrainRequest(**request)
    queued_key, running_key = _keys(settings.rq_queue_name, req.project_id)
    redis = job.connection
    # Events arriving from now on must queue a follow-up run, not coalesce into this one.
    if (redis.get(queued_key) or b"").decode() == job.id:
        redis.delete(queued_key)
    while not redis.set(running_key, job.id, nx=True, ex=LOCK_TTL):
        time.sleep(0.25)  # another worker is training this project: wait for it
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(LOCK_TTL / 3):
            redis.set(running_key, job.id, ex=LOCK_TTL)

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    try:
        store.update_status(req.project_id, pending_job_id=None)
        try:
            return execute(import_model(model_ref), store, settings, req, job.id, model_kwargs)
        except Exception as exc:
            # RQ logs and stores the exception: only ever the redacted message, no chained context
            secrets = (req.access_token, settings.label_studio_api_key, settings.basic_auth_pass)
            raise TrainingError(redact(f"{type(exc).__name__}: {exc}", secrets)) from None
    finally:
        stop.set()
        if (redis.get(running_key) or b"").decode() == job.id:
            redis.delete(running_key)
