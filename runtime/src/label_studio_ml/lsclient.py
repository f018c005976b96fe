"""A small Label Studio API client (stdlib ``urllib`` only).

Two kinds of keys work: a legacy token, sent as ``Authorization: Token <key>``, and a
personal access token (a JWT refresh token), exchanged at ``/api/token/refresh/`` for an
access token sent as ``Authorization: Bearer <access>``. Tokens are never logged.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

_KEY_HELP = (
    "set LABEL_STUDIO_API_KEY to a valid key of that Label Studio (a personal access token, "
    "or a legacy token if the organization allows them)"
)


class LabelStudioError(RuntimeError):
    """Label Studio could not be reached, refused the key, or answered something unusable."""


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


def fetch(
    url: str, headers: Dict[str, str], timeout: float, method: str = "GET", data: Optional[bytes] = None
) -> Tuple[int, bytes]:
    """One HTTP request; headers are not forwarded on redirects (no token leaks to other hosts).

    Args:
        url: Absolute http(s) URL.
        headers: Request headers.
        timeout: Seconds.
        method: HTTP method.
        data: Request body.

    Returns:
        ``(status, body)``, also for error statuses.

    Raises:
        LabelStudioError: The server could not be reached.
    """
    request = urllib.request.Request(url, data=data, method=method)
    for name, value in headers.items():
        request.add_unredirected_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise LabelStudioError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None


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
        base = url or hostname
        key = api_key or access_token
        if not base or not key:
            missing = " and ".join(n for n, v in (("a URL", base), ("an API key", key)) if not v)
            raise LabelStudioError(
                f"cannot fetch annotations from Label Studio: {missing} missing; "
                "set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY for the ML backend"
            )
        source = "LABEL_STUDIO_API_KEY" if api_key else "the access_token sent by Label Studio's /setup"
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

    def download(self, url: str) -> bytes:
        """GET a file from this Label Studio with its key (refreshing a JWT once on 401).

        Args:
            url: An absolute URL on this Label Studio.

        Returns:
            The body.

        Raises:
            LabelStudioError: Unreachable or non-2xx answer.
        """
        status, raw = fetch(url, self.auth_header(), self.timeout)
        if status == 401 and self._kind == "refresh":
            status, raw = fetch(url, self.auth_header(refresh=True), self.timeout)
        if not 200 <= status < 300:
            raise self._error(url, status, None)
        return raw

    def _error(self, url: str, status: int, body: Any) -> LabelStudioError:
        detail = body.get("detail") if isinstance(body, dict) else body
        message = f"Label Studio answered {status} to {url}"
        if detail:
            message += f": {detail}"
        if status in (401, 403):
            message += f". The key from {self.key_source} is {self.token_kind}; {_KEY_HELP}"
        return LabelStudioError(message)

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


def _has_annotation(task: Dict[str, Any]) -> bool:
    annotations = task.get("annotations") or []
    return any(isinstance(a, dict) and not a.get("was_cancelled") for a in annotations)


def make_client(
    url: Optional[str],
    api_key: Optional[str],
    hostname: Optional[str] = None,
    access_token: Optional[str] = None,
    timeout: float = 30,
) -> LabelStudioClient:
    """A client from the configured URL/key, falling back to what ``/setup`` sent.

    Args:
        url: ``LABEL_STUDIO_URL`` (wins when set).
        api_key: ``LABEL_STUDIO_API_KEY`` (wins when set).
        hostname: The ``hostname`` from ``/setup``.
        access_token: The ``access_token`` from ``/setup``.
        timeout: Seconds per HTTP request.

    Returns:
        The client.

    Raises:
        LabelStudioError: No URL or no key is known.
    """
    return LabelStudioClient.from_settings(url, api_key, hostname, access_token, timeout=timeout)
