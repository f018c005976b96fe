"""Training runs: requested by the API, executed off the request path.

* Development mode: :class:`ThreadTrainer` runs ``fit`` in a background thread of the API process.
* Production mode: :class:`RQTrainer` enqueues :func:`run_job` on an RQ queue; an ``rq worker``
  (``label-studio-ml worker DIR``) in another process runs it.

In both, at most one run per project executes at a time (production: redis-py's ``Lock`` per
project, see :class:`_ProjectLock`), and requests that arrive while a run is waiting coalesce
into it, so a burst of annotation events gives at most one follow-up run. A run that fails
removes its half-written version; the last good version keeps serving. A run whose process died
is reported ``interrupted`` (failed) by :meth:`Trainer.reconcile` and its version removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

from .exceptions import TrainingError, TrainingUnavailable
from .lsclient import LabelStudioError, make_client
from .metrics import Metrics
from .model import accepted_kwargs, build_model, fit_style
from .objectstore import open_store
from .settings import Settings, redis_url_shown
from .store import ModelStore

logger = logging.getLogger(__name__)


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


def _process_token(pid: int) -> Optional[str]:
    """``"<pid>:<start time>"``: names a process even after its pid is reused (Linux), else the pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return f"{pid}:{fields[19]}"  # field 22 of stat(5): the start time, in clock ticks since boot
    except (OSError, IndexError):
        if sys.platform.startswith("linux"):
            return None  # no such process
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except OSError:
            pass  # it exists, owned by someone else
        return str(pid)


_own_token: Tuple[int, str] = (0, "")


def this_process() -> str:
    """This process's token (computed again after a fork: uWSGI and RQ fork after import)."""
    global _own_token
    pid = os.getpid()
    if _own_token[0] != pid:
        _own_token = (pid, _process_token(pid) or str(pid))
    return _own_token[1]


def process_alive(token: str) -> bool:
    """Whether the process named by a :func:`this_process` token (of this machine) still runs."""
    pid = token.split(":", 1)[0]
    return pid.isdigit() and _process_token(int(pid)) == token


