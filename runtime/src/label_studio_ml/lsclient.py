"""A small Label Studio API client (stdlib ``urllib`` only).

Two kinds of keys work: a legacy token, sent as ``Authorization: Token <key>``, and a
personal access token (a JWT refresh token), exchanged at ``/api/token/refresh/`` for an
access token sent as ``Authorization: Bearer <access>``. Tokens are never logged.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import os
import shutil
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, BinaryIO, Dict, List, Optional, Tuple

from .exceptions import LabelStudioError
from .settings import KEY_WITHOUT_URL

_KEY_HELP = (
    "set LABEL_STUDIO_API_KEY to a valid key of that Label Studio (a personal access token, "
    "or a legacy token if the organization allows them)"
)


def jwt_claims(key: str) -> Optional[Dict[str, Any]]:
    """The payload of a JWT-shaped key, or None when ``key`` is no JWT.

    Args:
        key: An API key.

    Returns:
        The decoded (unverified) claims, or None.
    """
    parts = key.split(".")
    if len(parts) != 3 or not all(parts):
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        return None
    return claims if isinstance(claims, dict) else None


def normalize_url(url: str) -> str:
    """``url`` without trailing slashes, with ``http://`` added when it has no scheme."""
    url = url.strip().rstrip("/")
    if url and "://" not in url:
        url = "http://" + url
    return url


def origin(url: str) -> Tuple[str, str, int]:
    """``(scheme, host, port)`` of a URL, ports made explicit: what "the same host" means here.

    Args:
        url: An absolute URL (``http://`` is assumed when it has no scheme).

    Returns:
        The origin; ``("", "", 0)`` for a URL without a host.
    """
    parts = urllib.parse.urlsplit(normalize_url(url))
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme, 0)
    except ValueError:
        return ("", "", 0)
    return (scheme, (parts.hostname or "").lower(), port) if parts.hostname else ("", "", 0)


