#!/usr/bin/env python3
"""Production mode under the generated supervisord.conf: /predict latency idle vs during
training, and the delay from a job's end to the new version being served.

Bakes tests/e2e/data/slow_model.py, installs it into a virtual environment from its own
requirements.txt (kept in --venv between runs), and runs ``supervisord -c supervisord.conf``
(uWSGI + one RQ worker at the default niceness) against Redis, with docker-compose's env.
Rounds alternate idle and training (a CPU-bound ``fit``); a keep-alive Python client
(--clients threads) drives /predict. Medians of the rounds' p50/p99 are reported with ratios.

The version delay is measured per training round: a thread polls /setup and /predict every
few ms; delay = first answer carrying the new version minus the version's ``ended_at``
(meta.json, written by the worker as fit returns).

Usage: .venv/bin/python bench/bench_production.py [--rounds 3] [--duration 5] [--clients 4]
Needs: Redis on 127.0.0.1:6379 (or --redis-url).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests" / "e2e" / "data" / "slow_model.py"
CONFIG = (
    '<View><Text name="text" value="$text"/><Choices name="label" toName="text">'
    '<Choice value="pos"/><Choice value="neg"/></Choices></View>'
)
PROJECT = "1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bake(workdir: Path) -> Path:
    from cookiecutter.main import cookiecutter

    out = cookiecutter(
        str(ROOT),
        no_input=True,
        output_dir=str(workdir),
        extra_context={
            "backend_name": "bench_backend",
            "script": str(MODEL),
            "_runtime_requirement": f"lsml-runtime @ file://{ROOT / 'runtime'}",
        },
    )
    return Path(out)


def ensure_venv(path: Path, backend: Path) -> Path:
    if not (path / "bin" / "supervisord").is_file():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    # the runtime is reinstalled from the working tree every run (it is what is measured)
    subprocess.run(
        [str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--force-reinstall", "--no-deps", "-r", "requirements.txt"],
        cwd=backend, check=True,
    )  # fmt: skip
    subprocess.run(
        [str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-r", "requirements.txt"],
        cwd=backend, check=True,
    )  # fmt: skip
    return path


class Client:
    """--clients threads, each with a keep-alive session, posting /predict for ``seconds``."""

    def __init__(self, url: str, clients: int) -> None:
        self.url, self.clients = url, clients
        self.body = {
            "project": f"{PROJECT}.1719830400",
            "label_config": CONFIG,
            "tasks": [{"id": i, "data": {"text": f"task {i}"}} for i in range(4)],
        }

    def run(self, seconds: float):
        latencies, errors = [], [0]
        deadline = time.monotonic() + seconds

        def loop():
            session = requests.Session()
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    ok = session.post(self.url + "/predict", json=self.body, timeout=30).status_code == 200
                except requests.RequestException:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors[0] += 1

        threads = [threading.Thread(target=loop) for _ in range(self.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return latencies, errors[0]


def watch_versions(url: str, stop: threading.Event, seen: dict) -> None:
    """First wall-clock time each version is answered by /setup and by /predict."""
    session = requests.Session()
    body = {"project": PROJECT, "tasks": [{"data": {"text": "x"}}], "label_config": CONFIG}
    while not stop.is_set():
        try:
            answer = session.post(url + "/setup", json={"project": PROJECT}, timeout=5).json()
            seen.setdefault(("setup", answer["model_version"]), time.time())
            version = session.post(url + "/predict", json=body, timeout=5).json()["model_version"]
            seen.setdefault(("predict", version), time.time())
        except (requests.RequestException, ValueError, KeyError):
            pass
        time.sleep(0.005)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--venv", default=str(Path(tempfile.gettempdir()) / "lsml-bench-production-venv"))
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="lsml-bench-production-"))
    backend = bake(workdir)
    venv = ensure_venv(Path(args.venv), backend)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        MODEL_DIR=str(backend / "data" / "models"),
        REDIS_URL=args.redis_url,
        RQ_QUEUE_NAME=f"bench-{uuid.uuid4().hex[:8]}",
        PORT=str(port),
        LOG_LEVEL="WARNING",
    )
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(venv / "bin" / "supervisord"), "-c", "supervisord.conf"],
        cwd=backend, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    session = requests.Session()
    try:
        while True:
            try:
                if session.get(url + "/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() - started > 60 or proc.poll() is not None:
                raise SystemExit("supervisord did not serve /health within 60 s")
            time.sleep(0.02)
        cold = time.monotonic() - started
        session.post(url + "/setup", json={"project": f"{PROJECT}.1719830400", "schema": CONFIG})
        client = Client(url, args.clients)
        client.run(1.0)  # warm-up: both uWSGI processes built the model

        rows = {"idle": [], "training": []}
        delays = {"setup": [], "predict": []}
        errors = 0
        for _ in range(args.rounds):
            lat, err = client.run(args.duration)
            rows["idle"].append(lat)
            errors += err

            seen: dict = {}
            stop = threading.Event()
            watcher = threading.Thread(target=watch_versions, args=(url, stop, seen), daemon=True)
            watcher.start()
            job = session.post(
                url + "/webhook",
                json={"action": "START_TRAINING", "project": {"id": int(PROJECT)},
                      "fit_seconds": args.duration + 1.5, "burn": True},
            ).json()  # fmt: skip
            while session.get(url + f"/training?project={PROJECT}").json().get("status") != "running":
                time.sleep(0.02)
            lat, err = client.run(args.duration)
            rows["training"].append(lat)
            errors += err
            while True:
                status = session.get(url + f"/training?project={PROJECT}").json()
                if status.get("job_id") == job["job_id"] and status["status"] in ("succeeded", "failed"):
                    break
                time.sleep(0.02)
            time.sleep(1.0)
            stop.set()
            watcher.join(5)
            version = status["version"]
            meta_file = backend / "data" / "models" / PROJECT / "versions" / version / "meta.json"
            meta = json.loads(meta_file.read_text())
            for route in delays:
                if (route, version) in seen:
                    delays[route].append(seen[(route, version)] - meta["ended_at"])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)

    def med(kind, q):
        return statistics.median(pct(lat, q) for lat in rows[kind]) * 1000

    def rps(kind):
        return statistics.median(len(lat) / args.duration for lat in rows[kind])

    print(f"supervisord deployment (uWSGI 2 processes x 4 threads + 1 RQ worker), {os.cpu_count()} CPUs")
    print(f"cold start (supervisord start -> /health 200): {cold:.2f} s")
    print(
        f"/predict (4 tasks), {args.clients} keep-alive clients, "
        f"{args.rounds} rounds x {args.duration:.0f} s:"
    )
    print(f"{'':10} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    for kind in ("idle", "training"):
        print(f"{kind:10} {med(kind, 0.5):8.2f} {med(kind, 0.99):8.2f} {rps(kind):8.0f}")
    print(
        f"ratio training/idle: p50 x{med('training', 0.5) / med('idle', 0.5):.2f}, "
        f"p99 x{med('training', 0.99) / med('idle', 0.99):.2f}, "
        f"throughput x{rps('training') / rps('idle'):.2f}"
    )
    print(f"failed requests: {errors}")
    for route, values in delays.items():
        if values:
            print(
                f"job end -> new version on /{route}: median {statistics.median(values) * 1000:.0f} ms, "
                f"max {max(values) * 1000:.0f} ms (target <= 1000 ms; {len(values)} runs)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
