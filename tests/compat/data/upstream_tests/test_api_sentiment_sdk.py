"""Upstream-style API test (the shape of label-studio-ml-backend's examples' test_api.py)."""

import json

import pytest
from model import SentimentClassifier


@pytest.fixture
def client():
    from label_studio_ml.api import init_app

    app = init_app(model_class=SentimentClassifier)
    app.config["TESTING"] = True
    with app.test_client() as client:
        yield client


def test_predict(client):
    request = {
        "tasks": [{"data": {"text": "That is positive!"}}],
        "label_config": """
        <View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single" showInLine="true">
    <Choice value="Positive"/>
    <Choice value="Negative"/>
  </Choices>
</View>
        """,
    }
    response = client.post("/predict", data=json.dumps(request), content_type="application/json")
    assert response.status_code == 200
    response = json.loads(response.data)
    assert response["results"][0]["model_version"] == "SentimentClassifier-v0.0.1"
    region = response["results"][0]["result"][0]
    assert (region["from_name"], region["to_name"], region["type"]) == ("sentiment", "text", "choices")
    assert region["value"]["choices"][0] in ("Positive", "Negative")
