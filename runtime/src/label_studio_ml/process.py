"""What belongs to the process, not to an app: set once, by the entry point, before anything else.

An app (:func:`label_studio_ml.api.create_app`) holds its own settings, store, live models,
trainer and metrics; a process may build several (tests build many). A few things cannot belong
to an app because the interpreter or a library keeps one per process. They all live here:

* **Logging**: a root handler in the backend's format and the ``label_studio_ml`` logger's
  level (``LOG_LEVEL``). Flask and rq add a handler of their own only when none exists.
* **The garbage collector**: ``gc.freeze()`` of the startup objects (API processes).
* **Prometheus' value class** under uWSGI with ``PROMETHEUS_MULTIPROC_DIR``: sample files named
  after the worker slot, not the pid (API processes).
* **The interpreter's switch interval** while a model is built (:func:`responsive`).
* **The preloading registry** of each model store (:func:`take_preload`).
* **The function-style model**: what ``@predict_fn`` / ``@update_fn`` registered
  (:data:`functions`).

:func:`setup_process` sets the first three, once; each entry point calls it before it builds
an app or a worker:

* ``wsgi.py`` (uWSGI's ``wsgi:app``; ``label-studio-ml start`` and ``python wsgi.py`` import it):
  ``role="api"``;
* ``label-studio-ml worker`` and :class:`label_studio_ml.worker.Worker` (``rq worker -w ...``):
  ``role="worker"``.

``create_app`` calls it when the process was not set up (scripts and tests that build apps
directly, a ``wsgi.py`` generated before this module existed): the first app's settings then set
the process up, as an API process, and later apps change nothing here.

Importable with the standard library alone (``model.py`` imports it).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, Optional, Tuple

if TYPE_CHECKING:  # pragma: no cover
    from .settings import Settings

__all__ = ["ROLES", "setup_process", "process_role", "responsive", "take_preload", "functions"]

ROLES = ("api", "worker")
LOG_FORMAT = "[%(asctime)s] [%(levelname)s] [%(name)s] %(message)s"

_setup_lock = threading.Lock()
_role: Optional[str] = None


def process_role() -> Optional[str]:
    """The role :func:`setup_process` set this process up as, or None before it ran."""
    return _role


def setup_process(settings: Optional[Settings] = None, *, role: str = "api") -> bool:
    """Set up what belongs to the whole process, once; returns False when it was already done.

    The first call wins (its settings and role); later calls change nothing, so entry points,
    ``create_app`` and user code may all call it. Effects:

    * both roles: logging (:func:`_configure_logging`);
    * ``"api"``: ``gc.freeze()`` of what exists now (:func:`_freeze_startup_objects`), and under
      uWSGI with ``PROMETHEUS_MULTIPROC_DIR`` sample files named after the worker slot
      (:func:`_name_metric_files_after_uwsgi_workers`).

    Args:
        settings: The backend's settings (``LOG_LEVEL``, ``PROMETHEUS_MULTIPROC_DIR``); read from
            the environment when omitted.
        role: ``"api"`` (a process that serves the HTTP API) or ``"worker"`` (an RQ worker).
    """
    global _role
    if role not in ROLES:
        raise ValueError(f"setup_process(role={role!r}): the role is one of {', '.join(ROLES)}")
    with _setup_lock:
        if _role is not None:
            return False
        if settings is None:
            from .settings import Settings

            settings = Settings.from_env()
        _configure_logging(settings.log_level)
        if role == "api":
            if settings.metrics_dir:
                _name_metric_files_after_uwsgi_workers()
            _freeze_startup_objects()
        _role = role
        return True


def _configure_logging(level: str) -> None:
    """A root handler in the backend's format (unless one exists), ``label_studio_ml`` at ``level``.

    ``basicConfig`` does nothing when the root logger has a handler (a user's script, pytest):
    theirs stays. Flask's app logger and rq's worker logger add a handler of their own only
    when none exists, so lines are written once.
    """
    logging.basicConfig(level=level, format=LOG_FORMAT)
    logging.getLogger("label_studio_ml").setLevel(level)


def _freeze_startup_objects() -> None:
    """Move what exists at startup (modules, classes, functions of the runtime, Flask and the
    model's imports: objects that live as long as the process) out of the garbage collector's
    sight (``gc.freeze``).

    A 1000-task /predict allocates thousands of containers, which triggers full collections;
    each walked the ~35,000 startup objects again: about 0.9 ms per such request
    (bench/bench_predict.py). Done once, before the first app is built and before any model
    (preloading builds them in a thread): objects frozen are never collected if they become
    cyclic garbage, so models and apps (tests build many) stay collectable. The app itself is
    left out: about 550 objects against the ~33,000 frozen (measured with a minimal model).
    """
    gc.collect()
    gc.freeze()


# ------------------------------------------------------------------ Prometheus under uWSGI
_file_id: Tuple[int, str] = (0, "")


def _sample_file_id() -> str:
    """``uwsgi<master pid>-<worker id>`` in a uWSGI worker, else the pid (prometheus_client's own).

    Called on every sample write (prometheus_client checks it for forks), so it is cached per pid.
    """
    global _file_id
    pid = os.getpid()
    if _file_id[0] != pid:
        import uwsgi  # type: ignore[import-not-found]  # only called inside uWSGI

        worker = uwsgi.worker_id()
        _file_id = (pid, f"uwsgi{uwsgi.masterpid()}-{worker}" if worker > 0 else str(pid))
    return _file_id[1]


def _name_metric_files_after_uwsgi_workers() -> None:
    """Recycled uWSGI workers (``max-requests``, ``reload-on-rss``) reuse their slot's sample files.

    prometheus_client names a process's files after its pid, so every recycled worker would leave
    two more files behind and each scrape would read them all. Named after the worker slot, a
    new worker reopens its predecessor's files (which exited before it was started) and its
    counters go on from the values there: totals stay right and the directory stays at two files
    per worker. prometheus_client keeps the value class module-wide: it must be swapped before
    the first sample exists, which is why this is process setup and not the app's.
    """
    try:
        import uwsgi  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return
    from prometheus_client import values

    if getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue(process_identifier=_sample_file_id)


# ------------------------------------------------------------------ switch interval
# While a model is built in the background, the interpreter hands the GIL to waiting threads
# every BUILD_SWITCH_INTERVAL s instead of every 5 ms, so a loader running Python code delays
# the requests of loaded projects by about a millisecond, not 5 to 20 (bench/bench_heavy.py).
BUILD_SWITCH_INTERVAL = 0.0005
_switch_lock = threading.Lock()
_building_now = [0, 0.005]  # builds running in this process, the interval to restore


@contextlib.contextmanager
def responsive() -> Iterator[None]:
    """Around a model's construction: a short switch interval while any build runs.

    The interval is the interpreter's (one per process), so builds count themselves: the first
    lowers it to :data:`BUILD_SWITCH_INTERVAL`, the last restores what it was.
    """
    with _switch_lock:
        if _building_now[0] == 0:
            _building_now[1] = sys.getswitchinterval()
            sys.setswitchinterval(min(_building_now[1], BUILD_SWITCH_INTERVAL))
        _building_now[0] += 1
    try:
        yield
    finally:
        with _switch_lock:
            _building_now[0] -= 1
            if _building_now[0] == 0:
                sys.setswitchinterval(_building_now[1])


# ------------------------------------------------------------------ preloading
# The newest registry of a process per store preloads; an older one (an app built and then
# replaced, as an older ``wsgi.py`` did) stops and drops what it preloaded and nobody used.
_preloaders: Dict[str, Any] = {}
_preloaders_lock = threading.Lock()


def take_preload(store_root: str, registry: Any) -> Any:
    """Make ``registry`` the one that preloads the store at ``store_root``; return the previous one."""
    with _preloaders_lock:
        previous = _preloaders.get(store_root)
        _preloaders[store_root] = registry
    return None if previous is registry else previous


# ------------------------------------------------------------------ function-style models
@dataclass
class FunctionStyle:
    """Upstream's function style: ``@predict_fn`` / ``@update_fn`` register module-level functions
    that :class:`~label_studio_ml.model.LabelStudioMLBase`'s ``predict`` / ``fit`` call. A
    decorator runs when the user's module is imported, before any app exists: one per process."""

    predict: Optional[Callable[..., Any]] = None
    update: Optional[Callable[..., Any]] = None


functions = FunctionStyle()
