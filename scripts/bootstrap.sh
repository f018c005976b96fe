#!/usr/bin/env bash
# Create .venv (if missing) and install the development tools and the runtime (editable).
# Idempotent: a second run only checks that everything is installed.
#   bash scripts/bootstrap.sh            from requirements-dev.lock: every package pinned, hashes
#                                        checked, so a release elsewhere cannot change the venv
#   bash scripts/bootstrap.sh --latest   into .venv-latest, unlocked: the newest releases that
#                                        requirements-dev.txt and runtime/pyproject.toml allow
# The locks are refreshed by bash scripts/lock.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# requirements-dev.txt pins tools that need Python 3.11+ (generated backends support 3.9+)
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "ERROR: $PY is not Python 3.11 or later (requirements-dev.txt needs 3.11+): run with PYTHON=python3.11 (or newer)" >&2
  exit 1
fi
if [ "${1:-}" = "--latest" ]; then
  # uv resolves and installs it in seconds from its cache (it comes from the locked .venv)
  if [ ! -x .venv/bin/uv ]; then bash scripts/bootstrap.sh; fi
  if [ ! -x .venv-latest/bin/python ]; then .venv/bin/uv venv --quiet --seed --python "$PY" .venv-latest; fi
  .venv/bin/uv pip install --quiet --python .venv-latest/bin/python --upgrade \
    -r requirements-dev.txt -e "./runtime[init,sdk]"
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
.venv/bin/python -m pip install --quiet --require-hashes -r requirements-dev.lock
# the runtime's dependencies are in the lock; build it with the locked hatchling and editables
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e ./runtime
