"""Upstream-style API test (the shape of label-studio-ml-backend's examples' test_api.py)."""

import json

import pytest
from model import TwoGuesses


@pytest.fixture
def client():
    from label_studio_ml.api import init_app

    app = init_app(model_class=TwoGuesses)
    app.config["TESTING"] = True
    with app.test_client() as client:
        yield client


def test_predict(client):
    request = {
        "tasks": [
            {"id": 1, "data": {"image": "/data/upload/1/a.jpg"}},
            {"id": 2, "data": {"image": "b.jpg"}},
        ],
        "label_config": '<View><Image name="image" value="$image"/><Choices name="aircraft" toName="image">'
        '<Choice value="Airbus"/><Choice value="Boeing"/></Choices></View>',
        "project": "5.1712586036",
    }
    response = client.post("/predict", data=json.dumps(request), content_type="application/json")
    assert response.status_code == 200
    results = json.loads(response.data)["results"]
    assert len(results) == 2
    for candidates in results:
        assert [p["score"] for p in candidates] == [0.8, 0.2]
        chosen = [p["result"][0]["value"]["choices"][0] for p in candidates]
        assert sorted(chosen) == ["Airbus", "Boeing"]
