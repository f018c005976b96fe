"""docs/migrating.md, run for real: its marked blocks, in order, in a fresh directory (the
markers of docs/tutorial.md, see test_tutorial.py): an upstream-style model folder becomes a
backend whose tests include the folder's own, and which serves."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from .test_tutorial import BLOCK, CLONE, checkout, free_port

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "migrating.md"


def blocks():
    return [(m[0], m[1].strip(), m[2], m[3]) for m in BLOCK.findall(PAGE.read_text())]


def test_every_bash_block_is_marked():
    found = blocks()
    for marker, argument, language, body in found:
        if language == "bash":
            assert marker in ("run", "serve", "skip", "checkout"), f"unmarked bash block:\n{body}"
        if marker in ("skip", "checkout"):
            assert argument, body
    assert [a for m, a, *_ in found if m == "file"][:2] == ["sentiment/model.py", "sentiment/scoring.py"]


@pytest.mark.slow
def test_migration_commands_run(tmp_path):
    port = str(free_port())
    work = tmp_path / "migrating"
    work.mkdir()
    venv_bin = work / ".venv" / "bin"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_", "BASIC_AUTH_", "LABEL_STUDIO_", "PYTEST_", "VIRTUAL_ENV", "MODEL_"))
    }
    env.update(
        PATH=f"{venv_bin}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(work / ".venv"), PYTHONNOUSERSITE="1"
    )
    server = None
    outputs = []
    try:
        for marker, argument, _, body in blocks():
            body = body.replace("9090", port)
            if marker == "checkout":
                assert body.strip() == CLONE, body
                checkout(work / "lsml-template")
            elif marker == "file":
                (work / argument).parent.mkdir(parents=True, exist_ok=True)
                (work / argument).write_text(body)
            elif marker == "run":
                proc = subprocess.run(
                    ["bash", "-e", "-c", body], cwd=work, env=env, capture_output=True, text=True, timeout=600
                )
                assert proc.returncode == 0, f"{body}\nexited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
                outputs.append(proc.stdout + proc.stderr)
            elif marker == "serve":
                log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed with the process
                server = subprocess.Popen(
                    ["bash", "-c", "exec " + body.strip()],
                    cwd=work,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                deadline = time.monotonic() + 30
                while True:
                    try:
                        requests.get(f"http://127.0.0.1:{port}/health", timeout=1)
                        break
                    except requests.ConnectionError:
                        if server.poll() is not None or time.monotonic() > deadline:
                            pytest.fail(f"{body} did not serve:\n{(tmp_path / 'server.log').read_text()}")
                        time.sleep(0.2)
        text = "\n".join(outputs)
        # what the page says the bake prints
        assert "Brought from " in text and ": scoring.py, tests/model_tests/test_api.py, words.txt" in text
        assert "Replaced by this repo's own files: _wsgi.py" in text
        # the folder's own test ran in the generated repo, then everything; the server answered
        assert "1 passed" in text
        assert '"choices":["Negative"]' in text.replace(" ", "")
        backend = work / "my_backend"
        assert (backend / "words.txt").read_text() == (work / "sentiment" / "words.txt").read_text()
        requirements = (backend / "requirements.txt").read_text()
        assert "gunicorn" not in requirements and "label-studio-ml" not in requirements
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=10)