class _Run:
    """One training run; :func:`execute` calls its steps in order.

    begin → build → fit → commit → succeed, or fail from any step.
    """

    def __init__(
        self,
        model_class: type,
        store: ModelStore,
        settings: Settings,
        request: TrainRequest,
        job_id: str,
        model_kwargs: Optional[Dict[str, Any]],
    ) -> None:
        self.model_class, self.store, self.settings = model_class, store, settings
        self.request, self.job_id = request, job_id
        self.model_kwargs = dict(model_kwargs or {})
        self.pid = request.project_id
        self.started = _now()
        self.version: Optional[str] = None
        self.config: Optional[str] = None
        self.config_missing = ""  # why no labeling config could be found, when none was

    # ------------------------------------------------------------------ steps
    def begin(self, exclusive: bool) -> None:
        """Claim the project in the status and reserve the new version's directory.

        A version directory the previous run left incomplete is removed first when that run is
        surely dead: its process is gone, or it ran in this process, or this run holds the
        project's lock (``exclusive``: production, where the previous may have run elsewhere).
        """
        previous = self.store.status(self.pid)
        runner, leftover = previous.get("runner"), previous.get("run_version")
        gone = isinstance(runner, str) and not process_alive(runner)
        dead = exclusive or runner == this_process() or gone
        if isinstance(leftover, str) and previous.get("job_id") != self.job_id and dead:
            self.store.discard_version(self.pid, leftover, only_incomplete=True)
        self.version, _ = self.store.new_version(self.pid)
        self.store.update_status(
            self.pid, job_id=self.job_id, status="running", started_at=self.started, ended_at=None,
            error=None, interrupted=None, event=self.request.event, runner=this_process(),
            run_version=self.version,
        )  # fmt: skip

    def build(self) -> Any:
        """The model the run trains: the served version's, with this run's config and context."""
        if fit_style(self.model_class) == "none":
            raise TrainingError(f"{self.model_class.__name__} has no fit() method: add one to train")
        self.config = self._label_config()
        previous = self.store.latest(self.pid)
        return build_model(
            self.model_class,
            project_id=self.pid,
            label_config=self.config,
            train_output=self.store.train_output(self.pid, previous),
            model_dir=str(self.store.project_dir(self.pid)),
            workdir=str(self.store.version_dir(self.pid, previous)) if previous else None,
            hostname=self.request.hostname or self.settings.label_studio_url,
            access_token=self.request.access_token,
            extra_params=self.request.extra_params,
            served_version=previous,
            settings=self.settings,
            **self.model_kwargs,
        )

    def fit(self, model: Any) -> Dict[str, Any]:
        """Call the model's ``fit`` in its style; returns the JSON-able ``train_output``."""
        assert self.version is not None
        request = self.request
        options: Dict[str, Any] = {
            "workdir": str(self.store.version_dir(self.pid, self.version)),
            "job_id": self.job_id,
        }
        if fit_style(self.model_class) == "seed":
            annotations = self._annotations()
            options.update(event=request.event, data=request.data)
            result = model.fit(annotations, **accepted_kwargs(model.fit, options))
        else:
            if request.annotations is not None:  # legacy /train carries them: offer them
                options["annotations"] = request.annotations
            result = model.fit(request.event, request.data, **accepted_kwargs(model.fit, options))
        train_output = result if isinstance(result, dict) else {}
        json.dumps(train_output)  # fail here, not at load time, if it is not JSON
        return train_output

    def commit(self, train_output: Dict[str, Any], owns_project: Optional[Callable[[], bool]]) -> float:
        """Make the version visible (``LATEST``); returns when the run ended."""
        assert self.version is not None
        if owns_project is not None and not owns_project():
            raise TrainingError(
                f"the run lost project {self.pid}'s run lock before it finished (the worker was "
                "paused or cut off from Redis for longer than the lock lasts); another run may own "
                "the project now, so this one's result is dropped"
            )
        ended = _now()
        meta = {
            "version": self.version, "job_id": self.job_id, "event": self.request.event,
            "started_at": self.started, "ended_at": ended, "model_class": self.model_class.__name__,
        }  # fmt: skip
        self.store.commit_version(self.pid, self.version, train_output, meta)
        return ended

    def succeed(self, ended: float) -> Dict[str, Any]:
        logger.info(
            "project %s: training %s produced version %s in %.1fs",
            self.pid, self.job_id, self.version, ended - self.started,
        )  # fmt: skip
        return self.store.update_status(
            self.pid, only_if={"job_id": self.job_id}, status="succeeded", version=self.version,
            ended_at=ended, duration_s=round(ended - self.started, 3), error=None,
            last_good_version=self.version, run_version=None,
        )  # fmt: skip

    def fail(self, exc: BaseException) -> float:
        """Remove the half-written version and record why (secrets cut); returns the end time."""
        if self.version is not None:
            self.store.discard_version(self.pid, self.version)
        message = (
            str(exc) if isinstance(exc, (LabelStudioError, TrainingError)) else f"{type(exc).__name__}: {exc}"
        )
        if self.config is None and self.config_missing and not isinstance(exc, TrainingError):
            message = self._no_config_message(message)
        # Label Studio (or a proxy, or the model) may echo a key in an error: never keep it
        message = self.settings.redact(message, self.request.access_token)
        trace = self.settings.redact(traceback.format_exc(), self.request.access_token)
        logger.error("project %s: training %s failed: %s\n%s", self.pid, self.job_id, message, trace)
        ended = _now()
        self.store.update_status(
            self.pid, only_if={"job_id": self.job_id}, status="failed", error=message, ended_at=ended,
            duration_s=round(ended - self.started, 3), run_version=None,
        )  # fmt: skip
        return ended

    # ------------------------------------------------------------------ inputs
    def _client(self) -> Any:
        request = self.request
        return make_client(
            self.settings.label_studio_url,
            self.settings.label_studio_api_key,
            hostname=request.hostname,
            access_token=request.access_token,
        )

    def _ls_project_id(self) -> Any:
        project = self.request.data.get("project")
        project_id = project.get("id") if isinstance(project, dict) else None
        return project_id or self.pid

    def _annotations(self) -> List[Dict[str, Any]]:
        """Seed-style ``fit`` takes annotated tasks: from ``/train``, else from Label Studio."""
        if self.request.annotations is not None:
            return self.request.annotations
        return self._client().get_annotated_tasks(self._ls_project_id())

    def _label_config(self) -> Optional[str]:
        """The request's config, else the webhook's project's, else the store's, else Label Studio's."""
        request = self.request
        config = request.label_config or _project_config(request.data)
        stored = self.store.label_config(self.pid)
        if config is None and stored is None:
            config = self._fetch_label_config()
        if config and stored is None:
            self.store.save_label_config(self.pid, config)  # /predict builds with it from now on
        return config or stored

    def _fetch_label_config(self) -> Optional[str]:
        """``GET /api/projects/<id>`` on Label Studio when a URL and a key are known."""
        try:
            client = self._client()
        except LabelStudioError:
            self.config_missing = (
                "none came with the request or /setup, and no Label Studio URL and key are set"
            )
            return None
        try:
            project = client.request_json("GET", f"/api/projects/{self._ls_project_id()}")
        except LabelStudioError as exc:
            self.config_missing = f"none came with the request, and Label Studio could not be asked: {exc}"
            return None
        config = project.get("label_config") if isinstance(project, dict) else None
        if not isinstance(config, str) or not config.strip():
            self.config_missing = "none came with the request, and Label Studio's project has none"
            return None
        logger.info("project %s: fetched the labeling config from Label Studio", self.pid)
        return config

    def _no_config_message(self, error: str) -> str:
        return (
            f"project {self.pid} has no labeling config ({self.config_missing}), and training "
            f"without one failed with {error}. Send 'label_config' with /train, connect the project "
            "in Label Studio first (its /setup sends the config), or set LABEL_STUDIO_URL and "
            "LABEL_STUDIO_API_KEY so the backend can fetch it"
        )