def same_origin(a: Optional[str], b: Optional[str]) -> bool:
    """Whether two URLs have the same scheme, host and port (False when either has no host)."""
    if not a or not b:
        return False
    first = origin(a)
    return bool(first[1]) and first == origin(b)


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows http(s) redirects; request headers go along only to the same origin.

    ``fetch`` attaches every header as an *unredirected* header, which urllib drops on a
    redirect; this handler copies them back when the target has the origin of the request
    that was redirected (a Label Studio URL that redirects within Label Studio keeps its key).
    A redirect to another origin (a presigned S3 URL, anything else) goes without them, and
    once dropped they never come back (A -> B -> A arrives at A without the key).
    """

    def http_error_302(self, req, fp, code, msg, headers):  # noqa: ANN001, ANN201
        target = urllib.parse.urljoin(req.full_url, headers.get("location") or headers.get("uri") or "")
        scheme = urllib.parse.urlsplit(target).scheme.lower()
        if scheme not in ("http", "https"):
            fp.close()
            where = req.full_url.split("?", 1)[0]
            raise LabelStudioError(f"{where} redirected to a {scheme} URL: refused (only http and https)")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and same_origin(req.full_url, new.full_url):
            for name, value in req.unredirected_hdrs.items():
                new.add_unredirected_header(name, value)
        return new


_opener = urllib.request.build_opener(_RedirectHandler)


def _open(url: str, headers: Dict[str, str], timeout: float, method: str, data: Optional[bytes]) -> Any:
    # task data may hold unencoded names ("a b.png"): quote what HTTP cannot carry, keep the rest
    url = urllib.parse.quote(url, safe="!#$%&'()*+,/:;=?@[]~")
    request = urllib.request.Request(url, data=data, method=method)
    for name, value in headers.items():
        request.add_unredirected_header(name, value)
    return _opener.open(request, timeout=timeout)


def fetch(
    url: str,
    headers: Dict[str, str],
    timeout: float,
    method: str = "GET",
    data: Optional[bytes] = None,
    sink: Optional[BinaryIO] = None,
) -> Tuple[int, bytes]:
    """One HTTP request; its headers follow redirects to the same origin only (see ``_RedirectHandler``).

    Args:
        url: Absolute http(s) URL.
        headers: Request headers (``Authorization`` included: it never leaves ``url``'s origin).
        timeout: Seconds.
        method: HTTP method.
        data: Request body.
        sink: Write a 2xx body here (streamed) instead of returning it.

    Returns:
        ``(status, body)``, also for error statuses (``body`` is empty when streamed to ``sink``).

    Raises:
        LabelStudioError: The server could not be reached, or redirected to a non-http(s) URL.
    """
    status, body, _ = fetch_final(url, headers, timeout, method, data, sink)
    return status, body


def fetch_final(
    url: str,
    headers: Dict[str, str],
    timeout: float,
    method: str = "GET",
    data: Optional[bytes] = None,
    sink: Optional[BinaryIO] = None,
) -> Tuple[int, bytes, str]:
    """:func:`fetch`, also returning the URL that answered (after redirects)."""
    try:
        with _open(url, headers, timeout, method, data) as response:
            final = response.geturl()
            if sink is None:
                return response.status, response.read(), final
            shutil.copyfileobj(response, sink, 1 << 20)
            return response.status, b"", final
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.geturl() or url
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        raise LabelStudioError(
            f"cannot reach {url}: {getattr(exc, 'reason', exc)}{container_hint(url)}"
        ) from None


# Files container engines create in every container: Docker, Podman.
CONTAINER_MARKERS = ("/.dockerenv", "/run/.containerenv")


def container_hint(url: str) -> str:
    """What to set when a loopback Label Studio URL fails inside a container ('' otherwise).

    In a container, ``localhost`` is the container itself, not the machine Label Studio runs
    on; the generated docker-compose.yml maps ``host.docker.internal`` to that machine.
    """
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    loopback = host == "localhost" or host.startswith("127.") or host in ("::1", "0.0.0.0")
    if not loopback or not any(os.path.exists(marker) for marker in CONTAINER_MARKERS):
        return ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 8080
    return (
        f" (this backend runs in a container, where {host} is the container itself: for a Label "
        f"Studio on the host set LABEL_STUDIO_URL={parts.scheme or 'http'}://host.docker.internal:{port} "
        "and LABEL_STUDIO_API_KEY in .env, and let Label Studio listen on 0.0.0.0)"
    )


class LabelStudioClient:
    """Authenticated access to one Label Studio instance.

    Args:
        url: Label Studio's base URL (``http://localhost:8080``).
        api_key: A legacy token or a personal access token.
        timeout: Seconds per HTTP request.
        key_source: Where the key came from, named in authentication errors.
    """

    def __init__(self, url: str, api_key: str, timeout: float = 30, key_source: str = "LABEL_STUDIO_API_KEY"):
        self.url = normalize_url(url)
        self.timeout = timeout
        self.key_source = key_source
        self._key = api_key.strip()
        claims = jwt_claims(self._key)
        self._kind = (
            "legacy" if claims is None else "refresh" if claims.get("token_type") == "refresh" else "jwt"
        )
        self._access: Optional[str] = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        url: Optional[str],
        api_key: Optional[str],
        hostname: Optional[str] = None,
        access_token: Optional[str] = None,
        timeout: float = 30,
    ) -> LabelStudioClient:
        """See :func:`make_client`."""
        base, key, source = choose_credentials(url, api_key, hostname, access_token)
        return cls(base, key, timeout=timeout, key_source=source)

    @property
    def token_kind(self) -> str:
        """A human description of the key kind, for messages."""
        if self._kind == "refresh":
            return "a personal access token (JWT refresh token, sent as Bearer after refreshing)"
        if self._kind == "jwt":
            return "a JWT access token (sent as Bearer)"
        return "a legacy token (sent as 'Authorization: Token')"

    def _refresh(self) -> str:
        url = f"{self.url}/api/token/refresh/"
        status, body = self._send("POST", url, {"Content-Type": "application/json"}, {"refresh": self._key})
        if status != 200:
            raise self._error(url, status, body)
        access = body.get("access") if isinstance(body, dict) else None
        if not isinstance(access, str) or not access:
            raise LabelStudioError(f"{url} answered 200 without an 'access' token")
        return access

    def auth_header(self, refresh: bool = False) -> Dict[str, str]:
        """The ``Authorization`` header for this key (refreshing a JWT when needed).

        Args:
            refresh: Get a new access token even when one is cached.

        Returns:
            ``{"Authorization": ...}``.
        """
        if self._kind == "legacy":
            return {"Authorization": f"Token {self._key}"}
        if self._kind == "jwt":
            return {"Authorization": f"Bearer {self._key}"}
        with self._lock:
            if refresh or self._access is None:
                self._access = self._refresh()
            return {"Authorization": f"Bearer {self._access}"}

    def _send(self, method: str, url: str, headers: Dict[str, str], payload: Any = None) -> Tuple[int, Any]:
        data = json.dumps(payload).encode() if payload is not None else None
        status, raw = fetch(url, {"Accept": "application/json", **headers}, self.timeout, method, data)
        try:
            return status, json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            if 200 <= status < 300:
                raise LabelStudioError(f"{url} answered {status} with a body that is not JSON") from None
            return status, raw[:200].decode("utf-8", "replace")

    def download(self, url: str, sink: Optional[BinaryIO] = None) -> bytes:
        """GET a file from this Label Studio with its key (refreshing a JWT once on 401).

        Label Studio may redirect (``/tasks/<id>/presign/`` answers 303 to a presigned storage
        URL): the key follows only redirects within this Label Studio's origin.

        Args:
            url: An absolute URL on this Label Studio.
            sink: Stream the body into this file instead of returning it.

        Returns:
            The body (empty when streamed to ``sink``).

        Raises:
            LabelStudioError: ``url`` is not on this Label Studio, unreachable, or a non-2xx answer.
        """
        if not same_origin(url, self.url):
            raise LabelStudioError(f"refusing to send the key for {self.url} to {url.split('?', 1)[0]}")
        status, raw, final = fetch_final(url, self.auth_header(), self.timeout, sink=sink)
        if status == 401 and self._kind == "refresh" and same_origin(final, self.url):
            status, raw, final = fetch_final(url, self.auth_header(refresh=True), self.timeout, sink=sink)
        if not 200 <= status < 300:
            if not same_origin(final, self.url):
                where = final.split("?", 1)[0]
                message = f"{url.split('?', 1)[0]} redirected to {where}, which answered {status}"
                raise LabelStudioError(message + _storage_detail(raw))
            raise self._error(url, status, _json_or_none(raw))
        return raw

    def _error(self, url: str, status: int, body: Any) -> LabelStudioError:
        detail = body.get("detail") if isinstance(body, dict) else body
        message = f"Label Studio answered {status} to {url}"
        if detail:
            message += f": {detail}"
        if status in (401, 403):
            message += f". The key from {self.key_source} is {self.token_kind}; {_KEY_HELP}"
        error = LabelStudioError(message)
        error.status = status
        return error

    def request_json(self, method: str, path: str, payload: Any = None) -> Any:
        """Call the API and return the decoded JSON answer.

        Args:
            method: HTTP method.
            path: Path below the base URL, with its query (``/api/projects/1``).
            payload: JSON body, if any.

        Returns:
            The decoded JSON.

        Raises:
            LabelStudioError: Unreachable, non-2xx answer, or not JSON.
        """
        url = self.url + path
        status, body = self._send(method, url, self.auth_header(), payload)
        if status == 401 and self._kind == "refresh":
            status, body = self._send(method, url, self.auth_header(refresh=True), payload)
        if not 200 <= status < 300:
            raise self._error(url, status, body)
        return body

    def get_annotated_tasks(self, project_id: Any) -> List[Dict[str, Any]]:
        """Export a project's tasks that have at least one non-cancelled annotation.

        Args:
            project_id: The Label Studio project id.

        Returns:
            Tasks in Label Studio's JSON export format.

        Raises:
            LabelStudioError: The export failed.
        """
        pid = urllib.parse.quote(str(project_id), safe="")
        path = f"/api/projects/{pid}/export?exportType=JSON&download_all_tasks=false"
        tasks = self.request_json("GET", path)
        if not isinstance(tasks, list):
            raise LabelStudioError(f"{self.url}{path} did not answer a list of tasks")
        return [task for task in tasks if isinstance(task, dict) and _has_annotation(task)]


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        return None


def _storage_detail(raw: bytes) -> str:
    """The ``<Code>`` of a storage service's XML error body (S3, GCS, Azure), if any."""
    text = raw[:2000].decode("utf-8", "replace")
    start, end = text.find("<Code>"), text.find("</Code>")
    return f" ({text[start + 6 : end]})" if 0 <= start < end else ""


def _has_annotation(task: Dict[str, Any]) -> bool:
    annotations = task.get("annotations") or []
    return any(isinstance(a, dict) and not a.get("was_cancelled") for a in annotations)


SETUP_SOURCE = "the access_token sent by Label Studio's /setup"


def choose_credentials(
    url: Optional[str],
    api_key: Optional[str],
    hostname: Optional[str] = None,
    access_token: Optional[str] = None,
) -> Tuple[str, str, str]:
    """The Label Studio to talk to and the key to send it: a key only goes to the host it came with.

    * ``LABEL_STUDIO_API_KEY`` belongs to ``LABEL_STUDIO_URL`` (a key without the URL is refused);
    * ``/setup``'s ``access_token`` belongs to ``/setup``'s ``hostname``: with
      ``LABEL_STUDIO_URL`` set it is used only when ``hostname`` has the same origin (scheme,
      host, port), so a ``/setup`` naming another host never receives the configured key, and
      the configured URL never receives a token that came with another host.

    Args:
        url: ``LABEL_STUDIO_URL``.
        api_key: ``LABEL_STUDIO_API_KEY``.
        hostname: The ``hostname`` from ``/setup``.
        access_token: The ``access_token`` from ``/setup``.

    Returns:
        ``(base URL, key, where the key came from)``.

    Raises:
        LabelStudioError: No usable pair, with what to set.
    """
    if api_key and not url:
        raise LabelStudioError(KEY_WITHOUT_URL)
    if url and api_key:
        return normalize_url(url), api_key, "LABEL_STUDIO_API_KEY"
    if url:
        if access_token and same_origin(hostname, url):
            return normalize_url(url), access_token, SETUP_SOURCE
        message = f"no key for the Label Studio at LABEL_STUDIO_URL={url}: set LABEL_STUDIO_API_KEY"
        if access_token:
            message += (
                f" (the access_token /setup sent came with hostname {hostname or '(none)'}, "
                "and is only sent there)"
            )
        raise LabelStudioError(message)
    if hostname and access_token:
        return normalize_url(hostname), access_token, SETUP_SOURCE
    missing = " and ".join(n for n, v in (("a URL", hostname), ("an API key", access_token)) if not v)
    raise LabelStudioError(
        f"cannot fetch annotations from Label Studio: {missing} missing; "
        "set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY for the ML backend"
    )


def make_client(
    url: Optional[str],
    api_key: Optional[str],
    hostname: Optional[str] = None,
    access_token: Optional[str] = None,
    timeout: float = 30,
) -> LabelStudioClient:
    """A client for the configured Label Studio, else for the one ``/setup`` named.

    Which key goes where is :func:`choose_credentials`' rule: ``LABEL_STUDIO_API_KEY`` only to
    ``LABEL_STUDIO_URL``, ``/setup``'s ``access_token`` only to ``/setup``'s ``hostname``.

    Args:
        url: ``LABEL_STUDIO_URL``.
        api_key: ``LABEL_STUDIO_API_KEY``.
        hostname: The ``hostname`` from ``/setup``.
        access_token: The ``access_token`` from ``/setup``.
        timeout: Seconds per HTTP request.

    Returns:
        The client.

    Raises:
        LabelStudioError: No URL/key pair is known, or a key came without its URL.
    """
    return LabelStudioClient.from_settings(url, api_key, hostname, access_token, timeout=timeout)
