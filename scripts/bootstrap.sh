#!/usr/bin/env bash
# Create .venv (if missing) and install the runtime (editable) plus the development tools.
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# requirements-dev.txt pins tools that need Python 3.11+ (generated backends support 3.9+)
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "ERROR: $PY is not Python 3.11 or later (requirements-dev.txt needs 3.11+): run with PYTHON=python3.11 (or newer)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
.venv/bin/python -m pip install --quiet -r requirements-dev.txt -e "./runtime[init]"
