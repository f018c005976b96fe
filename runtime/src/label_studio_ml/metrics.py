"""Request and prediction counters, rendered in the Prometheus text format (per process)."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import DefaultDict, Tuple


class Metrics:
    """Thread-safe counters for one API process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: DefaultDict[Tuple[str, str, int], int] = defaultdict(int)
        self._seconds: DefaultDict[Tuple[str, str], float] = defaultdict(float)
        self._tasks = 0
        self._predict_calls = 0
        self._training: DefaultDict[str, int] = defaultdict(int)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(route, method, status)] += 1
            self._seconds[(route, method)] += seconds

    def predicted(self, tasks: int) -> None:
        with self._lock:
            self._tasks += tasks
            self._predict_calls += 1

    def training_requested(self, status: str) -> None:
        with self._lock:
            self._training[status] += 1

    def render(self) -> str:
        lines = [
            "# HELP lsml_http_requests_total HTTP requests by route, method and status.",
            "# TYPE lsml_http_requests_total counter",
        ]
        with self._lock:
            for (route, method, status), n in sorted(self._requests.items()):
                lines.append(
                    f'lsml_http_requests_total{{route="{route}",method="{method}",status="{status}"}} {n}'
                )
            lines += [
                "# HELP lsml_http_request_seconds_total Time spent answering, by route and method.",
                "# TYPE lsml_http_request_seconds_total counter",
            ]
            for (route, method), s in sorted(self._seconds.items()):
                lines.append(f'lsml_http_request_seconds_total{{route="{route}",method="{method}"}} {s:.6f}')
            lines += [
                "# HELP lsml_predicted_tasks_total Tasks predicted.",
                "# TYPE lsml_predicted_tasks_total counter",
                f"lsml_predicted_tasks_total {self._tasks}",
                "# HELP lsml_training_requests_total Training requests by outcome.",
                "# TYPE lsml_training_requests_total counter",
            ]
            for status, n in sorted(self._training.items()):
                lines.append(f'lsml_training_requests_total{{status="{status}"}} {n}')
        return "\n".join(lines) + "\n"
