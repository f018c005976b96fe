"""Production mode against a real Redis: the API enqueues, an RQ worker process trains.

Runs when ``TEST_REDIS_URL`` names a Redis to use (CI sets it to its Redis service), e.g.
``TEST_REDIS_URL=redis://localhost:6379/0 python -m pytest``; skipped otherwise.
"""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from label_studio_ml.model import LabelStudioMLBase

from conftest import UNSET, model_class, setup_version, start_training, wait_for_new_version

BACKEND_DIR = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "")

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL is not set")


@pytest.fixture
def production(tmp_path, monkeypatch):
    """(Flask test client in production mode, the worker process) on a queue of its own."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(REDIS_URL=REDIS_URL, RQ_QUEUE_NAME=queue, MODEL_DIR=str(tmp_path / "models"))
    for key in ("REDIS_URL", "RQ_QUEUE_NAME", "MODEL_DIR"):
        monkeypatch.setenv(key, env[key])
    worker = subprocess.Popen(
        [sys.executable, "-m", "label_studio_ml", "worker", "."], cwd=BACKEND_DIR, env=env
    )
    import wsgi

    client = wsgi.make_app().test_client()
    try:
        deadline = time.monotonic() + 30
        while client.get("/health").get_json().get("workers") != 1:
            assert worker.poll() is None, "label-studio-ml worker exited"
            assert time.monotonic() < deadline, "the RQ worker did not register within 30 s"
            time.sleep(0.2)
        yield client
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_health_reports_production_with_a_worker(production):
    health = production.get("/health").get_json()
    assert health["mode"] == "production" and health["workers"] == 1
    assert "warning" not in health


def test_the_worker_trains_a_new_version(production):
    cls = model_class()
    if cls.fit is LabelStudioMLBase.fit:
        pytest.skip(f"{cls.__name__} does not define fit()")
    before = setup_version(production)
    start_training(production, cls)
    assert wait_for_new_version(production, before, timeout=60) != before
