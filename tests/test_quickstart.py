"""The README's quick start, step 1, as a user runs it: scripts/demo.sh."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_script_generates_serves_and_trains(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_HOST", "MODEL_DIR")}
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo.sh"), "--port", str(port), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "POST /predict ->" in out.stdout
    assert "OK: my_backend served predictions, trained to v1-" in out.stdout
    backend = tmp_path / "my_backend"
    for name in ("model.py", "wsgi.py", "Dockerfile", "docker-compose.yml", "supervisord.conf", "uwsgi.ini"):
        assert (backend / name).is_file(), name
    versions = list((backend / "data" / "models" / "1" / "versions").iterdir())
    assert len(versions) == 1 and (versions[0] / "train_output.json").is_file()
