"""Configuration from the environment, parsed and validated once.

This module is the only place the runtime reads its environment. Every variable a user sets is
named in :data:`ENV_VARS`, with its default; ``tests/examples/test_docs_env.py`` derives its checks
from it: ``docs/runtime.md`` and the generated ``.env.example``, ``docker-compose.yml``,
``Dockerfile`` and README list the same variables with the same defaults (a new variable only
needs listing there). Two more are read here and not documented there:
``PROMETHEUS_MULTIPROC_DIR`` (set by the generated ``supervisord.conf``) and ``LSML_LOCK_TTL``
(tests shorten the training run lock).

Also here, because every process needs them the same way: the Redis URL built from a host and
a port (:func:`redis_url_from`), and the list of secrets to cut from messages
(:meth:`Settings.secrets`, :func:`redact`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple
from urllib.parse import urlparse

from .exceptions import SettingsError

# name -> (default, description). The order is the documentation order.
ENV_VARS = {
    "MODEL_DIR": ("./data/models", "model store: versions, training status (shared by all processes)"),
    "MODEL_ROOT": ("./weights", "large model files (weights) kept out of git; Compose mounts them"),
    "MODEL_STORE": ("", "s3://bucket/prefix: versions in an S3-compatible store, MODEL_DIR caches them"),
    "REDIS_URL": ("", "set to run training on RQ workers (production mode)"),
    "REDIS_HOST": ("", "old spelling: builds REDIS_URL with REDIS_PORT when REDIS_URL is unset"),
    "REDIS_PORT": ("6379", "old spelling, with REDIS_HOST"),
    "RQ_QUEUE_NAME": ("default", "RQ queue of training jobs"),
    "RQ_JOB_TIMEOUT": ("86400", "seconds a training job may run"),
    "BASIC_AUTH_USER": ("", "HTTP Basic user (set both or neither)"),
    "BASIC_AUTH_PASS": ("", "HTTP Basic password"),
    "LABEL_STUDIO_URL": ("", "Label Studio base URL, to fetch annotations and media"),
    "LABEL_STUDIO_API_KEY": ("", "Label Studio legacy token or personal access token"),
    "LOG_LEVEL": ("INFO", "DEBUG, INFO, WARNING or ERROR"),
    "MAX_REQUEST_MB": ("100", "largest accepted request body, in MiB"),
    "MAX_LIVE_MODELS": ("4", "live model instances per process (least recently used evicted)"),
    "MODEL_LOAD_TIMEOUT": ("60", "seconds /predict waits for a model still loading (then 503)"),
    "PRELOAD_MODELS": ("true", "build the store's models in the background at process start"),
    "PREDICT_CONCURRENCY": ("0", "concurrent predict calls per live model (0 = no limit)"),
}

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


# A credential only ever goes to the host it came with: the key needs the URL it belongs to.
KEY_WITHOUT_URL = (
    "LABEL_STUDIO_API_KEY is set but LABEL_STUDIO_URL is not: set LABEL_STUDIO_URL to the Label "
    "Studio this key belongs to (the key is only ever sent there, never to the hostname a /setup "
    "request names)"
)


def _get(env: Mapping[str, str], name: str, *aliases: str) -> str:
    for key in (name, *aliases):
        value = env.get(key, "").strip()
        if value:
            return value
    return ENV_VARS[name][0] if name in ENV_VARS else ""


def _positive_int(env: Mapping[str, str], name: str) -> int:
    """A whole number >= 1; the error's example is the variable's own default."""
    raw = _get(env, name)
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        example = ENV_VARS[name][0] if name in ENV_VARS else "1"
        raise SettingsError(f"{name}={raw!r} is not valid: use a positive whole number (e.g. {example})")
    return value


def _whole(env: Mapping[str, str], name: str, minimum: int) -> int:
    raw = _get(env, name)
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} is not valid: use a whole number >= {minimum}")
    return value


# The words of a true/false value, in any case: Label Studio's own (its cast_bool_from_str), and
# what the runtime's variables (PRELOAD_MODELS) take; the documentation says "true or false".
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
# utils.get_env(name, is_bool=True), which old scripts call for their own variables, has always
# taken more, and keeps taking it: one-letter forms and an empty value (false); and Label
# Studio's "not".
LOOSE_TRUE_WORDS = (*TRUE_WORDS, "y", "t")
LOOSE_FALSE_WORDS = (*FALSE_WORDS, "not", "n", "f", "")


def parse_bool(raw: str, loose: bool = False) -> Optional[bool]:
    """``raw`` as a true/false word (case and surrounding spaces ignored); None when it is none.

    ``loose``: :data:`LOOSE_TRUE_WORDS` and :data:`LOOSE_FALSE_WORDS` (``get_env``'s words).
    """
    word = raw.strip().lower()
    if word in (LOOSE_TRUE_WORDS if loose else TRUE_WORDS):
        return True
    if word in (LOOSE_FALSE_WORDS if loose else FALSE_WORDS):
        return False
    return None


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = _get(env, name).lower()
    value = parse_bool(raw)
    if value is None:
        raise SettingsError(f"{name}={raw!r} is not valid: use true or false")
    return value


def _url(name: str, value: str, schemes: Tuple[str, ...]) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in schemes or not parsed.hostname:
        raise SettingsError(f"{name}={value!r} is not valid: use a URL like {schemes[0]}://host:port")
    return value.rstrip("/")


# s3://bucket[/prefix]: S3's bucket naming rules (3-63 of a-z 0-9 . -), a prefix of safe characters
_S3_URL = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/([A-Za-z0-9._/-]*))?")


def _model_store(raw: str) -> Optional[str]:
    """``MODEL_STORE``: ``s3://bucket/prefix`` (normalised, no trailing ``/``), or None when unset.

    The value is never echoed when it looks like it carries credentials (``s3://key:secret@...``).
    """
    if not raw:
        return None
    if "@" in raw:
        raise SettingsError(
            "MODEL_STORE must not contain credentials (it has an '@'): use s3://bucket/prefix and give "
            "the credentials as boto3 reads them (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, "
            "or an instance role)"
        )
    match = _S3_URL.fullmatch(raw.rstrip("/"))
    if not match or ".." in (match.group(2) or "") or "//" in (match.group(2) or ""):
        raise SettingsError(
            f"MODEL_STORE={raw!r} is not valid: use s3://bucket/prefix (an S3-compatible bucket: AWS S3, "
            "MinIO, Ceph; AWS_ENDPOINT_URL_S3 names a non-AWS endpoint), or leave it unset to keep "
            "versions in MODEL_DIR"
        )
    prefix = (match.group(2) or "").strip("/")
    return f"s3://{match.group(1)}" + (f"/{prefix}" if prefix else "")


def redis_url_from(host: str, port: Any = None) -> str:
    """The Redis URL of the old ``REDIS_HOST``/``REDIS_PORT`` spelling (database 0)."""
    return f"redis://{host}:{port or ENV_VARS['REDIS_PORT'][0]}/0"


def redis_url_shown(url: Optional[str]) -> str:
    """A Redis URL without its password (and database), for messages."""
    parsed = urlparse(url or "")
    return f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 6379}"


def _lock_ttl(raw: str) -> int:
    try:
        return max(int(raw or 30), 2)
    except ValueError:
        return 30


def metrics_dir_from_env(env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's own variable), or None."""
    env = os.environ if env is None else env
    return env.get("PROMETHEUS_MULTIPROC_DIR", "").strip() or None


_LS_ENV = ("LABEL_STUDIO_URL", "LABEL_STUDIO_HOST", "LABEL_STUDIO_API_KEY", "LABEL_STUDIO_ACCESS_TOKEN")


@functools.lru_cache(maxsize=8)
def _label_studio(values: Tuple[Optional[str], ...]) -> Tuple[Optional[str], Optional[str]]:
    settings = Settings.from_env({k: v for k, v in zip(_LS_ENV, values) if v is not None})
    return settings.label_studio_url, settings.label_studio_api_key


def label_studio_from_env() -> Tuple[Optional[str], Optional[str]]:
    """``(LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY)`` as :class:`Settings` reads them, memoised on
    their values (media downloads ask on every call, outside any app)."""
    return _label_studio(tuple(os.environ.get(name) for name in _LS_ENV))


def redact(text: str, secrets: Iterable[Any]) -> str:
    """``text`` with every known secret (token, key, password) replaced by ``[redacted]``."""
    for secret in secrets:
        if isinstance(secret, str) and len(secret) >= 4 and secret in text:
            text = text.replace(secret, "[redacted]")
    return text


def _fields(env: Mapping[str, str]) -> Dict[str, Any]:
    """The :class:`Settings` fields ``env`` gives (a variable unset: its :data:`ENV_VARS` default)."""
    redis_url, redis_from = _get(env, "REDIS_URL"), "REDIS_URL"
    if redis_url:
        redis_url = _url("REDIS_URL", redis_url, ("redis", "rediss", "unix"))
    elif _get(env, "REDIS_HOST"):
        host = _get(env, "REDIS_HOST")
        port = _get(env, "REDIS_PORT")
        if not port.isdigit():
            raise SettingsError(f"REDIS_PORT={port!r} is not valid: use a port number")
        redis_url, redis_from = redis_url_from(host, port), "REDIS_HOST"
    user, password = _get(env, "BASIC_AUTH_USER"), _get(env, "BASIC_AUTH_PASS")
    if bool(user) != bool(password):
        missing = "BASIC_AUTH_PASS" if user else "BASIC_AUTH_USER"
        raise SettingsError(f"{missing} is not set: set both BASIC_AUTH_USER and BASIC_AUTH_PASS, or neither")
    ls_url = _get(env, "LABEL_STUDIO_URL", "LABEL_STUDIO_HOST")
    if ls_url:
        ls_url = _url("LABEL_STUDIO_URL", ls_url, ("http", "https"))
    level = _get(env, "LOG_LEVEL").upper()
    if level not in _LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL={level!r} is not valid: use one of " + ", ".join(_LOG_LEVELS[:4]))
    queue = _get(env, "RQ_QUEUE_NAME")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", queue):
        raise SettingsError(f"RQ_QUEUE_NAME={queue!r} is not valid: use letters, digits, '.', '_' or '-'")
    return dict(
        model_dir=_get(env, "MODEL_DIR"),
        model_root=_get(env, "MODEL_ROOT"),
        redis_url=redis_url or None,
        rq_queue_name=queue,
        rq_job_timeout=_positive_int(env, "RQ_JOB_TIMEOUT"),
        basic_auth_user=user or None,
        basic_auth_pass=password or None,
        label_studio_url=ls_url or None,
        label_studio_api_key=_get(env, "LABEL_STUDIO_API_KEY", "LABEL_STUDIO_ACCESS_TOKEN") or None,
        log_level=level,
        max_request_bytes=_positive_int(env, "MAX_REQUEST_MB") * 1024 * 1024,
        metrics_dir=metrics_dir_from_env(env),
        lock_ttl=_lock_ttl(env.get("LSML_LOCK_TTL", "")),
        max_live_models=_whole(env, "MAX_LIVE_MODELS", 1),
        model_load_timeout=float(_whole(env, "MODEL_LOAD_TIMEOUT", 0)),
        preload_models=_bool(env, "PRELOAD_MODELS"),
        predict_concurrency=_whole(env, "PREDICT_CONCURRENCY", 0),
        redis_from=redis_from,
        model_store=_model_store(_get(env, "MODEL_STORE")),
    )


# Every field's default: what an environment without any of ENV_VARS gives (one owner: ENV_VARS)
_DEFAULTS = _fields({})


@dataclasses.dataclass(frozen=True)
class Settings:
    """Runtime configuration. Build it with :meth:`from_env`, or directly in tests.

    A field left out takes what :meth:`from_env` reads from an environment without any of
    :data:`ENV_VARS` (``Settings() == Settings.from_env({})``): the defaults are written once, there.
    """

    model_dir: str = _DEFAULTS["model_dir"]
    # read by model code (os.environ["MODEL_ROOT"]); the runtime itself keeps nothing there
    model_root: str = _DEFAULTS["model_root"]
    redis_url: Optional[str] = _DEFAULTS["redis_url"]
    rq_queue_name: str = _DEFAULTS["rq_queue_name"]
    rq_job_timeout: int = _DEFAULTS["rq_job_timeout"]
    basic_auth_user: Optional[str] = _DEFAULTS["basic_auth_user"]
    basic_auth_pass: Optional[str] = _DEFAULTS["basic_auth_pass"]
    label_studio_url: Optional[str] = _DEFAULTS["label_studio_url"]
    label_studio_api_key: Optional[str] = dataclasses.field(
        default=_DEFAULTS["label_studio_api_key"], repr=False
    )
    log_level: str = _DEFAULTS["log_level"]
    max_request_bytes: int = _DEFAULTS["max_request_bytes"]
    # prometheus_client reads this variable itself, so the field always follows the environment
    metrics_dir: Optional[str] = dataclasses.field(default_factory=metrics_dir_from_env)
    lock_ttl: int = _DEFAULTS["lock_ttl"]
    max_live_models: int = _DEFAULTS["max_live_models"]
    model_load_timeout: float = _DEFAULTS["model_load_timeout"]
    preload_models: bool = _DEFAULTS["preload_models"]
    predict_concurrency: int = _DEFAULTS["predict_concurrency"]
    # the variable that made redis_url (messages name what the user set): REDIS_URL or REDIS_HOST
    redis_from: str = _DEFAULTS["redis_from"]
    # s3://bucket/prefix (MODEL_STORE), or None: versions live in model_dir only
    model_store: Optional[str] = _DEFAULTS["model_store"]

    def __post_init__(self) -> None:
        if self.label_studio_api_key and not self.label_studio_url:
            raise SettingsError(KEY_WITHOUT_URL)

    @property
    def production(self) -> bool:
        """True when training runs on RQ workers (``REDIS_URL`` set)."""
        return bool(self.redis_url)

    @property
    def basic_auth(self) -> bool:
        return bool(self.basic_auth_user)

    def secrets(self, *tokens: Optional[str]) -> Tuple[Optional[str], ...]:
        """Every secret a message might echo: the configured key, the Basic password, ``tokens``."""
        return (self.label_studio_api_key, self.basic_auth_pass, *tokens)

    def redact(self, text: str, *tokens: Optional[str]) -> str:
        """``text`` without any of :meth:`secrets` (``tokens``: /setup access tokens)."""
        return redact(text, self.secrets(*tokens))

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> Settings:
        """Read every variable once; raise :class:`SettingsError` naming a bad one."""
        return cls(**_fields(os.environ if env is None else env))
