"""A project's run lock in Redis, and the heartbeat that keeps it while a run lasts.

At most one run per project executes at a time in production: the job takes the project's lock
(:class:`ProjectLock`) before it starts, and waits while another job holds it.

Imports: redis only.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from redis.exceptions import LockError, LockNotOwnedError, RedisError

logger = logging.getLogger(__package__)  # one logger name for the package: "label_studio_ml.training"


class ProjectLock:
    """The project's run lock in Redis: redis-py's ``Lock`` (owner-checked extend and release),
    kept alive by a heartbeat thread while the run lasts.

    Its value is the job id, so anyone can tell which job holds it (``/training`` does). If
    the heartbeat ever finds the lock gone or taken (the worker was paused or cut off from
    Redis for longer than ``ttl``), the run has lost the project: :meth:`owned` says so and the
    run is not committed.
    """

    def __init__(self, redis: Any, key: str, job_id: str, ttl: int) -> None:
        self.lock = redis.lock(key, timeout=ttl, sleep=0.25, thread_local=False)
        self.job_id, self.ttl = job_id, ttl
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True, name="lsml-lock-heartbeat")

    def __enter__(self) -> ProjectLock:
        self.lock.acquire(token=self.job_id)  # waits while another job trains this project
        self._beat.start()
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.lock.extend(self.ttl, replace_ttl=True)
            except LockNotOwnedError:
                self.lost.set()
                logger.error("training %s lost its project's run lock (expired or taken)", self.job_id)
                return
            except RedisError as exc:
                logger.warning("training %s could not extend its run lock: %s", self.job_id, exc)

    def owned(self) -> bool:
        try:
            return not self.lost.is_set() and bool(self.lock.owned())
        except RedisError:
            return False

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._beat.join(5)
        try:
            self.lock.release()
        except LockError:
            logger.warning("training %s: the run lock had expired or been taken; left as is", self.job_id)
        except RedisError as exc:
            logger.warning("training %s could not release its run lock (it expires): %s", self.job_id, exc)