def _project_config(data: Dict[str, Any]) -> Optional[str]:
    """The label config of a webhook's project object (events may carry a bare id instead)."""
    project = data.get("project")
    config = project.get("label_config") if isinstance(project, dict) else None
    return config if isinstance(config, str) and config else None


def execute(
    model_class: type,
    store: ModelStore,
    settings: Settings,
    request: TrainRequest,
    job_id: str,
    model_kwargs: Optional[Dict[str, Any]] = None,
    on_commit: Optional[Callable[[str], None]] = None,
    metrics: Optional[Metrics] = None,
    owns_project: Optional[Callable[[], bool]] = None,
) -> Dict[str, Any]:
    """Run one training and record it. Returns the final status; raises if the run failed.

    Args:
        on_commit: Called with the project id once the version is visible, before the status
            says ``succeeded`` (no window where the old model serves after that).
        metrics: Where the run is counted (else this process's set: the RQ work horse writes
            to ``PROMETHEUS_MULTIPROC_DIR``).
        owns_project: Asked before committing: False when the run lost the project's lock.
    """
    metrics = metrics or Metrics(settings.metrics_dir)
    run = _Run(model_class, store, settings, request, job_id, model_kwargs)
    try:
        run.begin(exclusive=owns_project is not None)
        model = run.build()
        train_output = run.fit(model)
        ended = run.commit(train_output, owns_project)
        if on_commit is not None:
            on_commit(run.pid)
        status = run.succeed(ended)
        metrics.training_finished("succeeded", ended - run.started)
        return status
    except BaseException as exc:
        ended = run.fail(exc)
        metrics.training_finished("failed", ended - run.started)
        raise


