#!/usr/bin/env python3
"""Import time and RSS of the runtime for a script that does not use label-studio-sdk.

Compares this checkout's ``runtime/src`` with the runtime at a baseline git revision (default:
``main``), in one run: each round starts a fresh interpreter per tree, alternating, that
imports the runtime, builds the app, constructs a model and answers one ``/predict`` through
Flask's test client. Reported: medians of the time to do that, the peak RSS, the number of
loaded modules, and whether ``label_studio_sdk`` was imported. Then, for the current tree
only, the one-off cost of the first ``self.label_interface`` (the lazy SDK import).

Usage: .venv/bin/python bench/bench_sdk_import.py [--rounds 9] [--baseline main]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = (
    '<View><Text name="text" value="$text"/><Choices name="c" toName="text">'
    '<Choice value="A"/><Choice value="B"/></Choices></View>'
)
CHILD = r"""
import json, resource, sys, time, tempfile
started = time.perf_counter()
from label_studio_ml.model import LabelStudioMLBase
from label_studio_ml.api import create_app
from label_studio_ml.settings import Settings
CONFIG = sys.argv[1]
USE_INTERFACE = sys.argv[2] == "1"

class Plain(LabelStudioMLBase):
    def predict(self, tasks, context=None, **kwargs):
        if USE_INTERFACE:
            self.label_interface
        from_name, to_name, _ = self.get_first_tag_occurence("Choices", "Text")
        region = {"from_name": from_name, "to_name": to_name, "type": "choices", "value": {"choices": ["A"]}}
        return [{"result": [region], "score": 0.5} for _ in tasks]

app = create_app(Plain, settings=Settings(model_dir=tempfile.mkdtemp()))
body = {"tasks": [{"id": 1, "data": {"text": "x"}}], "project": "1.1", "label_config": CONFIG}
response = app.test_client().post("/predict", json=body)
assert response.status_code == 200, response.get_data(as_text=True)
elapsed = time.perf_counter() - started
print(json.dumps({
    "seconds": elapsed,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "modules": len(sys.modules),
    "sdk_imported": "label_studio_sdk" in sys.modules,
    "runtime": sys.modules["label_studio_ml"].__file__,
}))
"""


def run(src: Path, use_interface: bool = False) -> dict:
    code = f"import sys; sys.path.insert(0, {str(src)!r})\n" + CHILD
    out = subprocess.run(
        [sys.executable, "-c", code, CONFIG, "1" if use_interface else "0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["runtime"].startswith(str(src)), (result["runtime"], src)
    return result


def baseline_tree(revision: str, into: Path) -> Path:
    archive = into / "runtime.tar"
    with open(archive, "wb") as fh:
        subprocess.run(["git", "archive", revision, "runtime/src"], cwd=REPO, stdout=fh, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "runtime" / "src"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--baseline", default="main")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"baseline": baseline_tree(args.baseline, Path(tmp)), "current": REPO / "runtime" / "src"}
        runs: dict = {name: [] for name in trees}
        run(trees["current"])  # warm the page cache for both trees
        run(trees["baseline"])
        for _ in range(args.rounds):
            for name, src in trees.items():
                runs[name].append(run(src))
        rows = {}
        for name, results in runs.items():
            rows[name] = {
                "seconds": statistics.median(r["seconds"] for r in results),
                "rss_mb": statistics.median(r["rss_mb"] for r in results),
                "modules": statistics.median(r["modules"] for r in results),
                "sdk_imported": any(r["sdk_imported"] for r in results),
            }
        interface = [run(trees["current"], use_interface=True) for _ in range(max(3, args.rounds // 3))]
    print(f"import + create_app + one /predict, no label_interface ({args.rounds} rounds, medians):")
    print(f"{'tree':10} {'seconds':>8} {'RSS MiB':>8} {'modules':>8} sdk imported")
    for name, row in rows.items():
        print(
            f"{name:10} {row['seconds']:8.3f} {row['rss_mb']:8.1f} "
            f"{row['modules']:8.0f} {row['sdk_imported']}"
        )
    base, cur = rows["baseline"], rows["current"]
    print(
        f"current/baseline: time {cur['seconds'] / base['seconds']:.2f}x, "
        f"RSS {cur['rss_mb'] / base['rss_mb']:.2f}x"
    )
    print(
        "current tree, the same with self.label_interface touched (the SDK imported on first use): "
        f"{statistics.median(r['seconds'] for r in interface):.3f} s, "
        f"{statistics.median(r['rss_mb'] for r in interface):.1f} MiB RSS, "
        f"{statistics.median(r['modules'] for r in interface):.0f} modules"
    )


if __name__ == "__main__":
    main()
