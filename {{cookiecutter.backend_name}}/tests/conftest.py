"""Fixtures: the backend's Flask app (development mode, a fresh model store per test)."""

import inspect
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

LABEL_CONFIG = (Path(__file__).parent / "label_config.xml").read_text(encoding="utf-8")
PROJECT = "1.1700000000"  # what Label Studio sends: "<project id>.<created_at timestamp>"
UNSET = (
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "BASIC_AUTH_USER",
    "BASIC_AUTH_PASS",
    "LABEL_STUDIO_URL",
    "LABEL_STUDIO_HOST",
    "LABEL_STUDIO_API_KEY",
    "LABEL_STUDIO_ACCESS_TOKEN",
)


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "models"))
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    import wsgi

    return wsgi.make_app()


@pytest.fixture
def client(app):
    return app.test_client()


def config_labels(config=LABEL_CONFIG):
    """Every label and choice value the labeling config allows."""
    labels = set()
    for node in ET.fromstring(config).iter():
        if node.tag in ("Label", "Choice") and "value" in node.attrib:
            labels.add(node.attrib.get("alias", node.attrib["value"]))
    return labels


TEXT_TAGS = {"Text", "HyperText"}


def sample_task(task_id, config=LABEL_CONFIG):
    """A task with a placeholder for every $variable the config reads: text for text tags
    (a model may read a URL there as a file to download), else a media URL."""
    data = {}
    for node in ET.fromstring(config).iter():
        value = node.attrib.get("value", "")
        if value.startswith("$"):
            if node.tag in TEXT_TAGS:
                data[value[1:]] = f"Sample text number {task_id}."
            else:
                data[value[1:]] = f"https://example.com/{task_id}.jpg"
    return {"id": task_id, "data": data, "annotations": [], "predictions": []}


def first_control(config=LABEL_CONFIG):
    """(name, toName, type) of the first control tag, as a prediction region names them."""
    for node in ET.fromstring(config).iter():
        if "toName" in node.attrib and "name" in node.attrib:
            return node.attrib["name"], node.attrib["toName"].split(",")[0], node.tag.lower()
    raise AssertionError("tests/label_config.xml has no control tag (a tag with toName)")


def annotated_task(task_id, label, config=LABEL_CONFIG):
    """A task as Label Studio exports it, with one annotation choosing ``label``."""
    from_name, to_name, kind = first_control(config)
    task = sample_task(task_id, config)
    region = {"from_name": from_name, "to_name": to_name, "type": kind, "value": {kind: [label]}}
    task["annotations"] = [{"id": task_id, "result": [region], "was_cancelled": False}]
    return task


def setup_version(client):
    response = client.post(
        "/setup",
        json={"project": PROJECT, "schema": LABEL_CONFIG, "hostname": "", "access_token": ""},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["model_version"]


def predict(client, tasks):
    response = client.post(
        "/predict",
        json={"tasks": tasks, "project": PROJECT, "label_config": LABEL_CONFIG, "params": {}},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["results"]


def wait_for_new_version(client, old, timeout=30.0):
    """Poll /setup until training has produced a version other than ``old``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        version = setup_version(client)
        if version != old:
            return version
        time.sleep(0.1)
    raise AssertionError(f"no new model version within {timeout} s (still {old!r})")


def model_class():
    """The model class wsgi.py serves."""
    from label_studio_ml.model import LabelStudioMLBase

    import wsgi

    found = [
        obj
        for obj in vars(wsgi).values()
        if inspect.isclass(obj)
        and issubclass(obj, LabelStudioMLBase)
        and obj is not LabelStudioMLBase
    ]
    assert len(found) == 1, found
    return found[0]


def start_training(client, cls):
    """Ask for a training run the way Label Studio does for this model's style of fit()."""
    first = next(iter(inspect.signature(cls.fit).parameters), "")
    if first == "event":  # current style: fit(event, data)
        response = client.post(
            "/webhook",
            json={"action": "START_TRAINING", "project": {"id": 1, "label_config": LABEL_CONFIG}},
        )
    else:  # seed style: fit(annotations); /train carries the annotated tasks
        label = sorted(config_labels())[0]
        response = client.post(
            "/train",
            json={
                "annotations": [annotated_task(i, label) for i in range(1, 4)],
                "project": PROJECT,
                "label_config": LABEL_CONFIG,
            },
        )
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    return response
