"""What every route of the HTTP API reads and answers the same way.

The app's :class:`~label_studio_ml.api.Backend`, the request's JSON body, the project id it
names, and JSON answers. ``api.py`` and ``versions.py`` (the ``/versions/...`` routes) both use
these, so they live below both: this module imports neither.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from flask import Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from .exceptions import ApiError
from .response import dumps, loads
from .store import LS_PROJECT_RE


def backend() -> Any:
    """The current app's :class:`~label_studio_ml.api.Backend`."""
    return current_app.extensions["lsml"]


def json_response(payload: Any, status: int = 200, headers: Optional[Dict[str, str]] = None) -> Response:
    return Response(dumps(payload), status=status, mimetype="application/json", headers=headers)


def body() -> Dict[str, Any]:
    """The request's JSON object (``{}`` when empty); anything else is a 400, too large a 413."""
    data = request.get_data(cache=True)  # honours MAX_CONTENT_LENGTH (413)
    # chunked: werkzeug stops quietly at the limit; anything left means the body is too large
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is None and len(data) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    if not data:
        return {}
    try:
        parsed = loads(data)
    except (ValueError, RecursionError):
        raise ApiError(400, "bad_request", "the request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise ApiError(
            400, "bad_request", f"the request body must be a JSON object, got {type(parsed).__name__}"
        )
    return parsed


def project_id_of(value: Any) -> str:
    """``"12.1719830400"`` → ``"12"``; ints and ``{"id": 12}`` work too; missing → ``default``."""
    if value is None or value == "":
        return "default"
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ApiError(
            400, "bad_request", f"'project' must be a string like '12.1719830400', got {type(value).__name__}"
        )
    match = LS_PROJECT_RE.fullmatch(str(value))
    if not match:
        raise ApiError(
            400, "bad_request", f"'project' {str(value)[:80]!r} is not a project id like '12.1719830400'"
        )
    return match.group(1)
