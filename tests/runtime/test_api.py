"""The HTTP API through real requests: envelopes, versions, and bad input as JSON errors."""

from __future__ import annotations

import json
import logging

import pytest

from .conftest import SEED_CONFIG, load_class

PROJECT = "12.1719830400"


def tasks(n: int) -> list:
    return [{"id": i, "data": {"image": f"/data/upload/12/{i}.jpg"}} for i in range(1, n + 1)]


def predict_body(n: int = 3, **extra) -> dict:
    body = {
        "tasks": tasks(n),
        "project": PROJECT,
        "label_config": SEED_CONFIG,
        "params": {"login": None, "password": None, "context": None},
    }
    body.update(extra)
    return body


def test_health_is_fast_and_never_builds_a_model(serve, tmp_path):
    broken = load_class(
        tmp_path / "b",
        """
        from label_studio_ml.model import LabelStudioMLBase
        class Broken(LabelStudioMLBase):
            def setup(self):
                raise RuntimeError("weights missing")
            def predict(self, tasks, **kwargs):
                return []
    """,
        "Broken",
    )
    server = serve(broken)
    for path in ("/health", "/"):
        r = server.get(path)
        assert r.status_code == 200
        assert r.json()["status"] == "UP" and r.json()["model_class"] == "Broken"
    r = server.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG})
    assert r.status_code == 500
    assert r.json()["error"] == "model_load_failed"
    assert "weights missing" in r.json()["detail"]
    assert "Traceback" not in r.text


def test_seed_model_setup_and_predict(serve, seed_class, caplog):
    server = serve(seed_class)
    r = server.post(
        "/setup",
        json={
            "project": PROJECT,
            "schema": SEED_CONFIG,
            "hostname": "http://localhost:8080",
            "access_token": "secret",
            "extra_params": {"threshold": 0.4},
        },
    )
    assert r.status_code == 200
    version = r.json()["model_version"]
    assert version == "initial"
    with caplog.at_level(logging.WARNING, logger="label_studio_ml"):
        r1 = server.post("/predict", json=predict_body(3))
        r2 = server.post("/predict", json=predict_body(2))
    assert r1.status_code == 200, r1.text
    results = r1.json()["results"]
    assert len(results) == 3
    for pred in results:
        # the seed stamps 'delorean-20151021'; the served version wins
        assert pred["model_version"] == version
        assert pred["result"][0]["value"]["choices"] == ["Boeing"]
        assert pred["score"] == 0.987
    assert len(r2.json()["results"]) == 2
    warnings = [r for r in caplog.records if "delorean-20151021" in r.getMessage()]
    assert len(warnings) == 1, "the version override is announced exactly once"


def test_one_model_instance_per_project(serve, tmp_path):
    counting = load_class(
        tmp_path / "c",
        """
        from label_studio_ml.model import LabelStudioMLBase
        BUILT = []
        class Counting(LabelStudioMLBase):
            def setup(self):
                BUILT.append(self.project_id)
            def predict(self, tasks, context=None, **kwargs):
                return [{"result": [], "score": len(BUILT)} for _ in tasks]
    """,
        "Counting",
    )
    import sys

    built = sys.modules[counting.__module__].BUILT
    server = serve(counting)
    for _ in range(5):
        assert server.post("/predict", json=predict_body(1)).status_code == 200
        server.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG})
    server.post("/predict", json=predict_body(1, project="13.1"))
    assert built == ["12", "13"]
    # a changed labeling config rebuilds the project's model
    server.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG.replace("Airbus", "Cessna")})
    assert built == ["12", "13", "12"]


