"""Versions in an S3-compatible object store (``MODEL_STORE=s3://bucket/prefix``), cached per host.

Layout under ``s3://bucket/prefix/<project>/``::

    versions/<v>/...             the version's files (fit's workdir, train_output.json, meta.json)
    manifests/<v>.json           written LAST: a version exists once its manifest does
    control.json                 {"newest", "pinned", "reason", "seq", ...}: which version is served
    status.json                  the last training job (``GET /training`` on every host)

Each host keeps what it downloaded in ``MODEL_DIR/<project>/versions/<v>/`` (a whole version,
renamed into place once every file is there), so a restart serves from disk without downloading
again. ``kv.json`` and ``label_config.xml`` stay per host.

Which version is current (:meth:`RemoteStore.control`):

* production mode (``REDIS_URL``): Redis key ``lsml:<queue>:<project>:control`` holds a copy of
  ``control.json``, read on every request (one ``GET``), so a host sees a new version as soon as
  it is published and ``/predict`` never answers older than any host's ``/setup`` did. Writes go
  to the bucket first, then to Redis, under a Redis lock (no change while Redis is away).
  Redis unreachable: hosts read the bucket's copy at most every :data:`POLL` s (Redis is asked
  again every :data:`REDIS_RETRY` s); Redis back without the key (restarted empty) or with an
  older copy (checked every :data:`RESYNC_EVERY` s and after an outage): the bucket's wins.
* otherwise (development mode): ``control.json`` is read again at most every :data:`POLL` s.

When neither answers, the last version a process knew keeps serving.

Credentials come from boto3's standard chain (environment, profile, instance role; an endpoint
from ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` for MinIO and friends). They never appear in
what this module logs or raises: errors name the store's URL and the error's code only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .fileio import write_atomic
from .settings import Settings, SettingsError, redis_url_shown
from .store import (
    PROJECT_ID_RE,
    VERSION_RE,
    ModelStore,
    StoreError,
    StoreUnavailable,
    check_project_id,
    check_version,
    version_number,
)

logger = logging.getLogger(__name__)

POLL = 1.0  # without Redis: seconds between two reads of a project's control.json
REDIS_RETRY = 1.0  # after a Redis error: seconds the last known version serves before asking again
RESYNC_EVERY = 30.0  # with Redis: seconds between two checks of Redis's copy against the bucket's
LOCK_TIMEOUT = 30  # seconds a store lock (Redis) lives at most / is waited for


def open_store(settings: Settings) -> ModelStore:
    """The store the settings name: ``MODEL_DIR`` alone (default), or the bucket with it as cache."""
    if settings.model_store:
        return RemoteStore(
            settings.model_dir, settings.model_store, settings.redis_url, settings.rq_queue_name
        )
    return ModelStore(settings.model_dir)


class Bucket:
    """A bucket and prefix through boto3: the few calls the store needs, errors made safe."""

    def __init__(self, url: str) -> None:
        try:
            import boto3  # noqa: F401
        except ImportError:
            raise SettingsError(
                f"MODEL_STORE={url} needs boto3: pip install 'lsml-runtime[s3]' (or add boto3 to "
                "requirements.txt)"
            ) from None
        self.url = url
        self.name, _, self.prefix = url[len("s3://") :].partition("/")
        self._client: Any = None
        self._client_pid = 0
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """One boto3 client per process (uWSGI and RQ fork after import; clients do not survive it)."""
        if self._client is None or self._client_pid != os.getpid():
            with self._lock:
                if self._client is None or self._client_pid != os.getpid():
                    import boto3
                    from botocore.config import Config

                    config = Config(
                        connect_timeout=2,
                        read_timeout=30,
                        retries={"max_attempts": 3, "mode": "standard"},
                        max_pool_connections=20,
                    )
                    self._client = boto3.session.Session().client("s3", config=config)
                    self._client_pid = os.getpid()
        return self._client

    def key(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts] if self.prefix else parts)

    @contextlib.contextmanager
    def _calls(self, what: str) -> Iterator[None]:
        """Turn boto3's errors into :class:`StoreUnavailable` naming the code, never a credential."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "error"))
            raise StoreUnavailable(self._message(what, code)) from None
        except BotoCoreError as exc:
            raise StoreUnavailable(self._message(what, type(exc).__name__)) from None

    def _message(self, what: str, code: str) -> str:
        return (
            f"the model store {self.url} failed to {what} ({code}): check MODEL_STORE, the "
            "credentials (boto3 reads AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the "
            "instance role) and, for MinIO or another S3-compatible store, AWS_ENDPOINT_URL_S3"
        )

    def get(self, key: str) -> Optional[bytes]:
        """The object's bytes, or None when there is no such object."""
        from botocore.exceptions import ClientError

        with self._calls("read an object"):
            try:
                return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        with self._calls("look up an object"):
            try:
                self.client.head_object(Bucket=self.name, Key=key)
                return True
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                    return False
                raise

    def put(self, key: str, data: bytes) -> None:
        with self._calls("write an object"):
            self.client.put_object(Bucket=self.name, Key=key, Body=data)

    def upload(self, path: Path, key: str) -> None:
        with self._calls("upload a file"):
            self.client.upload_file(str(path), self.name, key)

    def download(self, key: str, path: Path) -> None:
        with self._calls("download a file"):
            self.client.download_file(self.name, key, str(path))

    def list(self, prefix: str) -> List[str]:
        """Keys under ``prefix`` (every page)."""
        keys: List[str] = []
        with self._calls("list objects"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.name, Prefix=prefix
            ):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def any(self, prefix: str) -> bool:
        """Whether some key starts with ``prefix`` (one small listing)."""
        with self._calls("list objects"):
            return bool(
                self.client.list_objects_v2(Bucket=self.name, Prefix=prefix, MaxKeys=1).get("KeyCount")
            )

    def folders(self, prefix: str) -> List[str]:
        """Names of the 'folders' right under ``prefix`` (which ends with '/' or is empty)."""
        names: List[str] = []
        with self._calls("list objects"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.name, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                names.extend(p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", []))
        return names

    def delete(self, keys: List[str]) -> None:
        with self._calls("delete objects"):
            for start in range(0, len(keys), 1000):
                chunk = [{"Key": k} for k in keys[start : start + 1000]]
                self.client.delete_objects(Bucket=self.name, Delete={"Objects": chunk, "Quiet": True})


class RemoteStore(ModelStore):
    """The model store in a bucket, with ``MODEL_DIR`` as this host's cache (see the module doc).

    Args:
        root: ``MODEL_DIR``: downloaded versions, and what stays per host.
        url: ``s3://bucket/prefix``.
        redis_url: production mode's Redis: the current version lives there (else the bucket).
        namespace: the RQ queue name; Redis keys are ``lsml:<namespace>:<project>:...``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        url: str,
        redis_url: Optional[str] = None,
        namespace: str = "default",
    ) -> None:
        super().__init__(root)
        self.url = url
        self.bucket = Bucket(url)
        self.redis_url = redis_url
        self.namespace = namespace
        self.downloads = 0  # versions this process downloaded (tests, benchmarks)
        self._redis: Any = None
        self._redis_down_until = 0.0
        self._redis_failed = False
        self._checked: Dict[str, float] = {}  # project -> when Redis's copy was last compared
        # project -> (monotonic time read, raw bytes, parsed control document)
        self._known: Dict[str, Tuple[float, bytes, Dict[str, Any]]] = {}

    def describe(self) -> str:
        return self.url

    # ------------------------------------------------------------------ keys
    def _key(self, project_id: str, *parts: str) -> str:
        return self.bucket.key(check_project_id(project_id), *parts)

    def _manifest_key(self, project_id: str, version: str) -> str:
        return self._key(project_id, "manifests", f"{check_version(version)}.json")

    def _redis_key(self, project_id: str, what: str) -> str:
        return f"lsml:{self.namespace}:{project_id}:{what}"

    def _redis_client(self) -> Any:
        if self._redis is None:
            from redis import Redis

            # short timeouts: a request asks Redis on the way to the model
            self._redis = Redis.from_url(
                self.redis_url, socket_connect_timeout=0.5, socket_timeout=0.5, retry_on_timeout=False
            )
        return self._redis

    # ------------------------------------------------------------------ the current version
    def _load_control(self, project_id: str) -> Tuple[bytes, Dict[str, Any]]:
        raw = self.bucket.get(self._key(project_id, "control.json")) or b"{}"
        return raw, _parse(raw)

    def _remember(self, project_id: str, raw: bytes) -> Dict[str, Any]:
        known = self._known.get(project_id)
        doc = known[2] if known is not None and known[1] == raw else _parse(raw)
        self._known[project_id] = (time.monotonic(), raw, doc)
        return doc

    def control(self, project_id: str) -> Dict[str, Any]:
        """The project's control document: ``newest`` version, ``pinned`` (or None), why, ``seq``."""
        now = time.monotonic()
        if self.redis_url and now >= self._redis_down_until:
            from redis.exceptions import RedisError

            try:
                return self._control_from_redis(project_id, now)
            except RedisError as exc:
                self._redis_down_until = now + REDIS_RETRY
                if not self._redis_failed:
                    logger.warning(
                        "Redis at %s does not answer (%s): the versions come from the model store "
                        "(read every %g s) until it is back",
                        redis_url_shown(self.redis_url),
                        type(exc).__name__,
                        POLL,
                    )
                self._redis_failed = True
        # Redis away, or development mode: the bucket's copy, read at most every POLL s
        known = self._known.get(project_id)
        if known is not None and now - known[0] < POLL:
            return known[2]
        try:
            raw, _ = self._load_control(project_id)
        except StoreUnavailable:
            if known is not None:
                return known[2]  # neither answers: the last version this process knew
            raise
        return self._remember(project_id, raw)

    def _control_from_redis(self, project_id: str, now: float) -> Dict[str, Any]:
        redis = self._redis_client()
        key = self._redis_key(project_id, "control")
        raw = redis.get(key)
        if self._redis_failed:  # back after an outage: check every project against the bucket
            self._redis_failed = False
            self._checked.clear()
            logger.info("Redis at %s answers again", redis_url_shown(self.redis_url))
        if raw is None or now - self._checked.get(project_id, -RESYNC_EVERY) >= RESYNC_EVERY:
            # Redis restarted empty, or missed a write while it was away (seldom: once per
            # RESYNC_EVERY s): the bucket's copy wins when it is newer
            self._checked[project_id] = now
            try:
                stored, doc = self._load_control(project_id)
            except StoreUnavailable:
                if raw is None:
                    raise
            else:
                if raw is None or int(doc.get("seq") or 0) > int(_parse(raw).get("seq") or 0):
                    redis.set(key, stored)
                    raw = stored
        return self._remember(project_id, raw)

    def latest(self, project_id: str) -> Optional[str]:
        """The version served: the pin, else the newest published one (None before any)."""
        doc = self.control(project_id)
        version = doc.get("pinned") or doc.get("newest")
        return version if isinstance(version, str) and VERSION_RE.fullmatch(version) else None

    def newest(self, project_id: str) -> Optional[str]:
        version = self.control(project_id).get("newest")
        return version if isinstance(version, str) and VERSION_RE.fullmatch(version) else None

    def pinned(self, project_id: str) -> Optional[Dict[str, Any]]:
        doc = self.control(project_id)
        if not doc.get("pinned"):
            return None
        return {"version": doc["pinned"], "reason": doc.get("reason"), "at": doc.get("pinned_at")}

    def follows_newest(self, project_id: str) -> bool:
        return not self.control(project_id).get("pinned")

    def update_control(
        self, project_id: str, change: Callable[[Dict[str, Any]], Dict[str, Any]]
    ) -> Dict[str, Any]:
        """Change the control document for every host: the bucket first, then Redis."""
        with self._locked(project_id):
            _, doc = self._load_control(project_id)
            new = change(dict(doc))
            new["seq"] = int(doc.get("seq") or 0) + 1
            new["updated_at"] = round(time.time(), 3)
            raw = json.dumps(new, sort_keys=True).encode()
            self.bucket.put(self._key(project_id, "control.json"), raw)
            if self.redis_url:
                from redis.exceptions import RedisError

                try:
                    self._redis_client().set(self._redis_key(project_id, "control"), raw)
                except RedisError as exc:  # hosts catch up from the bucket when Redis is back
                    logger.warning(
                        "project %s: Redis missed a version change (%s)", project_id, type(exc).__name__
                    )
            return self._remember(project_id, raw)

    def pin(self, project_id: str, version: str, reason: str = "pinned") -> Dict[str, Any]:
        check_version(version)
        if not self.bucket.exists(self._manifest_key(project_id, version)):
            raise StoreError(
                f"project {project_id} has no version {version}: see GET /versions?project={project_id}"
            )
        at = round(time.time(), 3)

        def change(doc: Dict[str, Any]) -> Dict[str, Any]:
            doc.update(pinned=version, reason=reason, pinned_at=at)
            return doc

        self.update_control(project_id, change)
        return {"version": version, "reason": reason, "at": at}

    def unpin(self, project_id: str) -> Optional[str]:
        current = self._load_control(project_id)[1]  # the bucket's copy: no cache may hide a pin
        if not current.get("pinned"):
            return current.get("newest")  # nothing to change (and no document for unknown projects)

        def change(doc: Dict[str, Any]) -> Dict[str, Any]:
            doc.update(pinned=None, reason=None, pinned_at=None)
            return doc

        return self.update_control(project_id, change).get("newest")

    # ------------------------------------------------------------------ locks
    @contextlib.contextmanager
    def _locked(self, project_id: str) -> Iterator[None]:
        """This host's file lock, and with Redis a lock every host shares."""
        with super()._locked(project_id):
            if not self.redis_url:
                yield
                return
            from redis.exceptions import LockError, RedisError

            lock = self._redis_client().lock(
                self._redis_key(project_id, "store-lock"), timeout=LOCK_TIMEOUT, blocking_timeout=LOCK_TIMEOUT
            )
            try:
                acquired = lock.acquire()
            except RedisError as exc:
                raise StoreUnavailable(
                    f"Redis at {redis_url_shown(self.redis_url)} does not answer ({type(exc).__name__}): "
                    "versions and training status cannot change until it is back"
                ) from None
            if not acquired:
                raise StoreUnavailable(f"project {project_id}'s store lock is busy; retry shortly")
            try:
                yield
            finally:
                with contextlib.suppress(LockError, RedisError):
                    lock.release()

    # ------------------------------------------------------------------ versions
    def versions(self, project_id: str) -> List[str]:
        """Published versions (those with a manifest), oldest first."""
        prefix = self._key(project_id, "manifests") + "/"
        names = [key[len(prefix) :].removesuffix(".json") for key in self.bucket.list(prefix)]
        return sorted((n for n in names if VERSION_RE.fullmatch(n)), key=version_number)

    def projects(self) -> List[str]:
        remote = self.bucket.folders(self.bucket.key("") if self.bucket.prefix else "")
        local = super().projects()
        return sorted({p for p in [*remote, *local] if PROJECT_ID_RE.fullmatch(p)})

    def has_project(self, project_id: str) -> bool:
        if super().has_project(project_id):
            return True
        return self.bucket.any(self._key(project_id, ""))

    def _numbers_elsewhere(self, project_id: str) -> List[int]:
        """Every version in the bucket counts too (runs of a project are serial)."""
        numbers = [version_number(v) for v in self.versions(project_id)]
        return [*numbers, version_number(self.newest(project_id))]

    def commit_version(
        self, project_id: str, version: str, train_output: Dict[str, Any], meta: Dict[str, Any]
    ) -> None:
        """Publish: every file to the bucket, then the manifest, then the control document."""
        files = self.upload_version(project_id, version, train_output, meta)
        self.publish_version(project_id, version, files, meta)

    def upload_version(
        self, project_id: str, version: str, train_output: Dict[str, Any], meta: Dict[str, Any]
    ) -> Dict[str, int]:
        """Step 1: the version's files to the bucket (invisible to every reader until step 2)."""
        path = self.version_dir(project_id, version)
        if not path.is_dir():
            raise StoreError(f"version {version} of project {project_id} was removed before it was committed")
        write_atomic(path / "meta.json", json.dumps(meta, indent=2, default=str))
        write_atomic(path / "train_output.json", json.dumps(train_output, indent=2, default=str))
        files: Dict[str, int] = {}
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            rel = file.relative_to(path).as_posix()
            self.bucket.upload(file, self._key(project_id, "versions", version, rel))
            files[rel] = file.stat().st_size
        return files

    def publish_version(
        self, project_id: str, version: str, files: Dict[str, int], meta: Dict[str, Any]
    ) -> None:
        """Step 2: the manifest (the version exists from now on), then the newest version moves."""
        manifest = {"version": version, "files": files, "meta": meta, "stored_at": round(time.time(), 3)}
        self.bucket.put(self._manifest_key(project_id, version), json.dumps(manifest, indent=2).encode())

        def change(doc: Dict[str, Any]) -> Dict[str, Any]:
            if version_number(version) > version_number(doc.get("newest")):
                doc["newest"] = version
            return doc

        doc = self.update_control(project_id, change)
        if doc.get("pinned"):
            logger.info(
                "project %s: version %s stored; not served (pinned to %s)", project_id, version, doc["pinned"]
            )

    def discard_version(self, project_id: str, version: str, only_incomplete: bool = False) -> None:
        if only_incomplete and self.bucket.exists(self._manifest_key(project_id, version)):
            return
        shutil.rmtree(self.version_dir(project_id, version), ignore_errors=True)
        try:  # files a run uploaded before it died (never visible: no manifest)
            leftovers = self.bucket.list(self._key(project_id, "versions", version) + "/")
            if leftovers:
                self.bucket.delete(leftovers)
        except StoreUnavailable as exc:
            logger.warning("project %s: could not remove the files of %s: %s", project_id, version, exc)

    def train_output(self, project_id: str, version: Optional[str]) -> Dict[str, Any]:
        if version:
            self.ensure_local(project_id, version)
        return super().train_output(project_id, version)

    def ensure_local(self, project_id: str, version: str) -> Path:
        """The version's directory on this host, downloaded once (whole, then renamed into place)."""
        path = self.version_dir(project_id, version)
        if (path / "train_output.json").is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f".{version}.download-lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one download per host, whatever the processes
            if (path / "train_output.json").is_file():
                return path
            raw = self.bucket.get(self._manifest_key(project_id, version))
            if raw is None:
                raise StoreError(f"version {version} of project {project_id} is not in the store {self.url}")
            files = _parse(raw).get("files") or {}
            started = time.monotonic()
            tmp = Path(tempfile.mkdtemp(prefix=f".download-{version}-", dir=path.parent))
            try:
                for rel in files:
                    target = (tmp / rel).resolve()
                    if tmp.resolve() not in target.parents:
                        raise StoreError(f"version {version}'s manifest names a file outside it: {rel!r}")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    self.bucket.download(self._key(project_id, "versions", version, rel), target)
                if path.exists():  # an incomplete leftover (a run of this host that died)
                    shutil.rmtree(path)
                tmp.rename(path)  # a directory appears whole or not at all
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            self.downloads += 1
            logger.info(
                "project %s: downloaded version %s (%d files, %.1f MB) in %.2f s",
                project_id, version, len(files), sum(files.values()) / 1e6, time.monotonic() - started,
            )  # fmt: skip
        return path

    # ------------------------------------------------------------------ training status (shared)
    def status(self, project_id: str) -> Dict[str, Any]:
        try:
            raw = self.bucket.get(self._key(project_id, "status.json"))
        except StoreUnavailable:
            return super().status(project_id)  # this host's copy
        return _parse(raw) if raw else {}

    def _write_status(self, project_id: str, data: Dict[str, Any]) -> None:
        raw = json.dumps(data, indent=2, default=str)
        self.bucket.put(self._key(project_id, "status.json"), raw.encode())
        self.write_json(project_id, "status.json", data)


def _parse(raw: Optional[bytes]) -> Dict[str, Any]:
    try:
        doc = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
