"""Helpers that model scripts written for the old SDK import from ``label_studio_ml.utils``."""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import logging
import os
import re
import tempfile
import threading
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

from .fileio import atomic_file
from .label_config import (
    LabelConfigError,
    build_label_map,
    get_first_tag_occurence,
    get_single_tag_keys,
    parse_config,
)
from .lsclient import LabelStudioClient, LabelStudioError, choose_credentials, fetch, same_origin
from .settings import label_studio_from_env, parse_bool

__all__ = [
    "DATA_UNDEFINED_NAME",
    "InMemoryLRUDictCache",
    "LabelConfigError",
    "build_label_map",
    "compare_nested_structures",
    "get_choice",
    "get_env",
    "get_first_tag_keys",
    "get_first_tag_occurence",
    "get_image_local_path",
    "get_image_size",
    "get_local_path",
    "get_single_tag_keys",
    "is_preload_needed",
    "is_skipped",
    "is_valid_url",
    "match_labels",
    "parse_config",
]

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_LS_PATHS = ("/data/", "/tasks/", "/api/", "/storage-data/")
# label-studio-sdk's test (``is_cloud_storage_uri``): the prefixes, not the full ``scheme://``.
CLOUD_STORAGE_PREFIXES = ("s3:", "gs:", "azure-blob:")
_clients: Dict[Tuple[str, str], LabelStudioClient] = {}
_clients_lock = threading.Lock()


def get_env(name: str, default: Any = None, is_bool: bool = False) -> Any:
    """Read ``LABEL_STUDIO_<NAME>``, else ``HEARTEX_<NAME>``, else ``<NAME>``.

    Args:
        name: The variable name without prefix.
        default: Returned when none of the variables is set.
        is_bool: Convert the value to a bool (``1/true/yes/on`` or ``0/false/no/off``; also
            ``y/t`` and ``n/f/not`` or empty: ``settings.LOOSE_TRUE_WORDS``/``LOOSE_FALSE_WORDS``).

    Returns:
        The value (a bool when ``is_bool``), or ``default``.

    Raises:
        ValueError: ``is_bool`` and the value is not a boolean word.
    """
    for key in (f"LABEL_STUDIO_{name}", f"HEARTEX_{name}", name):
        value = os.environ.get(key)
        if value is None:
            continue
        if not is_bool:
            return value
        flag = parse_bool(value, loose=True)
        if flag is not None:
            return flag
        raise ValueError(f"{key}={value!r} is not a boolean; use true or false")
    return default


def _first_annotation(task: Dict[str, Any]) -> Dict[str, Any]:
    annotations = task.get("annotations") or task.get("completions") or []
    if not annotations:
        raise ValueError(f"task {task.get('id')} has no annotations")
    return annotations[0]


def get_choice(task: Dict[str, Any]) -> str:
    """The first choice of the first result of the task's first annotation.

    Args:
        task: A task in export format.

    Returns:
        The chosen label.
    """
    return _first_annotation(task)["result"][0]["value"]["choices"][0]


def is_skipped(task: Dict[str, Any]) -> bool:
    """Whether the task's first annotation was skipped (cancelled).

    Args:
        task: A task in export format (``annotations``; LS 0.x ``completions``).

    Returns:
        True when ``was_cancelled`` or ``skipped`` is set; False without annotations.
    """
    annotations = task.get("annotations") or task.get("completions") or []
    if not annotations:
        return False
    first = annotations[0]
    return bool(first.get("was_cancelled") or first.get("skipped"))


def get_image_size(filepath: str) -> Tuple[int, int]:
    """``(width, height)`` of an image file as displayed, EXIF rotation applied (needs Pillow).

    Args:
        filepath: The image path.

    Returns:
        The size in pixels.

    Raises:
        ImportError: Pillow is not installed.
    """
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("get_image_size needs Pillow: pip install pillow") from None
    from PIL import ImageOps

    with Image.open(filepath) as image:
        return ImageOps.exif_transpose(image).size  # the size as displayed (EXIF orientation)


def _credentials(hostname: Optional[str], access_token: Optional[str]) -> Tuple[str, str, str]:
    """The Label Studio to download from and its key (``lsclient.choose_credentials``' rule)."""
    url, key = label_studio_from_env()
    return choose_credentials(url, key, hostname, access_token)


