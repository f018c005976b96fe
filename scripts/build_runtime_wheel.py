"""Build the runtime wheel the template carries: {{cookiecutter.backend_name}}/vendor/.

Run it after changing anything under runtime/ (tests/test_runtime_wheel.py fails until then):
    python scripts/build_runtime_wheel.py
A generated repo installs the runtime from this wheel (the first line of its requirements.txt,
with its sha256 in the locks, written by the post-gen hook). The build is reproducible: the same
runtime gives the same bytes, so a commit changes the wheel only when the runtime changed.
Standard library only; it builds from this checkout's runtime/, whatever is installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "runtime"
VENDOR = ROOT / "{{cookiecutter.backend_name}}" / "vendor"


def main() -> int:
    sys.path.insert(0, str(RUNTIME / "src"))
    from label_studio_ml.wheel import build_from_source

    wheel = build_from_source(RUNTIME, VENDOR)
    print(f"wrote {wheel.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
