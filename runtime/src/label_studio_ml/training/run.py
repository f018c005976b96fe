"""One training run, whatever runs it: :func:`execute` (begin → build → fit → commit → succeed,
or fail from any step), and :func:`interrupt` for a run whose process is gone.

The run's record changes only through :class:`~.status.RunBook` transitions.

Imports: :mod:`.base`, :mod:`.status`, :mod:`.proc`, and the runtime's model, construction,
Label Studio client, metrics, settings and store modules. Never Redis or RQ.
"""

from __future__ import annotations

import importlib
import json
import logging
import traceback
from typing import Any, Callable, Dict, List, Optional

from ..construct import construct
from ..lsclient import LabelStudioError, make_client
from ..metrics import Metrics
from ..model import accepted_kwargs, fit_style
from ..settings import Settings
from ..store import ModelStore
from .base import TrainingError, TrainRequest, project_label_config
from .proc import process_alive, this_process
from .status import RunBook, RunRecord, RunStatus, now

logger = logging.getLogger(__package__)  # one logger name for the package: "label_studio_ml.training"


def model_ref(model_class: type) -> str:
    """Import path of a model class (``"model:DummyModel"``) for workers to import."""
    return f"{model_class.__module__}:{model_class.__qualname__}"


def import_model(ref: str) -> type:
    module_name, _, qualname = ref.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


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
        self.runs = RunBook(store)
        self.request, self.job_id = request, job_id
        self.model_kwargs = dict(model_kwargs or {})
        self.pid = request.project_id
        self.started = now()
        self.version: Optional[str] = None
        self.config: Optional[str] = None
        self.config_missing = ""  # why no labeling config could be found, when none was
        self.committed = False  # LATEST names this run's version: it is never removed after that

    # ------------------------------------------------------------------ steps
    def begin(self, exclusive: bool) -> None:
        """Claim the project in the status and reserve the new version's directory.

        A version directory the previous run left incomplete is removed first when that run is
        surely dead: its process is gone, or it ran in this process, or this run holds the
        project's lock (``exclusive``: production, where the previous may have run elsewhere).
        """
        previous = self.runs.read(self.pid)
        runner, leftover = previous.runner, previous.run_version
        gone = isinstance(runner, str) and not process_alive(runner)
        dead = exclusive or runner == this_process() or gone
        if isinstance(leftover, str) and previous.job_id != self.job_id and dead:
            self.store.discard_version(self.pid, leftover, only_incomplete=True)
        self.version, _ = self.store.new_version(self.pid)
        version = self.version
        self.runs.change(
            self.pid,
            lambda r: r.start(
                self.job_id, started_at=self.started, event=self.request.event, runner=this_process(),
                run_version=version,
            ),
        )  # fmt: skip

    def build(self) -> Any:
        """The model the run trains: the served version's, with this run's config and context."""
        if fit_style(self.model_class) == "none":
            raise TrainingError(f"{self.model_class.__name__} has no fit() method: add one to train")
        self.config = self._label_config()
        previous = self.store.latest(self.pid)
        return construct(
            self.model_class,
            self.store,
            self.pid,
            previous,
            label_config=self.config,
            hostname=self.request.hostname or self.settings.label_studio_url,
            access_token=self.request.access_token,
            extra_params=self.request.extra_params,
            settings=self.settings,
            model_kwargs=self.model_kwargs,
            served_version=previous,
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
        ended = now()
        meta = {
            "version": self.version, "job_id": self.job_id, "event": self.request.event,
            "started_at": self.started, "ended_at": ended, "model_class": self.model_class.__name__,
        }  # fmt: skip
        self.store.commit_version(self.pid, self.version, train_output, meta)
        self.committed = True
        return ended

    def succeed(self, ended: float) -> RunRecord:
        logger.info(
            "project %s: training %s produced version %s in %.1fs",
            self.pid, self.job_id, self.version, ended - self.started,
        )  # fmt: skip
        version = self.version
        assert version is not None
        duration = round(ended - self.started, 3)
        return self.runs.change(
            self.pid, lambda r: r.succeed(self.job_id, version=version, ended_at=ended, duration_s=duration)
        )

    def fail(self, exc: BaseException) -> float:
        """Remove the half-written version and record why (secrets cut); returns the end time."""
        if self.version is not None and not self.committed:
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
        ended = now()
        duration = round(ended - self.started, 3)
        self.runs.change(
            self.pid, lambda r: r.fail(self.job_id, error=message, ended_at=ended, duration_s=duration)
        )
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
        config = request.label_config or project_label_config(request.data.get("project"))
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
        config = project_label_config(project)
        if config is None or not config.strip():
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
            try:
                on_commit(run.pid)
            except Exception:  # the version is live (LATEST names it); the listener learns of
                # it at its next request anyway: a broken listener does not unmake the run
                logger.exception("project %s: after version %s, on_commit failed", run.pid, run.version)
        record = run.succeed(ended)
    except BaseException as exc:
        ended = run.fail(exc)
        metrics.training_finished(RunStatus.FAILED.value, ended - run.started)
        raise
    metrics.training_finished(RunStatus.SUCCEEDED.value, ended - run.started)
    return record.to_json()


def interrupt(
    store: ModelStore, project_id: str, seen: RunRecord, why: str, clear_pending: bool
) -> RunRecord:
    """Report a run whose process is gone as failed (``interrupted``) and remove its version.

    Only while the record still describes that run: it may have just ended, or a new run begun.
    """
    new = RunBook(store).change(project_id, lambda r: r.interrupt(seen, why, clear_pending=clear_pending))
    if new.interrupted and new.job_id == seen.job_id and isinstance(seen.run_version, str):
        store.discard_version(project_id, seen.run_version, only_incomplete=True)
        logger.warning("project %s: training %s was interrupted: %s", project_id, seen.job_id, why)
    return new
