#!/usr/bin/env python3
"""Heavy models: preload, memory per project, /predict while another model loads, version check.

1. Time from process start (uWSGI, 1 process x 4 threads) to the first prediction of a known
   project whose model loads for ``--load`` seconds, with and without preload: the first
   /predict sent as soon as /health answers, and the first /predict sent ``--later`` seconds after
   (Label Studio's next request after a restart or deploy).
2. RSS of one process against the number of projects (a model holding ``--mb`` MiB): unbounded
   (MAX_LIVE_MODELS=100, the old behaviour), the default bound (4), and shared weights.
3. /predict latency (p50, p99) of a loaded project, idle and while another project's model
   loads on the CPU (pure Python, holding the GIL in slices) in the same process.
4. The per-request version check: ``ModelStore.latest`` (one stat) against the old cached check.

Usage: .venv/bin/python bench/bench_heavy.py [--load 3] [--later 4] [--mb 40] [--projects 10]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from pathlib import Path

import requests

VENV_BIN = Path(sys.executable).parent
CONFIG = (
    '<View><Image name="image" value="$image"/><Choices name="choice" toName="image">'
    '<Choice value="Boeing"/><Choice value="Airbus"/></Choices></View>'
)

MODEL = """
import os, time
from label_studio_ml.model import LabelStudioMLBase

def weights():
    return bytearray(b"\\1") * (int(os.environ.get("MB", "0")) * 1024 * 1024)

class BenchModel(LabelStudioMLBase):
    def setup(self):
        seconds = float(os.environ.get("LOAD_S", "0"))
        if os.environ.get("LOAD_MODE") == "cpu":
            end = time.monotonic() + seconds
            while time.monotonic() < end:  # pure Python: holds the GIL between switches
                sum(range(1000))
        else:
            time.sleep(seconds)
        self.w = self.shared("w", weights) if os.environ.get("SHARED") == "1" else weights()

    def predict(self, tasks, **kwargs):
        region = {"from_name": "choice", "to_name": "image", "type": "choices",
                  "value": {"choices": ["Boeing"]}}
        return [{"result": [region], "score": 0.5} for _ in tasks]
"""

WSGI = """
import os
from label_studio_ml import create_app, process
from model import BenchModel

if os.environ.get("BENCH_SWITCH_INTERVAL"):  # baseline: the interpreter's default 5 ms during builds
    process.BUILD_SWITCH_INTERVAL = float(os.environ["BENCH_SWITCH_INTERVAL"])

app = create_app(BenchModel)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def body(project: str) -> dict:
    tasks = [{"id": 1, "data": {"image": "x.jpg"}}]
    return {"tasks": tasks, "project": f"{project}.1", "label_config": CONFIG}


class Server:
    """uWSGI serving the bench model from ``work`` (1 process, 4 threads, lazy-apps)."""

    def __init__(self, work: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "BASIC_AUTH_"))}
        full.update(MODEL_DIR=str(work / "models"), LOG_LEVEL="WARNING", **env)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "uwsgi"), "--http", f"127.0.0.1:{self.port}", "--module", "wsgi:app",
             "--master", "--processes", "1", "--threads", "4", "--lazy-apps", "--enable-threads",
             "--need-app", "--die-on-term", "--http-keepalive", "--disable-logging"],
            cwd=work, env=full, stdout=subprocess.DEVNULL, stderr=open(work / "uwsgi.log", "ab"),  # noqa: SIM115
        )  # fmt: skip
        self.http = requests.Session()
        while True:
            try:
                if self.http.get(self.url + "/health", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                assert self.proc.poll() is None, "uwsgi exited"
                time.sleep(0.02)
        self.up = time.monotonic()

    def worker_pid(self) -> int:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return int(out.split()[0])

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.worker_pid()}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def predict(self, project: str) -> float:
        t0 = time.perf_counter()
        r = self.http.post(self.url + "/predict", json=body(project), timeout=120)
        assert r.status_code == 200, r.text
        return time.perf_counter() - t0

    def setup(self, project: str) -> None:
        payload = {"project": f"{project}.1", "schema": CONFIG}
        r = self.http.post(self.url + "/setup", json=payload, timeout=10)
        assert r.status_code == 200, r.text

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def workdir(root: Path, name: str) -> Path:
    work = root / name
    work.mkdir()
    (work / "model.py").write_text(MODEL)
    (work / "wsgi.py").write_text(WSGI)
    return work


def bench_preload(root: Path, load: float, later: float) -> None:
    print(f"\n## 1. process start -> first prediction (model loads {load:g} s; uWSGI 1 x 4)")
    work = workdir(root, "preload")
    first = Server(work, LOAD_S=str(load), PRELOAD_MODELS="false")
    first.setup("1")
    first.predict("1")  # the store now knows project 1 (config, last use)
    first.stop()
    print(
        "| preload | start -> /health | first /predict at /health: start -> answer | /predict "
        f"{later:g} s after /health: latency |"
    )
    print("|---|---|---|---|")
    for preload in ("false", "true"):
        rows = []
        for _ in range(2):
            server = Server(work, LOAD_S=str(load), PRELOAD_MODELS=preload)
            server.predict("1")
            immediate = time.monotonic() - server.started
            health = server.up - server.started
            server.stop()
            server = Server(work, LOAD_S=str(load), PRELOAD_MODELS=preload)
            time.sleep(later)
            delayed = server.predict("1")
            server.stop()
            rows.append((health, immediate, delayed))
        med = [statistics.median(col) for col in zip(*rows)]
        print(f"| {preload} | {med[0]:.2f} s | {med[1]:.2f} s | {med[2] * 1000:.0f} ms |")


