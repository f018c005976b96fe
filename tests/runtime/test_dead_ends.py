"""Training dead ends end in a message: a model trained before its labeling config is known,
and a development server stopped in the middle of fit (issue 13)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import requests
from flask import Flask, jsonify, request

from .conftest import SEED_CONFIG, LiveServer, load_class
from .test_production import _free_port, wait_for
from .test_training import annotated, wait_done

SEED_NEEDS_CONFIG = """
from label_studio_ml.model import LabelStudioMLBase


class Seed(LabelStudioMLBase):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        from_name, schema = list(self.parsed_label_config.items())[0]  # the seed tutorial's line
        self.from_name, self.labels = from_name, schema["labels"]

    def predict(self, tasks, **kwargs):
        return [{"result": [{"from_name": self.from_name, "to_name": "image", "type": "choices",
                             "value": {"choices": [self.labels[0]]}}]} for _ in tasks]

    def fit(self, annotations, **kwargs):
        return {"labels": self.labels, "n": len(annotations)}
"""


def test_train_before_the_config_is_known_says_what_is_missing(serve, tmp_path):
    """The tutorial's /train example carries no label_config: on a new project that was an IndexError."""
    cls = load_class(tmp_path / "s", SEED_NEEDS_CONFIG, "Seed")
    server = serve(cls)
    r = server.post("/train", json={"annotations": annotated("Airbus"), "project": "12.1"})
    assert r.status_code == 201
    status = wait_done(server)
    assert status["status"] == "failed"
    error = status["error"]
    assert error.startswith("project 12 has no labeling config"), error
    for needed in ("'label_config'", "/setup", "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"):
        assert needed in error
    assert status["versions"] == []
    # with the config the same request trains
    server.post(
        "/train", json={"annotations": annotated("Airbus"), "project": "12.1", "label_config": SEED_CONFIG}
    )
    assert wait_done(server)["status"] == "succeeded"


def fake_label_studio(token: str, config: str | None) -> LiveServer:
    """Label Studio's project and export endpoints, checking the legacy token."""
    app = Flask("fake_ls_project")
    app.calls = []

    def authorized():
        return request.headers.get("Authorization") == f"Token {token}"

    @app.get("/api/projects/<int:pid>")
    def project(pid):
        app.calls.append(request.path)
        if not authorized():
            return jsonify({"detail": "Authentication credentials were not provided."}), 401
        return jsonify({"id": pid, "title": "p", "label_config": config})

    @app.get("/api/projects/<int:pid>/export")
    def export(pid):
        if not authorized():
            return jsonify({"detail": "no"}), 401
        return jsonify(annotated("Boeing", 3))

    return LiveServer(app)


def test_webhook_for_a_project_never_set_up_fetches_its_config(serve, tmp_path):
    cls = load_class(tmp_path / "s", SEED_NEEDS_CONFIG, "Seed")
    ls = fake_label_studio("tok-5678", SEED_CONFIG)
    try:
        server = serve(cls, label_studio_url=ls.url, label_studio_api_key="tok-5678")
        r = server.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 12}})
        assert r.status_code == 201
        status = wait_done(server)
        assert status["status"] == "succeeded", status
        assert ls.app.calls == ["/api/projects/12"]
        assert server.backend.store.train_output("12", status["version"]) == {
            "labels": ["Boeing", "Airbus"],
            "n": 3,
        }
        # the fetched config is the project's from now on: /predict needs none
        p = server.post("/predict", json={"tasks": [{"id": 1}], "project": "12.1"})
        assert p.status_code == 200 and p.json()["results"][0]["result"][0]["value"]["choices"] == ["Boeing"]
    finally:
        ls.close()


def test_webhook_config_missing_everywhere_is_named(serve, tmp_path):
    cls = load_class(tmp_path / "s", SEED_NEEDS_CONFIG, "Seed")
    ls = fake_label_studio("tok-5678", "")
    try:
        server = serve(cls, label_studio_url=ls.url, label_studio_api_key="tok-5678")
        server.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 12}})
        error = wait_done(server)["error"]
        assert error.startswith("project 12 has no labeling config (none came with the request, and "
                                "Label Studio's project has none)"), error  # fmt: skip
        # a wrong key: the message says Label Studio refused, and never shows the key
        other = serve(cls, label_studio_url=ls.url, label_studio_api_key="wrong-key-1")
        other.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 13}})
        error = wait_done(other, "13")["error"]
        assert "Label Studio could not be asked" in error and "401" in error and "wrong-key-1" not in error
    finally:
        ls.close()


