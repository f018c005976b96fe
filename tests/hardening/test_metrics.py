"""GET /metrics after real traffic: per process, and summed across processes (multi-process dir)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from .conftest import SEED_CONFIG, SEED_MODEL


def samples(text: str) -> dict:
    """{(name, frozenset(labels)): value} of a scrape."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(scrape: dict, name: str, **labels) -> float:
    return sum(v for (n, ls), v in scrape.items() if n == name and set(labels.items()) <= set(ls))


def predict_body(n: int, project: str = "3.1") -> dict:
    return {"tasks": [{"id": i, "data": {"image": "x"}} for i in range(n)], "project": project,
            "label_config": SEED_CONFIG}  # fmt: skip


def test_metrics_after_real_traffic(serve, seed_class):
    server = serve(seed_class)
    assert server.post("/setup", json={"project": "3.1", "schema": SEED_CONFIG}).status_code == 200
    assert server.post("/predict", json=predict_body(4)).status_code == 200
    assert server.post("/predict", json=predict_body(3)).status_code == 200
    assert server.post("/predict", json={"tasks": []}).status_code == 400
    r = server.post("/train", json={"project": "3.1", "annotations": [{"id": 1, "annotations": []}]})
    assert r.status_code == 201
    server.backend.trainer.wait_idle(20)
    # a failing run: the seed model fetches annotations from a Label Studio that is not there
    assert server.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 4}}).status_code == 201
    server.backend.trainer.wait_idle(20)
    r = server.get("/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    m = samples(r.text)
    assert value(m, "lsml_http_requests_total", route="/predict", method="POST", status="200") == 2
    assert value(m, "lsml_http_requests_total", route="/predict", status="400") == 1
    assert value(m, "lsml_http_request_duration_seconds_count", route="/predict", status="200") == 2
    assert (
        value(m, "lsml_http_request_duration_seconds_bucket", route="/predict", status="200", le="+Inf") == 2
    )
    assert value(m, "lsml_http_request_duration_seconds_sum", route="/predict", status="200") > 0
    assert value(m, "lsml_predict_calls_total") == 2
    assert value(m, "lsml_predicted_tasks_total") == 7
    assert value(m, "lsml_predictions_total") == 7
    assert value(m, "lsml_training_requests_total", status="queued") == 2
    assert value(m, "lsml_training_runs_total", outcome="succeeded") == 1
    assert value(m, "lsml_training_runs_total", outcome="failed") == 1
    assert value(m, "lsml_training_duration_seconds_count") == 2
    served = server.post("/setup", json={"project": "3.1"}).json()["model_version"]
    assert served.startswith("v1-")
    versions = {
        dict(ls)["project"]: dict(ls)["version"] for (n, ls), v in m.items() if n == "lsml_model_version"
    }
    assert versions["3"] == served and value(m, "lsml_model_version", project="3") == 1
    assert versions["4"] == "initial"  # the failed run left the model's own version
    assert value(m, "lsml_training_queue_length", mode="development") == 0
    # nothing but these families, and never a label value taken from a request body
    names = {f.name for f in text_string_to_metric_families(r.text)}
    assert names == {
        "lsml_http_requests", "lsml_http_request_duration_seconds", "lsml_predict_calls", "lsml_predicted_tasks",
        "lsml_predictions", "lsml_training_requests", "lsml_training_runs", "lsml_training_duration_seconds",
        "lsml_model_version", "lsml_training_queue_length",
    }  # fmt: skip
    server.post("/nope/../../x")
    routes = {dict(ls).get("route") for (n, ls), _ in samples(server.get("/metrics").text).items()}
    assert "/nope/../../x" not in routes and "unmatched" in routes


SERVER = """
import importlib.util, sys
from label_studio_ml.api import create_app
from label_studio_ml.settings import Settings
from werkzeug.serving import make_server

spec = importlib.util.spec_from_file_location("seed_model", {model!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
app = create_app(module.DummyModel, Settings(model_dir=sys.argv[1]))
server = make_server("127.0.0.1", 0, app, threaded=True)
print(server.server_port, flush=True)
server.serve_forever()
"""


def test_two_processes_add_up_in_one_multiprocess_dir(tmp_path):
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    script = tmp_path / "server.py"
    script.write_text(textwrap.dedent(SERVER.format(model=str(SEED_MODEL))))
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "models")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    try:
        urls = [f"http://127.0.0.1:{int(p.stdout.readline())}" for p in procs]
        for i, url in enumerate(urls):
            for _ in range(i + 2):  # 2 calls on the first process, 3 on the second
                assert requests.post(url + "/predict", json=predict_body(5), timeout=20).status_code == 200
        r = requests.post(urls[1] + "/train", json={"project": "3.1", "annotations": [{"id": 1}]}, timeout=10)
        assert r.status_code == 201
        deadline = time.time() + 20
        while requests.get(urls[1] + "/training?project=3", timeout=5).json()["status"] != "succeeded":
            assert time.time() < deadline
            time.sleep(0.05)
        scrapes = [samples(requests.get(url + "/metrics", timeout=10).text) for url in urls]
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
    assert len(list(metrics_dir.glob("*.db"))) >= 2  # each process writes its own files
    for m in scrapes:  # whichever process answers, the totals are the same
        assert value(m, "lsml_http_requests_total", route="/predict", status="200") == 5
        assert value(m, "lsml_http_request_duration_seconds_count", route="/predict", status="200") == 5
        assert value(m, "lsml_predicted_tasks_total") == 25
        assert value(m, "lsml_training_runs_total", outcome="succeeded") == 1
        assert value(m, "lsml_model_version", project="3") == 1


def test_training_counted_where_execute_finishes(tmp_path):
    """The RQ work horse is another process: execute() there writes to the shared directory."""
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    code = textwrap.dedent(
        f"""
        import importlib.util
        from label_studio_ml.settings import Settings
        from label_studio_ml.store import ModelStore
        from label_studio_ml.training import TrainRequest, execute
        spec = importlib.util.spec_from_file_location("seed_model", {str(SEED_MODEL)!r})
        module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
        store = ModelStore({str(tmp_path / "models")!r})
        req = TrainRequest(project_id="8", event="START_TRAINING", label_config={SEED_CONFIG!r}, annotations=[{{}}])
        execute(module.DummyModel, store, Settings(model_dir=store.root), req, "job-1")
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    scrape = subprocess.run(
        [sys.executable, "-c", "from label_studio_ml.metrics import Metrics; print(Metrics().render().decode())"],
        env=env, check=True, timeout=60, capture_output=True, text=True,
    ).stdout  # fmt: skip
    m = samples(scrape)
    assert value(m, "lsml_training_runs_total", outcome="succeeded") == 1
    assert value(m, "lsml_training_duration_seconds_count", outcome="succeeded") == 1
    assert Path(metrics_dir).is_dir()
