"""Upstream-style tests in a tests/ folder, reading their data beside this file."""

import json
import os

import pytest
from nets import RunDetector
from segmenter import LABEL_CONFIG, Segmenter

SERIES = os.path.join(os.path.dirname(__file__), "series.csv")


@pytest.fixture
def client():
    from _wsgi import init_app

    app = init_app(model_class=Segmenter)
    app.config["TESTING"] = True
    with app.test_client() as c:
        yield c


def test_detector_finds_runs_above_the_threshold():
    with open(SERIES, encoding="utf-8") as handle:
        first = handle.readline().strip()
    assert RunDetector(5, "High").runs(first) == [(4, 7, "High"), (10, 11, "High")]
    assert "threshold" in RunDetector(5, "High").describe()


def test_predict(client, tmp_path, monkeypatch):
    monkeypatch.setenv("MODEL_ROOT", str(tmp_path))
    (tmp_path / "segmenter.json").write_text(json.dumps({"threshold": 8, "label": "Spike"}))
    request = {"tasks": [{"id": 1, "data": {"text": "1 9 9 2"}}], "label_config": LABEL_CONFIG}
    response = client.post("/predict", data=json.dumps(request), content_type="application/json")
    assert response.status_code == 200
    result = json.loads(response.data)["results"][0]["result"]
    assert [(r["value"]["text"], r["value"]["labels"]) for r in result] == [("9 9", ["Spike"])]
