#!/usr/bin/env python3
"""/predict throughput and latency under uWSGI: the runtime vs a bare Flask app, in one run.

The bare app parses the request JSON and answers pre-serialised bytes of the same response
(no per-task work): that is the ceiling a runtime can reach. Both run under the same uWSGI
options (``--processes 1``, no threads by default); wrk (Debian package ``wrk``) drives them
from this machine's loopback with 1 and 1000 tasks at each of ``--connections`` (1 and 8).
Rounds alternate baseline and runtime, and the medians of the rounds are reported with ratios.

Then, in production mode (Redis + a real RQ worker running a CPU-bound ``fit``), /predict p99
is measured idle and while a training run is in progress.

``--in-process`` measures instead, without sockets, the CPU time per request of the runtime,
the bare app and the model's own ``predict``: the runtime's own work is the difference.

Usage: .venv/bin/python bench/bench_predict.py [--rounds 3] [--duration 8] [--connections 1,8]
       .venv/bin/python bench/bench_predict.py --in-process
Needs: wrk on PATH, Redis on 127.0.0.1:6379 for the training part.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
CONFIG = (
    '<View><Image name="image" value="$image"/><Choices name="choice" toName="image">'
    '<Choice value="Boeing"/><Choice value="Airbus"/></Choices></View>'
)
SEED_MODEL = HERE.parent / "tests" / "template" / "data" / "seed_model.py"

BARE_APP = """
import json
from flask import Flask, Response, request

app = Flask(__name__)
CANNED = {n: open(f"canned_{n}.json", "rb").read() for n in (1, 1000)}

@app.post("/predict")
def predict():
    body = request.get_json(force=True)
    return Response(CANNED[len(body["tasks"])], mimetype="application/json")
"""

RUNTIME_APP = """
from label_studio_ml import create_app
from model import DummyModel

app = create_app(DummyModel)
"""

BUSY_MODEL_SUFFIX = """

import time as _time


class BusyModel(DummyModel):
    def fit(self, annotations, workdir=None, **kwargs):
        deadline = _time.time() + float(__import__("os").environ.get("BENCH_FIT_SECONDS", "12"))
        x = 0
        while _time.time() < deadline:  # CPU-bound, like real training
            for i in range(10000):
                x += i * i
        return {"trained": True}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def body(n: int) -> str:
    tasks = [
        {
            "id": i,
            "data": {"image": f"/data/upload/1/{i}.jpg"},
            "annotations": [],
            "predictions": [],
            "project": 1,
            "is_labeled": False,
        }
        for i in range(n)
    ]
    return json.dumps(
        {
            "tasks": tasks,
            "project": "1.1700000000",
            "label_config": CONFIG,
            "params": {"login": None, "password": None, "context": None},
        }
    )


class Uwsgi:
    def __init__(self, workdir: Path, module: str, env: dict, processes: int = 2, threads: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            str(VENV_BIN / "uwsgi"),
            "--http",
            f"127.0.0.1:{self.port}",
            "--master",
            "--processes",
            str(processes),
            *(["--threads", str(threads)] if threads > 1 else []),
            "--enable-threads",
            "--lazy-apps",
            "--module",
            module,
            "--chdir",
            str(workdir),
            "--disable-logging",
            "--post-buffering",
            "65536",
            "--buffer-size",
            "65535",
            "--die-on-term",
            "--need-app",
        ]
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the master, its workers and the HTTP router so far."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        total = 0
        for pid in [self.proc.pid, *map(int, out.split())]:
            try:
                raw = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = raw[raw.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        return total / os.sysconf("SC_CLK_TCK")

    def workers_rss_mb(self) -> list:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        rss = []
        for pid in out.split():
            status = Path(f"/proc/{pid}/status").read_text()
            match = re.search(r"VmRSS:\s+(\d+) kB", status)
            if match:
                rss.append(int(match.group(1)) / 1024)
        return rss

    def stop(self) -> None:
        self.proc.terminate()  # the master only: it stops its workers (die-on-term)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def wrk(url: str, body_file: Path, duration: int, connections: int = 4) -> dict:
    lua = body_file.with_suffix(".lua")
    lua.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body_file}", "r")\nwrk.body = f:read("*a")\nf:close()\n'
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(lua), url + "/predict"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "requests": total,
        "p50": ms("50"),
        "p99": ms("99"),
        "non2xx": int(errors.group(1)) if errors else 0,
    }