def interrupt(
    store: ModelStore, project_id: str, status: Dict[str, Any], why: str, clear_pending: bool
) -> Dict[str, Any]:
    """Report a run whose process is gone as failed (``interrupted``) and remove its version.

    Only while the status still describes that run: it may have just ended, or a new run begun.
    """
    job_id, version = status.get("job_id"), status.get("run_version")
    fields: Dict[str, Any] = {"pending_job_id": None} if clear_pending else {}
    if status.get("status") in ("queued", "running"):
        fields.update(
            status="failed", interrupted=True, error=f"interrupted: {why}", ended_at=_now(), run_version=None
        )
    still = {"job_id": job_id, "status": status.get("status"), "runner": status.get("runner")}
    new = store.update_status(project_id, only_if=still, **fields)
    if new.get("interrupted") and new.get("job_id") == job_id and isinstance(version, str):
        store.discard_version(project_id, version, only_incomplete=True)
        logger.warning("project %s: training %s was interrupted: %s", project_id, job_id, why)
    return new


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

    def reconcile(self, project_id: str, status: Dict[str, Any]) -> Dict[str, Any]:
        """The status as it really is: a run whose process is gone is reported interrupted."""
        return status


class ThreadTrainer(Trainer):
    """Development mode: runs in a daemon thread per project, follow-ups coalesced.

    Args:
        on_commit: Called with the project id when a version lands (the app's registry).
        metrics: The app's metrics: runs finish in this process and are counted there.
    """

    mode = "development"

    def __init__(
        self,
        model_class: type,
        store: ModelStore,
        settings: Settings,
        model_kwargs: Optional[Dict[str, Any]] = None,
        *,
        on_commit: Optional[Callable[[str], None]] = None,
        metrics: Optional[Metrics] = None,
    ) -> None:
        super().__init__(model_class, store, settings, model_kwargs)
        self.on_commit, self.metrics = on_commit, metrics
        self._lock = threading.Lock()
        self._running: Dict[str, str] = {}
        self._pending: Dict[str, Tuple[TrainRequest, str]] = {}

    def submit(self, request: TrainRequest) -> Tuple[str, str]:
        """Start or queue a run; returns ``(status, job_id)``: ``queued`` or ``coalesced``."""
        pid = request.project_id
        if not self.is_active(pid):  # a run left by a stopped server: reported, its directory removed
            self.reconcile(pid, self.store.status(pid))
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
            self._mark_queued(pid, job_id)
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
                # one write: /training goes from the last run's end to "queued", never to idle
                self._mark_queued(pid, job_id)

    def _mark_queued(self, project_id: str, job_id: str) -> None:
        self.store.update_status(
            project_id,
            job_id=job_id,
            status="queued",
            queued_at=_now(),
            pending_job_id=None,
            runner=this_process(),
        )

    def is_active(self, project_id: str) -> bool:
        with self._lock:
            return project_id in self._running

    def reconcile(self, project_id: str, status: Dict[str, Any]) -> Dict[str, Any]:
        """A run (or follow-up) recorded by a development server that has stopped is interrupted."""
        busy = status.get("status") in ("queued", "running") or status.get("pending_job_id")
        runner = status.get("runner")
        if not busy or not isinstance(runner, str):
            return status
        alive = self.is_active(project_id) if runner == this_process() else process_alive(runner)
        if alive:
            return status
        why = "the development server stopped before the run finished; train again to retry"
        return interrupt(self.store, project_id, status, why, clear_pending=True)

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


_WORKER_GONE = "the training worker stopped before the job finished (killed or crashed)"


def _keys(queue: str, project_id: str) -> Tuple[str, str]:
    """Redis keys of a project: the job waiting to start, and the run lock."""
    base = f"lsml:{queue}:{project_id}"
    return f"{base}:queued", f"{base}:running"


