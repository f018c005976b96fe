#!/usr/bin/env python3
"""Soak: mixed /predict traffic against the supervisord deployment while training runs repeat.

A backend is baked from the template (the seed tutorial's model, with a CPU-bound ``fit`` of
``--fit-seconds``), its own supervisord.conf runs uWSGI (2 workers, recycled by the generated
uwsgi.ini's ``max-requests``/``reload-on-rss``) and an RQ worker natively against the local
Redis on a unique queue, with this venv's bin on PATH. For ``--minutes``:

* ``--concurrency`` keep-alive clients send /predict with 1 to 1000 tasks (log-uniform sizes);
* every ``--train-every`` seconds a training run is requested (legacy /train with annotations);
* every 5 s the RSS of every process of the deployment is sampled from /proc (a uWSGI worker
  slot is followed across its recycled pids, from uWSGI's log).

Reported: error count (target 0: a reset connection counts), p50/p99 per ``--window`` seconds,
the workers recycled (by reason), training runs by outcome, /metrics totals against the
client's own count (multi-process sums), and per process or worker slot the RSS after
``--warmup`` with its least-squares slope. Verdict (exit status 1 when it fails): no error, and
every RSS series bounded: slope <= ``--max-slope`` MB/min (0.1: a 0.6 MB/min leak fails) and
no sample above the first minute after warm-up + ``--max-growth`` MB.

Usage: .venv/bin/python bench/bench_soak.py [--minutes 5] [--json out.json]
       [--uwsgi max-requests=2000]   (override a line of the generated uwsgi.ini)
Needs: Redis on 127.0.0.1:6379 (REDIS_URL to override), cookiecutter, uWSGI, supervisor.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SEED_MODEL = ROOT / "tests" / "template" / "data" / "seed_model.py"
CONFIG = (
    '<View><Image name="image" value="$image"/><Choices name="choice" toName="image">'
    '<Choice value="Boeing"/><Choice value="Airbus"/></Choices></View>'
)
BUSY_SUFFIX = """


import os as _os
import time as _time


class SoakModel(DummyModel):
    def fit(self, annotations, workdir=None, **kwargs):
        deadline = _time.time() + float(_os.environ.get("SOAK_FIT_SECONDS", "3"))
        x = 0
        while _time.time() < deadline:  # CPU-bound, like real training
            for i in range(10000):
                x += i * i
        return {"trained_on": len(annotations)}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(method: str, url: str, body: Optional[bytes] = None, timeout: float = 120) -> Tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# ------------------------------------------------------------------ processes (/proc)
def _stat(pid: int) -> Optional[List[str]]:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def children(pid: int) -> List[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry.name))
    return sorted(out)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def rss_mb(pid: int) -> Optional[float]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def recycle_reasons(logs: Path) -> Dict[str, int]:
    """Why workers finished (uWSGI's "The work of process N is done (...)"), from the uWSGI log
    and the rotated copies supervisord keeps (older lines may have been rotated away)."""
    out: Dict[str, int] = {}
    for log in sorted(logs.glob("uwsgi.log*")):
        text = log.read_text(errors="replace")
        for reason in re.findall(r"The work of process \d+ is done(.*?)Seeya", text):
            key = re.sub(r"[\d()>=.]+", " ", reason).strip() or "unspecified"
            out[key] = out.get(key, 0) + 1
    return out


def roles(supervisord: int) -> Dict[str, int]:
    """uwsgi-master, uwsgi-worker-N (a slot: its pid changes when it is recycled), uwsgi-http
    (the router), rq-worker: the long-lived processes. RQ work horses (one per job) are left out.

    uWSGI's processes are told apart by their names (``auto-procname``, set on the baked copy).
    """
    out: Dict[str, int] = {}
    for pid in children(supervisord):
        cmd = cmdline(pid)
        if "uwsgi" in cmd.lower():
            out["uwsgi-master"] = pid
            for child in children(pid):
                name = re.match(r"uWSGI (worker|http) (\d+)", cmdline(child))
                if name:
                    kind, slot = name.groups()
                    out[f"uwsgi-worker-{slot}" if kind == "worker" else "uwsgi-http"] = child
        elif "worker" in cmd:
            out["rq-worker"] = pid
    return out


