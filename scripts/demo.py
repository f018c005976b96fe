#!/usr/bin/env python3
"""Quick-start demo: generate the built-in example backend, serve it, predict, train, predict again.

Runs the same steps a user takes, against real processes: ``label-studio-ml init`` bakes the
template, ``python wsgi.py`` serves it in development mode (no Redis), and the HTTP calls are
the ones Label Studio makes. ``--serve`` keeps the server running afterwards (Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONFIG = (
    '<View><Image name="image" value="$image"/>'
    '<Choices name="choice" toName="image" showInLine="true">'
    '<Choice value="Boeing" background="blue"/><Choice value="Airbus" background="green"/>'
    "</Choices></View>"
)
PROJECT = "1.1700000000"


def call(url: str, path: str, payload: dict | None = None) -> dict:
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"ERROR: the backend exited with code {proc.returncode}")
        try:
            call(url, "/health")
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise SystemExit(f"ERROR: the backend did not answer on {url} within {timeout:.0f}s")


def annotated(label: str, n: int) -> list:
    result = [{"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]
    return [
        {"id": i, "data": {"image": f"/data/upload/1/{i}.jpg"}, "annotations": [{"result": result}]}
        for i in range(1, n + 1)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--out", default=str(ROOT / "demo"), help="where to generate the backend")
    parser.add_argument("--serve", action="store_true", help="keep serving after the demo")
    args = parser.parse_args()

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"$ label-studio-ml init my_backend --root-dir {out} --force")
    # the runtime is vendored as a wheel (vendor/), as for any user: `docker compose up --build`
    # works in demo/my_backend too (a file:// requirement would not exist inside the image)
    subprocess.run(
        [str(BIN / "label-studio-ml"), "init", "my_backend", "--root-dir", str(out), "--force"],
        check=True,
        cwd=out,
    )
    backend = out / "my_backend"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_HOST")}
    env["MODEL_DIR"] = str(backend / "data" / "models")
    url = f"http://127.0.0.1:{args.port}"
    print(f"$ cd {backend} && python wsgi.py --port {args.port}")
    proc = subprocess.Popen(
        [sys.executable, "wsgi.py", "--host", "127.0.0.1", "--port", str(args.port)], cwd=backend, env=env
    )
    try:
        wait_up(url, proc)
        print("GET  /health  ->", call(url, "/health"))
        setup = call(url, "/setup", {"project": PROJECT, "schema": CONFIG})
        print("POST /setup   ->", setup)
        tasks = [{"id": i, "data": {"image": f"/data/upload/1/{i}.jpg"}} for i in (1, 2)]
        before = call(url, "/predict", {"tasks": tasks, "project": PROJECT, "label_config": CONFIG})
        print("POST /predict ->", json.dumps(before["results"][0]))
        job = call(
            url, "/train", {"annotations": annotated("Airbus", 3), "project": PROJECT, "label_config": CONFIG}
        )
        print("POST /train   ->", job)
        deadline = time.monotonic() + 30
        while True:
            status = call(url, "/training?project=1")
            if status["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        print("GET  /training ->", {k: status.get(k) for k in ("status", "version", "error")})
        if status["status"] != "succeeded":
            raise SystemExit(f"ERROR: training did not succeed: {status.get('error')}")
        after_setup = call(url, "/setup", {"project": PROJECT, "schema": CONFIG})
        after = call(url, "/predict", {"tasks": tasks, "project": PROJECT, "label_config": CONFIG})
        print("POST /setup   ->", after_setup)
        print("POST /predict ->", json.dumps(after["results"][0]))
        if after_setup["model_version"] == setup["model_version"]:
            raise SystemExit("ERROR: the model version did not change after training")
        print(
            f"\nOK: {backend.name} served predictions, trained to {after_setup['model_version']} "
            f"and serves the new version. Backend: {backend}"
        )
        if args.serve:
            print(f"Serving on {url} (Ctrl-C to stop)")
            proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
