"""The generated uwsgi.ini recycles workers without failing a request.

Real uWSGI serves a baked backend with the generated uwsgi.ini; only ``max-requests`` (with its
per-worker delta) or ``reload-on-rss``, and uWSGI's ``min-worker-lifetime``, are lowered so
that a short test sees several recycles. Keep-alive clients send at least 500 /predict
requests meanwhile, and go on until workers were recycled twice (at most 5000): every request
must get its 200 with one result per task, and the workers must have been replaced. The
Prometheus sample files stay at two per worker slot however often workers are recycled, and
the request counter goes on across recycles.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

VENV_BIN = Path(sys.executable).parent
CONFIG = (
    '<View><Image name="image" value="$image"/><Choices name="choice" toName="image">'
    '<Choice value="Boeing"/><Choice value="Airbus"/></Choices></View>'
)


def _setting(text: str, key: str) -> str:
    match = re.search(rf"^{re.escape(key)} = (.+)$", text, flags=re.M)
    assert match, f"uwsgi.ini has no '{key} = ...' line"
    return match.group(1).strip()


@pytest.fixture(params=["max-requests", "reload-on-rss"])
def recycling_uwsgi(request, bake, seed_script, free_port, tmp_path):
    """The generated uwsgi.ini with one limit lowered: every 40 requests, or RSS over 1 MB
    (that is, after every request once a worker has lived ``min-worker-lifetime``)."""
    result = bake(script=f"{seed_script}:DummyModel")
    assert result.exit_code == 0, result.exception
    root = Path(result.project_path)
    ini = root / "uwsgi.ini"
    text = ini.read_text()
    # what the template ships: both limits on, a mercy as long as the router's timeout
    assert int(_setting(text, "max-requests")) > 0 and int(_setting(text, "reload-on-rss")) > 0
    assert _setting(text, "worker-reload-mercy") == _setting(text, "http-timeout")
    assert _setting(text, "lazy-apps") == "true" and _setting(text, "master") == "true"
    if request.param == "max-requests":
        text = re.sub(r"^max-requests = .*$", "max-requests = 40", text, flags=re.M)
        text = re.sub(r"^max-requests-delta = .*$", "max-requests-delta = 10", text, flags=re.M)
    else:
        text = re.sub(r"^reload-on-rss = .*$", "reload-on-rss = 1", text, flags=re.M)
    text = text.replace("http = :%(_)", "http = 127.0.0.1:%(_)")  # loopback only
    ini.write_text(text + "min-worker-lifetime = 1\n")
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_", "BASIC_AUTH_", "LABEL_STUDIO_", "PYTEST_", "PROMETHEUS"))
    }
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PORT=str(port),
        MODEL_DIR=str(tmp_path / "models"),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        LOG_LEVEL="WARNING",
    )
    log = tmp_path / "uwsgi.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "uwsgi"), "--ini", "uwsgi.ini"],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/health", timeout=2).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"uWSGI did not come up:\n{log.read_text()}")
            time.sleep(0.2)
        yield url, log, metrics_dir
    finally:
        proc.send_signal(signal.SIGTERM)  # die-on-term: the master stops its workers
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _worker_pids(log_text: str) -> list:
    spawned = re.findall(r"spawned uWSGI worker \d+ \(pid: (\d+)", log_text)
    respawned = re.findall(r"Respawned uWSGI worker \d+ \(new pid: (\d+)\)", log_text)
    return [int(p) for p in spawned + respawned]


def test_workers_recycle_and_no_request_fails(recycling_uwsgi):
    url, log, metrics_dir = recycling_uwsgi
    first = set(_worker_pids(log.read_text()))
    assert len(first) == 2, log.read_text()
    least, most, clients = 500, 5000, 4
    failures: list = []
    done = [0]
    lock = threading.Lock()
    enough = threading.Event()

    def client(seed: int) -> None:
        with requests.Session() as http:  # keep-alive, like Label Studio's
            i = 0
            while not enough.is_set():
                i += 1
                n = 1 + (seed * 7 + i) % 20
                tasks = [{"id": k, "data": {"image": f"https://example.com/{k}.jpg"}} for k in range(n)]
                try:
                    r = http.post(
                        url + "/predict",
                        json={"tasks": tasks, "project": "1.1700000000", "label_config": CONFIG},
                        timeout=60,
                    )
                    ok = r.status_code == 200 and len(r.json()["results"]) == n
                    outcome = f"{r.status_code} {r.text[:200]}"
                except requests.RequestException as exc:
                    ok, outcome = False, repr(exc)
                with lock:
                    done[0] += 1
                    if not ok:
                        failures.append(f"client {seed} request {i}: {outcome}")
                    if done[0] >= most:
                        enough.set()

    def recycled_pids() -> list:
        return re.findall(r"The work of process (\d+) is done", log.read_text())

    threads = [threading.Thread(target=client, args=(s,)) for s in range(clients)]
    for t in threads:
        t.start()
    # at least 500 requests, and on until workers were recycled twice: on a fast machine 500
    # requests may all come before a worker's RSS is first found over the limit
    while not enough.is_set():
        if done[0] >= least and len(recycled_pids()) >= 2:
            enough.set()
        enough.wait(0.2)
    for t in threads:
        t.join(300)
    assert done[0] >= least
    assert failures == []

    text = log.read_text()
    recycled = re.findall(r"The work of process (\d+) is done", text)
    assert len(recycled) >= 2, text[-3000:]
    assert set(int(p) for p in recycled) & first, "none of the first workers was recycled"
    assert len(set(_worker_pids(text))) >= 4

    # the counters went on across recycles, from two files per worker slot
    metrics = requests.get(url + "/metrics", timeout=10).text
    served = re.search(
        r'lsml_http_requests_total\{method="POST",route="/predict",status="200"\} (\S+)', metrics
    )
    assert served and float(served.group(1)) == done[0]
    files = sorted(p.name for p in metrics_dir.glob("*.db"))
    slots = {re.sub(r"^[a-z]+_", "", name) for name in files}
    assert len(slots) <= 2 + 1, files  # two worker slots (+ the master's, if it wrote at all)
