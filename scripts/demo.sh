#!/usr/bin/env bash
# Quick start, step 1: set up .venv, generate the built-in example backend into ./demo/my_backend,
# serve it in development mode (no Redis), predict, train, predict again. Args go to demo.py
# (--port 9090, --serve to keep it running).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python scripts/demo.py "$@"