def bench_memory(root: Path, mb: int, projects: int) -> None:
    print(f"\n## 2. worker RSS (MiB) against projects (model holds {mb} MiB)")
    cases = [("unbounded (MAX_LIVE_MODELS=100)", {"MAX_LIVE_MODELS": "100"}),
             ("default (MAX_LIVE_MODELS=4)", {}),
             ("MAX_LIVE_MODELS=2", {"MAX_LIVE_MODELS": "2"}),
             ("shared weights, MAX_LIVE_MODELS=100", {"MAX_LIVE_MODELS": "100", "SHARED": "1"})]  # fmt: skip
    marks = sorted({1, 2, 3, 4, 5, projects // 2, projects})
    print("| case | base | " + " | ".join(f"{n} projects" for n in marks) + " |")
    print("|---|---|" + "---|" * len(marks))
    for i, (name, env) in enumerate(cases):
        server = Server(workdir(root, f"mem{i}"), MB=str(mb), PRELOAD_MODELS="false", **env)
        base = server.rss_mib()
        cells = []
        for n in range(1, projects + 1):
            server.setup(str(n))
            server.predict(str(n))
            if n in marks:
                cells.append(f"{server.rss_mib():.0f}")
        server.stop()
        print(f"| {name} | {base:.0f} | " + " | ".join(cells) + " |")


def bench_predict_while_loading(root: Path, load: float, mode: str, n: int = 300, **env: str) -> None:
    what = "on the CPU, pure Python" if mode == "cpu" else "sleeping: I/O or GIL-free native code"
    if env:
        what += ", " + " ".join(f"{k}={v}" for k, v in env.items())
    print(f"\n## 3. /predict of a loaded project while another project's model loads ({load:g} s, {what})")
    work = workdir(root, f"stall-{mode}-{len(env)}")
    server = Server(work, LOAD_S=str(load), LOAD_MODE=mode, PRELOAD_MODELS="false", **env)
    server.setup("1")
    server.predict("1")
    for _ in range(20):
        server.predict("1")
    idle = [server.predict("1") for _ in range(n)]
    loading, rounds = [], 0
    while len(loading) < n:
        rounds += 1
        server.setup(str(100 + rounds))  # another project: its model builds in the background
        t_end = time.monotonic() + load * 0.9
        while time.monotonic() < t_end and len(loading) < n:
            loading.append(server.predict("1"))
        server.http.get(server.url + "/health", timeout=5)
        time.sleep(load * 0.2)
    server.stop()

    def pct(xs, q):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000

    print("| state | n | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    for name, xs in (("idle", idle), ("another model loading", loading)):
        print(f"| {name} | {len(xs)} | {pct(xs, 0.5):.2f} | {pct(xs, 0.99):.2f} | {max(xs) * 1000:.1f} |")
    print(f"p99 ratio loading/idle: {pct(loading, 0.99) / pct(idle, 0.99):.2f}x ({rounds} loads)")


def bench_version_check(root: Path) -> None:
    print("\n## 4. version check per request")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime" / "src"))
    from label_studio_ml.store import ModelStore

    store = ModelStore(root / "vc")
    version, _ = store.new_version("1")
    store.commit_version("1", version, {}, {})
    assert store.latest("1") == version
    checked = {"1": time.monotonic()}

    def old_check():  # the 0.5 s interval: a clock read and a comparison, no stat
        return time.monotonic() - checked["1"] < 0.5

    path = str(store.project_dir("1") / "LATEST")
    n = 200_000
    stat = min(timeit.repeat(lambda: store.latest("1"), number=n, repeat=5)) / n * 1e6
    raw = min(timeit.repeat(lambda: os.stat(path), number=n, repeat=5)) / n * 1e6
    old = min(timeit.repeat(old_check, number=n, repeat=5)) / n * 1e6
    print(
        f"store.latest (stat per request): {stat:.2f} us (a bare os.stat: {raw:.2f} us); "
        f"old interval check: {old:.2f} us; difference {stat - old:.2f} us per request"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--load", type=float, default=3.0, help="seconds a model takes to load")
    parser.add_argument("--later", type=float, default=4.0, help="seconds after /health of the 2nd request")
    parser.add_argument("--mb", type=int, default=40, help="MiB each model holds")
    parser.add_argument("--projects", type=int, default=10)
    parser.add_argument("--only", choices=("version", "preload", "memory", "stall"), help="one part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-heavy-") as tmp:
        root = Path(tmp)
        if args.only in (None, "version"):
            bench_version_check(root)
        if args.only in (None, "preload"):
            bench_preload(root, args.load, args.later)
        if args.only in (None, "memory"):
            bench_memory(root, args.mb, args.projects)
        if args.only in (None, "stall"):
            bench_predict_while_loading(root, args.load, "sleep")
            bench_predict_while_loading(root, args.load, "cpu", BENCH_SWITCH_INTERVAL="0.005")
            bench_predict_while_loading(root, args.load, "cpu")


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
