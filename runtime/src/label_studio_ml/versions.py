"""Versions you control: which one a project serves and why; pin, roll back, unpin.

The same operations three ways, all acting on the store every host reads (so on every host at
once):

* ``GET /versions`` (Label Studio's listing, plus ``served``: the version each project serves
  and why);
* ``POST /versions/pin`` ``{"project": "12", "version": "v3-..."}``, ``POST /versions/rollback``
  ``{"project": "12"}``, ``POST /versions/unpin`` ``{"project": "12"}``: with HTTP Basic
  credentials when ``BASIC_AUTH_USER``/``BASIC_AUTH_PASS`` are set (the gate refuses others with
  401), else only from the backend's own host (loopback; 403 otherwise);
* ``label-studio-ml versions list|pin|rollback|unpin`` with the backend's environment
  (``MODEL_DIR``, ``MODEL_STORE``, ``REDIS_URL``): straight to the store, no server needed.

While a project is pinned, training runs still store their versions; they are served after
``unpin``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from typing import Any, Dict, List, Optional

from flask import Blueprint, Response, request

from .exceptions import ApiError, SettingsError, StoreError, StoreUnavailable
from .store import ModelStore, version_number
from .web import backend as _backend
from .web import body as _body
from .web import json_response as _json
from .web import project_id_of

bp = Blueprint("lsml_versions", __name__)


def served_info(store: ModelStore, project_id: str, model_class: Optional[type] = None) -> Dict[str, Any]:
    """What a project serves and why: ``{"version", "why", "pinned", "newest"}``."""
    from .model import LabelStudioMLBase
    from .registry import served_version

    version = served_version(store, project_id, model_class or LabelStudioMLBase)
    pin = store.pinned(project_id)
    newest = store.newest(project_id)
    if pin:
        reason = pin.get("reason")
        why = (f"pinned ({reason})" if reason and reason != "pinned" else "pinned") + f"; newest is {newest}"
    elif newest:
        why = "newest trained version"
    else:
        why = "not trained yet: the model's own version"
    return {"version": version, "why": why, "pinned": pin, "newest": newest}


def rollback(store: ModelStore, project_id: str) -> Dict[str, Any]:
    """Pin the version before the one served now; returns the pin."""
    current = store.latest(project_id)
    older = [v for v in store.versions(project_id) if version_number(v) < version_number(current)]
    if not current or not older:
        raise StoreError(
            f"project {project_id} has no version older than {current or 'its untrained model'} to roll "
            "back to: see GET /versions?project=" + project_id
        )
    return store.pin(project_id, older[-1], reason=f"rolled back from {current}")


def change(store: ModelStore, action: str, project_id: str, version: Optional[str] = None) -> Dict[str, Any]:
    """Run ``pin``, ``rollback`` or ``unpin``; returns the project's :func:`served_info`."""
    if action == "pin":
        if not isinstance(version, str) or not version:
            raise StoreError("'version' must name one of the project's versions (e.g. v3-20261127023015)")
        store.pin(project_id, version)
    elif action == "rollback":
        rollback(store, project_id)
    elif action == "unpin":
        store.unpin(project_id)
    else:  # pragma: no cover - the routes and the CLI only pass the three
        raise StoreError(f"unknown action {action!r}")
    return served_info(store, project_id)


# ------------------------------------------------------------------ HTTP
def _loopback(address: Optional[str]) -> bool:
    try:
        return ipaddress.ip_address((address or "").split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _write(action: str) -> Response:
    backend = _backend()
    if not backend.settings.basic_auth and not _loopback(request.remote_addr):
        raise ApiError(
            403,
            "forbidden",
            "changing the served version needs HTTP Basic auth on this backend (set BASIC_AUTH_USER and "
            "BASIC_AUTH_PASS), or a call from the backend's own host, or `label-studio-ml versions`",
        )
    body = _body()
    if not body.get("project"):
        raise ApiError(400, "bad_request", '\'project\' is required (e.g. {"project": "12"})')
    pid = project_id_of(body.get("project"))
    version = body.get("version")
    if action == "pin" and not isinstance(version, str):
        raise ApiError(400, "bad_request", "'version' must be a string naming one of the project's versions")
    change(backend.store, action, pid, version)
    backend.registry.request(pid)  # this process builds the version to serve now
    return _json({"project": pid, "action": action, **served_info(backend.store, pid, backend.model_class)})


@bp.post("/versions/pin")
def pin_route() -> Response:
    return _write("pin")


@bp.post("/versions/rollback")
def rollback_route() -> Response:
    return _write("rollback")


@bp.post("/versions/unpin")
def unpin_route() -> Response:
    return _write("unpin")


def listing(store: ModelStore, projects: List[str], model_class: Optional[type]) -> Dict[str, Any]:
    """``GET /versions``: Label Studio's ``versions`` list, plus what each project serves and why."""
    found: List[str] = []
    served: Dict[str, Any] = {}
    for pid in projects:
        versions = store.versions(pid)
        for version in versions:
            if version not in found:
                found.append(version)
        served[pid] = {**served_info(store, pid, model_class), "versions": versions}
    return {"versions": found, "projects": projects, "served": served}


# ------------------------------------------------------------------ command line
def add_parser(sub: Any) -> None:
    """``label-studio-ml versions ...`` (called by cli.build_parser)."""
    p = sub.add_parser(
        "versions",
        help="list, pin, roll back or unpin model versions (every host at once)",
        description="Acts on the store the environment names (MODEL_DIR, MODEL_STORE, REDIS_URL, "
        "RQ_QUEUE_NAME): run it with the backend's environment.",
    )
    vsub = p.add_subparsers(dest="action", required=True)
    q = vsub.add_parser("list", help="versions of every project (or one), which one is served and why")
    q.add_argument("project", nargs="?")
    q = vsub.add_parser("pin", help="serve VERSION for PROJECT until unpin")
    q.add_argument("project")
    q.add_argument("version")
    q = vsub.add_parser("rollback", help="serve the version before the one served now (a pin)")
    q.add_argument("project")
    q = vsub.add_parser("unpin", help="serve the newest version again")
    q.add_argument("project")
    p.set_defaults(func=cmd_versions)


def cmd_versions(args: argparse.Namespace) -> int:
    from .objectstore import open_store
    from .settings import Settings
    from .store import check_project_id

    try:
        store = open_store(Settings.from_env())
        if args.action == "list":
            projects = [check_project_id(args.project)] if args.project else store.projects()
            out = listing(store, projects, None)
        else:
            pid = check_project_id(args.project)
            out = {
                "project": pid,
                "action": args.action,
                **change(store, args.action, pid, getattr(args, "version", None)),
            }
    except (SettingsError, StoreError, StoreUnavailable) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2))
    return 0
