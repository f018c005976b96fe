"""What the rest of the runtime knows of training: the request, and the :class:`Trainer`
interface (the API calls these methods only, whatever the mode). The errors are
:mod:`label_studio_ml.exceptions`' (importable from here too).

Imports: the standard library, :mod:`.status`, and the runtime's exceptions, settings and store.
"""

from __future__ import annotations

import abc
import dataclasses
import uuid
from typing import Any, Dict, List, Optional, Tuple

from ..exceptions import TrainingError, TrainingUnavailable  # noqa: F401  importable from here too
from ..settings import Settings
from ..store import ModelStore
from .status import RunBook, RunRecord, RunStatus, Submitted


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


def project_label_config(project: Any) -> Optional[str]:
    """The labeling config of a Label Studio project object: a webhook's ``project`` (events
    may carry a bare id instead), or Label Studio's answer to ``GET /api/projects/<id>``."""
    config = project.get("label_config") if isinstance(project, dict) else None
    return config if isinstance(config, str) and config else None


def new_job_id(project_id: str) -> str:
    return f"train-{project_id}-{uuid.uuid4().hex[:12]}"


class Trainer(abc.ABC):
    """Runs training off the request path; one per app (see :func:`make_trainer`).

    ``mode`` is ``"development"`` (runs in this process) or ``"production"`` (RQ workers).
    """

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
        self.runs = RunBook(store)

    # ------------------------------------------------------------------ requests
    @abc.abstractmethod
    def submit(self, request: TrainRequest) -> Tuple[Submitted, str]:
        """Start or queue a run; returns what the request became and the job's id."""

    # ------------------------------------------------------------------ status
    def reconcile(self, project_id: str, record: RunRecord) -> RunRecord:
        """The record as it really is: a run whose process is gone is reported interrupted."""
        return record

    def status(self, project_id: str) -> RunRecord:
        """The project's run record, reconciled."""
        return self.reconcile(project_id, self.runs.read(project_id))

    def report(self, project_id: str) -> Dict[str, Any]:
        """``GET /training``'s answer for one project."""
        record = self.status(project_id)
        warning = self.warning() if record.reported is RunStatus.QUEUED else None
        store = self.store
        return record.answer(project_id, store.latest(project_id), store.versions(project_id), warning)

    # ------------------------------------------------------------------ health
    @abc.abstractmethod
    def queue_length(self) -> Optional[int]:
        """Jobs waiting to run (None when that cannot be known now), for ``/metrics``."""

    def health(self) -> Dict[str, Any]:
        """What ``/health`` adds about training (production: workers, and a warning)."""
        return {}

    def warning(self) -> Optional[str]:
        """Why queued training would never run (no worker, no Redis), else None."""
        return None

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no run of this process is active (tests and shutdown)."""
        return True
