#!/usr/bin/env bash
# The test command (README quick start, step 2, and what CI runs).
# Sets up .venv from requirements-dev.lock, makes sure Redis answers, then runs every test tier.
# Extra args go to pytest. One option first, at most:
#   bash scripts/test.sh --latest   the suite against the newest releases, unlocked, in .venv-latest
#                                   (what the locks will get next; CI runs the locked suite)
#   bash scripts/test.sh --lowest   tests/runtime with the runtime's lowest declared versions, in
#                                   .venv-lowest (tests/test_dependency_ranges.py runs it too)
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=locked
case "${1:-}" in
  --latest) MODE=latest; shift ;;
  --lowest) MODE=lowest; shift ;;
esac
bash scripts/bootstrap.sh
bash scripts/ensure_redis.sh
case "$MODE" in
  latest)
    echo "scripts/test.sh --latest: the newest releases, unlocked, in .venv-latest" >&2
    bash scripts/bootstrap.sh --latest
    bash scripts/setup_labelstudio.sh
    exec .venv-latest/bin/python -m pytest "$@"
    ;;
  lowest)
    echo "scripts/test.sh --lowest: tests/runtime with the lowest direct versions, in .venv-lowest" >&2
    bash scripts/lowest.sh .venv-lowest
    exec .venv-lowest/bin/python -m pytest tests/runtime "$@"
    ;;
esac
bash scripts/setup_labelstudio.sh  # Label Studio 1.23.2 for tests/labelstudio, cached outside the clone
bash scripts/setup_containers.sh   # Docker/Podman engines + base images for tests/containers (LSML_SKIP_CONTAINERS=1 skips)
exec .venv/bin/python -m pytest "$@"
