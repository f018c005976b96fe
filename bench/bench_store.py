#!/usr/bin/env python3
"""The object-store model store (MODEL_STORE=s3://...) against the local MODEL_DIR, same run.

Three measurements, medians over rounds, each with its baseline from the same run:

1. **Run end -> new version served on every host.** Two API hosts (``label-studio-ml start``,
   separate MODEL_DIR caches) and one RQ worker (``label-studio-ml worker``) share Redis and a
   ``moto_server`` bucket. Each round sends ``POST /webhook`` to host A; a thread per host polls
   ``/setup`` every 2 ms until it names a new version, then ``/predict`` until it answers it.
   Delay = the moment both hosts' ``/predict`` answered the new version minus the run's
   ``ended_at`` (``fit`` returned; the upload to the bucket is inside the delay), split at the
   manifest's ``stored_at`` (published). Baseline: the same two hosts and worker sharing
   one local MODEL_DIR (the single-machine layout, ``LATEST`` stat).
2. **Per-/predict cost of the version check.** ``store.latest(project)`` in a loop: the local
   store's ``stat`` of ``LATEST`` (today) vs one Redis ``GET`` (production mode with a bucket)
   vs the store-only mode's cached read; plus a whole ``/predict`` over HTTP (one task) for the
   local and the bucket+Redis store.
3. **First start with an empty cache vs warm, 100 MB model.** A host process starts, and its
   first ``/predict`` answers the served version: with an empty MODEL_DIR (one 100 MB download)
   vs with the cache it left (no download).

Usage: .venv/bin/python bench/bench_store.py [--rounds 5] [--size-mb 100]
Needs: Redis on 127.0.0.1:6379 (or --redis-url), moto[server] and boto3 (requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Dict, List

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.moto_support import MotoServer, free_port, subprocess_env  # noqa: E402

CLI = str(Path(sys.executable).with_name("label-studio-ml"))
CONFIG = (
    '<View><Text name="text" value="$text"/><Choices name="label" toName="text">'
    '<Choice value="pos"/><Choice value="neg"/></Choices></View>'
)
PROJECT = "3"
MODEL = '''"""bench_store's model: fit writes data["size_mb"] MB of weights; __init__ reads them back."""

import os

from label_studio_ml.model import LabelStudioMLBase


class BlobModel(LabelStudioMLBase):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.size = 0
        name = self.train_output.get("weights")
        if name:
            with open(os.path.join(self.workdir, name), "rb") as fh:
                while chunk := fh.read(1 << 20):
                    self.size += len(chunk)

    def predict(self, tasks, **kwargs):
        return [{"result": [], "score": self.size / 1e9} for _ in tasks]

    def fit(self, event, data, workdir=None, **kwargs):
        size = int(float(data.get("size_mb", 0.01)) * (1 << 20))
        with open(os.path.join(workdir, "weights.bin"), "wb") as fh:
            fh.write(os.urandom(size))
        return {"weights": "weights.bin"}
