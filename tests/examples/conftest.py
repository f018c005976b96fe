"""Fixtures for the example model scripts: load them, serve them through the runtime."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest
from label_studio_ml.api import create_app
from label_studio_ml.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMES = ("dummy", "text_classifier", "ner", "image_boxes")
PROJECT = "7.1700000000"  # what Label Studio sends: "<project id>.<created_at timestamp>"


def load_example(name: str):
    """The example's model module, imported under a unique name (every script is model.py)."""
    module_name = f"lsml_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / name / "model.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def label_config(name: str) -> str:
    return (EXAMPLES / name / "label_config.xml").read_text(encoding="utf-8")


class Backend:
    """A development-mode app around one example class, with Label Studio's calls as methods."""

    def __init__(self, model_class, config: str, model_dir: Path):
        self.app = create_app(model_class, settings=Settings(model_dir=str(model_dir)))
        self.client = self.app.test_client()
        self.config = config

    def setup(self) -> str:
        response = self.client.post("/setup", json={"project": PROJECT, "schema": self.config})
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["model_version"]

    def predict(self, tasks):
        body = {"tasks": tasks, "project": PROJECT, "label_config": self.config, "params": {"context": None}}
        response = self.client.post("/predict", json=body)
        assert response.status_code == 200, response.get_data(as_text=True)
        payload = response.get_json()
        assert len(payload["results"]) == len(tasks)
        for entry in payload["results"]:
            assert entry["model_version"] == payload["model_version"]
            json.dumps(entry, allow_nan=False)
        return payload["results"]

    def train(self, annotations):
        """Legacy ``POST /train`` (carries the annotated tasks): the seed-style path."""
        body = {"annotations": annotations, "project": PROJECT, "label_config": self.config}
        response = self.client.post("/train", json=body)
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()["job_id"]

    def webhook(self, action: str, **payload):
        response = self.client.post("/webhook", json={"action": action, **payload})
        assert response.status_code in (200, 201), response.get_data(as_text=True)
        return response.get_json()

    def wait_trained(self, job_id: str, timeout: float = 60.0) -> dict:
        """Poll ``GET /training?project=`` until the job succeeded; returns the status."""
        pid = PROJECT.split(".")[0]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.client.get(f"/training?project={pid}").get_json()
            if status.get("job_id") == job_id and status["status"] in ("succeeded", "failed"):
                assert status["status"] == "succeeded", status
                # Like Label Studio before each batch: /setup, which always looks for the newest
                # version (/predict alone may serve the previous one for up to 0.5 s).
                assert self.setup() == status["version"]
                return status
            time.sleep(0.05)
        raise AssertionError(f"training {job_id} did not finish within {timeout} s: {status}")


@pytest.fixture
def backend(tmp_path):
    """backend(name): a Backend serving ``examples/<name>/model.py``'s model class."""

    def _backend(name: str) -> Backend:
        module = load_example(name)
        classes = [
            obj
            for obj in vars(module).values()
            if isinstance(obj, type) and obj.__module__ == module.__name__ and hasattr(obj, "predict")
        ]
        assert len(classes) == 1, classes
        return Backend(classes[0], label_config(name), tmp_path / "models")

    return _backend
