"""Stopping a training worker: an idle one exits within 2 s of SIGTERM at any moment of its life;
a busy one finishes its run first (warm shutdown), and a second SIGTERM ends the run at once
(cold shutdown), reported failed, with the last good model still served.

The idle case broke with redis-py 8.2 (rq's command listener slept 60 s before it looked at
its stop flag): see label_studio_ml/worker.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from .conftest import SEED_CONFIG, load_class
from .test_production import MODEL, PROJECT, REDIS_URL, _redis_up, annotated, wait_for

pytestmark = pytest.mark.skipif(
    not _redis_up(), reason=f"no Redis at {REDIS_URL} (scripts/ensure_redis.sh starts one)"
)

STOP_BOUND_S = 2.0


def _start_worker(directory: Path, tmp_path: Path, queue: str, **extra: str):
    env = {
        **os.environ,
        "MODEL_DIR": str(tmp_path / "models"),
        "REDIS_URL": REDIS_URL,
        "RQ_QUEUE_NAME": queue,
        "LOG_LEVEL": "INFO",
        **extra,
    }
    log_path = tmp_path / f"worker-{uuid.uuid4().hex[:6]}.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "label_studio_ml", "worker", str(directory)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return proc, log_path


def _stop_time(proc: subprocess.Popen) -> float:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return float("inf")
    return time.monotonic() - t0


def _cleanup(queue: str) -> None:
    conn = redis.Redis.from_url(REDIS_URL)
    for key in conn.scan_iter(f"*{queue}*"):
        conn.delete(key)


# the moments of an idle worker's life at which it is stopped: a line of its log, or a delay
MOMENTS = [
    ("while Python imports", None, 0.3),
    ("as it registers", "started with PID", 0.0),
    ("as it subscribes to rq's commands", "subscribing to channel", 0.0),
    ("right after it subscribed", "subscribing to channel", 0.05),
    ("as it starts listening on its queue", "Listening on", 0.0),
    ("idle for 3 s", "Listening on", 3.0),
]


@pytest.mark.parametrize("what, line, delay", MOMENTS, ids=[m[0] for m in MOMENTS])
def test_idle_worker_stops_within_2_s_of_sigterm(tmp_path, what, line, delay):
    directory = tmp_path / "backend"
    directory.mkdir()
    queue = f"lsml-stop-{uuid.uuid4().hex[:8]}"
    proc, log_path = _start_worker(directory, tmp_path, queue)
    try:
        if line is not None:
            wait_for(lambda: line.lower() in log_path.read_text().lower(), 30, f"{line!r} in the log")
        time.sleep(delay)
        took = _stop_time(proc)
        log = log_path.read_text()
        assert took < STOP_BOUND_S, f"stopped {what}: took {took:.2f} s\n{log}"
        assert proc.returncode in (0, -signal.SIGTERM), log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        _cleanup(queue)


@pytest.fixture
def busy(tmp_path: Path, serve):
    """A worker inside a gated fit(), after a first good version was trained and served."""
    directory = tmp_path / "backend"
    cls = load_class(directory, MODEL, "Slow", f"stopmodel_{uuid.uuid4().hex[:8]}")
    queue = f"lsml-busy-{uuid.uuid4().hex[:8]}"
    gate = tmp_path / "gate"
    gate.mkdir()
    os.environ["LSML_TEST_GATE"] = str(gate)
    proc, log_path = _start_worker(directory, tmp_path, queue, LSML_TEST_GATE=str(gate))
    server = serve(cls, model_dir=str(tmp_path / "models"), redis_url=REDIS_URL, rq_queue_name=queue)
    server.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG})
    # a first run that succeeds: the "last good model"
    (gate / "open").write_text("1")
    assert (
        server.post("/train", json={"annotations": annotated("Airbus"), "project": PROJECT}).status_code
        == 201
    )
    good = wait_for(
        lambda: (lambda s: s if s["status"] == "succeeded" else None)(
            server.get("/training?project=21").json()
        ),
        30,
        "the first run",
    )["served_version"]
    # a second run, held inside fit()
    (gate / "open").unlink()
    (gate / "started").unlink()
    assert (
        server.post("/train", json={"annotations": annotated("Boeing"), "project": PROJECT}).status_code
        == 201
    )
    wait_for(lambda: (gate / "started").exists(), 30, "the second run's fit to start")
    yield proc, log_path, server, gate, good
    (gate / "open").write_text("1")
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)
    _cleanup(queue)


def _prediction(server) -> tuple:
    r = server.post("/predict", json={"tasks": [{"id": 1}], "project": PROJECT}).json()["results"][0]
    return r["model_version"], r["result"][0]["value"]["choices"][0]


def test_busy_worker_finishes_its_run_before_it_stops(busy):
    proc, log_path, server, gate, good = busy
    proc.send_signal(signal.SIGTERM)  # warm shutdown: supervisorctl stop, docker compose stop
    time.sleep(1.0)
    assert proc.poll() is None, "a busy worker waits for its run:\n" + log_path.read_text()
    (gate / "open").write_text("1")
    proc.wait(20)
    status = wait_for(
        lambda: (lambda s: s if s["status"] == "succeeded" and s["served_version"] != good else None)(
            server.get("/training?project=21").json()
        ),
        20,
        "the run to succeed",
    )
    assert _prediction(server) == (status["served_version"], "Boeing")


def test_second_sigterm_ends_the_run_and_the_last_good_model_serves(busy):
    proc, log_path, server, gate, good = busy
    proc.send_signal(signal.SIGTERM)
    time.sleep(1.5)  # rq ignores a second signal within 1 s of the first (a pool's duplicate)
    proc.send_signal(signal.SIGTERM)  # cold shutdown: the work horse is killed
    proc.wait(STOP_BOUND_S + 3)
    status = wait_for(
        lambda: (lambda s: s if s["status"] == "failed" else None)(server.get("/training?project=21").json()),
        60,
        "the interrupted run to be reported failed",
    )
    assert status["served_version"] == good, json.dumps(status)
    assert _prediction(server) == (good, "Airbus")


@pytest.mark.parametrize("runs", [1, 3])
def test_worker_idle_after_runs_stops_within_2_s(tmp_path, serve, runs):
    directory = tmp_path / "backend"
    cls = load_class(directory, MODEL, "Slow", f"stopmodel_{uuid.uuid4().hex[:8]}")
    queue = f"lsml-after-{uuid.uuid4().hex[:8]}"
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "open").write_text("1")
    os.environ["LSML_TEST_GATE"] = str(gate)
    proc, log_path = _start_worker(directory, tmp_path, queue, LSML_TEST_GATE=str(gate))
    try:
        server = serve(cls, model_dir=str(tmp_path / "models"), redis_url=REDIS_URL, rq_queue_name=queue)
        server.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG})
        for n in range(1, runs + 1):
            assert (
                server.post("/train", json={"annotations": annotated("A"), "project": PROJECT}).status_code
                == 201
            )

            def done(n: int = n) -> bool:
                status = server.get("/training?project=21").json()
                return status["status"] == "succeeded" and len(status["versions"]) == n

            wait_for(done, 30, f"run {n}")
        took = _stop_time(proc)
        assert took < STOP_BOUND_S, f"stopped after {runs} run(s): took {took:.2f} s\n{log_path.read_text()}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        _cleanup(queue)


def test_command_listener_stops_promptly_when_the_stop_loses_the_race():
    """The stall, made deterministic: rq's teardown unsubscribes, then stops the listener thread.
    When the thread reads the UNSUBSCRIBE reply before the stop flag is set (a loaded machine),
    it waits for a subscription that never comes; our Worker bounds that wait."""
    from label_studio_ml.worker import Worker
    from rq import Queue

    conn = redis.Redis.from_url(REDIS_URL)
    queue = f"lsml-race-{uuid.uuid4().hex[:8]}"
    worker = Worker([Queue(queue, connection=conn)], connection=conn)
    worker.subscribe()
    pubsub = worker.pubsub
    wait_for(lambda: pubsub.subscribed, 5, "the subscription")
    unsubscribe = pubsub.unsubscribe

    def unsubscribe_then_lose_the_race(*args):
        unsubscribe(*args)
        wait_for(lambda: not pubsub.subscribed_event.is_set(), 5, "the listener to read the reply")
        time.sleep(0.05)  # the listener is back in get_message, waiting for a subscription

    pubsub.unsubscribe = unsubscribe_then_lose_the_race
    t0 = time.monotonic()
    worker.unsubscribe()
    took = time.monotonic() - t0
    assert not worker.pubsub_thread.is_alive()
    assert took < STOP_BOUND_S, f"the listener took {took:.2f} s to stop"


def test_plain_rq_worker_with_our_class_as_the_docs_say(tmp_path):
    """``rq worker -c rq_settings -w label_studio_ml.worker.Worker`` (the generated README and
    docs/deployment.md) runs our Worker and stops as promptly."""
    template = Path(__file__).resolve().parents[2] / "{{cookiecutter.backend_name}}"
    (tmp_path / "rq_settings.py").write_text((template / "rq_settings.py").read_text())
    queue = f"lsml-plainrq-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "REDIS_URL": REDIS_URL, "RQ_QUEUE_NAME": queue, "PYTHONPATH": str(tmp_path)}
    log_path = tmp_path / "rq.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "rq"), "worker", "-c", "rq_settings", "-w",
             "label_studio_ml.worker.Worker"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(lambda: queue in log_path.read_text(), 30, "the worker to listen on its queue")
        conn = redis.Redis.from_url(REDIS_URL)
        from label_studio_ml.worker import Worker
        from rq import Queue

        workers = Worker.all(queue=Queue(queue, connection=conn))
        assert len(workers) == 1
        took = _stop_time(proc)
        assert took < STOP_BOUND_S, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        _cleanup(queue)