def throughput(args: argparse.Namespace, tmp: Path) -> dict:
    app_dir = tmp / "app"
    app_dir.mkdir()
    shutil.copy(SEED_MODEL, app_dir / "model.py")
    (app_dir / "wsgi.py").write_text(RUNTIME_APP)
    (app_dir / "bare.py").write_text(BARE_APP)
    env = {**os.environ, "MODEL_DIR": str(tmp / "models"), "LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    bodies = {}
    for n in (1, 1000):
        bodies[n] = tmp / f"body_{n}.json"
        bodies[n].write_text(body(n))
    # the bare app answers exactly what the runtime answers
    runtime = Uwsgi(app_dir, "wsgi:app", env)
    wait_http(runtime.url + "/health")
    for n in (1, 1000):
        req = urllib.request.Request(
            runtime.url + "/predict",
            data=bodies[n].read_bytes(),
            headers={"Content-Type": "application/json"},
        )
        (app_dir / f"canned_{n}.json").write_bytes(urllib.request.urlopen(req).read())
    runtime.stop()

    cases = [(n, c) for n in (1, 1000) for c in args.connections]
    results: dict = {case: {"bare": [], "runtime": []} for case in cases}
    rss = []
    for _ in range(args.rounds):
        for name, module in (("bare", "bare:app"), ("runtime", "wsgi:app")):
            server = Uwsgi(app_dir, module, env, args.processes, args.threads)
            _wait_port(server.port)
            time.sleep(0.5)  # lazy-apps: let the workers load the app
            for n, c in cases:
                wrk(server.url, bodies[n], 1, c)  # warm-up
                cpu = server.cpu_seconds()
                row = wrk(server.url, bodies[n], args.duration, c)
                # server CPU per request: what contention on a shared machine disturbs least
                row["cpu_us"] = (server.cpu_seconds() - cpu) / max(1, row["requests"]) * 1e6
                results[(n, c)][name].append(row)
            if name == "runtime":
                rss.extend(server.workers_rss_mb())
            server.stop()
    return {"results": results, "rss_mb": rss}


def _wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} never opened")


