#!/usr/bin/env python3
"""What locking costs a generated repo's install: ``pip install --require-hashes -r
requirements.lock`` (what its Dockerfile runs) against ``pip install -r requirements.txt`` (the
unlocked baseline), each into a new venv, cold (an empty pip cache: every file downloaded, uWSGI
compiled) and warm (a cache that already holds them), rounds alternating, in one run.

pip runs as a user's would: no pip configuration file, no find-links. Venv creation is not timed.

Usage: .venv/bin/python bench/bench_lock.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parents[1]
ROUTES = {
    "requirements.txt (unlocked)": ["-r", "requirements.txt"],
    "requirements.lock (--require-hashes)": ["--require-hashes", "-r", "requirements.lock"],
}


def pip_env(cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "VIRTUAL_ENV"}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_CACHE_DIR=str(cache), PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def install(project: Path, work: Path, args: list[str], cache: Path) -> float:
    """Seconds of one ``pip install`` into a fresh venv (made first, untimed)."""
    venv = Path(tempfile.mkdtemp(dir=work, prefix="venv-"))
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    started = time.perf_counter()
    proc = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "-q", *args],
        cwd=project, env=pip_env(cache), capture_output=True, text=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr[-2000:]
    subprocess.run(["rm", "-rf", str(venv)], check=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times: dict = {(route, kind): [] for route in ROUTES for kind in ("cold", "warm")}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cookiecutter(str(ROOT), no_input=True, output_dir=str(work), extra_context={"backend_name": "bench"})
        project = work / "bench"
        warm = {route: work / f"warm-cache-{i}" for i, route in enumerate(ROUTES)}
        for route, route_args in ROUTES.items():  # fill each route's warm cache once
            install(project, work, route_args, warm[route])
        for i in range(args.rounds):
            order = list(ROUTES.items()) if i % 2 == 0 else list(ROUTES.items())[::-1]
            for route, route_args in order:
                cold = Path(tempfile.mkdtemp(dir=work, prefix="cold-cache-"))
                times[(route, "cold")].append(install(project, work, route_args, cold))
                subprocess.run(["rm", "-rf", str(cold)], check=True)
                times[(route, "warm")].append(install(project, work, route_args, warm[route]))
                print(f"round {i + 1}: {route} done", file=sys.stderr)
    baseline = "requirements.txt (unlocked)"
    width = 6 * args.rounds
    print(f"{'route':38s} {'cache':5s} {'median':>8s}  {'runs (s)':{width}s}  vs unlocked")
    for (route, kind), values in times.items():
        median = statistics.median(values)
        ratio = median / statistics.median(times[(baseline, kind)])
        runs = " ".join(f"{v:5.1f}" for v in values)
        print(f"{route:38s} {kind:5s} {median:7.1f}s  {runs:{width}s}  {ratio:.2f}x")


if __name__ == "__main__":
    main()
