"""A model spread over several files (``script=<folder>``) runs in its image as it ran from its
folder: the helper module, the package with relative imports and the data file read through
``os.path.dirname(__file__)`` are in the image (``.dockerignore`` lets them in, ``data/``
included), and uWSGI serves predictions made with them."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from .conftest import bake

pytestmark = pytest.mark.slow

FOLDER = Path(__file__).resolve().parents[1] / "template" / "data" / "folders" / "keywords"
KEYWORDS_CONFIG = """<View>
  <Labels name="label" toName="text"><Label value="ORG"/><Label value="LOC"/></Labels>
  <Text name="text" value="$text"/>
</View>"""


def test_a_model_folder_runs_in_its_image(compose, images, stacks, tmp_path):
    folder = tmp_path / "src" / "keywords"
    shutil.copytree(FOLDER, folder, ignore=shutil.ignore_patterns("__pycache__"))
    name = f"lsml-keywords-{uuid.uuid4().hex[:6]}"
    backend = bake(tmp_path / "baked", folder, name)
    stack = stacks(backend, compose)
    try:
        stack.up(timeout=300)  # builds the image from the generated Dockerfile
        brought = ["helpers.py", "matching/__init__.py", "data/keywords.txt", "tests/model_tests/test_api.py"]
        missing = stack.exec(
            "sh", "-c", " ; ".join(f"test -f /app/{p} || echo {p}" for p in brought), check=False
        ).stdout.split()
        assert missing == [], f"not in the image: {missing}"
        # the worker's interpreter finds the model's own modules too (it imports model.py by name)
        stack.exec("sh", "-c", "cd /app && python -c 'import model, helpers, matching'")
        text = (folder / "samples" / "news.txt").read_text(encoding="utf-8").strip()
        body = {
            "tasks": [{"id": 1, "data": {"text": text}}],
            "label_config": KEYWORDS_CONFIG,
            "project": "5.1",
        }
        answer = stack.post("/predict", body)
        assert answer.status_code == 200, f"{answer.text}\n{stack.logs()}"
        result = answer.json()["results"][0]["result"]
        assert [(r["value"]["text"], r["value"]["labels"]) for r in result] == [
            ("Acme", ["ORG"]),
            ("Paris", ["LOC"]),
        ]
    finally:
        stack.down()
        stack.engine("rmi", "-f", f"{name}:latest", check=False)