def _ls_client(hostname: Optional[str], access_token: Optional[str]) -> LabelStudioClient:
    """A cached client for Label Studio: the configured URL and key, else ``/setup``'s pair.

    Raises:
        LabelStudioError: No usable URL/key pair (the message says what to set).
    """
    base, key, source = _credentials(hostname, access_token)
    cache_key = (base, key)
    with _clients_lock:
        if cache_key not in _clients:
            _clients[cache_key] = LabelStudioClient(base, key, key_source=source)
        return _clients[cache_key]


def _require_client(url: str, hostname: Optional[str], access_token: Optional[str]) -> LabelStudioClient:
    try:
        return _ls_client(hostname, access_token)
    except LabelStudioError as exc:
        raise FileNotFoundError(f"{url} needs Label Studio to download it: {exc}") from None


def _is_cloud_uri(url: Any) -> bool:
    """True for the cloud storage URIs Label Studio resolves (``s3://``, ``gs://``, ``azure-blob://``)."""
    return isinstance(url, str) and url.startswith(CLOUD_STORAGE_PREFIXES)


def _presign_path(uri: str, task_id: Any) -> str:
    """``/tasks/<id>/presign/?fileuri=<base64url of uri>``, as label-studio-sdk builds it."""
    tid = str(task_id).strip()
    if isinstance(task_id, bool) or not tid.isdigit():
        raise ValueError(f"task_id must be a Label Studio task id (a whole number), got {task_id!r}")
    fileuri = base64.urlsafe_b64encode(uri.encode()).decode()
    return f"/tasks/{int(tid)}/presign/?fileuri={fileuri}"


def _local_files_path(url: str) -> Optional[str]:
    """The local path of a ``/data/local-files/?d=...`` URL under the document root, if any."""
    root = get_env("LOCAL_FILES_DOCUMENT_ROOT")
    if not root:
        return None
    relative = urllib.parse.unquote(url.split("?d=", 1)[1])
    root = os.path.realpath(root)
    path = os.path.realpath(os.path.join(root, relative.lstrip("/")))
    if os.path.commonpath([root, path]) != root or not os.path.isfile(path):
        return None
    return path


def _default_cache_dir() -> str:
    """label-studio-sdk's cache directory (``$XDG_CACHE_HOME/label-studio``, ``~/.cache/label-studio``),
    else ``<tmp>/lsml-cache`` when that cannot be created (no writable home)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return _usable_cache_dir(os.path.join(base, "label-studio"))


@functools.lru_cache(maxsize=8)
def _usable_cache_dir(directory: str) -> str:
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        directory = os.path.join(tempfile.gettempdir(), "lsml-cache")
        os.makedirs(directory, exist_ok=True)
    return directory


def _file_name(url: str) -> str:
    """The file name a media URL names: the storage URI's (also as ``?fileuri=``), ``?d=`` and
    ``?filepath=`` values, else the URL's path; reduced to safe characters."""
    if _is_cloud_uri(url):
        name = url.split("?", 1)[0]
    else:
        parsed = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parsed.query) if parsed.query else {}
        name = (query.get("d") or query.get("filepath") or [parsed.path])[-1]
        if query.get("fileuri"):
            with contextlib.suppress(ValueError, UnicodeError):
                name = base64.urlsafe_b64decode(query["fileuri"][-1].encode()).decode().split("?", 1)[0]
    name = os.path.basename(urllib.parse.unquote(name).rstrip("/"))
    name = _UNSAFE.sub("_", name).lstrip(".")[-100:]
    return name or "file"


def _cache_path(key: str, name: str, cache_dir: Optional[str]) -> str:
    """``<cache_dir>/<hash of key>__<name>``: label-studio-sdk's naming (with a longer hash)."""
    directory = cache_dir or _default_cache_dir()
    return os.path.join(directory, hashlib.sha256(key.encode()).hexdigest()[:16] + "__" + name)


def _download(url: str, path: str, client: Optional[LabelStudioClient]) -> None:
    """Stream ``url`` into ``path`` atomically (a temporary file, then a rename)."""
    with atomic_file(path) as fh:
        if client is not None:
            client.download(url, sink=fh)
        else:
            status, _ = fetch(url, {}, 30, sink=fh)
            if not 200 <= status < 300:
                raise LabelStudioError(f"download of {url.split('?', 1)[0]} answered {status}")


