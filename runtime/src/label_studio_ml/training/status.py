"""A project's training status: one typed record, its states, and the only code that changes it.

The record is the project's ``status.json`` (on every host when the store is a bucket). It moves
through named transitions, each a method of :class:`RunRecord` that returns the fields it writes::

    transition  from                                  to          raises InvalidTransition
    ----------  ------------------------------------  ----------  ------------------------
    wait        any: a job waits (pending_job_id)     (same)      -
    queue       any: the job replaces the last one    queued      the job was queued before
    start       any (queued, or run directly)         running     the job succeeded already
    succeed     running (or failed, interrupted)      succeeded   from queued, succeeded, failed
    fail        queued, running, failed               failed      from succeeded
    interrupt   queued, running (process gone)        failed      - (else clears pending only)

A transition returns None, and nothing is written, when the record describes another job than
the caller's (it ended, or another began: a race, not an error). :class:`InvalidTransition`
is a bug: no interleaving of runs leads there.

:class:`RunBook` is the one writer: it applies a transition under the store's lock
(:meth:`~label_studio_ml.store.ModelStore.change_status`). The file keeps the keys it always
had, in the order they were first written, and ``GET /training`` answers them as they are
(:meth:`RunRecord.answer`).

Imports: the standard library, and :mod:`label_studio_ml.exceptions` (standard library only).
"""

from __future__ import annotations

import dataclasses
import time
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from ..exceptions import InvalidTransition

if TYPE_CHECKING:  # pragma: no cover
    from ..store import ModelStore

Change = Dict[str, Any]  # the fields a transition writes, in the order they are written


class RunStatus(str, Enum):
    """The ``status`` of a project's last training job (``idle``: none yet)."""

    IDLE = "idle"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value

    @property
    def busy(self) -> bool:
        """Queued or running: the job has not ended."""
        return self in (RunStatus.QUEUED, RunStatus.RUNNING)


class Submitted(str, Enum):
    """What a training request became (``/train``, ``/webhook``)."""

    QUEUED = RunStatus.QUEUED.value  # a new job
    COALESCED = "coalesced"  # folded into a job that waits already

    def __str__(self) -> str:
        return self.value


def now() -> float:
    """The timestamps of the record: Unix seconds, to the millisecond."""
    return round(time.time(), 3)


