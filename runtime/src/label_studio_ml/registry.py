"""One live model instance per project and version, shared by every request of a process.

Label Studio's own SDK builds a new model object for every request; here a model is built once
and reused until a newer version lands in the store (``LATEST`` moves) or the project's labeling
config changes.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from .model import LabelStudioMLBase, build_model
from .settings import Settings
from .store import ModelStore

logger = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """The model class raised while being constructed."""


@dataclass
class _Entry:
    version: Optional[str]
    config: Optional[str]
    model: LabelStudioMLBase
    served_version: str
    checked: float = 0.0


@dataclass
class ProjectInfo:
    """What ``/setup`` told us about a project (kept in memory, never logged)."""

    hostname: Optional[str] = None
    access_token: Optional[str] = field(default=None, repr=False)
    extra_params: Dict[str, Any] = field(default_factory=dict)


class ModelRegistry:
    """Builds, caches and swaps model instances."""

    def __init__(
        self,
        model_class: type,
        store: ModelStore,
        model_kwargs: Optional[Dict[str, Any]] = None,
        settings: Optional[Settings] = None,
    ) -> None:
        self.model_class = model_class
        self.settings = settings
        self.store = store
        self.model_kwargs = dict(model_kwargs or {})
        self._entries: Dict[str, _Entry] = {}
        self._configs: Dict[str, str] = {}
        self.info: Dict[str, ProjectInfo] = {}
        self._locks: Dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.check_interval = 0.5

    def _lock(self, project_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(project_id, threading.Lock())

    def remember_config(self, project_id: str, label_config: Optional[str]) -> Optional[str]:
        """Record the project's config (memory and store); return the config to use."""
        if label_config:
            if self._configs.get(project_id) != label_config:
                self.store.save_label_config(project_id, label_config)
                self._configs[project_id] = label_config
            return label_config
        if project_id not in self._configs:
            stored = self.store.label_config(project_id)
            if stored:
                self._configs[project_id] = stored
        return self._configs.get(project_id)

    def get(
        self, project_id: str, label_config: Optional[str] = None, fresh: bool = False
    ) -> Tuple[LabelStudioMLBase, str]:
        """The live model of a project and the version it serves.

        The store is asked for a newer version at most every ``check_interval`` seconds, or
        every time with ``fresh`` (``/setup``, which Label Studio calls before each batch).
        """
        entry = self._entries.get(project_id)
        now = time.monotonic()
        if (
            entry is not None
            and not fresh
            and now - entry.checked < self.check_interval
            and (label_config is None or label_config == entry.config)
        ):
            return entry.model, entry.served_version
        config = self.remember_config(project_id, label_config)
        version = self.store.latest(project_id)
        if entry and entry.version == version and entry.config == config:
            entry.checked = now
            return entry.model, entry.served_version
        with self._lock(project_id):
            entry = self._entries.get(project_id)
            if not (entry and entry.version == version and entry.config == config):
                entry = self._build(project_id, version, config)
                self._entries[project_id] = entry
            entry.checked = time.monotonic()
            return entry.model, entry.served_version

    def invalidate(self, project_id: str) -> None:
        """Make the next request look for a new version (a training run just ended here)."""
        entry = self._entries.get(project_id)
        if entry is not None:
            entry.checked = 0.0

    def _build(self, project_id: str, version: Optional[str], config: Optional[str]) -> _Entry:
        info = self.info.get(project_id, ProjectInfo())
        workdir = str(self.store.version_dir(project_id, version)) if version else None
        try:
            train_output = self.store.train_output(project_id, version)
            model = build_model(
                self.model_class,
                project_id=project_id,
                label_config=config,
                train_output=train_output,
                model_dir=str(self.store.ensure_project(project_id)),
                workdir=workdir,
                hostname=info.hostname,
                access_token=info.access_token,
                extra_params=info.extra_params,
                settings=self.settings,
                **self.model_kwargs,
            )
        except Exception as exc:
            logger.exception("building %s for project %s failed", self.model_class.__name__, project_id)
            raise ModelLoadError(f"{self.model_class.__name__}() raised {type(exc).__name__}: {exc}") from exc
        served = version or model.get("model_version") or model.INITIAL_MODEL_VERSION
        model._served_version = served
        logger.info("project %s: serving %s version %s", project_id, self.model_class.__name__, served)
        return _Entry(version, config, model, served)

    def update_info(self, project_id: str, hostname: Any, access_token: Any, extra_params: Any) -> None:
        """Keep what ``/setup`` sent and hand it to the live model without rebuilding it."""
        info = ProjectInfo(
            hostname=hostname if isinstance(hostname, str) and hostname else None,
            access_token=access_token if isinstance(access_token, str) and access_token else None,
            extra_params=extra_params if isinstance(extra_params, dict) else {},
        )
        self.info[project_id] = info
        entry = self._entries.get(project_id)
        if entry is not None:
            entry.model.hostname = info.hostname or entry.model.hostname
            entry.model.access_token = info.access_token
            entry.model.extra_params = info.extra_params
