"""Every exception the runtime raises, under one base, and how the HTTP API answers each.

Each class keeps the standard exception it always derived from (``except ValueError`` around a
bad project id still works) and stays importable from the module that raises it
(``from label_studio_ml.store import StoreError``). Standard library only: ``label_studio_ml.model``
imports this module and needs nothing else.

:data:`HTTP_ANSWERS` is the one table from an error to the API's answer; the app's error
handler looks an exception up along its class's MRO (:func:`http_answer`). An exception found
nowhere in it is a fault of the service: ``500 internal_error``, its traceback in the log.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Mapping, Optional

__all__ = [
    "LabelStudioMLError",
    "ApiError",
    "SettingsError",
    "LabelConfigError",
    "SDKNotInstalledError",
    "LabelStudioError",
    "PredictionError",
    "StoreError",
    "StoreUnavailable",
    "ModelLoadError",
    "ModelLoading",
    "TrainingUnavailable",
    "TrainingError",
    "InvalidTransition",
    "HttpAnswer",
    "HTTP_ANSWERS",
    "http_answer",
]


class LabelStudioMLError(Exception):
    """The base of every exception the runtime raises on purpose."""


# ------------------------------------------------------------------ the HTTP API
class ApiError(LabelStudioMLError):
    """An error answered as ``{"error": code, "detail": detail}`` with HTTP ``status``."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


# ------------------------------------------------------------------ configuration
class SettingsError(LabelStudioMLError, ValueError):
    """An environment variable (or ``config.json``) has a value the runtime cannot use."""


class LabelConfigError(LabelStudioMLError, ValueError):
    """The labeling config is not acceptable XML (malformed, too large, too deep, DTD)."""


class SDKNotInstalledError(LabelStudioMLError, ImportError):
    """``self.label_interface`` (or another SDK-backed feature) needs ``label-studio-sdk``."""


# ------------------------------------------------------------------ Label Studio
class LabelStudioError(LabelStudioMLError, RuntimeError):
    """Label Studio could not be reached, refused the key, or answered something unusable.

    Attributes:
        status: Label Studio's HTTP status, when it answered one.
    """

    status: Optional[int] = None


# ------------------------------------------------------------------ predictions
class PredictionError(LabelStudioMLError, ValueError):
    """``predict`` returned something that cannot be sent to Label Studio."""


# ------------------------------------------------------------------ the model store
class StoreError(LabelStudioMLError, ValueError):
    """A project id or version that cannot name a directory of the store."""


class StoreUnavailable(LabelStudioMLError, OSError):
    """The model store (an object store) cannot be reached; the message never holds credentials."""


# ------------------------------------------------------------------ live models
class ModelLoadError(LabelStudioMLError, RuntimeError):
    """The model class raised while being constructed."""


class ModelLoading(LabelStudioMLError, RuntimeError):
    """The project's model is still being built after the allowed wait."""

    def __init__(self, project_id: str, waited: float) -> None:
        super().__init__(
            f"the model of project {project_id} is still loading after {waited:g} s "
            "(MODEL_LOAD_TIMEOUT); retry shortly"
        )
        self.project_id = project_id


# ------------------------------------------------------------------ training
class TrainingUnavailable(LabelStudioMLError, RuntimeError):
    """The queue (Redis) cannot take the request."""


class TrainingError(LabelStudioMLError, RuntimeError):
    """A training run cannot start (nothing to train on, no fit, ...)."""


class InvalidTransition(LabelStudioMLError, RuntimeError):
    """A change of a run record that its state machine does not allow (a bug: no HTTP answer)."""


# ------------------------------------------------------------------ error -> HTTP answer
@dataclasses.dataclass(frozen=True)
class HttpAnswer:
    """How the API answers an error: ``status`` and ``{"error": code, "detail": str(exc)}``.

    The detail always goes out with every known secret cut (``Settings.redact`` and the
    ``/setup`` tokens); ``headers`` are added to the answer.
    """

    status: int
    code: str
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


# The first class of an exception's MRO found here decides its answer (ApiError carries its own).
HTTP_ANSWERS: Dict[type, HttpAnswer] = {
    StoreError: HttpAnswer(400, "bad_request"),
    ModelLoadError: HttpAnswer(500, "model_load_failed"),
    ModelLoading: HttpAnswer(503, "model_loading", {"Retry-After": "5"}),
    StoreUnavailable: HttpAnswer(503, "store_unavailable"),
    TrainingUnavailable: HttpAnswer(503, "training_unavailable"),
}


def http_answer(exc: BaseException) -> Optional[HttpAnswer]:
    """The answer :data:`HTTP_ANSWERS` gives ``exc`` (an :class:`ApiError` its own), else None."""
    if isinstance(exc, ApiError):
        return HttpAnswer(exc.status, exc.code)
    for cls in type(exc).__mro__:
        answer = HTTP_ANSWERS.get(cls)
        if answer is not None:
            return answer
    return None
