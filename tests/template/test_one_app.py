"""Development and production serve the same app: the backend's ``config.json`` reaches the model
under uWSGI (``wsgi:app``) exactly as under ``label-studio-ml start``, which builds one app."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests

from ..support import clean_env

MODEL = """
from label_studio_ml.model import LabelStudioMLBase


class Thresh(LabelStudioMLBase):
    def __init__(self, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.threshold = threshold

    def predict(self, tasks, **kwargs):
        return [{"result": [], "score": self.threshold} for _ in tasks]
"""


def _serve(cmd, cwd, env, port):
    """Start ``cmd``; the score it predicts, and everything it printed."""
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{url}/health", timeout=2)
                break
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or a loaded machine
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{cmd} did not come up:\n{proc.communicate(timeout=10)[0]}")
                time.sleep(0.2)
        answer = requests.post(f"{url}/predict", json={"tasks": [{"id": 1, "data": {}}]}, timeout=10)
        assert answer.status_code == 200, answer.text
        score = answer.json()["results"][0]["score"]
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    return score, out


def test_config_json_reaches_the_model_under_uwsgi_and_start(bake, tmp_path, free_port, tool):
    script = tmp_path / "src" / "model.py"
    script.parent.mkdir()
    script.write_text(MODEL)
    result = bake(script=str(script))
    assert result.exit_code == 0, result.exception
    root = result.project_path
    (root / "config.json").write_text(json.dumps({"threshold": 0.25}))
    env = clean_env(MODEL_DIR=str(tmp_path / "models"))

    port = free_port()
    score, out = _serve([tool("uwsgi"), "--ini", "uwsgi.ini"], root, {**env, "PORT": str(port)}, port)
    assert score == 0.25, f"uWSGI's wsgi:app ignored config.json\n{out}"

    port = free_port()
    score, out = _serve([tool("label-studio-ml"), "start", ".", "--port", str(port)], root, env, port)
    assert score == 0.25
    assert out.count("app for Thresh built") == 1, f"start must build one app\n{out}"

    port = free_port()
    cmd = [sys.executable, "wsgi.py", "--port", str(port), "--with", "threshold=0.75"]
    score, out = _serve(cmd, root, env, port)
    assert score == 0.75, "the command line wins over config.json"
    assert out.count("app for Thresh built") == 1, f"python wsgi.py must build one app\n{out}"
    assert "model arguments: threshold" in out


def test_a_broken_config_json_is_named(bake, tmp_path, free_port, tool):
    result = bake()
    root = result.project_path
    (root / "config.json").write_text("{not json")
    out = subprocess.run(
        [tool("label-studio-ml"), "start", ".", "--port", str(free_port())],
        cwd=root, env=clean_env(MODEL_DIR=str(tmp_path / "models")), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert "config.json is not readable JSON" in out.stderr and "Traceback" not in out.stderr
