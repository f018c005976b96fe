"""Scripts in the style of Label Studio's current ML SDK, baked through the template and served.

``data/*.py`` are model scripts written here in the style of the examples of
``HumanSignal/label-studio-ml-backend`` (``label_interface``, ``preload_task_data``,
label-studio-sdk ``PredictionValue``, ``ModelResponse``, webhook-driven ``fit``);
``data/upstream_tests/`` holds API tests in the shape of that repository's ``test_api.py``
files (``init_app(model_class=...)`` and Flask's test client).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

# the upstream-style tests run inside baked backends, not here
collect_ignore_glob = ["data/*"]

DATA = Path(__file__).resolve().parent / "data"
UPSTREAM_TESTS = DATA / "upstream_tests"
PROJECT = "3.1700000000"
# (script, model class, uses label-studio-sdk)
SCRIPTS = {
    "sentiment_sdk": ("SentimentClassifier", True),
    "interactive_keywords": ("InteractiveKeywords", True),
    "multi_predictions": ("TwoGuesses", True),
    "preload_reader": ("WatchWords", False),
}


def label_config_of(script: str) -> str:
    """The labeling config a script's docstring carries."""
    text = (DATA / f"{script}.py").read_text(encoding="utf-8")
    return re.search(r"<View>.*?</View>", text, re.S).group(0)


@pytest.fixture
def bake_script(template_dir, runtime_requirement, tmp_path):
    """bake_script(name) -> the path of a backend generated from ``data/<name>.py``."""
    from cookiecutter.main import cookiecutter

    def _bake(name: str, out: Path = tmp_path) -> Path:
        return Path(
            cookiecutter(
                str(template_dir),
                no_input=True,
                output_dir=str(out),
                extra_context={
                    "backend_name": f"{name}_backend",
                    "script": str(DATA / f"{name}.py"),
                    "_runtime_requirement": runtime_requirement,
                },
            )
        )

    return _bake
