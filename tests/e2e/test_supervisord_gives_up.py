"""uWSGI cannot bind its port: supervisord gives up after a few quick failures and says why.

The real generated supervisord.conf, the venv installed from the baked requirements.txt, and a
port already taken by another listener.
"""

from __future__ import annotations

import socket
import subprocess

import pytest

from .conftest import Deployment

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
