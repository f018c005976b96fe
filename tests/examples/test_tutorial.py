"""docs/tutorial.md, run for real: every marked block, in order, in a fresh directory.

Markers (an HTML comment on the line before a fenced block):

* ``<!-- test: run -->``: a bash block that must exit 0;
* ``<!-- test: file NAME -->``: a block written to NAME;
* ``<!-- test: serve -->``: a long-running server, started in the background; the test waits for
  ``/health`` and stops it at the end;
* ``<!-- test: compose -->``: ``docker-compose up``. There is no Docker engine here, so the test
  validates the generated ``docker-compose.yml`` against the Compose specification instead;
* ``<!-- test: checkout REASON -->``: ``git clone`` of the template repository. There is no
  network here but PyPI, so the test makes the same directory from this working tree (its
  tracked and untracked files, what a clone of it holds plus uncommitted work);
* ``<!-- test: skip REASON -->``: not run (Label Studio's own commands; tests/labelstudio runs a
  real Label Studio).

Every bash block must carry a marker. The commands run as written, except that port 9090 becomes
a free port. The runtime is installed into a new virtualenv in the temporary directory with the
tutorial's own ``pip install``; nothing else of this working tree is on the path.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial.md"
BLOCK = re.compile(r"(?:<!-- test: (\w+)(?: ([^>]*?))? -->\n)?```(\w+)\n(.*?)^```", re.S | re.M)
CLONE = "git clone https://github.com/org/lsml-template"


def checkout(target: Path) -> None:
    """What ``git clone`` of this repository makes: its tracked and untracked (not ignored) files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def blocks():
    """[(marker, argument, language, body)] of the tutorial's fenced blocks, in order."""
    return [(m[0], m[1].strip(), m[2], m[3]) for m in BLOCK.findall(TUTORIAL.read_text())]


def test_every_bash_block_is_marked():
    found = blocks()
    assert any(marker == "run" for marker, *_ in found)
    for marker, argument, language, body in found:
        if language == "bash":
            assert marker in ("run", "serve", "compose", "skip", "checkout"), f"unmarked bash block:\n{body}"
        if marker in ("skip", "checkout"):
            assert argument, f"a skipped block needs a reason:\n{body}"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_tutorial_commands_run(tmp_path):
    port = str(free_port())
    work = tmp_path / "tutorial"
    work.mkdir()
    venv_bin = work / ".venv" / "bin"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_", "BASIC_AUTH_", "LABEL_STUDIO_", "PYTEST_", "VIRTUAL_ENV", "MODEL_DIR"))
    }
    env.update(
        PATH=f"{venv_bin}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(work / ".venv"), PYTHONNOUSERSITE="1"
    )
    server = None
    outputs, skipped = [], []
    try:
        for marker, argument, _, body in blocks():
            body = body.replace("9090", port)
            if marker == "checkout":
                assert body.strip() == CLONE, body
                checkout(work / "lsml-template")
            elif marker == "file":
                (work / argument).write_text(body)
            elif marker == "run":
                proc = subprocess.run(
                    ["bash", "-e", "-c", body], cwd=work, env=env, capture_output=True, text=True, timeout=600
                )
                assert proc.returncode == 0, f"{body}\nexited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
                outputs.append(proc.stdout)
            elif marker == "serve":
                log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed in finally
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
            elif marker == "compose":
                assert body.split() == ["cd", "my_backend/", "docker-compose", "up"], body
                compose = work / "my_backend" / "docker-compose.yml"
                check = Path(sys.executable).parent / "check-jsonschema"
                proc = subprocess.run(
                    [str(check), "--builtin-schema", "vendor.compose-spec", str(compose)],
                    capture_output=True,
                    text=True,
                )
                assert proc.returncode == 0, proc.stdout + proc.stderr
            elif marker == "skip":
                skipped.append(argument)

        # What the commands printed: the seed's DummyModel answered and trained.
        text = "\n".join(outputs)
        assert '"status":"UP"' in text and '"model_class":"DummyModel"' in text
        assert '"choices":["Boeing"]' in text
        status = requests.get(f"http://127.0.0.1:{port}/training", params={"project": "1"}, timeout=5).json()
        assert status["status"] == "succeeded", status
        version_dirs = list((work / "my_backend" / "data" / "models" / "1" / "versions").iterdir())
        assert [p.name for p in version_dirs] == [status["version"]]
        assert (work / "my_backend" / "model.py").read_text() == (work / "model.py").read_text()
        assert skipped, "expected the Label Studio commands to be the only skipped blocks"
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=10)
