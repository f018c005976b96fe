"""Development mode: :class:`ThreadTrainer` runs ``fit`` in a background thread of the API process.

At most one run per project at a time; requests that arrive while one runs coalesce into one
follow-up run.

Imports: :mod:`.base`, :mod:`.run`, :mod:`.status`, :mod:`.proc`, and the runtime's metrics,
settings and store modules. Never Redis or RQ.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

from ..metrics import Metrics
from ..settings import Settings
from ..store import ModelStore
from .base import Trainer, TrainRequest, new_job_id
from .proc import process_alive, this_process
from .run import execute, interrupt
from .status import RunRecord, Submitted, now


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

    def submit(self, request: TrainRequest) -> Tuple[Submitted, str]:
        """Start or queue a run; returns ``(status, job_id)``: ``queued`` or ``coalesced``."""
        pid = request.project_id
        if not self.is_active(pid):  # a run left by a stopped server: reported, its directory removed
            self.status(pid)
        with self._lock:
            if pid in self._pending:
                job_id = self._pending[pid][1]
                self._pending[pid] = (request, job_id)
                return Submitted.COALESCED, job_id
            job_id = new_job_id(pid)
            if pid in self._running:
                self._pending[pid] = (request, job_id)
                self.runs.change(pid, lambda r: r.wait(job_id))
                return Submitted.QUEUED, job_id
            self._running[pid] = job_id
            self._mark_queued(pid, job_id)
        thread = threading.Thread(
            target=self._loop, args=(request, job_id), daemon=True, name=f"lsml-train-{pid}"
        )
        thread.start()
        return Submitted.QUEUED, job_id

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
        self.runs.change(project_id, lambda r: r.queue(job_id, queued_at=now(), runner=this_process()))

    def is_active(self, project_id: str) -> bool:
        with self._lock:
            return project_id in self._running

    def reconcile(self, project_id: str, record: RunRecord) -> RunRecord:
        """A run (or follow-up) recorded by a development server that has stopped is interrupted."""
        runner = record.runner
        if not record.busy or not isinstance(runner, str):
            return record
        alive = self.is_active(project_id) if runner == this_process() else process_alive(runner)
        if alive:
            return record
        why = "the development server stopped before the run finished; train again to retry"
        return interrupt(self.store, project_id, record, why, clear_pending=True)

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
