"""Training runs: requested by the API, executed off the request path.

* Development mode: :class:`ThreadTrainer` runs ``fit`` in a background thread of the API process.
* Production mode: :class:`RQTrainer` enqueues :func:`run_job` on an RQ queue; an ``rq worker``
  (``label-studio-ml worker DIR``) in another process runs it.

In both, at most one run per project executes at a time (production: redis-py's ``Lock`` per
project, see :mod:`.lock`), and requests that arrive while a run is waiting coalesce into it,
so a burst of annotation events gives at most one follow-up run. A run that fails removes its
half-written version; the last good version keeps serving. A run whose process died is
reported ``interrupted`` (failed) by :meth:`Trainer.reconcile` and its version removed.

The modules: :mod:`.status` (the run record, its states and its one writer), :mod:`.base` (the
request, the errors, the :class:`Trainer` interface), :mod:`.proc` (process identity),
:mod:`.run` (one run), :mod:`.thread` and :mod:`.rqtrainer` (the two trainers), :mod:`.lock`
(the Redis run lock), :mod:`.job` (:func:`run_job`). The RQ side loads on first use, so
development mode never imports RQ; ``label_studio_ml.training.run_job`` names the job in Redis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

from ..metrics import Metrics
from ..settings import Settings
from ..store import ModelStore
from .base import Trainer, TrainingError, TrainingUnavailable, TrainRequest, new_job_id, project_label_config
from .proc import process_alive, this_process
from .run import execute, import_model, interrupt, model_ref
from .status import InvalidTransition, RunBook, RunRecord, RunStatus, Submitted
from .thread import ThreadTrainer

if TYPE_CHECKING:  # pragma: no cover
    from .job import run_job
    from .lock import ProjectLock
    from .rqtrainer import RQTrainer

__all__ = [
    "InvalidTransition",
    "ProjectLock",
    "RQTrainer",
    "RunBook",
    "RunRecord",
    "RunStatus",
    "Submitted",
    "ThreadTrainer",
    "TrainRequest",
    "Trainer",
    "TrainingError",
    "TrainingUnavailable",
    "execute",
    "import_model",
    "interrupt",
    "make_trainer",
    "model_ref",
    "new_job_id",
    "process_alive",
    "run_job",
    "this_process",
    "project_label_config",
]

# the production side, imported on first use (it needs rq and redis)
_LAZY = {"RQTrainer": ".rqtrainer", "ProjectLock": ".lock", "run_job": ".job"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


def make_trainer(
    model_class: type,
    store: ModelStore,
    settings: Settings,
    model_kwargs: Optional[Dict[str, Any]] = None,
    *,
    on_commit: Optional[Callable[[str], None]] = None,
    metrics: Optional[Metrics] = None,
) -> Trainer:
    """The app's trainer: RQ workers in production mode, else a thread of this process.

    ``on_commit`` and ``metrics`` serve development mode, where runs finish in this process
    (the registry hears of new versions, the app's metrics count the runs).
    """
    if settings.production:
        from .rqtrainer import RQTrainer  # here: development mode never loads RQ

        return RQTrainer(model_class, store, settings, model_kwargs)
    return ThreadTrainer(model_class, store, settings, model_kwargs, on_commit=on_commit, metrics=metrics)
