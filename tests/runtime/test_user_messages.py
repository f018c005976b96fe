"""What the runtime tells the user, in the words of what they set or typed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from label_studio_ml.settings import ENV_VARS, Settings, SettingsError

from .test_startup_checks import SEED_CONFIG, _free_port, backend_dir, cli, dev_env


@pytest.mark.parametrize("name", ["MAX_REQUEST_MB", "RQ_JOB_TIMEOUT"])
@pytest.mark.parametrize("raw", ["0", "-1", "lots"])
def test_positive_number_error_gives_the_variables_own_default_as_example(name, raw):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({name: raw})
    message = str(info.value)
    assert message == f"{name}={raw!r} is not valid: use a positive whole number (e.g. {ENV_VARS[name][0]})"
    if name == "MAX_REQUEST_MB":
        assert "3600" not in message and "(e.g. 100)" in message


def test_redis_host_alone_is_named_as_the_source():
    settings = Settings.from_env({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": "6380"})
    assert settings.redis_url == "redis://127.0.0.1:6380/0" and settings.redis_from == "REDIS_HOST"
    assert Settings.from_env({"REDIS_URL": "redis://h:1/0", "REDIS_HOST": "x"}).redis_from == "REDIS_URL"


def test_start_help_shows_default_host_and_port():
    env = {k: v for k, v in dev_env().items() if k not in ("HOST", "PORT")}
    out = subprocess.run(
        [sys.executable, "-m", "label_studio_ml", "start", "--help"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    flat = " ".join(out.split())
    assert "(default: 127.0.0.1, from $HOST or 127.0.0.1)" in flat, out
    assert "(default: 9090, from $PORT or 9090)" in flat, out


def test_relative_model_dir_is_relative_to_the_backend_folder(tmp_path: Path):
    """docs/runtime.md: a relative MODEL_DIR is taken from the backend folder, wherever
    ``label-studio-ml start`` runs (start, worker and uWSGI all work in that folder)."""
    directory = backend_dir(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = _free_port()
    env = dev_env(MODEL_DIR="relative/models")
    proc = cli(
        "start", str(directory), "--port", str(port),
        env=env, cwd=elsewhere, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(url + "/health", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, "the backend did not start"
                time.sleep(0.2)
        r = requests.post(url + "/setup", json={"project": "4.1700000000", "schema": SEED_CONFIG}, timeout=10)
        assert r.status_code == 200, r.text
    finally:
        proc.terminate()
        proc.wait(10)
    assert (directory / "relative" / "models" / "4").is_dir()
    assert not (elsewhere / "relative").exists()
