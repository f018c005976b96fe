"""Upstream-style API test (the shape of label-studio-ml-backend's examples' test_api.py)."""

import json

import pytest
from model import WatchWords


@pytest.fixture
def client():
    from label_studio_ml.api import init_app

    app = init_app(model_class=WatchWords)
    app.config["TESTING"] = True
    with app.test_client() as client:
        yield client


def test_predict_reads_the_files(client, tmp_path):
    urgent, routine = tmp_path / "urgent.txt", tmp_path / "routine.txt"
    urgent.write_text("Please REFUND my order asap.", encoding="utf-8")
    routine.write_text("Thanks for the quick delivery.", encoding="utf-8")
    request = {
        "tasks": [{"id": 1, "data": {"doc": str(urgent)}}, {"id": 2, "data": {"doc": str(routine)}}],
        "label_config": '<View><Text name="doc" value="$doc"/><Choices name="flag" toName="doc">'
        '<Choice value="Urgent"/><Choice value="Routine"/></Choices></View>',
    }
    response = client.post("/predict", data=json.dumps(request), content_type="application/json")
    assert response.status_code == 200
    results = json.loads(response.data)["results"]
    assert [r["result"][0]["value"]["choices"] for r in results] == [["Urgent"], ["Routine"]]
