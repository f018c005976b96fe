"""uWSGI cannot bind its port, or cannot load the app: supervisord gives up after a few quick
failures and says why.

The real generated supervisord.conf, the venv installed from the baked requirements.txt, and a
port already taken by another listener, or a model.py whose import fails.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from .conftest import Deployment

ROOT = Path(__file__).resolve().parents[2]
DOC_BLOCK = re.compile(r"<!-- test: supervisord-gives-up -->\n```text\n(.*?)^```", re.S | re.M)

pytestmark = pytest.mark.slow


def test_port_in_use_ends_supervisord_with_the_cause(seed_backend, venv, tmp_path):
    deployment = Deployment(seed_backend, venv, "redis://127.0.0.1:6379/0")
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("0.0.0.0", deployment.port))
        taken.listen()
        proc = subprocess.run(
            [str(venv / "bin" / "supervisord"), "-c", "supervisord.conf"],
            cwd=seed_backend, env=deployment.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    output = proc.stdout + proc.stderr
    # supervisord stopped on its own (no timeout), after startretries quick failures
    assert "gave up: uwsgi entered FATAL state" in output, output
    assert output.count("spawned: 'uwsgi'") == 4, output  # the first start + startretries = 3
    # ...and its own output carries the cause, not only logs/uwsgi.log
    assert "ERROR: supervisord gave up on uwsgi" in output
    cause = [line for line in output.splitlines() if line.startswith("  uwsgi | ")]
    assert any("Address already in use" in line for line in cause), output
    assert "Stopping supervisord" in output


def test_app_that_cannot_load_ends_supervisord_with_the_python_exception(seed_backend, venv, tmp_path):
    """uWSGI logs the traceback, then ~200 lines of its own ending in "no app loaded. GAME
    OVER": supervisord's give-up message shows the exception, not only those last lines."""
    backend = tmp_path / "broken_backend"
    shutil.copytree(seed_backend, backend)
    model = backend / "model.py"
    model.write_text("import lsml_no_such_module_for_this_test  # noqa\n" + model.read_text())
    deployment = Deployment(backend, venv, "redis://127.0.0.1:6379/0")
    proc = subprocess.run(
        [str(venv / "bin" / "supervisord"), "-c", "supervisord.conf"],
        cwd=backend, env=deployment.env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert "gave up: uwsgi entered FATAL state" in output, output
    assert "ERROR: supervisord gave up on uwsgi" in output, output
    cause = [line[len("  uwsgi | ") :] for line in output.splitlines() if line.startswith("  uwsgi | ")]
    missing = "ModuleNotFoundError: No module named 'lsml_no_such_module_for_this_test'"
    assert f"(the last Python exception in the log: {missing})" in cause, output
    assert "Traceback (most recent call last):" in cause and missing in cause, output
    assert any("model.py" in line for line in cause), output  # the traceback's frames
    # the log itself ends far from the exception: the tail alone would not show it
    log_lines = [line for line in (backend / "logs" / "uwsgi.log").read_text().splitlines() if line.strip()]
    assert missing not in "\n".join(log_lines[-8:]), log_lines[-8:]
    assert "Stopping supervisord" in output
    # docs/troubleshooting.md shows these lines, in this order ("..." stands for any lines)
    block = DOC_BLOCK.search((ROOT / "docs" / "troubleshooting.md").read_text())
    assert block, "troubleshooting.md shows what supervisord prints"
    seen = output.replace(str(backend / "logs"), "/app/logs").splitlines()
    at = -1
    for line in block.group(1).splitlines():
        if line.strip() == "...":
            continue
        assert line in seen[at + 1 :], f"documented line {line!r} not printed (in order):\n{output}"
        at = seen.index(line, at + 1)
