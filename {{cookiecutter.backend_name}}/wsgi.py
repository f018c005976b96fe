"""The WSGI entry point. uWSGI serves ``wsgi:app``; ``label-studio-ml start .`` and
``python wsgi.py`` serve the same app, built the same way: the model's constructor gets
``config.json`` (if you add one here), then ``make_app``'s arguments, then ``start --with k=v``.
"""

import sys

from label_studio_ml import create_app, setup_process

from model import {{ cookiecutter.model_class or "NewModel" }}


def make_app(**model_kwargs):
    """Build the Flask app; ``model_kwargs`` reach the model's constructor."""
    return create_app({{ cookiecutter.model_class or "NewModel" }}, model_kwargs=model_kwargs)


if __name__ == "__main__":  # python wsgi.py [--host 127.0.0.1] [--port {{ cookiecutter.port }}] [--with k=v]
    from label_studio_ml.cli import main

    main(["start", __file__, *sys.argv[1:]])  # imports this file as "wsgi": one app, below
else:
    # Once per process, before the app: logging, and gc.freeze of what was imported above
    # (see label_studio_ml.process). uWSGI imports this file in each worker (lazy-apps).
    setup_process(role="api")
    app = make_app()  # uWSGI: module = wsgi:app
