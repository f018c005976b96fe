#!/usr/bin/env python3
"""The production image: size, builds, start to healthy, and /predict in the container against
the same backend natively, in one run.

Bakes tests/containers/data/container_model.py (python_version=3.11, the runtime vendored as for
any user) and measures, on the Docker engine with the Compose implementation found first:

* image size (``docker image inspect``);
* cold build: ``docker build --no-cache`` (base images present), median of --builds runs;
* rebuild after editing model.py: which steps ran again (the rest "Using cache") and how long;
* start: ``compose up -d`` -> /health 200, and -> the engine's HEALTHCHECK says healthy
  (``down`` between runs), median of --starts runs;
* /predict with 1 and 1000 tasks, sequential keep-alive requests, medians per round; the
  container (published on 127.0.0.1, through the engine's port forwarding, and at its address
  on the Compose network, which the host routes to directly) and the same baked
  directory run natively by ``supervisord -c supervisord.conf`` from this venv (same uWSGI
  config, same Redis kind: the host's, a queue of its own), rounds alternating; the ratio is
  container / native.

Usage: .venv/bin/python bench/bench_containers.py [--builds 3] [--starts 3] [--rounds 3]
Needs: scripts/setup_containers.sh (an engine and the base images), Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
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
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests" / "containers" / "data" / "container_model.py"
CONFIG = (
    '<View><Text name="text" value="$text"/><Choices name="label" toName="text">'
    '<Choice value="pos"/><Choice value="neg"/></Choices></View>'
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sh(cmd, cwd=None, env=None, timeout=900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def compose_argv() -> list:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    raise SystemExit("no docker-compose / docker compose: run scripts/setup_containers.sh")


def wait_health(url: str, timeout: float = 120) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{url}/health did not answer within {timeout} s")


def predict_medians(url: str, n_tasks: int, requests_n: int) -> float:
    """Median seconds of ``requests_n`` sequential /predict calls of ``n_tasks`` tasks."""
    session = requests.Session()
    body = {
        "tasks": [{"id": i, "data": {"text": f"task {i}"}} for i in range(n_tasks)],
        "project": "1.1",
        "label_config": CONFIG,
    }
    for _ in range(5):  # warm-up: both uWSGI processes built the model
        session.post(url + "/predict", json=body, timeout=60).raise_for_status()
    times = []
    for _ in range(requests_n):
        started = time.perf_counter()
        resp = session.post(url + "/predict", json=body, timeout=60)
        times.append(time.perf_counter() - started)
        resp.raise_for_status()
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--builds", type=int, default=3)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    from cookiecutter.main import cookiecutter

    compose = compose_argv()
    work = Path(tempfile.mkdtemp(prefix="lsml-bench-containers-"))
    name = f"lsml-bench-{uuid.uuid4().hex[:6]}"
    backend = Path(
        cookiecutter(
            str(ROOT),
            no_input=True,
            output_dir=str(work),
            extra_context={"backend_name": name, "script": str(MODEL), "python_version": "3.11"},
        )
    )
    image = f"{name}:latest"
    project = f"lsmlbench{uuid.uuid4().hex[:6]}"
    port = free_port()
    (backend / ".env").write_text(f"PORT={port}\nBIND_ADDRESS=127.0.0.1\nLOG_LEVEL=WARNING\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "REDIS_URL", "MODEL_DIR")}
    native = None
    try:
        # --- builds
        cold = []
        for _ in range(args.builds):
            started = time.monotonic()
            sh(["docker", "build", "--no-cache", "--force-rm", "-q", "-t", image, "."], cwd=backend)
            cold.append(time.monotonic() - started)
        size = int(sh(["docker", "image", "inspect", "--format", "{{.Size}}", image]).stdout)
        model = backend / "model.py"
        model.write_text(model.read_text() + "\n# edited\n")
        started = time.monotonic()
        out = sh(["docker", "build", "-t", image, "."], cwd=backend).stdout
        rebuild = time.monotonic() - started
        steps = re.findall(r"^Step \d+/\d+ : (.*)$", out, re.M)
        chunks = re.split(r"^Step \d+/\d+ : .*$", out, flags=re.M)[1:]
        # steps that made a layer again (FROM/ARG make none; metadata steps take no time)
        layers = [(step, chunk) for step, chunk in zip(steps, chunks) if not step.startswith(("FROM", "ARG"))]
        rebuilt = [step.split(" ", 1)[0] + " " + step.split(" ", 1)[1][:40] for step, chunk in layers
                   if "Using cache" not in chunk]  # fmt: skip
        cached = len(layers) - len(rebuilt)

        # --- start to /health and to healthy
        up_health, up_healthy = [], []
        for run in range(args.starts):
            started = time.monotonic()
            sh([*compose, "-p", project, "up", "-d"], cwd=backend, env=env)
            wait_health(f"http://127.0.0.1:{port}")
            up_health.append(time.monotonic() - started)
            cid = sh(["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={project}",
                      "--filter", "label=com.docker.compose.service=backend"]).stdout.split()[0]  # fmt: skip
            health = ["docker", "inspect", "--format", "{{.State.Health.Status}}", cid]
            while sh(health).stdout.strip() != "healthy":
                if time.monotonic() - started > 180:
                    raise SystemExit("the container did not become healthy within 180 s")
                time.sleep(0.2)
            up_healthy.append(time.monotonic() - started)
            if run < args.starts - 1:
                sh([*compose, "-p", project, "down"], cwd=backend, env=env)

        # --- the same directory natively (supervisord from this venv), on its own port
        native_dir = work / "native"
        shutil.copytree(backend, native_dir, ignore=shutil.ignore_patterns("data", "logs"))
        (native_dir / "logs").mkdir()
        native_port = free_port()
        venv_bin = Path(sys.executable).parent
        native_env = dict(env)
        native_env.update(
            PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
            PORT=str(native_port),
            MODEL_DIR=str(native_dir / "data" / "models"),
            REDIS_URL=args.redis_url,
            RQ_QUEUE_NAME=f"bench-{uuid.uuid4().hex[:8]}",
            LOG_LEVEL="WARNING",
        )
        native = subprocess.Popen(
            [str(venv_bin / "supervisord"), "-c", "supervisord.conf"],
            cwd=native_dir, env=native_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        wait_health(f"http://127.0.0.1:{native_port}")

        # the container also at its address on the Compose network (no port forwarding)
        ip = sh(
            [
                "docker",
                "inspect",
                "--format",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                cid,
            ]
        )
        urls = {
            "container": f"http://127.0.0.1:{port}",
            "container-net": f"http://{ip.stdout.split()[0]}:9090",
            "native": f"http://127.0.0.1:{native_port}",
        }
        rows = {n: {mode: [] for mode in urls} for n in (1, 1000)}
        counts = {1: 200, 1000: 20}
        for _ in range(args.rounds):
            for n in rows:
                for mode, url in urls.items():
                    rows[n][mode].append(predict_medians(url, n, counts[n]))
    finally:
        if native is not None and native.poll() is None:
            native.send_signal(signal.SIGTERM)
            try:
                native.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(native.pid, signal.SIGKILL)
        subprocess.run([*compose, "-p", project, "down", "-v"], cwd=backend, env=env, capture_output=True)
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True)
        # the --no-cache builds left untagged builder-stage images behind
        subprocess.run(["docker", "image", "prune", "-f"], capture_output=True)

    engine = sh(["docker", "version", "--format", "{{.Server.Version}}"]).stdout.strip()
    med = statistics.median
    lines = [
        f"Docker {engine}, {' '.join(compose)}, {os.cpu_count()} CPUs; python:3.11-slim, redis:7-alpine",
        f"image size: {size / 1e6:.0f} MB",
        f"cold build (--no-cache), median of {args.builds}: {med(cold):.1f} s {[round(c, 1) for c in cold]}",
        f"rebuild after editing model.py: {rebuild:.1f} s; {cached} of {len(layers)} layer steps from cache",
        f"  run again: {rebuilt}",
        f"compose up -> /health 200, median of {args.starts}: {med(up_health):.1f} s",
        f"compose up -> HEALTHCHECK healthy, median of {args.starts}: {med(up_healthy):.1f} s",
    ]
    for n, modes in rows.items():
        c, net, nat = med(modes["container"]), med(modes["container-net"]), med(modes["native"])
        lines.append(
            f"/predict {n:>4} task(s), median latency: native {nat * 1000:.2f} ms; container via "
            f"127.0.0.1 {c * 1000:.2f} ms ({c / nat:.2f}x), at its network address {net * 1000:.2f} ms "
            f"({net / nat:.2f}x)"
        )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
