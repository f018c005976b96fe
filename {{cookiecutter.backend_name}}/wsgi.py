"""The WSGI entry point: uWSGI serves ``wsgi:app``; ``python wsgi.py`` runs the dev server."""

import sys

from label_studio_ml import create_app

from model import {{ cookiecutter.model_class or "NewModel" }}


def make_app(**model_kwargs):
    """Build the Flask app; ``model_kwargs`` reach the model's constructor."""
    return create_app({{ cookiecutter.model_class or "NewModel" }}, model_kwargs=model_kwargs)


app = make_app()  # uWSGI: module = wsgi:app

if __name__ == "__main__":  # python wsgi.py [--host 127.0.0.1] [--port {{ cookiecutter.port }}] [--with k=v]
    from label_studio_ml.cli import main

    main(["start", __file__, *sys.argv[1:]])
