"""process.setup_process: once per process, first call wins, each effect as documented.

Each case runs in a fresh interpreter: what it sets belongs to the whole process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading

import pytest
from label_studio_ml import process


def run_fresh(code: str, tmp_path, **env: str) -> dict:
    """Run ``code`` in a new interpreter; it prints one JSON object as its last line."""
    full = {"PATH": "/usr/bin:/bin", "MODEL_DIR": str(tmp_path / "models"), **env}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


SETUP_STATE = """
    import gc, json, logging
    from label_studio_ml import process

    def state():
        root = logging.getLogger()
        return {
            "role": process.process_role(),
            "frozen": gc.get_freeze_count(),
            "handlers": len(root.handlers),
            "format": root.handlers[0].formatter._fmt if root.handlers else None,
            "level": logging.getLogger("label_studio_ml").level,
        }
"""


def test_the_first_app_sets_up_a_process_nobody_set_up(tmp_path):
    result = run_fresh(
        SETUP_STATE
        + """
    from label_studio_ml import create_app, LabelStudioMLBase
    class M(LabelStudioMLBase):
        pass
    before = state()
    create_app(M)
    first = state()
    create_app(M)  # a second app changes nothing of the process
    print(json.dumps([before, first, state()]))
    """,
        tmp_path,
        LOG_LEVEL="WARNING",
    )
    before, first, second = result
    assert before["role"] is None and before["frozen"] == 0 and before["handlers"] == 0
    assert first["role"] == "api" and first["frozen"] > 1000
    assert first["handlers"] == 1 and first["format"] == process.LOG_FORMAT and first["level"] == 30
    assert second == first


def test_an_entry_points_setup_wins_over_create_app(tmp_path):
    result = run_fresh(
        SETUP_STATE
        + """
    from label_studio_ml import create_app, setup_process, LabelStudioMLBase
    from label_studio_ml.settings import Settings
    first = setup_process(Settings(log_level="ERROR"), role="worker")
    again = setup_process(Settings(log_level="DEBUG"), role="api")
    class M(LabelStudioMLBase):
        pass
    create_app(M)
    print(json.dumps([first, again, state()]))
    """,
        tmp_path,
    )
    first, again, after = result
    assert (first, again) == (True, False)
    # a worker does not freeze; the app built later does not make it an API process
    assert after["role"] == "worker" and after["frozen"] == 0 and after["level"] == 40


def test_setup_keeps_a_root_handler_the_user_installed(tmp_path):
    result = run_fresh(
        SETUP_STATE
        + """
    logging.basicConfig(format="mine %(message)s")
    process.setup_process(role="api")
    print(json.dumps(state()))
    """,
        tmp_path,
    )
    assert result["handlers"] == 1 and result["format"] == "mine %(message)s" and result["level"] == 20


def test_metric_files_are_named_after_the_uwsgi_worker_slot(tmp_path):
    """Under uWSGI (a stand-in module here), samples go to files named after the worker slot."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    result = run_fresh(
        """
    import json, os, sys, types
    uwsgi = types.ModuleType("uwsgi")
    uwsgi.worker_id = lambda: 2
    uwsgi.masterpid = lambda: 4242
    sys.modules["uwsgi"] = uwsgi
    from label_studio_ml import process
    from label_studio_ml.metrics import Metrics
    process.setup_process(role="api")
    Metrics().predicted(3)
    print(json.dumps(sorted(os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]))))
    """,
        tmp_path,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    assert result == ["counter_uwsgi4242-2.db"]


def test_setup_refuses_an_unknown_role():
    with pytest.raises(ValueError, match="the role is one of api, worker"):
        process.setup_process(role="scheduler")


def test_builds_lower_the_switch_interval_while_any_runs():
    before = sys.getswitchinterval()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = []

    def build(entered, leave):
        with process.responsive():
            entered.set()
            seen.append(sys.getswitchinterval())
            leave.wait(5)

    second_out = threading.Event()
    a = threading.Thread(target=build, args=(first_in, first_out))
    b = threading.Thread(target=build, args=(second_in, second_out))
    a.start()
    first_in.wait(5)
    b.start()
    second_in.wait(5)
    first_out.set()
    a.join(5)
    assert sys.getswitchinterval() == min(before, process.BUILD_SWITCH_INTERVAL), "one build still runs"
    second_out.set()
    b.join(5)
    assert seen == [min(before, process.BUILD_SWITCH_INTERVAL)] * 2
    assert sys.getswitchinterval() == before
