"""Startup and health checks that turn silent dead ends into a message where the user looks.

* :func:`check_model_dir`: ``MODEL_DIR`` must be a directory this user can write (checked with
  ``os.access`` and a real write), else the API and the worker refuse to start;
* :func:`rq_workers` / :func:`worker_warning`: in production mode, whether any RQ worker
  consumes the training queue (``/health``, ``/training`` and ``start`` say so when none does).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Optional

from .settings import SettingsError, redis_url_shown


def _user() -> str:
    """``name (uid N)`` of this process, from the password database (not the environment)."""
    uid = os.getuid() if hasattr(os, "getuid") else -1
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def check_model_dir(raw: str) -> Path:
    """Create ``MODEL_DIR`` if needed and prove this process can write there; returns it.

    Raises :class:`SettingsError` naming the directory, the user and the reason.
    """
    path = Path(raw).expanduser().resolve()

    def refuse(reason: str) -> SettingsError:
        return SettingsError(
            f"MODEL_DIR={raw!r} ({path}) is not writable by user {_user()}: {reason}. "
            "Make it a directory this user can write (e.g. chown it, or mount a writable volume "
            "there), or set MODEL_DIR to one"
        )

    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise refuse(f"{exc.filename or path} exists and is not a directory") from exc
    except NotADirectoryError as exc:
        raise refuse(f"a parent of it is a file, not a directory ({exc.strerror})") from exc
    except OSError as exc:
        raise refuse(f"cannot create it ({exc.strerror or exc})") from exc
    if not path.is_dir():
        raise refuse("it is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise refuse("no write permission")
    try:  # os.access trusts mode bits; a read-only mount or an ACL only shows on a real write
        with tempfile.NamedTemporaryFile(dir=path, prefix=".lsml-write-check-"):
            pass
    except OSError as exc:
        raise refuse(f"a test write failed ({exc.strerror or exc})") from exc
    return path


def rq_workers(connection: Any, queue_name: str) -> Optional[int]:
    """How many RQ workers listen on ``queue_name`` (their registry); None if Redis is down."""
    from redis.exceptions import RedisError
    from rq import Queue
    from rq.worker_registration import get_keys

    try:
        keys = sorted(get_keys(queue=Queue(queue_name, connection=connection)))
        if not keys:
            return 0
        # a worker's own key expires when its heartbeat stops (a killed worker leaves the set)
        with connection.pipeline() as pipe:
            for key in keys:
                pipe.exists(key)
            return sum(bool(n) for n in pipe.execute())
    except (RedisError, OSError):
        return None


def worker_warning(
    connection: Any,
    queue_name: str,
    redis_url: str,
    count: Optional[int] = -1,
    redis_from: str = "REDIS_URL",
) -> Optional[str]:
    """One sentence when training jobs would wait forever, else None.

    ``count`` is what :func:`rq_workers` answered, when the caller asked already (``/health``
    reports both: one look at Redis, not two). ``redis_from`` is the variable the user set
    (``REDIS_URL``, or the old ``REDIS_HOST``).
    """
    if count == -1:
        count = rq_workers(connection, queue_name)
    if count is None:
        return (
            f"Redis at {redis_url_shown(redis_url)} does not answer: training cannot be queued "
            f"({redis_from} is set, so this backend runs in production mode)"
        )
    if count == 0:
        return (
            f"no RQ worker consumes queue {queue_name!r} on {redis_url_shown(redis_url)}: training jobs "
            "stay queued until one starts (label-studio-ml worker <backend dir>, or supervisord); "
            f"unset {redis_from} for development mode, which trains in the API process"
        )
    return None
