#!/usr/bin/env python3
"""What vendoring the runtime costs a bake: cookiecutter with the wheel built by the hook, against
the same bake with ``_runtime_requirement`` set (no wheel), rounds alternating, in one run.

Usage: .venv/bin/python bench/bench_vendor.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parents[1]


def bake(out: Path, name: str, vendored: bool) -> float:
    context = {"backend_name": name}
    if not vendored:
        context["_runtime_requirement"] = "lsml-runtime==0.1.0"
    started = time.perf_counter()
    cookiecutter(str(ROOT), no_input=True, output_dir=str(out), extra_context=context)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    times: dict = {"baseline (_runtime_requirement set)": [], "vendored wheel": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        bake(out, "warmup", True)
        for i in range(args.rounds):
            times["baseline (_runtime_requirement set)"].append(bake(out, f"base{i}", False))
            times["vendored wheel"].append(bake(out, f"vend{i}", True))
        wheel = next((out / "vend0" / "vendor").glob("*.whl"))
        size = wheel.stat().st_size
    base = statistics.median(times["baseline (_runtime_requirement set)"])
    for label, values in times.items():
        median = statistics.median(values)
        print(f"{label:38s} median {median * 1000:7.1f} ms  ({median / base:.2f}x baseline)")
    print(f"wheel: {wheel.name}, {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