def during_training(args: argparse.Namespace, tmp: Path) -> dict:
    app_dir = tmp / "prod"
    app_dir.mkdir()
    (app_dir / "model.py").write_text(SEED_MODEL.read_text() + BUSY_MODEL_SUFFIX)
    (app_dir / "wsgi.py").write_text(RUNTIME_APP.replace("DummyModel", "BusyModel"))
    queue = f"bench-{os.getpid()}"
    env = {
        **os.environ,
        "MODEL_DIR": str(tmp / "prod-models"),
        "LOG_LEVEL": "WARNING",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "RQ_QUEUE_NAME": queue,
        "BENCH_FIT_SECONDS": str(args.duration + 4),
    }
    server = Uwsgi(app_dir, "wsgi:app", env)
    worker = subprocess.Popen(
        [str(VENV_BIN / "label-studio-ml"), "worker", str(app_dir), "--nice", str(args.nice)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(server.url + "/health")
        body1 = tmp / "body_1.json"
        wrk(server.url, body1, 2)
        idle, busy = [], []
        for _ in range(args.rounds):
            idle.append(wrk(server.url, body1, args.duration))
            req = urllib.request.Request(
                server.url + "/train",
                headers={"Content-Type": "application/json"},
                data=json.dumps({"annotations": [{"id": 1}], "project": "1.1"}).encode(),
            )
            urllib.request.urlopen(req)
            time.sleep(1.5)  # the worker picks the job up and starts burning CPU
            busy.append(wrk(server.url, body1, args.duration))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                status = json.load(urllib.request.urlopen(server.url + "/training?project=1"))
                if status["status"] in ("succeeded", "failed"):
                    break
                time.sleep(0.2)
        return {"idle": idle, "training": busy}
    finally:
        worker.terminate()
        worker.wait(10)
        server.stop()


def in_process(args: argparse.Namespace) -> int:
    """Per-request CPU time in this process (Flask's test client, no sockets): the runtime, the
    bare app and the model's own ``predict`` on the same parsed tasks, alternating rounds.

    The runtime's own work per request = runtime - bare - model.predict: what the runtime adds
    (checks, normalising, stamping, serialising, metrics) beyond parsing the body and sending
    pre-serialised bytes.
    """
    import importlib.util

    from flask import Flask, Response, request

    os.environ.setdefault("MODEL_DIR", tempfile.mkdtemp(prefix="lsml-bench-models-"))
    os.environ["LOG_LEVEL"] = "WARNING"
    spec = importlib.util.spec_from_file_location("bench_seed_model", SEED_MODEL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    from label_studio_ml import create_app

    app = create_app(module.DummyModel)
    ours = app.test_client()
    bodies = {n: body(n).encode() for n in (1, 1000)}
    canned = {n: ours.post("/predict", data=bodies[n], content_type="application/json").data for n in bodies}
    bare_app = Flask("bare")

    @bare_app.post("/predict")
    def _bare() -> Response:
        parsed = request.get_json(force=True)
        return Response(canned[len(parsed["tasks"])], mimetype="application/json")

    bare = bare_app.test_client()
    model, _ = app.extensions["lsml"].registry.get("1", CONFIG)
    tasks = {n: json.loads(bodies[n])["tasks"] for n in bodies}

    def per_call(fn, reps: int) -> float:
        started = time.process_time()
        for _ in range(reps):
            fn()
        return (time.process_time() - started) / reps * 1000

    def post(client, n):
        def call() -> None:
            r = client.post("/predict", data=bodies[n], content_type="application/json")
            assert r.status_code == 200, r.data

        return call

    rows: dict = {n: {"bare": [], "runtime": [], "predict": []} for n in bodies}
    for _ in range(args.rounds * 3):
        for n, reps in ((1, 2000), (1000, 100)):
            rows[n]["bare"].append(per_call(post(bare, n), reps))
            rows[n]["runtime"].append(per_call(post(ours, n), reps))
            rows[n]["predict"].append(per_call(lambda n=n: model.predict(tasks[n]), reps))
    print(f"in-process CPU ms per /predict, medians of {args.rounds * 3} alternating rounds:")
    for n in bodies:
        b, o, p = (statistics.median(rows[n][k]) for k in ("bare", "runtime", "predict"))
        print(
            f"{n:>5} tasks: bare {b:.3f}  runtime {o:.3f}  model.predict {p:.3f}  "
            f"-> the runtime's own work {o - b - p:.3f} ms"
        )
    return 0


def med(rows: list, key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--processes", type=int, default=1, help="uWSGI processes")
    parser.add_argument("--threads", type=int, default=0, help="uWSGI threads per process (0: none)")
    parser.add_argument(
        "--connections", type=lambda v: [int(x) for x in v.split(",")], default=[1, 8], help="wrk -c values"
    )
    parser.add_argument(
        "--in-process", action="store_true", help="only the in-process per-task overhead (no uWSGI, no wrk)"
    )
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--nice", type=int, default=10, help="the worker's --nice (its default is 10)")
    args = parser.parse_args()
    if args.in_process:
        return in_process(args)
    if not shutil.which("wrk"):
        print("ERROR: wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="lsml-bench-") as raw:
        tmp = Path(raw)
        data = throughput(args, tmp)
        threads = f"{args.threads} threads" if args.threads > 1 else "no threads"
        print(
            f"/predict under uWSGI ({args.processes} processes, {threads}), wrk -c{args.connections}, "
            f"{args.rounds} alternating rounds x {args.duration}s, medians:"
        )
        print(
            f"{'tasks':>6} {'conns':>5} {'bare rps':>10} {'ours rps':>10} {'ratio':>6} {'bare p50':>9}"
            f" {'ours p50':>9} {'bare p99':>9} {'ours p99':>9} {'bare cpu/req':>12} {'ours cpu/req':>12}"
            f" {'cpu ratio':>9}"
        )
        summary = {}
        for (n, c), rows in data["results"].items():
            b, o = rows["bare"], rows["runtime"]
            ratio = med(o, "rps") / med(b, "rps")
            summary[(n, c)] = ratio
            print(
                f"{n:>6} {c:>5} {med(b, 'rps'):>10.0f} {med(o, 'rps'):>10.0f} {ratio:>6.2f}"
                f" {med(b, 'p50'):>7.2f}ms {med(o, 'p50'):>7.2f}ms {med(b, 'p99'):>7.2f}ms"
                f" {med(o, 'p99'):>7.2f}ms {med(b, 'cpu_us'):>10.0f}us {med(o, 'cpu_us'):>10.0f}us"
                f" {med(b, 'cpu_us') / med(o, 'cpu_us'):>9.2f}"
            )
            pairs = [f"{x['rps']:.0f}/{y['rps']:.0f}" for x, y in zip(b, o)]
            print(f"             rps per round (bare/ours): {' '.join(pairs)}")
            errors = sum(r["non2xx"] for r in b + o)
            if errors:
                print(f"             non-2xx answers: {errors}")
        print(
            f"API worker RSS after load (MB): {', '.join(f'{x:.1f}' for x in data['rss_mb'])}"
            f" (max {max(data['rss_mb']):.1f})"
        )
        worst = {n: min(r for (m, _), r in summary.items() if m == n) for n in (1, 1000)}
        print(
            f"targets: 1 task >= 0.90x -> {worst[1]:.2f}x; 1000 tasks >= 0.70x -> {worst[1000]:.2f}x; "
            f"RSS <= 50 MB -> {max(data['rss_mb']):.1f} MB"
        )
        if not args.skip_training:
            t = during_training(args, tmp)
            idle99, busy99 = med(t["idle"], "p99"), med(t["training"], "p99")
            print(
                f"/predict (1 task) with a CPU-bound fit on an RQ worker (nice {args.nice}): p50 idle "
                f"{med(t['idle'], 'p50'):.2f}ms, training {med(t['training'], 'p50'):.2f}ms; p99 idle "
                f"{idle99:.2f}ms, training {busy99:.2f}ms, ratio {busy99 / idle99:.2f}x (target <= 1.5x)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
