"""``python wsgi.py`` serves the API over real HTTP (development mode)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

BACKEND_DIR = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "BASIC_AUTH_"))}
    env["MODEL_DIR"] = str(tmp_path / "models")
    proc = subprocess.Popen(
        [sys.executable, "wsgi.py", "--host", "127.0.0.1", "--port", str(port)],
        cwd=BACKEND_DIR,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{url}/health", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, "python wsgi.py exited"
                assert time.monotonic() < deadline, "python wsgi.py did not answer within 30 s"
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_health_over_http(server):
    response = requests.get(f"{server}/health", timeout=5)
    assert response.status_code == 200
    assert response.json()["status"] == "UP"