def test_current_style_model_response_and_context(serve, tmp_path):
    cls = load_class(
        tmp_path / "n",
        """
        from label_studio_ml.model import LabelStudioMLBase
        from label_studio_ml.response import ModelResponse, PredictionValue
        class NewModel(LabelStudioMLBase):
            def setup(self):
                self.set("model_version", "1.2.0")
            def predict(self, tasks, context=None, **kwargs):
                preds = []
                for task in tasks:
                    result = (context or {}).get("result", [])
                    preds.append(PredictionValue(result=result, score=0.25))
                return ModelResponse(predictions=preds)
    """,
        "NewModel",
    )
    server = serve(cls)
    assert server.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG}).json() == {
        "model_version": "1.2.0"
    }
    region = {"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": ["Airbus"]}}
    body = predict_body(1, params={"login": None, "password": None, "context": {"result": [region]}})
    r = server.post("/predict", json=body)
    assert r.status_code == 200, r.text
    pred = r.json()["results"][0]
    assert pred["result"] == [region]
    assert pred["model_version"] == "1.2.0" and pred["score"] == 0.25


def test_multiple_predictions_per_task_and_numpy_like_values(serve, tmp_path):
    cls = load_class(
        tmp_path / "m",
        """
        from label_studio_ml.model import LabelStudioMLBase
        class Scalar:
            def __init__(self, v): self.v = v
            def item(self): return self.v
        class Multi(LabelStudioMLBase):
            def predict(self, tasks, **kwargs):
                return [[{"result": [], "score": Scalar(0.5)}, {"result": [], "score": float("nan")}]
                        for _ in tasks]
    """,
        "Multi",
    )
    r = serve(cls).post("/predict", json=predict_body(2))
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [len(x) for x in results] == [2, 2]
    assert results[0][0]["score"] == 0.5 and results[0][1]["score"] is None


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "needle"),
    [
        ({"data": "{not json"}, 400, "bad_request", "not valid JSON"),
        ({"json": [1, 2]}, 400, "bad_request", "JSON object"),
        ({"json": {"project": PROJECT}}, 400, "bad_request", "'tasks'"),
        ({"json": {"tasks": []}}, 400, "bad_request", "non-empty"),
        ({"json": {"tasks": "abc"}}, 400, "bad_request", "'tasks'"),
        ({"json": {"tasks": [1]}}, 400, "bad_request", "JSON object"),
        ({"json": {"tasks": [{}], "project": ["x"]}}, 400, "bad_request", "'project'"),
        ({"json": {"tasks": [{}], "project": "../../etc"}}, 400, "bad_request", "project"),
        ({"json": {"tasks": [{}], "label_config": 5}}, 400, "bad_request", "'label_config'"),
        ({"json": {"tasks": [{}], "params": [1]}}, 400, "bad_request", "'params'"),
    ],
)
def test_bad_predict_requests_are_json_4xx(serve, seed_class, kwargs, status, code, needle):
    server = serve(seed_class)
    r = server.post("/predict", headers={"Content-Type": "application/json"}, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code and needle in body["detail"]
    assert "Traceback" not in r.text


def test_unknown_routes_and_methods_are_json(serve, seed_class):
    server = serve(seed_class)
    r = server.get("/nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = server.get("/predict")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
    assert "POST" in r.headers["Allow"]


def test_model_faults_are_json_500_without_traceback(serve, tmp_path):
    cls = load_class(
        tmp_path / "f",
        """
        from label_studio_ml.model import LabelStudioMLBase
        class Faulty(LabelStudioMLBase):
            def predict(self, tasks, **kwargs):
                if tasks[0].get("id") == 1:
                    raise KeyError("image")
                if tasks[0].get("id") == 2:
                    return [{"result": []}]
                return [{"no_result": 1} for _ in tasks]
    """,
        "Faulty",
    )
    server = serve(cls)
    r = server.post("/predict", json={"tasks": [{"id": 1}]})
    assert r.status_code == 500 and r.json()["error"] == "predict_failed"
    assert "KeyError" in r.json()["detail"] and "Traceback" not in r.text
    r = server.post("/predict", json={"tasks": [{"id": 2}, {"id": 3}]})
    assert r.status_code == 500 and "1 predictions for 2 tasks" in r.json()["detail"]
    r = server.post("/predict", json={"tasks": [{"id": 3}]})
    assert r.status_code == 500 and "no 'result'" in r.json()["detail"]


def test_webhook_ignores_non_training_events_fast(serve, seed_class):
    server = serve(seed_class)
    for action in ("TASKS_CREATED", "LABEL_LINK_CREATED", "PROJECT_CREATED"):
        r = server.post("/webhook", json={"action": action, "project": {"id": 12}})
        assert r.status_code == 200 and r.json()["status"] == "ignored"
        assert r.elapsed.total_seconds() < 1
    r = server.post("/webhook", json={"project": {"id": 12}})
    assert r.status_code == 400 and "'action'" in r.json()["detail"]


def test_versions_get_and_post(serve, seed_class):
    server = serve(seed_class)
    assert server.get("/versions").json()["versions"] == []
    r = server.post("/versions", json={"project": PROJECT})
    assert r.status_code == 200 and r.json()["versions"] == []


def test_request_size_limit_is_413_json(serve, seed_class):
    server = serve(seed_class, max_request_bytes=1024)
    r = server.post(
        "/predict", data=json.dumps(predict_body(50)), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert r.json()["error"] == "payload_too_large"


def test_metrics_count_requests_and_tasks(serve, seed_class):
    server = serve(seed_class)
    server.post("/predict", json=predict_body(4))
    server.post("/predict", json=predict_body(3))
    text = server.get("/metrics").text
    assert "lsml_predicted_tasks_total 7.0" in text
    assert 'lsml_http_requests_total{method="POST",route="/predict",status="200"} 2.0' in text


def test_init_app_keeps_old_wsgi_files_working(tmp_path, seed_class):
    from label_studio_ml.api import init_app

    app = init_app(seed_class, model_dir=str(tmp_path / "old"), redis_queue="q1", threshold=0.5)
    backend = app.extensions["lsml"]
    assert backend.settings.model_dir == str(tmp_path / "old")
    assert backend.settings.rq_queue_name == "q1" and not backend.settings.production
    assert backend.registry.model_kwargs == {"threshold": 0.5}
    client = app.test_client()
    r = client.post("/predict", json={"tasks": [{"id": 1}], "project": "3.1", "label_config": SEED_CONFIG})
    assert r.status_code == 200 and r.json["results"][0]["result"][0]["value"]["choices"] == ["Boeing"]
    model, _ = backend.registry.get("3")
    assert model.threshold == 0.5, "--with style kwargs reach the model as attributes"


def test_metric_labels_stay_bounded_whatever_the_method(serve, seed_class):
    server = serve(seed_class)
    for i in range(5):
        server.http.request(f"BREW{i}", server.url + "/predict", timeout=5)
        server.http.request(f"BREW{i}", server.url + f"/random-{i}", timeout=5)
    text = server.get("/metrics").text
    assert "BREW" not in text and "random-" not in text
    assert 'method="OTHER"' in text and 'route="unmatched"' in text


def test_seed_model_on_a_config_without_control_tags_is_a_422_that_names_it(serve, seed_class):
    """A new Label Studio project's config is ``<View></View>``: the seed model's __init__ raises
    IndexError on it. /setup and /predict answer 422 naming the config and the fix, and the
    status line carries the same text (Label Studio shows only that, never the body)."""
    server = serve(seed_class)
    r = server.post("/setup", json={"project": PROJECT, "schema": "<View></View>"})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "label_config_without_controls"
    assert "no control tag" in body["detail"] and "Labeling Interface" in body["detail"]
    assert "IndexError" in body["detail"] and "Traceback" not in r.text
    assert r.reason.startswith("the labeling config of project 12 has no control tag"), r.reason
    r = server.post("/predict", json={**predict_body(1), "label_config": "<View></View>"})
    assert r.status_code == 422 and r.json()["error"] == "label_config_without_controls", r.text
    # with the project's real config the same model builds and serves
    r = server.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG})
    assert r.status_code == 200, r.text
    assert server.post("/predict", json=predict_body(1)).status_code == 200


def test_error_status_line_carries_the_detail_on_one_ascii_line(serve, seed_class):
    server = serve(seed_class)
    r = server.post("/predict", json={"project": PROJECT, "tasks": "nope\nü"})
    assert r.status_code == 400
    assert r.reason == r.json()["detail"] == "'tasks' must be a non-empty list of task objects"
