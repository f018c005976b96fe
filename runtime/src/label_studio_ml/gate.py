"""WSGI middleware in front of the Flask app: HTTP Basic auth and request metrics.

Doing this outside Flask's dispatch keeps the per-request cost of both to a few microseconds
(``/predict`` for one task is dominated by fixed costs), and a 401 never enters Flask.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from typing import Any, Dict

from .response import dumps

_METHODS = frozenset(("GET", "POST", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"))


class Gate:
    """HTTP Basic auth (when configured) and request metrics around ``wsgi_app``.

    Args:
        wsgi_app: The Flask app's WSGI callable.
        backend: The app's backend (settings and metrics).
        routes: The app's routes: other paths are counted as ``unmatched``.
    """

    def __init__(self, wsgi_app: Any, backend: Any, routes: frozenset) -> None:
        self.wsgi_app, self.backend, self.routes = wsgi_app, backend, routes
        settings = backend.settings
        self.auth = settings.basic_auth
        self.user = (settings.basic_auth_user or "").encode()
        self.password = (settings.basic_auth_pass or "").encode()

    def _authorized(self, header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        # both comparisons always run, in constant time for equal lengths
        ok_user = hmac.compare_digest(user, self.user)
        ok_password = hmac.compare_digest(password, self.password)
        return ok_user and ok_password

    def __call__(self, environ: Dict[str, Any], start_response: Any) -> Any:
        started = time.perf_counter()
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        route = path if path in self.routes else "unmatched"
        if method not in _METHODS:
            method = "OTHER"  # metric labels stay bounded whatever a client sends
        if self.auth:
            header = environ.get("HTTP_AUTHORIZATION", "")
            ok = self._authorized(header)
            environ["lsml.authenticated"] = ok
            # Label Studio's webhooks come without credentials: what they may do is restricted in webhook()
            if not ok and not (path == "/webhook" and method == "POST" and not header):
                body = dumps({"error": "unauthorized", "detail": "valid HTTP Basic credentials are required"})
                start_response("401 UNAUTHORIZED", [
                    ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                    ("WWW-Authenticate", 'Basic realm="Label Studio ML backend"'),
                ])  # fmt: skip
                self.backend.metrics.observe(route, method, 401, time.perf_counter() - started)
                return [body]
        status: list = []

        def recording_start_response(code: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, headers, exc_info)

        result = self.wsgi_app(environ, recording_start_response)
        code = int(status[0][:3]) if status else 500
        self.backend.metrics.observe(route, method, code, time.perf_counter() - started)
        return result