def get_local_path(
    url: str,
    cache_dir: Optional[str] = None,
    project_dir: Optional[str] = None,
    hostname: Optional[str] = None,
    image_dir: Optional[str] = None,
    access_token: Optional[str] = None,
    download_resources: bool = True,
    task_id: Any = None,
) -> str:
    """A local path for a task's media URL, downloading (once) into a cache when needed.

    Handles, like label-studio-sdk's ``get_local_path``: existing local paths and ``file://``
    URLs; ``/data/local-files/?d=`` under ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``; Label
    Studio's own URLs (``/data/upload/...``, ``/data/local-files/?d=...``,
    ``/storage-data/...``), downloaded from Label Studio with its key; cloud storage URIs
    (``s3://``, ``gs://``, ``azure-blob://``), resolved by Label Studio at
    ``/tasks/<task_id>/presign/?fileuri=<base64url of the URI>``, which answers with the file
    or redirects to a presigned storage URL; and ``http(s)://`` URLs.

    Which Label Studio and key: ``LABEL_STUDIO_URL`` with ``LABEL_STUDIO_API_KEY``, else
    ``hostname`` with ``access_token`` (what ``/setup`` sent). A key is only ever sent to the
    host it came with: never to another ``http(s)://`` host, and never along a redirect to
    another host (the presigned storage URL gets no ``Authorization``).

    Args:
        url: The URL or path from the task data.
        cache_dir: Download directory (default ``~/.cache/label-studio``, as label-studio-sdk).
        project_dir: Old SDK argument: uploads are looked up in ``<project_dir>/upload``.
        hostname: Label Studio's URL (as sent by ``/setup``).
        image_dir: Old SDK argument: a directory holding uploaded files.
        access_token: The key for ``hostname`` (as sent by ``/setup``).
        download_resources: When False, return the cache path without downloading.
        task_id: The task's id: needed for cloud storage URIs.

    Returns:
        A local file path; downloads are named ``<hash>__<file name>``.

    Raises:
        FileNotFoundError: A local file is missing, or no Label Studio URL/key is known for a
            Label Studio URL or cloud URI.
        ValueError: Unsupported URL scheme, or a cloud URI without ``task_id``.
        LabelStudioError: The download failed.
    """
    if not isinstance(url, str) or not url:
        raise ValueError(f"expected a URL or path, got {url!r}")
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        path = urllib.request.url2pathname(parsed.path)
        if not os.path.isfile(path):
            raise FileNotFoundError(path)
        return path
    if not parsed.scheme and "?" not in url and os.path.isfile(url):
        return url
    if url.startswith(("upload/", "/upload/")):
        url = "/data/" + url.lstrip("/")
    if url.startswith("/data/upload/"):
        upload_dir = image_dir or (os.path.join(project_dir, "upload") if project_dir else None)
        name = os.path.basename(parsed.path)
        project = url.split("/")[-2]
        for candidate in (os.path.join(project, name) if project.isdigit() else name, name):
            if upload_dir and os.path.isfile(os.path.join(upload_dir, candidate)):
                return os.path.join(upload_dir, candidate)
    if url.startswith("/data/") and "?d=" in url:
        local = _local_files_path(url)
        if local:
            return local
    client: Optional[LabelStudioClient] = None
    if _is_cloud_uri(url):
        if task_id is None:
            raise ValueError(
                f"{url} is a cloud storage URI: Label Studio resolves it for a task, so pass the "
                "task's id: get_local_path(url, task_id=task['id'])"
            )
        presign = _presign_path(url, task_id)
        # cached by the URI (not by the short-lived presigned URL): a hit needs no Label Studio
        path = _cache_path(url, _file_name(url), cache_dir)
        if not download_resources or os.path.exists(path):
            return path
        client = _require_client(url, hostname, access_token)
        target = client.url + presign
    elif url.startswith(_LS_PATHS):
        client = _require_client(url, hostname, access_token)
        target = client.url + url
        path = _cache_path(target, _file_name(url), cache_dir)
    elif parsed.scheme in ("http", "https"):
        target = url
        with contextlib.suppress(LabelStudioError):
            client = _ls_client(hostname, access_token)
        if client is not None and not same_origin(url, client.url):
            client = None  # another host: no key
        path = _cache_path(target, _file_name(url), cache_dir)
    elif not parsed.scheme:
        raise FileNotFoundError(url)
    else:
        raise ValueError(
            f"cannot resolve {url!r}: not a local file, http(s) URL, Label Studio URL or cloud "
            "storage URI (" + ", ".join(p + "//" for p in CLOUD_STORAGE_PREFIXES) + ")"
        )
    if download_resources and not os.path.exists(path):
        logger.info("downloading %s", target.split("?", 1)[0])
        try:
            _download(target, path, client)
        except LabelStudioError as exc:
            # uploads kept in a cloud default storage are served by the storage proxy only
            if exc.status != 404 or client is None or not url.startswith("/data/upload/"):
                raise
            proxy = "/storage-data/uploaded/?filepath=" + urllib.parse.quote(url[len("/data/") :], safe="/")
            logger.info("%s answered 404: trying Label Studio's storage proxy", target)
            _download(client.url + proxy, path, client)
    return path


