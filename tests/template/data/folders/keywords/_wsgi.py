"""Upstream-style entry point (argparse development server; uWSGI/gunicorn use ``app``)."""

import argparse

from label_studio_ml.api import init_app
from model import KeywordSpotter

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9090)
    args = parser.parse_args()
    init_app(model_class=KeywordSpotter).run(host="0.0.0.0", port=args.port)
else:
    app = init_app(model_class=KeywordSpotter)
