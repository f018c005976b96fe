"""Model versions on disk, shared by every API process and training worker.

Layout (``MODEL_DIR/<project>/``)::

    versions/v3-20261127023015/       fit's workdir and artefacts
        train_output.json              written last: a version without it is incomplete
        meta.json
    LATEST                             id of the version served (the newest good one, or the pin)
    PINNED                             present while the project is pinned (see pin())
    status.json                        the last training job
    kv.json                            the current-style get/set cache
    label_config.xml                   the last labeling config seen

Writes go to a temporary file and are renamed into place, so a reader never sees half a file,
and ``LATEST`` only ever names a complete version.

A project may be *pinned* to one of its versions (:meth:`ModelStore.pin`, ``rollback``,
``unpin``): ``LATEST`` then names the pin and runs that finish meanwhile are stored without
being served. ``MODEL_STORE=s3://...`` keeps versions in an object store instead
(:mod:`label_studio_ml.objectstore`), with this directory as each host's cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .exceptions import StoreError, StoreUnavailable  # noqa: F401  StoreUnavailable: importable from here too
from .fileio import write_atomic

logger = logging.getLogger(__name__)

PROJECT_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# What requests carry: Label Studio's "<id>.<created_at>" (group 1 is the store's project id)
LS_PROJECT_RE = re.compile(rf"({PROJECT_ID_RE.pattern})(?:\.[0-9]{{1,20}})?")
VERSION_RE = re.compile(r"v(\d{1,9})-(\d{14})")


def check_project_id(project_id: str) -> str:
    if not isinstance(project_id, str) or not PROJECT_ID_RE.fullmatch(project_id):
        raise StoreError(
            f"project {project_id!r} is not a valid project id: use up to 64 letters, digits, "
            "'_' or '-' (Label Studio sends '<id>.<timestamp>')"
        )
    return project_id


def check_version(version: str) -> str:
    if not isinstance(version, str) or not VERSION_RE.fullmatch(version):
        raise StoreError(f"version {version!r} is not a version of this store (e.g. v3-20261127023015)")
    return version


def version_number(name: Optional[str]) -> int:
    """``"v3-20261127023015"`` → 3; None or anything else → -1 (older than every version)."""
    match = VERSION_RE.fullmatch(name) if name else None
    return int(match.group(1)) if match else -1


_version_number = version_number


class ModelStore:
    """The model store rooted at ``MODEL_DIR``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self._latest_cache: Dict[str, Tuple[Tuple[int, int], Optional[str]]] = {}
        self._latest_paths: Dict[str, str] = {}

    # ------------------------------------------------------------------ paths
    def project_dir(self, project_id: str) -> Path:
        return self.root / check_project_id(project_id)

    def version_dir(self, project_id: str, version: str) -> Path:
        return self.project_dir(project_id) / "versions" / check_version(version)

    def has_project(self, project_id: str) -> bool:
        return self.project_dir(project_id).is_dir()

    def ensure_project(self, project_id: str) -> Path:
        path = self.project_dir(project_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def projects(self) -> List[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and PROJECT_ID_RE.fullmatch(p.name))

    @contextlib.contextmanager
    def _locked(self, project_id: str) -> Iterator[None]:
        path = self.ensure_project(project_id) / ".lock"
        with open(path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ versions
    def latest(self, project_id: str) -> Optional[str]:
        """The newest good version, or None before any training. Cheap: one stat per call.

        The file is read again when its inode or mtime changed (every write is a rename, so a
        new inode even within one timestamp tick).
        """
        path = self._latest_paths.get(project_id)
        if path is None:
            path = str(self.project_dir(project_id) / "LATEST")
            self._latest_paths[project_id] = path
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        stamp = (st.st_ino, st.st_mtime_ns)
        cached = self._latest_cache.get(project_id)
        if cached and cached[0] == stamp:
            return cached[1]
        try:
            with open(path, encoding="utf-8") as fh:
                version = fh.read().strip() or None
        except FileNotFoundError:
            return None
        if version is not None and not VERSION_RE.fullmatch(version):
            version = None  # not written by this store (tampered or foreign): never followed
        self._latest_cache[project_id] = (stamp, version)
        return version

    def mark_used(self, project_id: str) -> None:
        """Note that a request used the project now (preload builds recent projects first)."""
        path = self.ensure_project(project_id) / ".used"
        try:
            os.utime(path)
        except FileNotFoundError:
            path.touch()

    def last_used(self, project_id: str) -> float:
        """When a request last used the project (else when its config was saved); 0 if never."""
        base = self.project_dir(project_id)
        for name in (".used", "label_config.xml"):
            with contextlib.suppress(OSError):
                return (base / name).stat().st_mtime
        return 0.0

    def versions(self, project_id: str) -> List[str]:
        """Complete versions of a project, oldest first."""
        base = self.project_dir(project_id) / "versions"
        if not base.is_dir():
            return []
        names = [
            p.name
            for p in base.iterdir()
            if VERSION_RE.fullmatch(p.name) and (p / "train_output.json").is_file()
        ]
        return sorted(names, key=_version_number)

    def train_output(self, project_id: str, version: Optional[str]) -> Dict[str, Any]:
        if not version:
            return {}
        path = self.version_dir(project_id, version) / "train_output.json"
        return json.loads(path.read_text(encoding="utf-8"))

    def new_version(self, project_id: str) -> Tuple[str, Path]:
        """Reserve the next version id and create its (not yet visible) directory."""
        with self._locked(project_id):
            base = self.project_dir(project_id) / "versions"
            base.mkdir(parents=True, exist_ok=True)
            numbers = [_version_number(p.name) for p in base.iterdir()]
            number = max([0, *numbers, *self._numbers_elsewhere(project_id)]) + 1
            version = f"v{number}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
            path = base / version
            path.mkdir()
            return version, path

    def _numbers_elsewhere(self, project_id: str) -> List[int]:
        """Version numbers already taken outside this directory (a shared store's); none here."""
        return []

    def commit_version(
        self, project_id: str, version: str, train_output: Dict[str, Any], meta: Dict[str, Any]
    ) -> None:
        """Make a version visible: its files first, then ``LATEST``."""
        path = self.version_dir(project_id, version)
        if not path.is_dir():
            raise StoreError(f"version {version} of project {project_id} was removed before it was committed")
        write_atomic(path / "meta.json", json.dumps(meta, indent=2, default=str))
        write_atomic(path / "train_output.json", json.dumps(train_output, indent=2, default=str))
        with self._locked(project_id):
            current = self.latest(project_id)
            if self._pin_file(project_id).exists():
                logger.info(
                    "project %s: version %s stored; not served (pinned to %s)", project_id, version, current
                )
            elif current is None or _version_number(version) > _version_number(current):
                write_atomic(self.project_dir(project_id) / "LATEST", version + "\n")

    # ------------------------------------------------------------------ pins (versions.py)
    def _pin_file(self, project_id: str) -> Path:
        return self.project_dir(project_id) / "PINNED"

    def pinned(self, project_id: str) -> Optional[Dict[str, Any]]:
        """``{"version", "reason", "at"}`` while the project is pinned, else None."""
        try:
            data = json.loads(self._pin_file(project_id).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) and VERSION_RE.fullmatch(str(data.get("version"))) else None

    def follows_newest(self, project_id: str) -> bool:
        """False while pinned: then only the pinned version may answer, not a newer one."""
        return not self._pin_file(project_id).exists()

    def newest(self, project_id: str) -> Optional[str]:
        """The newest complete version (served unless the project is pinned)."""
        found = self.versions(project_id)
        return found[-1] if found else None

    def pin(self, project_id: str, version: str, reason: str = "pinned") -> Dict[str, Any]:
        """Serve ``version`` (a complete version) until :meth:`unpin`, on every process."""
        check_version(version)
        if version not in self.versions(project_id):  # checked first: no directory for a typo
            raise StoreError(
                f"project {project_id} has no version {version}: see GET /versions?project={project_id}"
            )
        with self._locked(project_id):
            if version not in self.versions(project_id):
                raise StoreError(
                    f"project {project_id} has no version {version}: see GET /versions?project={project_id}"
                )
            pin = {"version": version, "reason": reason, "at": round(time.time(), 3)}
            write_atomic(self._pin_file(project_id), json.dumps(pin))
            write_atomic(self.project_dir(project_id) / "LATEST", version + "\n")
        return pin

    def unpin(self, project_id: str) -> Optional[str]:
        """Serve the newest version again; returns it (None before any training)."""
        if not self.has_project(project_id):
            return None
        with self._locked(project_id):
            with contextlib.suppress(FileNotFoundError):
                self._pin_file(project_id).unlink()
            newest = self.newest(project_id)
            if newest:
                write_atomic(self.project_dir(project_id) / "LATEST", newest + "\n")
        return newest

    def discard_version(self, project_id: str, version: str, only_incomplete: bool = False) -> None:
        """Remove a version's directory (with ``only_incomplete``: unless it was committed)."""
        path = self.version_dir(project_id, version)
        if only_incomplete and (path / "train_output.json").is_file():
            return
        shutil.rmtree(path, ignore_errors=True)

    # ------------------------------------------------------------------ small JSON files
    def read_json(self, project_id: str, name: str) -> Dict[str, Any]:
        try:
            return json.loads((self.project_dir(project_id) / name).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}

    def write_json(self, project_id: str, name: str, data: Dict[str, Any]) -> None:
        write_atomic(self.ensure_project(project_id) / name, json.dumps(data, indent=2, default=str))

    def status(self, project_id: str) -> Dict[str, Any]:
        return self.read_json(project_id, "status.json")

    def change_status(
        self, project_id: str, change: Callable[[Dict[str, Any]], Optional[Dict[str, Any]]]
    ) -> Dict[str, Any]:
        """Merge the fields ``change(status)`` returns into the project's training status, under
        the project's lock; returns the new status (unchanged when ``change`` returned None).

        Only :class:`label_studio_ml.training.status.RunBook` calls it: ``change`` is one of the
        run record's transitions.
        """
        with self._locked(project_id):
            data = self.status(project_id)
            fields = change(dict(data))
            if fields is None:
                return data
            data.update(fields)
            self._write_status(project_id, data)
            return data

    def _write_status(self, project_id: str, data: Dict[str, Any]) -> None:
        self.write_json(project_id, "status.json", data)

    def save_label_config(self, project_id: str, config: str) -> None:
        path = self.ensure_project(project_id) / "label_config.xml"
        try:
            if path.read_text(encoding="utf-8") == config:
                return
        except FileNotFoundError:
            pass
        write_atomic(path, config)

    def label_config(self, project_id: str) -> Optional[str]:
        try:
            return (self.project_dir(project_id) / "label_config.xml").read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
