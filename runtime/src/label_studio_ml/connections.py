"""What Label Studio's ``/setup`` said about a project's connection, shared by every process.

``/setup`` sends the project's ``hostname``, ``access_token`` and ``extra_params`` to one
process. In production mode (``REDIS_URL``) uWSGI runs several processes, and with
``MODEL_STORE`` several hosts: a webhook or a model build in another process needs them too.
:class:`SharedConnections` keeps one small Redis key per project,
``lsml:<queue>:<project>:connection`` (the namespace of the runtime's other keys), written by
every ``/setup`` with an expiry of :data:`KEEP_FOR` refreshed each time.

* Bounded: one attempt, :data:`TIMEOUT` s to connect and to answer, no retries; after a failure
  Redis is left alone for :data:`RETRY_AFTER` s and the failure is logged once (until Redis
  answers again). Nothing here raises: a ``/setup`` whose write failed still answers, and the
  process keeps its own copy.
* The token is stored only when ``LABEL_STUDIO_API_KEY`` is unset: with a configured key the
  runtime never sends ``/setup``'s token anywhere (:func:`.lsclient.choose_credentials`).
* Never logged: :class:`ProjectInfo` hides the token from its ``repr``, and messages name the
  Redis URL without its password.

Development mode has no instance (:meth:`SharedConnections.of` answers None) and never imports
redis. Imports: :mod:`.settings`, and redis on first use.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Optional

from .settings import redis_url_shown

if TYPE_CHECKING:  # pragma: no cover
    from .settings import Settings

logger = logging.getLogger(__name__)

KEEP_FOR = 30 * 24 * 3600  # seconds a project's connection stays in Redis after its last /setup
TIMEOUT = 0.5  # seconds to connect to Redis and for each answer
RETRY_AFTER = 5.0  # seconds Redis is left alone after a failure
MAX_BYTES = 64 * 1024  # a larger connection (extra_params) stays in the process that got it


@dataclass
class ProjectInfo:
    """What ``/setup`` told us about a project (never logged: the token is not in the repr).

    ``at`` is when the ``/setup`` that sent it arrived (``time.time()``; 0 for nothing): of two
    copies, the later one wins.
    """

    hostname: Optional[str] = None
    access_token: Optional[str] = field(default=None, repr=False)
    extra_params: Dict[str, Any] = field(default_factory=dict)
    at: float = 0.0

    @classmethod
    def from_setup(cls, hostname: Any, access_token: Any, extra_params: Any) -> ProjectInfo:
        """The connection of a ``/setup`` body's fields, arrived now (wrong types dropped)."""
        return cls.of(hostname, access_token, extra_params, time.time())

    @classmethod
    def of(cls, hostname: Any, access_token: Any, extra_params: Any, at: Any) -> ProjectInfo:
        """A connection from untrusted values (a request, Redis): wrong types and empties dropped."""
        return cls(
            hostname=hostname if isinstance(hostname, str) and hostname else None,
            access_token=access_token if isinstance(access_token, str) and access_token else None,
            extra_params=extra_params if isinstance(extra_params, dict) else {},
            at=float(at) if isinstance(at, (int, float)) else 0.0,
        )


def connection_key(namespace: str, project_id: str) -> str:
    """The Redis key of a project's connection (``namespace``: the RQ queue name)."""
    return f"lsml:{namespace}:{project_id}:connection"


class SharedConnections:
    """The projects' connections in Redis: :meth:`save` on ``/setup``, :meth:`load` elsewhere."""

    def __init__(self, redis_url: str, namespace: str, *, keep_token: bool = True) -> None:
        self.redis_url = redis_url
        self.namespace = namespace
        self.keep_token = keep_token
        self._redis: Any = None
        self._down_until = 0.0
        self._failing = False

    @classmethod
    def of(cls, settings: Optional[Settings]) -> Optional[SharedConnections]:
        """Production mode's shared connections; None in development mode (one process)."""
        if settings is None or not settings.production or not settings.redis_url:
            return None
        return cls(settings.redis_url, settings.rq_queue_name, keep_token=not settings.label_studio_api_key)

    def save(self, project_id: str, info: ProjectInfo) -> bool:
        """Record the project's connection for :data:`KEEP_FOR` s; False when Redis did not."""
        value = {
            "hostname": info.hostname,
            "access_token": info.access_token if self.keep_token else None,
            "extra_params": info.extra_params,
            "at": info.at,
        }
        raw = json.dumps(value, separators=(",", ":"), default=str)
        if len(raw) > MAX_BYTES:
            logger.warning(
                "project %s: the connection /setup sent is over %d bytes (extra_params); it stays in "
                "this process only",
                project_id,
                MAX_BYTES,
            )
            return False
        key = connection_key(self.namespace, project_id)
        return bool(self._ask("record", lambda r: r.set(key, raw, ex=KEEP_FOR)))

    def load(self, project_id: str) -> Optional[ProjectInfo]:
        """The project's connection as the last ``/setup`` left it (None: none, or Redis away)."""
        raw = self._ask("read", lambda r: r.get(connection_key(self.namespace, project_id)))
        if not raw:
            return None
        try:
            value = json.loads(raw)
            fields = ("hostname", "access_token", "extra_params", "at")
            return ProjectInfo.of(*(value.get(k) for k in fields))
        except (ValueError, AttributeError):
            return None

    def _client(self) -> Any:
        if self._redis is None:
            from redis import Redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            self._redis = Redis.from_url(
                self.redis_url,
                socket_connect_timeout=TIMEOUT,
                socket_timeout=TIMEOUT,
                retry_on_timeout=False,
                retry=Retry(NoBackoff(), 0),
            )
        return self._redis

    def _ask(self, doing: str, call: Any) -> Any:
        """``call(redis)``, bounded; None after a Redis error (logged once per outage)."""
        now = time.monotonic()
        if now < self._down_until:
            return None
        from redis.exceptions import RedisError

        try:
            answer = call(self._client())
        except RedisError as exc:
            self._down_until = time.monotonic() + RETRY_AFTER
            if not self._failing:
                self._failing = True
                logger.warning(
                    "Redis at %s does not answer (%s): cannot %s the connections Label Studio's "
                    "/setup sent; each process keeps its own copy (other processes get them from "
                    "the next /setup, or set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY)",
                    redis_url_shown(self.redis_url),
                    type(exc).__name__,
                    doing,
                )
            return None
        if self._failing:
            self._failing = False
            logger.info("Redis at %s answers again", redis_url_shown(self.redis_url))
        return answer
