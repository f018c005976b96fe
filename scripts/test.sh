#!/usr/bin/env bash
# The test command (README quick start, step 2, and what CI runs).
# Sets up .venv, makes sure Redis answers, then runs every test tier. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/ensure_redis.sh
bash scripts/setup_labelstudio.sh  # Label Studio 1.23.2 for tests/labelstudio, cached outside the clone
bash scripts/setup_containers.sh   # Docker/Podman engines + base images for tests/containers (LSML_SKIP_CONTAINERS=1 skips)
exec .venv/bin/python -m pytest "$@"