# Deletes a key only while it holds the given value (one step: nobody else's value is deleted).
_DELETE_IF_EQUAL = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


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
                f"the training queue at {redis_url_shown(self.settings.redis_url)} is unreachable "
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

    def lock_holder(self, project_id: str) -> Optional[str]:
        """The job holding the project's run lock, ``""`` for none (None: Redis does not answer)."""
        from redis.exceptions import RedisError

        try:
            holder = self.redis.get(_keys(self.settings.rq_queue_name, project_id)[1])
        except RedisError:
            return None
        return holder.decode() if holder else ""

    def worker_alive(self, project_id: str) -> Optional[bool]:
        """Whether a worker holds the project's run lock (None when Redis does not answer)."""
        holder = self.lock_holder(project_id)
        return None if holder is None else bool(holder)

    def reconcile(self, project_id: str, status: Dict[str, Any]) -> Dict[str, Any]:
        """A running job that no longer holds the run lock lost its worker (killed or crashed)."""
        if status.get("status") != "running":
            return status
        holder = self.lock_holder(project_id)
        if holder is None or holder == status.get("job_id"):
            return status
        return interrupt(self.store, project_id, status, _WORKER_GONE, clear_pending=False)


class _ProjectLock:
    """The project's run lock in Redis: redis-py's ``Lock`` (owner-checked extend and release),
    kept alive by a heartbeat thread while the run lasts.

    Its value is the job id, so anyone can tell which job holds it (``/training`` does). If
    the heartbeat ever finds the lock gone or taken (the worker was paused or cut off from
    Redis for longer than ``ttl``), the run has lost the project: :meth:`owned` says so and the
    run is not committed.
    """

    def __init__(self, redis: Any, key: str, job_id: str, ttl: int) -> None:
        self.lock = redis.lock(key, timeout=ttl, sleep=0.25, thread_local=False)
        self.job_id, self.ttl = job_id, ttl
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True, name="lsml-lock-heartbeat")

    def __enter__(self) -> _ProjectLock:
        self.lock.acquire(token=self.job_id)  # waits while another job trains this project
        self._beat.start()
        return self

    def _heartbeat(self) -> None:
        from redis.exceptions import LockNotOwnedError, RedisError

        while not self._stop.wait(self.ttl / 3):
            try:
                self.lock.extend(self.ttl, replace_ttl=True)
            except LockNotOwnedError:
                self.lost.set()
                logger.error("training %s lost its project's run lock (expired or taken)", self.job_id)
                return
            except RedisError as exc:
                logger.warning("training %s could not extend its run lock: %s", self.job_id, exc)

    def owned(self) -> bool:
        from redis.exceptions import RedisError

        try:
            return not self.lost.is_set() and bool(self.lock.owned())
        except RedisError:
            return False

    def __exit__(self, *exc: Any) -> None:
        from redis.exceptions import LockError, RedisError

        self._stop.set()
        self._beat.join(5)
        try:
            self.lock.release()
        except LockError:
            logger.warning("training %s: the run lock had expired or been taken; left as is", self.job_id)
        except RedisError as exc:
            logger.warning("training %s could not release its run lock (it expires): %s", self.job_id, exc)


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
    store = open_store(settings)
    req = TrainRequest(**request)
    queued_key, running_key = _keys(settings.rq_queue_name, req.project_id)
    redis = job.connection
    # Events arriving from now on must queue a follow-up run, not coalesce into this one.
    redis.eval(_DELETE_IF_EQUAL, 1, queued_key, job.id)
    with _ProjectLock(redis, running_key, job.id, settings.lock_ttl) as lock:
        previous = store.status(req.project_id)
        if previous.get("status") == "running" and previous.get("job_id") != job.id:
            # this job holds the project's lock, so that run is over: its worker died or lost the lock
            interrupt(store, req.project_id, previous, _WORKER_GONE, clear_pending=False)
        # one write: /training goes from the last run's end to "queued", never to idle
        mine = {"pending_job_id": job.id}
        store.update_status(req.project_id, only_if=mine, job_id=job.id, status="queued", pending_job_id=None)
        try:
            return execute(
                import_model(model_ref), store, settings, req, job.id, model_kwargs,
                metrics=Metrics(settings.metrics_dir), owns_project=lock.owned,
            )  # fmt: skip
        except Exception as exc:
            # RQ logs and stores the exception: only ever the redacted message, no chained context
            raise TrainingError(settings.redact(f"{type(exc).__name__}: {exc}", req.access_token)) from None
