"""The one place that says what a project's model is constructed with.

Both the live models of the API (:mod:`.registry`) and training runs (:mod:`.training`) build
a project's model at a store version with :func:`construct`: the version's ``train_output``,
the project's directory, the version's directory as ``workdir``, what Label Studio told about
the project, the settings, and the backend's model arguments.

Imports: :mod:`.model`, and the store and settings (types).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

from .model import LabelStudioMLBase, build_model

if TYPE_CHECKING:  # pragma: no cover
    from .settings import Settings
    from .store import ModelStore


def construct(
    model_class: type,
    store: ModelStore,
    project_id: str,
    version: Optional[str],
    *,
    label_config: Optional[str],
    hostname: Optional[str],
    access_token: Optional[str],
    extra_params: Dict[str, Any],
    settings: Optional[Settings],
    model_kwargs: Dict[str, Any],
    served_version: Optional[str] = None,
) -> LabelStudioMLBase:
    """Build ``model_class`` for ``project_id`` at store ``version`` (None: never trained).

    ``served_version``: the version the model reports while it is constructed, when the caller
    knows it already (a training run builds on the served version).
    """
    return build_model(
        model_class,
        project_id=project_id,
        label_config=label_config,
        train_output=store.train_output(project_id, version),
        model_dir=str(store.ensure_project(project_id)),
        workdir=str(store.version_dir(project_id, version)) if version else None,
        hostname=hostname,
        access_token=access_token,
        extra_params=extra_params,
        served_version=served_version,
        settings=settings,
        **model_kwargs,
    )
