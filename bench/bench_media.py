#!/usr/bin/env python3
"""get_local_path: what a cached media file costs per call, and a cold cloud download.

A model calls ``get_local_path`` once per task on every ``/predict``; after the first call the
file is in the cache, so the per-call cost is resolving the credentials and the cache name.
Baseline in the same run: ``os.path.exists`` of the cached path (the floor any cache has).
Rounds alternate baseline and ``get_local_path``; medians of the rounds and their ratio.

Cold path: a loopback "Label Studio" answering ``/tasks/<id>/presign/`` with a 303 to a
loopback "storage" serving a 1 MiB file, downloaded into a fresh cache each time.

Usage: .venv/bin/python bench/bench_media.py [--rounds 5] [--calls 20000]
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from label_studio_ml.utils import get_local_path  # noqa: E402

from tests.support import Recorder  # noqa: E402


def per_call_us(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    ls, storage = Recorder(), Recorder()
    body = os.urandom(1 << 20)
    uri = "s3://bucket/dir/plane.png"
    fileuri = base64.urlsafe_b64encode(uri.encode()).decode()
    signed = "/bucket/dir/plane.png?X-Amz-Signature=s"
    ls.redirect(f"/tasks/1/presign/?fileuri={fileuri}", storage.url + signed)
    storage.routes[signed] = (200, {}, body)
    os.environ.update(LABEL_STUDIO_URL=ls.url, LABEL_STUDIO_API_KEY="bench-key")
    with tempfile.TemporaryDirectory() as tmp:
        path = get_local_path(uri, cache_dir=tmp, task_id=1)
        assert Path(path).read_bytes() == body
        upload_url = "/data/upload/1/plane.png"
        ls.routes[upload_url] = (200, {}, body)
        upload = get_local_path(upload_url, cache_dir=tmp)
        assert Path(upload).read_bytes() == body
        base, ours, uploads = [], [], []
        for _ in range(args.rounds):
            base.append(per_call_us(lambda: os.path.exists(path), args.calls))
            ours.append(per_call_us(lambda: get_local_path(uri, cache_dir=tmp, task_id=1), args.calls))
            uploads.append(
                per_call_us(lambda: get_local_path("/data/upload/1/plane.png", cache_dir=tmp), args.calls)
            )
        cold = []
        for i in range(args.rounds):
            start = time.perf_counter()
            get_local_path(uri, cache_dir=os.path.join(tmp, f"cold{i}"), task_id=1)
            cold.append((time.perf_counter() - start) * 1e3)
    ls.close()
    storage.close()
    b, o, u = statistics.median(base), statistics.median(ours), statistics.median(uploads)
    print(f"os.path.exists of the cached file (floor): {b:.2f} us/call")
    print(f"cached s3:// hit: {o:.1f} us/call ({o / b:.1f}x the floor)")
    print(f"cached /data/upload/ hit (credentials resolved): {u:.1f} us/call ({u / b:.1f}x the floor)")
    print(f"cold 1 MiB download via presign 303 on loopback: median {statistics.median(cold):.1f} ms")


if __name__ == "__main__":
    main()
