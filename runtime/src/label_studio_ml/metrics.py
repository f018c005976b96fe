"""Prometheus metrics for ``GET /metrics`` (``prometheus_client``), across processes.

* ``PROMETHEUS_MULTIPROC_DIR`` set (production: supervisord sets it and wipes the directory at
  start): every process (uWSGI workers, RQ work horses) writes its samples to files in that
  directory and a scrape adds them all up (``prometheus_client.multiprocess``).
* Unset: each :class:`Metrics` keeps its own registry in memory (one process, development and
  tests).

Request, prediction and training samples live in those files; the served model versions and
the queue length are computed when scraped (from the store and the trainer), so they are
right whichever process answers the scrape. docs/metrics.md lists every series.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any, Dict, Iterable, Optional, Tuple

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from .settings import metrics_dir_from_env

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
disable_created_metrics()  # no *_created series: multi-process mode has none either

# seconds: a 1-task /predict takes about a millisecond, 1000 tasks of a real model minutes
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TRAINING_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600, 24 * 3600)


def multiprocess_dir() -> Optional[str]:
    """The shared sample directory, or None (per-process registry)."""
    return metrics_dir_from_env()


class _Instruments:
    """The counters and histograms of one registry."""

    def __init__(self, registry: Optional[CollectorRegistry]) -> None:
        kw = {"registry": registry}
        self.requests = Counter(
            "lsml_http_requests", "HTTP requests by route, method and status.",
            ["route", "method", "status"], **kw,
        )  # fmt: skip
        self.latency = Histogram(
            "lsml_http_request_duration_seconds", "Time to answer HTTP requests by route, method, status.",
            ["route", "method", "status"], buckets=REQUEST_BUCKETS, **kw,
        )  # fmt: skip
        self.predict_calls = Counter("lsml_predict_calls", "Successful /predict calls.", **kw)
        self.tasks = Counter("lsml_predicted_tasks", "Tasks predicted by successful /predict calls.", **kw)
        self.predictions = Counter(
            "lsml_predictions", "Prediction objects served (a task may get several, or none).", **kw
        )
        self.training_requests = Counter(
            "lsml_training_requests", "Training requests (/webhook, /train) by answer: queued or coalesced.",
            ["status"], **kw,
        )  # fmt: skip
        self.training_runs = Counter(
            "lsml_training_runs", "Finished training runs by outcome: succeeded or failed.", ["outcome"], **kw
        )
        self.training_seconds = Histogram(
            "lsml_training_duration_seconds", "Duration of finished training runs, by outcome.",
            ["outcome"], buckets=TRAINING_BUCKETS, **kw,
        )  # fmt: skip


_shared: Optional[_Instruments] = None
_shared_lock = threading.Lock()


def _process_instruments() -> _Instruments:
    """One set per process: in multi-process mode two objects for one series would clash."""
    global _shared
    with _shared_lock:
        if _shared is None:
            # under uWSGI the sample files are named after the worker slot: process.setup_process
            # swapped prometheus_client's value class before this first sample
            _shared = _Instruments(None if multiprocess_dir() else CollectorRegistry(auto_describe=True))
        return _shared


class _Snapshot:
    """Collector of the values computed at scrape time."""

    def __init__(self, versions: Dict[str, str], queue_length: Optional[float], mode: str) -> None:
        self.versions, self.queue_length, self.mode = versions, queue_length, mode

    def collect(self) -> Iterable[GaugeMetricFamily]:
        served = GaugeMetricFamily(
            "lsml_model_version", "Model version served per project: 1 for the current one.",
            labels=["project", "version"],
        )  # fmt: skip
        for project, version in sorted(self.versions.items()):
            served.add_metric([project, str(version)], 1)
        yield served
        queue = GaugeMetricFamily(
            "lsml_training_queue_length",
            "Training jobs waiting: the RQ queue's count in production; 0 or 1 (a run active "
            "or waiting in this process) in development. NaN when Redis does not answer.",
            labels=["mode"],
        )
        queue.add_metric([self.mode], math.nan if self.queue_length is None else self.queue_length)
        yield queue


class Metrics:
    """The metrics of one app (all apps of a process share them in multi-process mode)."""

    def __init__(self, directory: Optional[str] = None) -> None:
        """``directory``: ``PROMETHEUS_MULTIPROC_DIR`` (``Settings.metrics_dir``; read when omitted)."""
        self.directory = directory or multiprocess_dir()
        if self.directory:
            self._registry: Optional[CollectorRegistry] = None
            self.instruments = _process_instruments()
        else:
            self._registry = CollectorRegistry(auto_describe=True)
            self.instruments = _Instruments(self._registry)
        # labelled children, looked up once per label set (labels() takes a lock every call)
        self._children: Dict[Tuple[str, str, int], Tuple[Any, Any]] = {}

    # ------------------------------------------------------------------ recording
    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        children = self._children.get((route, method, status))
        if children is None:
            labels = (route, method, str(status))
            children = (self.instruments.requests.labels(*labels), self.instruments.latency.labels(*labels))
            self._children[(route, method, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def predicted(self, tasks: int, predictions: Optional[int] = None) -> None:
        self.instruments.predict_calls.inc()
        self.instruments.tasks.inc(tasks)
        self.instruments.predictions.inc(tasks if predictions is None else predictions)

    def training_requested(self, status: str) -> None:
        self.instruments.training_requests.labels(status).inc()

    def training_finished(self, outcome: str, seconds: float) -> None:
        record_training(outcome, seconds, self.instruments)

    # ------------------------------------------------------------------ scraping
    def render(
        self,
        versions: Optional[Dict[str, str]] = None,
        queue_length: Optional[float] = 0,
        mode: str = "development",
    ) -> bytes:
        """The Prometheus text exposition (format 0.0.4) of every series."""
        registry = CollectorRegistry(auto_describe=False)
        if self.directory:
            from prometheus_client import multiprocess

            os.makedirs(self.directory, exist_ok=True)
            multiprocess.MultiProcessCollector(registry, path=self.directory)
        else:
            assert self._registry is not None
            registry.register(_Forward(self._registry))
        registry.register(_Snapshot(versions or {}, queue_length, mode))
        return generate_latest(registry)


class _Forward:
    """Expose another registry's samples inside the scrape registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable:
        return self.registry.collect()


def record_training(outcome: str, seconds: float, instruments: Optional[_Instruments] = None) -> None:
    """Count a finished run (called where ``execute()`` ends: API thread or RQ work horse)."""
    try:
        inst = instruments or _process_instruments()
        inst.training_runs.labels(outcome).inc()
        inst.training_seconds.labels(outcome).observe(max(0.0, seconds))
    except Exception:  # metrics must never fail a training run
        import logging

        logging.getLogger(__name__).warning("could not record training metrics", exc_info=True)