GATED = """
import os
import time
from pathlib import Path
from label_studio_ml.model import LabelStudioMLBase


class Gated(LabelStudioMLBase):
    def predict(self, tasks, **kwargs):
        return [{"result": [], "score": float(self.train_output.get("n", 0))} for _ in tasks]

    def fit(self, annotations, workdir=None, **kwargs):
        gate = Path(os.environ["LSML_TEST_GATE"])
        (gate / "started").write_text(str(os.getpid()))
        (Path(workdir) / "weights.part").write_text("half")
        while not (gate / "open").exists():
            time.sleep(0.02)
        return {"n": len(annotations)}
"""

WSGI = """
import sys
from label_studio_ml import create_app
from model import Gated

if __name__ == "__main__":
    from label_studio_ml.cli import main
    main(["start", __file__, *sys.argv[1:]])
else:
    app = create_app(Gated)
"""


class DevServer:
    def __init__(self, directory: Path, env: dict) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, str(directory / "wsgi.py"), "--port", str(self.port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

        def up():
            try:
                return requests.get(f"{self.url}/health", timeout=1).ok
            except (requests.ConnectionError, requests.Timeout):
                return False

        wait_for(up, 30, "the development server")

    def training(self) -> dict:
        return requests.get(f"{self.url}/training?project=4", timeout=10).json()

    def train(self) -> dict:
        body = {"annotations": annotated("Airbus", 2), "project": "4.1", "label_config": SEED_CONFIG}
        return requests.post(f"{self.url}/train", json=body, timeout=10).json()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def test_development_server_stopped_mid_fit(tmp_path):
    directory = tmp_path / "backend"
    directory.mkdir()
    (directory / "model.py").write_text(textwrap.dedent(GATED))
    (directory / "wsgi.py").write_text(textwrap.dedent(WSGI))
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "LABEL_STUDIO_"))}
    env.update(MODEL_DIR=str(tmp_path / "models"), LSML_TEST_GATE=str(gate))
    versions = tmp_path / "models" / "4" / "versions"
    servers = [DevServer(directory, env)]
    try:
        servers[0].train()
        wait_for(lambda: (gate / "started").exists(), 30, "fit to start")
        assert servers[0].training()["status"] == "running"
        servers[0].kill()  # stopped in the middle of fit: nothing ran the failure path
        [leftover] = list(versions.iterdir())

        servers.append(DevServer(directory, env))  # the restart
        status = servers[1].training()
        assert status["status"] == "failed" and status["interrupted"] is True, status
        assert status["error"].startswith("interrupted: the development server stopped"), status
        assert not leftover.exists() and status["versions"] == []

        # stopped again; this time the next run starts before anyone looks at /training
        (gate / "started").unlink()
        servers[1].train()
        wait_for(lambda: (gate / "started").exists(), 30, "fit to start")
        servers[1].kill()
        [leftover] = list(versions.iterdir())
        (gate / "open").write_text("1")
        servers.append(DevServer(directory, env))
        job = servers[2].train()["job_id"]
        status = wait_for(lambda: (lambda s: s if s["status"] == "succeeded" else None)(servers[2].training()), 30,
                          "the new run")  # fmt: skip
        assert status["job_id"] == job
        assert [p.name for p in versions.iterdir()] == [status["version"]], "the dead run's directory is gone"
        assert (versions / status["version"] / "weights.part").is_file()
    finally:
        for server in servers:
            if server.proc.poll() is None:
                server.kill()


def test_process_tokens_name_one_process_even_after_fork_or_pid_reuse():
    import multiprocessing

    from label_studio_ml.training import process_alive, this_process

    own = this_process()
    assert process_alive(own)
    pid, _, started = own.partition(":")
    assert started, "Linux: the token carries the process start time"
    assert not process_alive(f"{pid}:{int(started) + 1}"), "same pid, another process (pid reuse)"
    ctx = multiprocessing.get_context("fork")  # uWSGI and RQ fork after importing the runtime
    with ctx.Pool(1) as pool:
        child = pool.apply(this_process)
    assert child != own and child.split(":")[0] != pid
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    assert not process_alive(f"{proc.pid}:1")
