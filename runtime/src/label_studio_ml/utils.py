"""Helpers that model scripts written for the old SDK import from ``label_studio_ml.utils``."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

from .label_config import (
    LabelConfigError,
    build_label_map,
    get_first_tag_occurence,
    get_single_tag_keys,
    parse_config,
)
from .lsclient import LabelStudioClient, LabelStudioError, fetch, make_client, normalize_url

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

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")
_LS_PATHS = ("/data/", "/tasks/", "/api/", "/storage-data/")
_clients: Dict[Tuple[str, str], LabelStudioClient] = {}
_clients_lock = threading.Lock()


def get_env(name: str, default: Any = None, is_bool: bool = False) -> Any:
    """Read ``LABEL_STUDIO_<NAME>``, else ``HEARTEX_<NAME>``, else ``<NAME>``.

    Args:
        name: The variable name without prefix.
        default: Returned when none of the variables is set.
        is_bool: Convert the value to a bool (``1/true/yes/on`` or ``0/false/no/off``).

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
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
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


def _ls_client(hostname: Optional[str], access_token: Optional[str]) -> Optional[LabelStudioClient]:
    """A cached client for Label Studio (environment first, then the arguments), or None."""
    url = os.environ.get("LABEL_STUDIO_URL") or os.environ.get("LABEL_STUDIO_HOST")
    key = os.environ.get("LABEL_STUDIO_API_KEY") or os.environ.get("LABEL_STUDIO_ACCESS_TOKEN")
    base, token = url or hostname, key or access_token
    if not base or not token:
        return None
    cache_key = (normalize_url(base), token)
    with _clients_lock:
        if cache_key not in _clients:
            _clients[cache_key] = make_client(url, key, hostname=hostname, access_token=access_token)
        return _clients[cache_key]


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


def _cache_path(url: str, cache_dir: Optional[str]) -> str:
    directory = cache_dir or os.path.join(tempfile.gettempdir(), "lsml-cache")
    os.makedirs(directory, exist_ok=True)
    parsed = urllib.parse.urlparse(url)
    name = parsed.path
    if "?d=" in url:
        name = urllib.parse.unquote(url.split("?d=", 1)[1])
    match = _SUFFIX.fullmatch(os.path.splitext(os.path.basename(name))[1])
    suffix = match.group(0) if match else ""
    return os.path.join(directory, hashlib.sha256(url.encode()).hexdigest()[:32] + suffix)


def _download(url: str, path: str, client: Optional[LabelStudioClient]) -> None:
    if client is not None:
        content = client.download(url)
    else:
        status, content = fetch(url, {}, 30)
        if not 200 <= status < 300:
            raise LabelStudioError(f"download of {url} answered {status}")
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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

    Handles existing local paths and ``file://`` URLs, ``/data/local-files/?d=`` under
    ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``, Label Studio relative URLs (``/data/upload/...``,
    joined to ``LABEL_STUDIO_URL`` or ``hostname``) and ``http(s)://`` URLs. Label Studio's
    own URLs are fetched with its key (``LABEL_STUDIO_API_KEY``, else ``access_token``).

    Args:
        url: The URL or path from the task data.
        cache_dir: Download directory (default ``<tmp>/lsml-cache``).
        project_dir: Old SDK argument: uploads are looked up in ``<project_dir>/upload``.
        hostname: Label Studio's URL (as sent by ``/setup``).
        image_dir: Old SDK argument: a directory holding uploaded files.
        access_token: Label Studio key (as sent by ``/setup``).
        download_resources: When False, return the cache path without downloading.
        task_id: Accepted for compatibility (cloud storage URIs are not resolved).

    Returns:
        A local file path.

    Raises:
        FileNotFoundError: A local file is missing or no Label Studio URL/key is known.
        ValueError: Unsupported URL scheme.
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
    if url.startswith(_LS_PATHS):
        client = _ls_client(hostname, access_token)
        if client is None:
            raise FileNotFoundError(
                f"{url} is a Label Studio URL: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY to download it"
            )
        url = client.url + url
    elif parsed.scheme in ("http", "https"):
        client = _ls_client(hostname, access_token)
        if client is not None and urllib.parse.urlparse(client.url).netloc != parsed.netloc:
            client = None
    elif not parsed.scheme:
        raise FileNotFoundError(url)
    else:
        raise ValueError(f"cannot resolve {url!r}: not a local file, http(s) URL or Label Studio URL")
    path = _cache_path(url, cache_dir)
    if download_resources and not os.path.exists(path):
        logger.info("downloading %s", url.split("?", 1)[0])
        _download(url, path, client)
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