# ------------------------------------------------------------------ the deployment
class Deployment:
    def __init__(
        self, tmp: Path, redis_url: str, fit_seconds: float, uwsgi: Optional[List[str]] = None
    ) -> None:
        from cookiecutter.main import cookiecutter

        script = tmp / "soak_model.py"
        script.write_text(SEED_MODEL.read_text() + BUSY_SUFFIX)
        self.dir = Path(
            cookiecutter(
                str(ROOT),
                no_input=True,
                output_dir=str(tmp),
                extra_context={
                    "backend_name": "soak_backend",
                    "script": f"{script}:SoakModel",
                    "_runtime_requirement": f"lsml-runtime @ file://{ROOT / 'runtime'}",
                },
            )
        )
        ini = self.dir / "uwsgi.ini"  # loopback only
        text = ini.read_text().replace("http = :%(_)", "http = 127.0.0.1:%(_)")
        text += "auto-procname = true\n"  # "uWSGI worker 1": the sampler follows each slot
        for setting in uwsgi or []:
            key, _, value = setting.partition("=")
            line = f"{key.strip()} = {value.strip()}"
            text, found = re.subn(rf"^{re.escape(key.strip())} = .*$", line, text, flags=re.M)
            text += "" if found else line + "\n"
        ini.write_text(text)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.queue = f"soak-{uuid.uuid4().hex[:10]}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS", "BASIC_AUTH"))}
        env.update(
            PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
            PORT=str(self.port),
            REDIS_URL=redis_url,
            RQ_QUEUE_NAME=self.queue,
            MODEL_DIR=str(self.dir / "data" / "models"),
            LOG_LEVEL="WARNING",
            SOAK_FIT_SECONDS=str(fit_seconds),
            VIRTUAL_ENV=str(VENV_BIN.parent),
        )
        (self.dir / "logs").mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "supervisord"), "-c", "supervisord.conf"],
            cwd=self.dir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if fetch("GET", self.url + "/health", timeout=2)[0] == 200 and "rq-worker" in roles(
                    self.proc.pid
                ):
                    return
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise SystemExit(f"the deployment did not come up; see {self.dir / 'logs'}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        try:
            import redis

            conn = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
            keys = list(conn.scan_iter(f"*{self.queue}*"))
            if keys:
                conn.delete(*keys)
        except Exception:
            pass


# ------------------------------------------------------------------ load
def task_count(rng: random.Random) -> int:
    return max(1, min(1000, int(round(math.exp(rng.uniform(0, math.log(1000)))))))


def body(n: int) -> bytes:
    tasks = [{"id": i, "data": {"image": f"https://example.com/{i}.jpg"}} for i in range(n)]
    return json.dumps(
        {
            "tasks": tasks,
            "project": "1.1795738540",
            "label_config": CONFIG,
            "params": {"login": None, "password": None, "context": None},
        }
    ).encode()


def annotated() -> bytes:
    task = {
        "id": 1,
        "data": {"image": "x"},
        "annotations": [
            {
                "result": [
                    {
                        "from_name": "choice",
                        "to_name": "image",
                        "type": "choices",
                        "value": {"choices": ["Airbus"]},
                    }
                ]
            }
        ],
    }
    return json.dumps(
        {"annotations": [task] * 20, "project": "1.1795738540", "label_config": CONFIG}
    ).encode()


def percentile(values: List[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(math.ceil(q * len(values))) - 1)]


def slope(points: List[Tuple[float, float]]) -> float:
    """Least-squares MB per minute."""
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] / 60 for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def rss_verdict(points: List[Tuple[float, float, int]], args: argparse.Namespace) -> dict:
    """RSS of one long-lived process, or of one uWSGI worker slot across its recycled pids.

    After ``--warmup`` seconds: the least-squares slope must stay under ``--max-slope`` MB/min
    (a leak of 0.6 MB/min fails it; recycling turns a leak into a sawtooth whose slope is about
    0) and no sample may exceed the first minute's median by more than ``--max-growth`` MB.
    """
    after = [(t, mb) for t, mb, _ in points if t >= args.warmup]
    if not after:
        return {}
    first_minute = [mb for t, mb in after if t < after[0][0] + 60]
    baseline = statistics.median(first_minute)
    top = max(mb for _, mb in after)
    rate = slope(after)
    return {
        "pids": len({pid for _, _, pid in points}),
        "start_mb": round(points[0][1], 1),
        "baseline_mb": round(baseline, 1),
        "end_mb": round(after[-1][1], 1),
        "max_mb": round(top, 1),
        "slope_mb_per_min": round(rate, 3),
        "bounded": rate <= args.max_slope and top <= baseline + args.max_growth,
    }


def metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def run(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="lsml-soak-"))
    dep = Deployment(tmp, args.redis_url, args.fit_seconds, args.uwsgi)
    print(f"deployment up: {dep.url} ({dep.dir}), queue {dep.queue}", flush=True)
    samples: List[Tuple[float, float, int, int]] = []  # (t, seconds, status, tasks)
    errors: List[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    bodies = {n: body(n) for n in (1, 1000)}

    def client(seed: int) -> None:
        rng = random.Random(seed)
        conn: Optional[http.client.HTTPConnection] = None
        while not stop.is_set():
            n = task_count(rng)
            payload = bodies.get(n) or body(n)
            started = time.monotonic()
            try:
                if args.keepalive:  # one connection per client, like Label Studio's requests.Session
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", dep.port, timeout=120)
                    conn.request("POST", "/predict", payload, {"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    status, raw = resp.status, resp.read()
                else:
                    status, raw = fetch("POST", dep.url + "/predict", payload)
                ok = status == 200 and len(json.loads(raw)["results"]) == n
            except Exception as exc:  # noqa: BLE001 - every failure counts (a reset included)
                status, ok = -1, False
                raw = repr(exc).encode()
                if conn is not None:
                    conn.close()
                    conn = None
            elapsed = time.monotonic() - started
            with lock:
                samples.append((started - t0, elapsed, status, n))
                if not ok:
                    errors.append(f"{started - t0:.1f}s /predict {n} tasks -> {status}: {raw[:200]!r}")

    trains = {"requested": 0, "refused": 0}

    def trainer() -> None:
        while not stop.wait(args.train_every):
            status, raw = fetch("POST", dep.url + "/train", annotated())
            trains["requested"] += 1
            if status not in (200, 201):
                trains["refused"] += 1
                with lock:
                    errors.append(f"/train -> {status}: {raw[:200]!r}")

    rss: Dict[str, List[Tuple[float, float, int]]] = {}  # role -> (t, MB, pid)

    def sampler() -> None:
        while not stop.is_set():
            now = time.monotonic() - t0
            for role, pid in roles(dep.proc.pid).items():
                value = rss_mb(pid)
                if value is not None:
                    rss.setdefault(role, []).append((now, value, pid))
            stop.wait(5)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.concurrency)]
    threads += [threading.Thread(target=trainer, daemon=True), threading.Thread(target=sampler, daemon=True)]
    for t in threads:
        t.start()
    try:
        while time.monotonic() < end:
            time.sleep(1)
            elapsed = time.monotonic() - t0
            if int(elapsed) % args.window == 0:
                with lock:
                    window = [s[1] for s in samples if s[0] >= elapsed - args.window]
                print(
                    f"  {elapsed:6.0f}s  requests {len(samples):6d}  errors {len(errors)}  "
                    f"p99 last window {percentile(window, 0.99) * 1000:7.1f} ms",
                    flush=True,
                )
    finally:
        stop.set()
        for t in threads:
            t.join(150)
    time.sleep(args.fit_seconds + 2)  # let the last run finish
    status, training = fetch("GET", dep.url + "/training?project=1")
    _, metrics_raw = fetch("GET", dep.url + "/metrics")
    metrics = metrics_raw.decode()
    reasons = recycle_reasons(dep.dir / "logs")
    dep.stop()

    windows = []
    for start in range(0, int(args.minutes * 60), args.window):
        lat = [s[1] for s in samples if start <= s[0] < start + args.window]
        tasks = [s[3] for s in samples if start <= s[0] < start + args.window]
        windows.append(
            {
                "from_s": start,
                "requests": len(lat),
                "tasks": sum(tasks),
                "p50_ms": round(percentile(lat, 0.5) * 1000, 1),
                "p99_ms": round(percentile(lat, 0.99) * 1000, 1),
            }
        )
    memory = {name: rss_verdict(points, args) for name, points in rss.items()}
    memory = {name: m for name, m in memory.items() if m}
    client_ok = sum(1 for s in samples if s[2] == 200)
    return {
        "minutes": args.minutes,
        "concurrency": args.concurrency,
        "requests": len(samples),
        "tasks": sum(s[3] for s in samples),
        "errors": len(errors),
        "first_errors": errors[:10],
        "p99_ms_overall": round(percentile([s[1] for s in samples], 0.99) * 1000, 1),
        "windows": windows,
        "rss": memory,
        "rss_bounded": all(m["bounded"] for m in memory.values()),
        "uwsgi_recycles": {
            "workers_replaced": sum(m["pids"] - 1 for name, m in memory.items() if "worker-" in name),
            "reasons_in_log": reasons,
        },
        "training": {
            **trains,
            "last_status": json.loads(training) if status == 200 else training.decode()[:300],
            "runs_succeeded_metric": metric_sum(metrics, "lsml_training_runs_total", outcome="succeeded"),
            "runs_failed_metric": metric_sum(metrics, "lsml_training_runs_total", outcome="failed"),
        },
        "metrics_vs_client": {
            "client_predict_200": client_ok,
            "metrics_predict_200": metric_sum(
                metrics, "lsml_http_requests_total", route="/predict", status="200"
            ),
            "metrics_predicted_tasks": metric_sum(metrics, "lsml_predicted_tasks_total"),
        },
        "backend_dir": str(dep.dir),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--window", type=int, default=30, help="seconds per p99 window")
    parser.add_argument("--train-every", type=float, default=15, help="seconds between training requests")
    parser.add_argument("--fit-seconds", type=float, default=3, help="CPU-bound fit duration")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--json", help="write the report here too")
    parser.add_argument("--uwsgi", action="append", help="KEY=VALUE: replace a uwsgi.ini line")
    parser.add_argument("--warmup", type=float, default=120, help="seconds before RSS is judged")
    parser.add_argument("--max-slope", type=float, default=0.1, help="MB/min of RSS allowed after warm-up")
    parser.add_argument(
        "--max-growth", type=float, default=15, help="MB over the first minute after warm-up allowed"
    )
    parser.add_argument("--keepalive", action=argparse.BooleanOptionalAction, default=True,
                        help="clients reuse one connection each (as Label Studio does)")  # fmt: skip
    args = parser.parse_args()
    report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    print(
        f"\nrequests {report['requests']}, errors {report['errors']} (target 0), "
        f"p99 {report['p99_ms_overall']} ms"
    )
    print(f"uWSGI recycles: {report['uwsgi_recycles']}")
    print(
        f"RSS after {args.warmup:.0f} s warm-up (bound: slope <= {args.max_slope} MB/min, "
        f"max <= baseline + {args.max_growth} MB):"
    )
    for name, m in sorted(report["rss"].items()):
        print(
            f"  {name:16} pids {m['pids']:3d}  baseline {m['baseline_mb']:6.1f}  max {m['max_mb']:6.1f}  "
            f"end {m['end_mb']:6.1f} MB  slope {m['slope_mb_per_min']:+.3f} MB/min  "
            f"{'bounded' if m['bounded'] else 'UNBOUNDED'}"
        )
    ok = report["errors"] == 0 and report["rss_bounded"]
    print(f"verdict: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
