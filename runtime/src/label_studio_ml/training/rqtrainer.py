"""Production mode: :class:`RQTrainer` enqueues :data:`JOB_FUNCTION` on an RQ queue; an
``rq worker`` (``label-studio-ml worker DIR``) in another process runs it (:mod:`.job`).

Two Redis keys per project coordinate the API and the workers (:func:`project_keys`):

* ``lsml:<queue>:<project>:queued`` names the job that waits to start: a request that finds
  one coalesces into it. The job deletes it when it starts (:func:`stop_coalescing`), so
  events arriving from then on queue a follow-up run.
* ``lsml:<queue>:<project>:running`` is the project's run lock (:mod:`.lock`); its value is
  the job that holds it.

Imports: redis, rq, :mod:`.base`, :mod:`.run`, :mod:`.status`, and the runtime's checks and
settings. Nothing imports this module but the package (lazily: development mode never loads RQ).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from ..checks import rq_workers, worker_warning
from ..settings import redis_url_shown
from .base import Trainer, TrainingUnavailable, TrainRequest, new_job_id
from .run import interrupt, model_ref
from .status import RunRecord, RunStatus, Submitted, now

#: the RQ job function, by name: jobs already queued in Redis (and the docs) name it so
JOB_FUNCTION = "label_studio_ml.training.run_job"

WORKER_GONE = "the training worker stopped before the job finished (killed or crashed)"

# Deletes a key only while it holds the given value (one step: nobody else's value is deleted).
_DELETE_IF_EQUAL = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


def project_keys(queue: str, project_id: str) -> Tuple[str, str]:
    """Redis keys of a project: the job waiting to start, and the run lock."""
    base = f"lsml:{queue}:{project_id}"
    return f"{base}:queued", f"{base}:running"


def stop_coalescing(redis: Any, queue: str, project_id: str, job_id: str) -> None:
    """The job starts: requests from now on queue a follow-up instead of joining it."""
    redis.eval(_DELETE_IF_EQUAL, 1, project_keys(queue, project_id)[0], job_id)


class RQTrainer(Trainer):
    """Production mode: jobs on an RQ queue, executed by ``rq worker`` processes."""

    mode = "production"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = self.settings
        self.ref = model_ref(self.model_class)
        self.redis = Redis.from_url(
            settings.redis_url, socket_connect_timeout=1, socket_timeout=2, retry_on_timeout=False
        )
        self.queue = Queue(
            settings.rq_queue_name, connection=self.redis, default_timeout=settings.rq_job_timeout
        )

    def submit(self, request: TrainRequest) -> Tuple[Submitted, str]:
        pid = request.project_id
        queued_key, _ = project_keys(self.settings.rq_queue_name, pid)
        job_id = new_job_id(pid)
        try:
            if not self.redis.set(queued_key, job_id, nx=True, ex=self.settings.rq_job_timeout):
                existing = self.redis.get(queued_key)
                if existing:
                    return Submitted.COALESCED, existing.decode()
                self.redis.set(queued_key, job_id, ex=self.settings.rq_job_timeout)
            self.queue.enqueue_call(
                JOB_FUNCTION,
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
        self.runs.change(pid, lambda r: r.wait(job_id, queued_at=now()))
        return Submitted.QUEUED, job_id

    def queue_length(self) -> Optional[int]:
        """Jobs waiting in the RQ queue (None when Redis does not answer), for /metrics."""
        try:
            return int(self.queue.count)
        except RedisError:
            return None

    def lock_holder(self, project_id: str) -> Optional[str]:
        """The job holding the project's run lock, ``""`` for none (None: Redis does not answer)."""
        try:
            holder = self.redis.get(project_keys(self.settings.rq_queue_name, project_id)[1])
        except RedisError:
            return None
        return holder.decode() if holder else ""

    def worker_alive(self, project_id: str) -> Optional[bool]:
        """Whether a worker holds the project's run lock (None when Redis does not answer)."""
        holder = self.lock_holder(project_id)
        return None if holder is None else bool(holder)

    def reconcile(self, project_id: str, record: RunRecord) -> RunRecord:
        """A running job that no longer holds the run lock lost its worker (killed or crashed)."""
        if record.status is not RunStatus.RUNNING:
            return record
        holder = self.lock_holder(project_id)
        if holder is None or holder == record.job_id:
            return record
        return interrupt(self.store, project_id, record, WORKER_GONE, clear_pending=False)

    # ------------------------------------------------------------------ health
    def health(self) -> Dict[str, Any]:
        """The workers on the queue (None: Redis does not answer), and a warning when none runs."""
        body: Dict[str, Any] = {"workers": rq_workers(self.redis, self.settings.rq_queue_name)}
        warning = self._warning(body["workers"])
        if warning:
            body["warning"] = warning
        return body

    def warning(self) -> Optional[str]:
        return self._warning()

    def _warning(self, count: Optional[int] = -1) -> Optional[str]:
        settings = self.settings
        return worker_warning(
            self.redis, settings.rq_queue_name, settings.redis_url or "", count, settings.redis_from
        )
