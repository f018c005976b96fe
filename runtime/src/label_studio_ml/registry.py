"""Live model instances of one process: built in the background, bounded, never older than asked.

Label Studio's own SDK builds a new model object for every request; here a model is built once
per project and version, in a background thread, and reused until a newer version lands in the
store (``LATEST`` moves) or the project's labeling config changes.

* ``/setup`` only *requests* a build and answers at once (:meth:`ModelRegistry.request`), so a
  model that loads for a minute still connects within Label Studio's 3 s.
* ``/predict`` waits for the build, bounded (:meth:`ModelRegistry.acquire`); a construction that
  raised is reported until the next ``/setup`` retries it.
* One build per project at a time, and one construction at a time per process: the peak is
  ``max_live`` live models plus the one being built.
* At most ``max_live`` models stay live; the least recently used one is dropped.
* ``LATEST`` is looked at on every request (one ``stat``): a process never answers with a version
  older than the store's, so once any process answered V, every process answers V or newer.
* What ``/setup`` says of a project's connection (hostname, token, extra parameters) is kept in
  the process and, in production mode, in Redis (:mod:`.connections`) for the other processes:
  :meth:`ModelRegistry.connection` takes the later of the two copies. A build never waits on
  Redis: a model built in production mode gets the shared copy right after its build, in the
  background, on its attributes as ``/setup`` sets them on a live model.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Set, Tuple

from .connections import ProjectInfo, SharedConnections
from .construct import construct
from .exceptions import ModelLoadError, ModelLoading
from .model import LabelStudioMLBase, version_served
from .process import responsive, take_preload
from .settings import Settings
from .store import ModelStore, version_number

logger = logging.getLogger(__name__)

Key = Tuple[Optional[str], Optional[str]]  # (store version or None, labeling config or None)
USED_EVERY = 30.0  # seconds between two "last used" marks of a project (preload order)
# Preloading starts this long after the app is built: an older ``wsgi.py`` builds more than one
# app within milliseconds, and only the last one should load models.
PRELOAD_GRACE = 0.5


@dataclass(frozen=True)
class LiveModel:
    """A built model as its callers use it (what :meth:`ModelRegistry.acquire` returns).

    ``version`` is the version it answers with: the model's own (:meth:`LabelStudioMLBase.serve_as`
    fixed it when the registry built it), never a copy.
    """

    model: LabelStudioMLBase
    gate: Optional[threading.BoundedSemaphore] = None  # PREDICT_CONCURRENCY, else None

    @property
    def version(self) -> str:
        return self.model.served_version or self.model.model_version

    def predict(self, tasks: List[Dict[str, Any]], **kwargs: Any) -> Any:
        """``model.predict(tasks, **kwargs)``, at most PREDICT_CONCURRENCY at a time when set."""
        if self.gate is None:
            return self.model.predict(tasks, **kwargs)
        with self.gate:  # a model that is not thread-safe
            return self.model.predict(tasks, **kwargs)


@dataclass
class _Entry:
    version: Optional[str]
    config: Optional[str]
    live: LiveModel
    preloaded: bool = False

    @property
    def model(self) -> LabelStudioMLBase:
        return self.live.model

    def serves(self, key: Key, newer_ok: Any = True) -> bool:
        """Whether this model may answer for ``key``: same config, same version or newer.

        ``newer_ok`` (a callable, asked only when the versions differ) is False while the
        project is pinned: then only the pinned version may answer, even if an older one.
        """
        version, config = key
        if self.config != config:
            return False
        if self.version == version:
            return True
        return version_number(self.version) > version_number(version) and bool(
            newer_ok() if callable(newer_ok) else newer_ok
        )


def served_version(store: ModelStore, project_id: str, model_class: type) -> str:
    """The version a project serves, from the store alone (no model needed).

    ``LATEST`` when the project was trained, else the version the model declared with
    ``self.set("model_version", ...)`` (kept in ``kv.json``), else the class's
    ``INITIAL_MODEL_VERSION``. A built model reports the same (its ``get`` reads ``kv.json``).
    """
    latest = store.latest(project_id)
    declared = None if latest else store.read_json(project_id, "kv.json").get("model_version")
    return version_served(latest, declared, model_class.INITIAL_MODEL_VERSION)


class ModelRegistry:
    """Builds, caches, bounds and swaps model instances.

    Its public API (the API module and tests use nothing else):

    * models: :meth:`request` (start a build), :meth:`wait` / :meth:`acquire` (a
      :class:`LiveModel`), :meth:`get` (``(model, version)``), :meth:`version_for` (``/setup``'s
      answer), :meth:`invalidate` (a run committed here);
    * what ``/setup`` and requests said of a project: :meth:`remember_config` /
      :meth:`label_config`, :meth:`update_info` / :meth:`connection` (in production mode
      shared through Redis), :meth:`access_tokens` (to redact);
    * state and lifecycle: :meth:`state`, :meth:`wait_idle`, :meth:`start_preload`,
      :meth:`wait_preloaded`.
    """

    def __init__(
        self,
        model_class: type,
        store: ModelStore,
        model_kwargs: Optional[Dict[str, Any]] = None,
        settings: Optional[Settings] = None,
        *,
        max_live: int = 4,
        predict_concurrency: int = 0,
        slot_wait: float = 60.0,
    ) -> None:
        self.model_class = model_class
        self.settings = settings
        self.store = store
        self.model_kwargs = dict(model_kwargs or {})
        self.max_live = max(1, int(max_live))
        self.predict_concurrency = max(0, int(predict_concurrency))
        self._info: Dict[str, ProjectInfo] = {}  # the latest connection this process knows
        self._tokens: List[str] = []  # every token this process has seen, to redact
        self._shared = SharedConnections.of(settings)  # production mode only
        self._configs: Dict[str, str] = {}
        self._live: OrderedDict[str, _Entry] = OrderedDict()
        self._wanted: Dict[str, Key] = {}
        self._building: Set[str] = set()
        self._failed: Dict[str, Tuple[Key, ModelLoadError]] = {}
        self._used: Dict[str, float] = {}
        self._cond = threading.Condition()
        self._slot = threading.Lock()  # one construction at a time in this process...
        self.slot_wait = slot_wait  # ...unless one runs longer than this (a hung constructor)
        self._preload_stop = threading.Event()
        self._preload_thread: Optional[threading.Thread] = None

    def _newer_ok(self, project_id: str) -> Any:
        """For :meth:`_Entry.serves`: may a newer model answer? Not while the project is pinned."""
        return functools.partial(self.store.follows_newest, project_id)

    # ------------------------------------------------------------------ configs
    def remember_config(self, project_id: str, label_config: str) -> None:
        """Record the project's config (memory and store) when it changed."""
        if self._configs.get(project_id) != label_config:
            self.store.save_label_config(project_id, label_config)
            self._configs[project_id] = label_config

    def label_config(self, project_id: str) -> Optional[str]:
        """The project's config: the last one sent, else the stored one, else None."""
        if project_id not in self._configs:
            stored = self.store.label_config(project_id)
            if stored:
                self._configs[project_id] = stored
        return self._configs.get(project_id)

    # ------------------------------------------------------------------ requests
    def request(self, project_id: str, label_config: Optional[str] = None, retry: bool = False) -> Key:
        """Make sure the project's current model is live or being built; return its key.

        ``retry`` (``/setup``) builds again a model whose construction raised.
        """
        if label_config:
            self.remember_config(project_id, label_config)
        key: Key = (self.store.latest(project_id), label_config or self.label_config(project_id))
        now = time.monotonic()
        if now - self._used.get(project_id, -USED_EVERY) >= USED_EVERY:
            self._used[project_id] = now
            self.store.mark_used(project_id)
        with self._cond:
            entry = self._live.get(project_id)
            if entry is not None and entry.serves(key, self._newer_ok(project_id)):
                self._live.move_to_end(project_id)
                entry.preloaded = False
                return key
            failed = self._failed.get(project_id)
            if failed is not None and failed[0] == key:
                if not retry:
                    return key
                del self._failed[project_id]
            self._want(project_id, key)
        return key

    def _want(self, project_id: str, key: Key, preload: bool = False) -> None:
        """Under ``_cond``: record the wanted key and start the project's builder if idle."""
        self._wanted[project_id] = key
        if project_id not in self._building:
            self._building.add(project_id)
            threading.Thread(
                target=self._builder, args=(project_id, preload), name=f"lsml-build-{project_id}", daemon=True
            ).start()

    def acquire(
        self, project_id: str, label_config: Optional[str] = None, timeout: float = 60.0
    ) -> LiveModel:
        """The live model for the project's current key, waiting at most ``timeout`` s for its build.

        Raises :class:`ModelLoadError` when the construction raised, :class:`ModelLoading` when
        it is still running after ``timeout``.
        """
        return self.wait(project_id, self.request(project_id, label_config), timeout)

    def wait(self, project_id: str, key: Key, timeout: float) -> LiveModel:
        """Wait at most ``timeout`` s for a live model serving ``key`` (see :meth:`acquire`)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                entry = self._live.get(project_id)
                if entry is not None and entry.serves(key, self._newer_ok(project_id)):
                    self._live.move_to_end(project_id)
                    entry.preloaded = False
                    return entry.live
                failed = self._failed.get(project_id)
                if failed is not None and failed[0] == key:
                    raise ModelLoadError(str(failed[1]))
                if project_id not in self._building:  # evicted meanwhile: build it again
                    self._want(project_id, key)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ModelLoading(project_id, timeout)
                self._cond.wait(remaining)

    def get(
        self, project_id: str, label_config: Optional[str] = None, timeout: float = 60.0
    ) -> Tuple[LabelStudioMLBase, str]:
        """``(model, served version)`` of the project, waiting for its build (see :meth:`acquire`)."""
        live = self.acquire(project_id, label_config, timeout)
        return live.model, live.version

    def version_for(self, project_id: str, key: Key) -> str:
        """What ``/setup`` answers: the live model's version, else the store's rule (no build)."""
        entry = self._live.get(project_id)
        if entry is not None and entry.serves(key, self._newer_ok(project_id)):
            return entry.live.version
        return served_version(self.store, project_id, self.model_class)

    def invalidate(self, project_id: str) -> None:
        """A training run just committed here: build the new version now, in the background."""
        with self._cond:
            entry = self._live.get(project_id)
            config = entry.config if entry else self._configs.get(project_id)
        if entry is not None:
            self.request(project_id, config)

    def state(self) -> Dict[str, List[str]]:
        """Projects whose model is live, being built, or failed to build (``/health``)."""
        with self._cond:
            return {
                "loaded": list(self._live),
                "loading": sorted(self._building),
                "failed": sorted(self._failed),
            }

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no build is running (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._building:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    # ------------------------------------------------------------------ building
    def _builder(self, project_id: str, preload: bool) -> None:
        """Build the project's wanted key until the live model serves it (or its build failed)."""
        try:
            while True:
                with self._cond:
                    key = self._wanted.get(project_id)
                    entry = self._live.get(project_id)
                    failed = self._failed.get(project_id)
                    if key is None or (entry is not None and entry.serves(key, self._newer_ok(project_id))):
                        return
                    if failed is not None and failed[0] == key:
                        return
                slot = self._slot.acquire(timeout=self.slot_wait)
                if not slot:
                    logger.warning(
                        "project %s: another model has been constructing for over %g s; building "
                        "this one alongside it",
                        project_id,
                        self.slot_wait,
                    )
                try:
                    with responsive():
                        entry = self._construct(project_id, key)
                except ModelLoadError as exc:
                    with self._cond:
                        self._failed[project_id] = (key, exc)
                        self._cond.notify_all()
                    continue
                finally:
                    if slot:
                        self._slot.release()
                entry.preloaded = preload
                if preload and self._preload_stop.is_set():
                    # a newer app of this store took over: drop what nobody asked for (a request
                    # waiting here builds it again, see wait())
                    with self._cond:
                        self._wanted.pop(project_id, None)
                    return
                with self._cond:
                    self._failed.pop(project_id, None)
                    self._live[project_id] = entry
                    self._live.move_to_end(project_id)
                    while len(self._live) > self.max_live:
                        evicted, _ = self._live.popitem(last=False)
                        logger.info("project %s: model dropped (MAX_LIVE_MODELS=%d)", evicted, self.max_live)
                    self._cond.notify_all()
                if self._shared is not None:  # the connection another process got, off the request path
                    threading.Thread(
                        target=self._refresh_connection, args=(project_id,), name=f"lsml-conn-{project_id}",
                        daemon=True,
                    ).start()  # fmt: skip
        finally:
            with self._cond:
                self._building.discard(project_id)
                self._cond.notify_all()

    def _construct(self, project_id: str, key: Key) -> _Entry:
        version, config = key
        info = self._info.get(project_id) or ProjectInfo()  # this process's copy: never Redis here
        started = time.monotonic()
        try:
            model = construct(
                self.model_class,
                self.store,
                project_id,
                version,
                label_config=config,
                hostname=info.hostname,
                access_token=info.access_token,
                extra_params=info.extra_params,
                settings=self.settings,
                model_kwargs=self.model_kwargs,
            )
        except Exception as exc:
            logger.exception("building %s for project %s failed", self.model_class.__name__, project_id)
            detail = f"{self.model_class.__name__}() raised {type(exc).__name__}: {exc}"
            raise ModelLoadError(detail) from exc
        served = model.serve_as(version)
        logger.info(
            "project %s: serving %s version %s (built in %.2f s)",
            project_id,
            self.model_class.__name__,
            served,
            time.monotonic() - started,
        )
        gate = threading.BoundedSemaphore(self.predict_concurrency) if self.predict_concurrency else None
        return _Entry(version, config, LiveModel(model, gate))

    def update_info(self, project_id: str, hostname: Any, access_token: Any, extra_params: Any) -> None:
        """Keep what ``/setup`` sent and hand it to the live model without rebuilding it.

        Production mode records it in Redis too (bounded; a failure is logged, never raised).
        """
        info = ProjectInfo.from_setup(hostname, access_token, extra_params)
        self._adopt(project_id, info)
        if self._shared is not None:
            self._shared.save(project_id, info)

    def connection(self, project_id: str) -> ProjectInfo:
        """What the last ``/setup`` sent for the project (empty when nothing).

        Production mode asks Redis (bounded) and takes the later of its copy and this process's
        own: a process that never got ``/setup`` learns it there, and one that got an older
        ``/setup`` learns the newer token. Never called on ``/health`` or ``/predict``.
        """
        own = self._info.get(project_id)
        if self._shared is not None:
            shared = self._shared.load(project_id)
            if shared is not None and (own is None or shared.at > own.at):
                self._adopt(project_id, shared)
                return shared
        return own or ProjectInfo()

    def access_tokens(self) -> List[str]:
        """Every token this process got from ``/setup`` or from Redis (to redact logs, errors)."""
        return list(self._tokens)

    def _adopt(self, project_id: str, info: ProjectInfo) -> None:
        """Make ``info`` the project's connection here, and the live model's."""
        if info.access_token and info.access_token not in self._tokens:
            self._tokens.append(info.access_token)
        self._info[project_id] = info
        entry = self._live.get(project_id)
        if entry is not None:
            entry.model.hostname = info.hostname or entry.model.hostname
            entry.model.access_token = info.access_token
            entry.model.extra_params = info.extra_params

    def _refresh_connection(self, project_id: str) -> None:
        """Background: a model just built here gets the shared connection when it is newer."""
        try:
            info = self.connection(project_id)
            if info.at:  # also what a /setup during the build sent
                self._adopt(project_id, info)
        except Exception:  # never let a background refresh kill anything; it is logged
            logger.exception("project %s: reading the shared connection failed", project_id)

    # ------------------------------------------------------------------ preload
    def start_preload(self) -> threading.Thread:
        """Build, in a background thread, the models of the projects the store knows.

        Projects with a stored labeling config, most recently used first, while fewer than
        ``max_live`` models are live or loading (requests that arrive meanwhile come first).
        """
        # one preloading registry per store in a process: an older one (an app built and then
        # replaced, as an older ``wsgi.py`` did) stops and drops what it preloaded and nobody used
        previous = take_preload(str(self.store.root), self)
        if previous is not None:
            previous._stop_preload()
        thread = threading.Thread(target=self._preload, name="lsml-preload", daemon=True)
        self._preload_thread = thread
        thread.start()
        return thread

    def wait_preloaded(self, timeout: float) -> bool:
        """Wait until preloading (if any) and every build ended (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        if self._preload_thread is not None:
            self._preload_thread.join(timeout)
            if self._preload_thread.is_alive():
                return False
        return self.wait_idle(max(0.0, deadline - time.monotonic()))

    def _stop_preload(self) -> None:
        self._preload_stop.set()
        with self._cond:
            for pid in [p for p, e in self._live.items() if e.preloaded]:
                del self._live[pid]

    def _preload(self) -> None:
        if self._preload_stop.wait(PRELOAD_GRACE):
            return
        try:
            candidates = [p for p in self.store.projects() if self.store.label_config(p)]
        except OSError:
            logger.exception("preload: cannot list the model store %s", self.store.root)
            return
        candidates.sort(key=self.store.last_used, reverse=True)
        started = time.monotonic()
        built = 0
        for pid in candidates:
            with self._cond:
                if self._preload_stop.is_set() or len(self._live) + len(self._building) >= self.max_live:
                    break
                if pid in self._live or pid in self._building:
                    continue
                key: Key = (self.store.latest(pid), self.label_config(pid))
                self._want(pid, key, preload=True)
                while pid in self._building and not self._preload_stop.is_set():
                    self._cond.wait(1.0)
                built += pid in self._live
            if self._preload_stop.is_set():
                with self._cond:
                    entry = self._live.get(pid)
                    if entry is not None and entry.preloaded:
                        del self._live[pid]
                break
        if candidates:
            logger.info("preloaded %d model(s) in %.2f s", built, time.monotonic() - started)