'''


def bake(workdir: Path) -> Path:
    from cookiecutter.main import cookiecutter

    script = workdir / "blob_model.py"
    script.write_text(MODEL)
    out = cookiecutter(
        str(ROOT), no_input=True, output_dir=str(workdir),
        extra_context={"backend_name": "blob_backend", "script": str(script),
                       "_runtime_requirement": f"lsml-runtime @ file://{ROOT / 'runtime'}"},
    )  # fmt: skip
    return Path(out)


class Proc:
    """A ``label-studio-ml start|worker`` process of its own session (killed whole at the end)."""

    def __init__(self, args: List[str], backend: Path, env: Dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        extra = ["--port", str(self.port)] if args[0] == "start" else []
        with open(log, "ab") as fh:
            self.proc = subprocess.Popen(
                [CLI, *args, str(backend), *extra], cwd=backend, env=env, stdout=fh, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.http = requests.Session()

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "host exited"
            try:
                if self.http.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.02)
        raise RuntimeError("host did not become healthy")

    def stop(self) -> None:
        if self.proc.poll() is None:
            for pid in _tree(self.proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait(10)


def _tree(pid: int) -> List[int]:
    out = [pid]
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for kid in kids:
        out += _tree(int(kid))
    return out


def predict_body() -> dict:
    return {"project": PROJECT, "label_config": CONFIG, "tasks": [{"id": 1, "data": {"text": "t"}}]}


# ------------------------------------------------------------------ 1. run end -> served everywhere
def propagation(backend: Path, env: Dict[str, str], work: Path, rounds: int, label: str) -> tuple:
    hosts = []
    for name in ("a", "b"):
        host_env = dict(env)
        host_env.setdefault("MODEL_DIR", str(work / f"{label}-{name}"))
        hosts.append(Proc(["start"], backend, host_env, work / f"{label}-{name}.log"))
    worker_env = dict(env)
    worker_env.setdefault("MODEL_DIR", str(work / f"{label}-worker"))
    worker = Proc(["worker"], backend, worker_env, work / f"{label}-worker.log")
    delays: List[float] = []
    published: List[float] = []  # run end -> manifest written (bucket only)
    try:
        for host in hosts:
            host.wait_healthy()
            host.http.post(host.url + "/setup", json={"project": PROJECT, "schema": CONFIG}, timeout=10)
        for _ in range(rounds + 1):  # the first round warms up (imports, connections)
            setup = {"project": PROJECT, "schema": CONFIG}
            before = (
                hosts[0].http.post(hosts[0].url + "/setup", json=setup, timeout=10).json()["model_version"]
            )
            served: Dict[str, float] = {}
            learned: Dict[str, str] = {}

            def poll(host: Proc, before=before, served=served, learned=learned, setup=setup) -> None:
                """/setup until it names a new version (what Label Studio asks first), then
                /predict until it answers with it."""
                with requests.Session() as http:
                    while host.url not in learned:
                        version = http.post(host.url + "/setup", json=setup, timeout=30).json()[
                            "model_version"
                        ]
                        if version != before:
                            learned[host.url] = version
                        else:
                            time.sleep(0.002)
                    while True:
                        answer = http.post(host.url + "/predict", json=predict_body(), timeout=30).json()
                        if answer.get("model_version") == learned[host.url]:
                            served[host.url] = time.time()
                            return
                        time.sleep(0.002)

            threads = [threading.Thread(target=poll, args=(h,), daemon=True) for h in hosts]
            for t in threads:
                t.start()
            hosts[0].http.post(
                hosts[0].url + "/webhook",
                json={"action": "START_TRAINING", "project": {"id": int(PROJECT), "label_config": CONFIG}},
                timeout=10,
            )
            for t in threads:
                t.join(120)
            deadline = time.monotonic() + 30
            while (
                status := hosts[1].http.get(f"{hosts[1].url}/training?project={PROJECT}", timeout=10).json()
            )["status"] != "succeeded":
                assert time.monotonic() < deadline, status
                time.sleep(0.05)
            assert set(learned.values()) == {status["version"]}, (learned, status)
            delays.append(max(served.values()) - status["ended_at"])
            if "MODEL_STORE" in env:  # when the manifest was written: the version exists from then on
                published.append(_stored_at(env, status["version"]) - status["ended_at"])
    finally:
        for proc in (*hosts, worker):
            proc.stop()
    return delays[1:], published[1:]


def _stored_at(env: Dict[str, str], version: str) -> float:
    import json

    import boto3

    bucket, _, prefix = env["MODEL_STORE"][len("s3://") :].partition("/")
    client = boto3.client(
        "s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1",
    )  # fmt: skip
    body = client.get_object(Bucket=bucket, Key=f"{prefix}/{PROJECT}/manifests/{version}.json")["Body"].read()
    return float(json.loads(body)["stored_at"])


# ------------------------------------------------------------------ 2. the check per request
def check_cost(moto: MotoServer, redis_url: str, work: Path, rounds: int) -> Dict[str, float]:
    from label_studio_ml.objectstore import RemoteStore
    from label_studio_ml.store import ModelStore

    for name, value in moto.env.items():
        os.environ[name] = value
    url = f"s3://{moto.new_bucket()}/bench"
    local = ModelStore(work / "check-local")
    (local.ensure_project(PROJECT) / "LATEST").write_text("v1-20260101000000\n")
    remote_redis = RemoteStore(work / "check-r", url, redis_url, f"bench-{uuid.uuid4().hex[:6]}")
    remote_poll = RemoteStore(work / "check-p", url, None)
    remote_redis.update_control(PROJECT, lambda d: {**d, "newest": "v1-20260101000000"})
    n = 5000
    results: Dict[str, List[float]] = {"stat (local MODEL_DIR)": [], "Redis GET (bucket + Redis)": [],
                                       "cached read (bucket only, every 1 s)": []}  # fmt: skip
    stores = dict(zip(results, (local, remote_redis, remote_poll)))
    for _ in range(rounds):
        for name, store in stores.items():
            assert store.latest(PROJECT) == "v1-20260101000000"
            started = time.perf_counter()
            for _ in range(n):
                store.latest(PROJECT)
            results[name].append((time.perf_counter() - started) / n * 1e6)
    return {name: statistics.median(values) for name, values in results.items()}


def predict_cost(
    backend: Path, env_local: Dict[str, str], env_remote: Dict[str, str], work: Path, rounds: int
):
    """Median /predict latency of both hosts, running side by side, rounds interleaved."""
    hosts = {}
    for label, env in (("local", env_local), ("bucket+Redis", env_remote)):
        hosts[label] = Proc(["start"], backend, {**env, "MODEL_DIR": str(work / f"predict-{label}")},
                            work / f"predict-{label}.log")  # fmt: skip
    medians: Dict[str, List[float]] = {label: [] for label in hosts}
    try:
        body = predict_body()
        for host in hosts.values():
            host.wait_healthy()
            for _ in range(50):
                host.http.post(host.url + "/predict", json=body, timeout=60)
        for _ in range(rounds):
            for label, host in hosts.items():
                times = []
                for _ in range(300):
                    started = time.perf_counter()
                    host.http.post(host.url + "/predict", json=body, timeout=10)
                    times.append((time.perf_counter() - started) * 1000)
                medians[label].append(statistics.median(times))
    finally:
        for host in hosts.values():
            host.stop()
    return {label: statistics.median(values) for label, values in medians.items()}


# ------------------------------------------------------------------ 3. cold vs warm start
def start_times(
    backend: Path, env: Dict[str, str], work: Path, rounds: int, size_mb: float
) -> Dict[str, float]:
    # one run stores a size_mb version
    trainer_env = {**env, "MODEL_DIR": str(work / "start-trainer")}
    host = Proc(["start"], backend, trainer_env, work / "start-trainer.log")
    worker = Proc(
        ["worker"], backend, {**env, "MODEL_DIR": str(work / "start-worker")}, work / "start-worker.log"
    )
    try:
        host.wait_healthy()
        project = {"id": int(PROJECT), "label_config": CONFIG}
        webhook = {"action": "START_TRAINING", "project": project, "size_mb": size_mb}
        host.http.post(host.url + "/webhook", json=webhook, timeout=10)
        deadline = time.monotonic() + 300
        while True:
            status = host.http.get(f"{host.url}/training?project={PROJECT}", timeout=10).json()
            if status.get("status") in ("succeeded", "failed"):
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert status["status"] == "succeeded", status
        version = status["version"]
    finally:
        host.stop()
        worker.stop()
    cache = work / "start-cache"
    times: Dict[str, List[float]] = {"empty cache": [], "warm cache": []}
    for _ in range(rounds):
        for label in ("empty cache", "warm cache"):
            if label == "empty cache":
                shutil.rmtree(cache, ignore_errors=True)
            started = time.monotonic()
            proc = Proc(["start"], backend, {**env, "MODEL_DIR": str(cache)}, work / "start-host.log")
            try:
                proc.wait_healthy()
                answer = proc.http.post(proc.url + "/predict", json=predict_body(), timeout=120).json()
                assert answer["model_version"] == version, answer
                assert abs(answer["results"][0]["score"] - size_mb * (1 << 20) / 1e9) < 1e-6
                times[label].append(time.monotonic() - started)
            finally:
                proc.stop()
    return {label: statistics.median(values) for label, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size-mb", type=float, default=100)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--only", choices=["1", "2", "3"], help="run one measurement only")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-store-"))
    moto = MotoServer(work)
    queue = f"bench-store-{uuid.uuid4().hex[:8]}"
    try:
        backend = bake(work)
        base = subprocess_env(
            moto, REDIS_URL=args.redis_url, RQ_QUEUE_NAME=queue, PRELOAD_MODELS="false", LOG_LEVEL="WARNING"
        )
        for name in [n for n in base if n.startswith(("BASIC_AUTH_", "LABEL_STUDIO_", "MODEL_"))]:
            del base[name]
        bucket_env = {**base, "MODEL_STORE": f"s3://{moto.new_bucket()}/bench"}
        shared_dir = str(work / "shared-model-dir")
        local_env = {**base, "MODEL_DIR": shared_dir, "RQ_QUEUE_NAME": queue + "-local"}

        if args.only in (None, "1"):
            propagation_report(backend, local_env, bucket_env, work, args.rounds)
        if args.only in (None, "2"):
            check_report(backend, moto, base, bucket_env, queue, work, args)
        if args.only in (None, "3"):
            start_report(backend, bucket_env, work, args)
    finally:
        moto.close()
        import redis

        client = redis.Redis.from_url(args.redis_url)
        for pattern in (f"lsml:{queue}*", f"rq:*{queue}*", "lsml:bench-*"):
            keys = list(client.scan_iter(pattern))
            if keys:
                client.delete(*keys)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def propagation_report(backend, local_env, bucket_env, work, rounds) -> None:
    print(f"1. run end -> new version answered by /predict on both hosts ({rounds} rounds, medians)")
    local, _ = propagation(backend, local_env, work, rounds, "local")
    remote, published = propagation(backend, bucket_env, work, rounds, "bucket")
    lm, rm = statistics.median(local), statistics.median(remote)
    pm = statistics.median(published)
    after = statistics.median([r - p for r, p in zip(remote, published)])
    print(f"   shared MODEL_DIR (LATEST stat):    {lm * 1000:7.1f} ms  (max {max(local) * 1000:.1f})")
    print(f"   bucket + Redis, separate caches:   {rm * 1000:7.1f} ms  (max {max(remote) * 1000:.1f})"
          f"  ratio {rm / lm:.1f}x")  # fmt: skip
    print(f"     of which: run end -> published (upload, manifest) {pm * 1000:.1f} ms; "
          f"published -> served on both (control, download, build) {after * 1000:.1f} ms")  # fmt: skip


def check_report(backend, moto, base, bucket_env, queue, work, args) -> None:
    print("2. the version check per request (median µs per call)")
    costs = check_cost(moto, args.redis_url, work, args.rounds)
    baseline = costs["stat (local MODEL_DIR)"]
    for name, value in costs.items():
        print(f"   {name:40s} {value:8.2f} µs  ratio {value / baseline:.1f}x")
    predict = predict_cost(backend, {**base, "RQ_QUEUE_NAME": queue + "-p"}, bucket_env, work, args.rounds)
    extra = (predict["bucket+Redis"] - predict["local"]) * 1000
    print(f"   whole /predict (1 task, HTTP, side by side): local {predict['local']:.2f} ms, bucket+Redis "
          f"{predict['bucket+Redis']:.2f} ms ({extra:+.0f} µs)")  # fmt: skip


def start_report(backend, bucket_env, work, args) -> None:
    print(f"3. host start -> first /predict of a {args.size_mb:g} MB model ({args.rounds} rounds, medians)")
    starts = start_times(backend, bucket_env, work, args.rounds, args.size_mb)
    cold, warm = starts["empty cache"], starts["warm cache"]
    print(f"   warm cache:  {warm:.2f} s")
    print(f"   empty cache: {cold:.2f} s  (+{cold - warm:.2f} s for one download; ratio {cold / warm:.1f}x)")


if __name__ == "__main__":
    sys.exit(main())