# --------------------------------------------------------------------- current SDK helpers
# The rest of label_studio_ml.utils at label-studio-ml-backend HEAD (same names and behaviour).

DATA_UNDEFINED_NAME = "$undefined$"
"""The task data key Label Studio uses for a value imported without a key (a bare text line)."""


def get_first_tag_keys(
    parsed_label_config: Dict[str, Any], control_type: str, object_type: str
) -> Tuple[Optional[str], Optional[Dict[str, Any]]]:
    """``(from_name, info)`` of the first ``control_type`` control reading an ``object_type``.

    Returns:
        The control's name and its parsed info, or ``(None, None)``.
    """
    for from_name, info in parsed_label_config.items():
        if info["type"] == control_type:
            for item in info["inputs"]:
                if item["type"] == object_type:
                    return from_name, info
    return None, None


def get_image_local_path(
    url: str,
    image_cache_dir: Optional[str] = None,
    project_dir: Optional[str] = None,
    image_dir: Optional[str] = None,
    label_studio_host: Optional[str] = None,
    label_studio_access_token: Optional[str] = None,
    task_id: Any = None,
) -> str:
    """:func:`get_local_path` with the old image-specific argument names."""
    return get_local_path(
        url=url,
        cache_dir=image_cache_dir,
        project_dir=project_dir,
        hostname=label_studio_host or get_env("HOSTNAME"),
        image_dir=image_dir,
        access_token=label_studio_access_token,
        task_id=task_id,
    )


class InMemoryLRUDictCache:
    """A small least-recently-used dict (``get``/``put``/``in``), ``capacity`` entries."""

    def __init__(self, capacity: int = 1) -> None:
        from collections import OrderedDict

        self.cache: OrderedDict[Any, Any] = OrderedDict()
        self.capacity = capacity

    def __contains__(self, item: Any) -> bool:
        return item in self.cache

    def get(self, key: Any) -> Any:
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        if key in self.cache:
            self.cache.move_to_end(key)
        elif len(self.cache) >= self.capacity:
            self.cache.popitem(last=False)
        self.cache[key] = value

    def __str__(self) -> str:
        return str(self.cache)


def match_labels(input: str, labels: List[str]) -> List[str]:  # noqa: A002 - upstream's name
    """For each line of ``input``, the most similar of ``labels`` (difflib ratio)."""
    import difflib

    matched = []
    for line in input.splitlines():
        scores = [difflib.SequenceMatcher(None, line, label).ratio() for label in labels]
        matched.append(labels[scores.index(max(scores))])
    return matched


def is_valid_url(path: str) -> bool:
    """Whether ``path`` is a URL with a scheme and a host."""
    try:
        result = urllib.parse.urlparse(path)
    except ValueError:
        return False
    return bool(result.scheme and result.netloc)


def is_preload_needed(url: str) -> bool:
    """Whether a task value names media to load: an upload, a local-files URL, a cloud storage
    URI (``s3:``, ``gs:``, ``azure-blob:``), an URL with a host, or an existing path."""
    if url.startswith(("upload", "/upload")):
        url = "/data" + ("" if url.startswith("/") else "/") + url
    return (
        url.startswith("/data/upload")
        or (url.startswith("/data/") and "?d=" in url)
        or url.startswith(("s3:", "gs:", "azure-blob:"))
        or is_valid_url(url)
        or os.path.exists(url)
    )


def compare_nested_structures(a: Any, b: Any, path: str = "", rel: float = 1e-4, abs: Any = None) -> None:  # noqa: A002
    """Assert two nested dicts/lists are equal, floats compared with ``pytest.approx``."""
    from pytest import approx  # pytest is only needed by tests that call this

    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"Keys mismatch at {path}"
        for key in a:
            compare_nested_structures(a[key], b[key], f"{path}.{key}", rel, abs)
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"List size mismatch at {path}"
        for i, (left, right) in enumerate(zip(a, b)):
            compare_nested_structures(left, right, f"{path}[{i}]", rel, abs)
    elif isinstance(a, float) and isinstance(b, float):
        assert a == approx(b, rel=rel, abs=abs), f"Mismatch at {path}"
    else:
        assert a == b, f"Mismatch at {path}"
