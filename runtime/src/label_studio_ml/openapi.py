"""The OpenAPI 3.1 description of the backend's HTTP API, served at ``GET /openapi.json``.

Request schemas follow what Label Studio 1.23.2 really sends (docs: LS-WIRE sections 1-4):
extra keys are allowed everywhere because Label Studio sends many (tasks carry ~20 keys, webhook
projects ~50). Response schemas are what the runtime answers. ``tests/hardening`` fuzzes a live
backend against this description with schemathesis.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional

from . import __version__
from .store import LS_PROJECT_RE
from .training.status import RunStatus, Submitted

JSON = "application/json"
_STR = {"type": "string"}
_NULLABLE_STR = {"type": ["string", "null"]}
_NUMBER_OR_NULL = {"type": ["number", "null"]}

# The project as Label Studio names it in /setup and /predict ("<id>.<created_at>"); an int or
# {"id": ...} are accepted too. The id part names a directory, so it is strictly bounded.
PROJECT_PATTERN = f"^{LS_PROJECT_RE.pattern}$"  # the rule requests are checked with
PROJECT = {
    "description": "'<project id>.<created_at>' (e.g. '12.1719830400'); absent or null: 'default'.",
    "anyOf": [
        {"type": "string", "pattern": PROJECT_PATTERN, "examples": ["12.1719830400"]},
        {"type": "integer", "minimum": 0, "maximum": 10**18},
        {"type": "object", "properties": {"id": {"type": "integer", "minimum": 0, "maximum": 10**18}},
         "required": ["id"]},
        {"type": "null"},
    ],
}  # fmt: skip
PROJECT_QUERY = {
    "name": "project",
    "in": "query",
    "required": False,
    "description": "Project id ('12' or '12.1719830400').",
    "schema": {"type": "string", "pattern": f"^({LS_PROJECT_RE.pattern})?$"},
}

SEED_CONFIG = (
    '<View><Image name="image" value="$image"/><Choices name="choice" toName="image">'
    '<Choice value="Boeing"/><Choice value="Airbus"/></Choices></View>'
)

_SCHEMAS: Dict[str, Any] = {
    "Error": {
        "type": "object",
        "description": "Every error: a code and a sentence naming the problem. Never a traceback.",
        "properties": {
            "error": {
                "type": "string",
                "enum": [
                    "bad_request",
                    "unauthorized",
                    "forbidden",
                    "not_found",
                    "method_not_allowed",
                    "payload_too_large",
                    "predict_failed",
                    "model_load_failed",
                    "label_config_without_controls",
                    "internal_error",
                    "training_unavailable",
                    "model_loading",
                    "store_unavailable",
                    "error",
                ],
            },
            "detail": {"type": "string"},
        },
        "required": ["error", "detail"],
        "additionalProperties": False,
    },  # fmt: skip
    "Health": {
        "type": "object",
        "properties": {
            "status": {"const": "UP"},
            "model_class": _STR,
            "mode": {"enum": ["development", "production"]},
            "runtime_version": _STR,
            "models": {
                "type": "object",
                "description": "Projects whose model is live, being built, or failed to build.",
                "properties": {k: {"type": "array", "items": _STR} for k in ("loaded", "loading", "failed")},
            },
            "workers": {
                "type": ["integer", "null"],
                "description": "Production mode: live RQ workers on the training queue (null: Redis down).",
            },
            "warning": {"type": "string", "description": "Why training would not run, when it would not."},
        },
        "required": ["status", "model_class", "mode"],
    },
    "SetupRequest": {
        "type": "object",
        "description": "Sent by Label Studio on connect and before every batch of predictions.",
        "properties": {
            "project": PROJECT,
            "schema": {**_NULLABLE_STR, "description": "The project's labeling config (XML)."},
            "label_config": {**_NULLABLE_STR, "description": "Alias of schema (older clients)."},
            "hostname": {**_NULLABLE_STR, "description": "Label Studio's base URL."},
            "access_token": {**_NULLABLE_STR, "description": "The project creator's legacy token."},
            "extra_params": {"type": ["object", "null"]},
        },
        "example": {
            "project": "1.1795738540",
            "schema": SEED_CONFIG,
            "hostname": "http://localhost:8080",
            "access_token": "0123456789abcdef",
            "extra_params": None,
        },
    },  # fmt: skip
    "SetupResponse": {
        "type": "object",
        "properties": {"model_version": {"type": "string"}},
        "required": ["model_version"],
    },
    "Task": {
        "type": "object",
        "description": "A Label Studio task: id, data (values as imported), annotations, predictions, ...",
        "properties": {
            "id": {"type": ["integer", "string", "null"]},
            "data": {"type": "object"},
            "annotations": {"type": "array"},
            "predictions": {"type": "array"},
        },
        "example": {"id": 1, "data": {"image": "https://example.com/plane.jpg"}},
    },
    "PredictRequest": {
        "type": "object",
        "properties": {
            "tasks": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Task"}},
            "project": PROJECT,
            "label_config": _NULLABLE_STR,
            "params": {
                "type": ["object", "null"],
                "description": "login/password: task data credentials; context: interactive input.",
                "properties": {"login": {}, "password": {}, "context": {}},
            },
        },
        "required": ["tasks"],
        "example": {
            "tasks": [{"id": 1, "data": {"image": "https://example.com/plane.jpg"}}],
            "project": "1.1795738540",
            "label_config": SEED_CONFIG,
            "params": {"login": None, "password": None, "context": None},
        },
    },  # fmt: skip
    "Prediction": {
        "type": "object",
        "properties": {
            "result": {"type": "array", "items": {"type": "object"}},
            "score": _NUMBER_OR_NULL,
            "model_version": {"type": "string"},
        },
        "required": ["result", "model_version"],
    },
    "PredictResponse": {
        "type": "object",
        "properties": {
            "results": {
                "type": "array",
                "description": "One entry per task, in order: a prediction or a list of them.",
                "items": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/Prediction"},
                        {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}},
                    ]
                },
            },
            "model_version": {"type": "string"},
        },
        "required": ["results", "model_version"],
    },  # fmt: skip
    "WebhookRequest": {
        "type": "object",
        "description": "Label Studio's webhook: an action and its objects (annotation, task, project).",
        "properties": {
            "action": {"type": "string", "minLength": 1, "examples": ["START_TRAINING"]},
            "project": PROJECT,
            "annotation": {"type": "object"},
            "task": {"type": "object"},
        },
        "required": ["action"],
        "example": {"action": "START_TRAINING", "project": {"id": 1, "label_config": SEED_CONFIG}},
    },  # fmt: skip
    "TrainRequest": {
        "type": "object",
        "description": "Legacy Label Studio <= 1.7: annotated tasks in the request.",
        "properties": {
            "annotations": {"type": "array", "minItems": 1, "items": {"type": "object"}},
            "completions": {"type": "array", "items": {"type": "object"}},
            "project": PROJECT,
            "label_config": _NULLABLE_STR,
        },
        "required": ["annotations"],
    },
    "TrainAnswer": {
        "type": "object",
        "properties": {
            "status": {"enum": [s.value for s in Submitted]},
            "job_id": {"type": "string"},
            "project": {"type": "string"},
        },
        "required": ["status", "job_id", "project"],
    },
    "Ignored": {
        "type": "object",
        "properties": {"status": {"const": "ignored"}, "action": {"type": "string"}},
        "required": ["status"],
    },
    "VersionsRequest": {"type": "object", "properties": {"project": PROJECT}},
    "Served": {
        "type": "object",
        "description": "The version a project serves on every host, and why.",
        "properties": {
            "version": _STR,
            "why": _STR,
            "pinned": {
                "anyOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "properties": {"version": _STR, "reason": _NULLABLE_STR, "at": _NUMBER_OR_NULL},
                    },
                ]
            },
            "newest": _NULLABLE_STR,
        },
        "required": ["version", "why", "pinned", "newest"],
    },
    "Versions": {
        "type": "object",
        "properties": {
            "versions": {"type": "array", "items": {"type": "string"}},
            "projects": {"type": "array", "items": {"type": "string"}},
            "served": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Served"}},
        },
        "required": ["versions"],
    },
    "VersionChange": {
        "type": "object",
        "properties": {
            "project": PROJECT,
            "version": {"type": "string", "description": "pin only: one of the project's versions"},
        },
        "required": ["project"],
    },
    "VersionChanged": {
        "allOf": [{"$ref": "#/components/schemas/Served"}],
        "type": "object",
        "properties": {"project": _STR, "action": {"enum": ["pin", "rollback", "unpin"]}},
        "required": ["project", "action"],
    },
    "TrainingStatus": {
        "type": "object",
        "description": "The last training job of a project (status.json) and the served version.",
        "properties": {
            "project": {"type": "string"},
            "status": {"enum": [s.value for s in RunStatus]},
            "job_id": _NULLABLE_STR,
            "error": _NULLABLE_STR,
            "served_version": _NULLABLE_STR,
            "versions": {"type": "array", "items": {"type": "string"}},
            "warning": {"type": "string", "description": "A queued run no worker can take: why."},
        },
        "required": ["project", "status", "versions"],
    },
    "TrainingOverview": {
        "type": "object",
        "properties": {
            "mode": {"enum": ["development", "production"]},
            "projects": {
                "type": "object",
                "additionalProperties": {"$ref": "#/components/schemas/TrainingStatus"},
            },
        },
        "required": ["mode", "projects"],
    },
    "IsTraining": {
        "type": "object",
        "properties": {
            "is_training": {"type": "boolean"},
            "model_version": _NULLABLE_STR,
            "job_id": _NULLABLE_STR,
        },
        "required": ["is_training"],
    },
}


def _ref(name: str) -> Dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(description: str, schema: str, status: str = "200") -> Dict[str, Any]:
    return {status: {"description": description, "content": {JSON: {"schema": _ref(schema)}}}}


def _errors(*codes: int) -> Dict[str, Any]:
    texts = {
        400: "Bad request: not JSON, wrong field types, bad project id or labeling config.",
        401: "HTTP Basic credentials required (when BASIC_AUTH_USER/PASS are set).",
        403: "Changing versions without Basic auth configured: only from the backend's own host.",
        404: "Unknown project (unauthenticated webhooks may only train known projects).",
        413: "Request body larger than MAX_REQUEST_MB.",
        422: "The model failed to build on a labeling config without control tags "
        "(label_config_without_controls).",
        500: "The model failed (predict_failed, model_load_failed).",
        503: "Training queue (Redis) unreachable (training_unavailable), the model still loading "
        "after MODEL_LOAD_TIMEOUT (model_loading, with Retry-After), or the model store (MODEL_STORE) "
        "or its Redis unreachable (store_unavailable).",
    }
    out: Dict[str, Any] = {}
    for code in codes:
        out[str(code)] = {"description": texts[code], "content": {JSON: {"schema": _ref("Error")}}}
        if code == 401:
            out["401"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return out


def _body(schema: str, required: bool = True) -> Dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": _ref(schema)}}}


def build_spec(title: str = "Label Studio ML backend", version: str = __version__) -> Dict[str, Any]:
    """The description as a dict (a new copy on every call)."""
    health = {
        "summary": "Liveness; never loads a model. Label Studio calls it before /setup.",
        "operationId": "{}",
        "responses": {**_ok("Up.", "Health"), **_errors(401)},
    }
    paths: Dict[str, Any] = {
        "/": {"get": {**health, "operationId": "root"}},
        "/health": {"get": {**health, "operationId": "health"}},
        "/setup": {"post": {
            "summary": "Label Studio sends config, hostname and token; answers the served version.",
            "operationId": "setup", "requestBody": _body("SetupRequest", False),
            "responses": {**_ok("The version served for the project.", "SetupResponse"),
                          **_errors(400, 401, 413, 422, 500)},
        }},
        "/predict": {"post": {
            "summary": "Predictions for a batch of tasks, one entry per task, in order.",
            "operationId": "predict", "requestBody": _body("PredictRequest"),
            "responses": {**_ok("Predictions.", "PredictResponse"),
                          **_errors(400, 401, 413, 422, 500, 503)},
        }},
        "/webhook": {"post": {
            "summary": "Label Studio events; training actions request a run, others are ignored.",
            "description": "Label Studio sends event webhooks without credentials: without them, "
            "only projects this backend knows may be trained, and a burst coalesces into one run.",
            "operationId": "webhook", "requestBody": _body("WebhookRequest"),
            "security": [{}, {"basicAuth": []}],
            "responses": {
                "200": {"description": "Ignored action, or coalesced into a waiting run.",
                        "content": {JSON: {"schema": {"anyOf": [_ref("Ignored"), _ref("TrainAnswer")]}}}},
                **_ok("A run was queued.", "TrainAnswer", "201"),
                **_errors(400, 401, 404, 413, 503),
            },
        }},
        "/train": {"post": {
            "summary": "Legacy training request with annotated tasks (Label Studio <= 1.7).",
            "operationId": "train", "requestBody": _body("TrainRequest"),
            "responses": {**_ok("Coalesced into a waiting run.", "TrainAnswer"),
                          **_ok("A run was queued.", "TrainAnswer", "201"),
                          **_errors(400, 401, 413, 503)},
        }},
        "/versions": {
            "get": {
                "summary": "Trained versions (all projects, or ?project=). Label Studio sends no project.",
                "operationId": "versions", "parameters": [PROJECT_QUERY],
                "responses": {**_ok("Versions, oldest first.", "Versions"), **_errors(400, 401)},
            },
            "post": {
                "summary": "Trained versions (older clients POST).",
                "operationId": "versionsPost", "requestBody": _body("VersionsRequest", False),
                "responses": {**_ok("Versions, oldest first.", "Versions"), **_errors(400, 401, 413)},
            },
        },
        **{f"/versions/{action}": {"post": {
            "summary": summary + " For every host at once. Basic auth when configured, else loopback only.",
            "operationId": f"versions{action.title()}", "requestBody": _body("VersionChange"),
            "responses": {**_ok("What the project serves now.", "VersionChanged"),
                          **_errors(400, 401, 403, 413, 503)},
        }} for action, summary in (
            ("pin", "Serve one version of a project until unpinned."),
            ("rollback", "Serve the version before the one served now (a pin)."),
            ("unpin", "Serve the newest version again."),
        )},
        "/training": {"get": {
            "summary": "Training status of one project (?project=) or of all.",
            "operationId": "training", "parameters": [PROJECT_QUERY],
            "responses": {
                "200": {"description": "Status.", "content": {JSON: {"schema": {
                    "anyOf": [_ref("TrainingStatus"), _ref("TrainingOverview")]}}}},
                **_errors(400, 401),
            },
        }},
        "/is_training": {"get": {
            "summary": "Legacy: whether a project is training.",
            "operationId": "isTraining", "parameters": [PROJECT_QUERY],
            "responses": {**_ok("Training state.", "IsTraining"), **_errors(400, 401)},
        }},
        "/metrics": {"get": {
            "summary": "Prometheus metrics (text format 0.0.4); see docs/metrics.md.",
            "operationId": "metrics",
            "responses": {"200": {"description": "Prometheus text.",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}},
                          **_errors(401)},
        }},
        "/openapi.json": {"get": {
            "summary": "This description.", "operationId": "openapi",
            "responses": {"200": {"description": "OpenAPI 3.1 document.",
                                  "content": {JSON: {"schema": {"type": "object"}}}},
                          **_errors(401)},
        }},
    }  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "The HTTP API Label Studio calls on an ML backend (lsml-runtime). "
            "Errors are JSON {error, detail} with a 4xx status for bad requests and 5xx only "
            "for faults of the model or the service.",
        },
        "paths": paths,
        "components": {
            "schemas": copy.deepcopy(_SCHEMAS),
            "securitySchemes": {
                "basicAuth": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "Only when BASIC_AUTH_USER and BASIC_AUTH_PASS are set.",
                }
            },
        },
        # HTTP Basic when configured, nothing otherwise
        "security": [{"basicAuth": []}, {}],
    }


def operations(spec: Optional[Dict[str, Any]] = None) -> List[str]:
    """``["GET /", "GET /health", "POST /setup", ...]``: what the description covers."""
    spec = spec or build_spec()
    return [f"{m.upper()} {p}" for p, item in spec["paths"].items() for m in item]
