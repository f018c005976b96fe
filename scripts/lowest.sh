#!/usr/bin/env bash
# Build a venv with the LOWEST versions the runtime declares (runtime/pyproject.toml:
# flask>=2.3, rq>=2.0, ... and cookiecutter for init), so tests/runtime can prove the floors real.
#   bash scripts/lowest.sh [VENV]        (default .venv-lowest; scripts/test.sh --lowest runs it)
# uv's --resolution lowest-direct puts the runtime's direct dependencies at their floors (what
# they need in turn at its newest); the test tools are the pins of requirements-dev.txt.
# Needs .venv (uv comes from requirements-dev.lock): bash scripts/bootstrap.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-lowest}
UV=.venv/bin/uv
if [ ! -x "$UV" ]; then
  echo "scripts/lowest.sh needs .venv/bin/uv: run bash scripts/bootstrap.sh first" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$UV" venv --quiet --python "${PYTHON:-python3}" "$VENV"
fi
mapfile -t TOOLS < <(grep -E '^(pytest|pytest-timeout|requests|hypothesis|pillow|moto\[server\])==' requirements-dev.txt)
"$UV" pip install --quiet --python "$VENV/bin/python" --resolution lowest-direct \
  -e "./runtime[init,s3]" "${TOOLS[@]}"