@dataclasses.dataclass
class RunRecord:
    """A project's ``status.json``: its last job (and the one waiting behind it).

    ``keys`` are the keys the file holds, in its order: a key never written is absent, not
    null, so the record writes and answers what the file always held. Keys this runtime does
    not know (and a ``status`` it does not know) are kept in ``extra`` and written back.
    """

    status: RunStatus = RunStatus.IDLE
    job_id: Optional[str] = None  # the job the record describes
    event: Optional[str] = None  # the Label Studio event (or START_TRAINING) that asked for it
    queued_at: Optional[float] = None
    started_at: Optional[float] = None
    ended_at: Optional[float] = None
    duration_s: Optional[float] = None
    error: Optional[str] = None  # why the job failed (secrets cut)
    interrupted: Optional[bool] = None  # True: failed because its process is gone
    runner: Optional[str] = None  # the process that runs it (see proc.this_process)
    run_version: Optional[str] = None  # the version directory the running job writes
    version: Optional[str] = None  # the version the job produced
    last_good_version: Optional[str] = None
    pending_job_id: Optional[str] = None  # a job waiting behind this one
    keys: Tuple[str, ...] = dataclasses.field(default=(), compare=False, repr=False)
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    # ------------------------------------------------------------------ JSON
    @classmethod
    def from_json(cls, doc: Dict[str, Any]) -> RunRecord:
        values: Dict[str, Any] = {}
        extra: Dict[str, Any] = {}
        for key, value in doc.items():
            if key == "status":
                try:
                    values["status"] = RunStatus(value)
                except ValueError:
                    extra[key] = value  # a newer runtime's state: shown as is, never busy
            elif key in _FIELDS:
                values[key] = value
            else:
                extra[key] = value
        return cls(**values, keys=tuple(doc), extra=extra)

    def to_json(self) -> Dict[str, Any]:
        """The file's document: its keys, in its order."""
        doc: Dict[str, Any] = {}
        for key in self.keys:
            if key in self.extra:
                doc[key] = self.extra[key]
            elif key == "status":
                doc[key] = self.status.value
            else:
                doc[key] = getattr(self, key)
        return doc

    def apply(self, change: Optional[Change]) -> RunRecord:
        """The record after ``change`` (the store merges the same fields into the file)."""
        if not change:
            return self
        doc = self.to_json()
        doc.update(_plain(change))
        return RunRecord.from_json(doc)

    # ------------------------------------------------------------------ reading
    @property
    def reported(self) -> RunStatus:
        """The status a reader is told: ``queued`` while a job waits and none is busy."""
        if self.pending_job_id and not self.status.busy:
            return RunStatus.QUEUED
        return self.status

    @property
    def busy(self) -> bool:
        """A job is queued, running, or waits (``/is_training``)."""
        return self.reported.busy

    def answer(
        self,
        project_id: str,
        served_version: Optional[str],
        versions: List[str],
        warning: Optional[str] = None,
    ) -> Dict[str, Any]:
        """``GET /training``'s answer for the project: the file's keys (``status`` always), the
        ``warning`` when a queued job cannot run, then the project and its versions."""
        body = self.to_json()
        body.setdefault("status", RunStatus.IDLE.value)
        if self.reported is not self.status:  # a job waits: see reported
            body["status"] = self.reported.value
        if warning:
            body["warning"] = warning
        body["project"] = project_id
        body["served_version"] = served_version
        body["versions"] = versions
        return body

    # ------------------------------------------------------------------ transitions
    def _refuse(self, transition: str, job_id: str, why: str) -> InvalidTransition:
        return InvalidTransition(
            f"cannot {transition} job {job_id}: {why} (the record: {self.status.value} job {self.job_id})"
        )

    def wait(self, job_id: str, queued_at: Optional[float] = None) -> Optional[Change]:
        """A new job waits behind the project's current one (its queue comes later).

        Nothing when the job is the record's already: a worker took it before the API that
        enqueued it got here, and a waiting mark would outlive the job.
        """
        if job_id == self.job_id:
            return None
        change: Change = {"pending_job_id": job_id}
        if queued_at is not None:
            change["queued_at"] = queued_at
        return change

    def queue(
        self,
        job_id: str,
        *,
        queued_at: Optional[float] = None,
        runner: Optional[str] = None,
        only_pending: bool = False,
    ) -> Optional[Change]:
        """The job becomes the record's, ``queued`` (from any state: it replaces the last job).

        ``only_pending``: only while it is the job that waits (production: the API marked it
        when it enqueued it).
        """
        if only_pending and self.pending_job_id != job_id:
            return None
        if job_id == self.job_id:
            raise self._refuse("queue", job_id, "a job is queued once")
        change: Change = {"job_id": job_id, "status": RunStatus.QUEUED}
        if queued_at is not None:
            change["queued_at"] = queued_at
        change["pending_job_id"] = None
        if runner is not None:
            change["runner"] = runner
        return change

    def start(self, job_id: str, *, started_at: float, event: str, runner: str, run_version: str) -> Change:
        """The job runs (queued, or executed directly; a failed job may be retried)."""
        if job_id == self.job_id and self.status is RunStatus.SUCCEEDED:
            raise self._refuse("start", job_id, "it succeeded already")
        return {
            "job_id": job_id, "status": RunStatus.RUNNING, "started_at": started_at, "ended_at": None,
            "error": None, "interrupted": None, "event": event, "runner": runner, "run_version": run_version,
        }  # fmt: skip

    def succeed(self, job_id: str, *, version: str, ended_at: float, duration_s: float) -> Optional[Change]:
        """The running job's version is committed. Also when it had been reported interrupted
        meanwhile (its lock expired just after it checked it): the version is there."""
        if job_id != self.job_id:
            return None  # another job owns the project now
        if not (self.status is RunStatus.RUNNING or (self.status is RunStatus.FAILED and self.interrupted)):
            raise self._refuse("succeed", job_id, "it is not running")
        return {
            "status": RunStatus.SUCCEEDED, "version": version, "ended_at": ended_at, "duration_s": duration_s,
            "error": None, "last_good_version": version, "run_version": None,
        }  # fmt: skip

    def fail(self, job_id: str, *, error: str, ended_at: float, duration_s: float) -> Optional[Change]:
        """The job failed (before it started, while it ran, or after it was reported interrupted)."""
        if job_id != self.job_id:
            return None  # another job owns the project now
        if self.status not in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.FAILED):
            raise self._refuse("fail", job_id, f"it is {self.status.value}")
        return {
            "status": RunStatus.FAILED, "error": error, "ended_at": ended_at, "duration_s": duration_s,
            "run_version": None,
        }  # fmt: skip

    def interrupt(self, seen: RunRecord, why: str, *, clear_pending: bool) -> Optional[Change]:
        """The job ``seen`` describes lost its process: failed, ``interrupted``. Only while the
        record still describes that job as seen (it may have just ended, or a new one begun).

        ``clear_pending``: the waiting job is gone too (development: it waited in that process).
        """
        mine, theirs = self.to_json(), seen.to_json()
        if any(mine.get(key) != theirs.get(key) for key in ("job_id", "status", "runner")):
            return None
        change: Change = {"pending_job_id": None} if clear_pending else {}
        if self.status.busy:
            change.update(status=RunStatus.FAILED, interrupted=True, error=f"interrupted: {why}",
                          ended_at=now(), run_version=None)  # fmt: skip
        return change or None


_FIELDS = frozenset(f.name for f in dataclasses.fields(RunRecord)) - {"keys", "extra"}


def _plain(change: Change) -> Dict[str, Any]:
    """A transition's fields as the file holds them (enum members as their strings)."""
    return {k: (v.value if isinstance(v, Enum) else v) for k, v in change.items()}


class RunBook:
    """The one writer of run records: applies a transition under the store's lock."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store

    def read(self, project_id: str) -> RunRecord:
        return RunRecord.from_json(self.store.status(project_id))

    def change(self, project_id: str, transition: Callable[[RunRecord], Optional[Change]]) -> RunRecord:
        """Apply ``transition`` (``lambda r: r.start(...)``) to the current record; returns the
        record after it (unchanged when the transition returned None)."""

        def fields(doc: Dict[str, Any]) -> Optional[Dict[str, Any]]:
            change = transition(RunRecord.from_json(doc))
            return _plain(change) if change else None

        return RunRecord.from_json(self.store.change_status(project_id, fields))
