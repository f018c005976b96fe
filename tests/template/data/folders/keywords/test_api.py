"""Upstream-style API test: run ``pytest`` in this folder."""

import json
import os

import pytest
from model import LABEL_CONFIG, KeywordSpotter


@pytest.fixture
def client():
    from _wsgi import init_app

    app = init_app(model_class=KeywordSpotter)
    app.config["TESTING"] = True
    with app.test_client() as client:
        yield client


def test_predict(client):
    with open(os.path.join(os.path.dirname(__file__), "samples", "news.txt"), encoding="utf-8") as f:
        text = f.read().strip()
    request = {"tasks": [{"id": 1, "data": {"text": text}}], "label_config": LABEL_CONFIG}
    response = client.post("/predict", data=json.dumps(request), content_type="application/json")
    assert response.status_code == 200
    result = json.loads(response.data)["results"][0]["result"]
    assert [(r["value"]["text"], r["value"]["labels"]) for r in result] == [
        ("Acme", ["ORG"]),
        ("Paris", ["LOC"]),
    ]
