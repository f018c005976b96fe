"""Upstream-style API test (the shape of label-studio-ml-backend's examples' test_api.py)."""

import json

import pytest
from model import InteractiveKeywords


@pytest.fixture
def client():
    from label_studio_ml.api import init_app

    app = init_app(model_class=InteractiveKeywords)
    app.config["TESTING"] = True
    with app.test_client() as client:
        yield client


LABEL_CONFIG = (
    '<View><Labels name="label" toName="text"><Label value="ORG"/><Label value="PER"/></Labels>'
    '<Text name="text" value="$text"/></View>'
)
TASK = {
    "id": 7,
    "annotations": [],
    "drafts": [],
    "predictions": [],
    "data": {"text": "Acme bought a stake in ACME Labs; acme shares rose."},
    "meta": {},
    "project": 3,
}


def test_predict(client):
    request = {
        "tasks": [TASK],
        "project": "3.1712586036",
        "label_config": LABEL_CONFIG,
        "params": {
            "login": None,
            "password": None,
            "context": {
                "result": [
                    {
                        "value": {"start": 0, "end": 4, "text": "Acme", "labels": ["ORG"]},
                        "id": "r1",
                        "from_name": "label",
                        "to_name": "text",
                        "type": "labels",
                        "origin": "manual",
                    }
                ]
            },
        },
    }
    expected = [(0, 4, "Acme"), (23, 27, "ACME"), (34, 38, "acme")]
    response = client.post("/predict", data=json.dumps(request), content_type="application/json")
    assert response.status_code == 200
    response = json.loads(response.data)
    regions = response["results"][0]["result"]
    assert [(r["value"]["start"], r["value"]["end"], r["value"]["text"]) for r in regions] == expected
    assert all(r["value"]["labels"] == ["ORG"] for r in regions)


def test_predict_without_context(client):
    request = {"tasks": [TASK, TASK], "label_config": LABEL_CONFIG}
    response = client.post("/predict", data=json.dumps(request), content_type="application/json")
    assert response.status_code == 200
    assert json.loads(response.data)["results"] == [[], []]
