"""The entry point under its label-studio-ml-backend name, for code written against it.

Tests in that style (``from _wsgi import init_app``, ``from _wsgi import app``) run unchanged;
the app itself is built by ``wsgi.py``, which uWSGI, ``label-studio-ml start .`` and the RQ
worker use. The bake writes this file when the model's folder had a ``_wsgi.py`` or tests.
"""

from label_studio_ml.api import init_app

__all__ = ["init_app"]  # and app, below


def __getattr__(name):
    """``_wsgi.app`` is ``wsgi.app``, built on first use (``init_app`` alone builds nothing)."""
    if name == "app":
        from wsgi import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
