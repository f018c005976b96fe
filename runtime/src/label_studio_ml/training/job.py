"""The RQ job: :func:`run_job`, which an ``rq worker`` runs by the name
``label_studio_ml.training.run_job`` (:data:`.rqtrainer.JOB_FUNCTION`).

Imports: rq, :mod:`.base`, :mod:`.lock`, :mod:`.rqtrainer`, :mod:`.run`, :mod:`.status`, and
the runtime's metrics, object store and settings.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from rq import get_current_job

from ..metrics import Metrics
from ..objectstore import open_store
from ..settings import Settings
from .base import TrainingError, TrainRequest
from .lock import ProjectLock
from .rqtrainer import WORKER_GONE, project_keys, stop_coalescing
from .run import execute, import_model, interrupt
from .status import RunBook, RunStatus


def run_job(
    model_ref: str, request: Dict[str, Any], model_kwargs: Optional[Dict[str, Any]] = None
) -> Dict[str, Any]:
    """The RQ job: take the project's run lock, run :func:`execute`, release the lock.

    Runs inside an ``rq worker``; settings come from the worker's environment (``MODEL_DIR``
    must name the same store as the API processes).
    """
    job = get_current_job()
    settings = Settings.from_env()
    store = open_store(settings)
    runs = RunBook(store)
    req = TrainRequest(**request)
    pid = req.project_id
    redis = job.connection
    # Events arriving from now on must queue a follow-up run, not coalesce into this one.
    stop_coalescing(redis, settings.rq_queue_name, pid, job.id)
    running_key = project_keys(settings.rq_queue_name, pid)[1]
    with ProjectLock(redis, running_key, job.id, settings.lock_ttl) as lock:
        previous = runs.read(pid)
        if previous.status is RunStatus.RUNNING and previous.job_id != job.id:
            # this job holds the project's lock, so that run is over: its worker died or lost the lock
            interrupt(store, pid, previous, WORKER_GONE, clear_pending=False)
        # one write: /training goes from the last run's end to "queued", never to idle
        runs.change(pid, lambda r: r.queue(job.id, only_pending=True))
        try:
            return execute(
                import_model(model_ref), store, settings, req, job.id, model_kwargs,
                metrics=Metrics(settings.metrics_dir), owns_project=lock.owned,
            )  # fmt: skip
        except Exception as exc:
            # RQ logs and stores the exception: only ever the redacted message, no chained context
            raise TrainingError(settings.redact(f"{type(exc).__name__}: {exc}", req.access_token)) from None
