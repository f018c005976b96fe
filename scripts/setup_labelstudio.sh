#!/usr/bin/env bash
# Install Label Studio 1.23.2 for the tests/labelstudio tier, outside the repository clone,
# and prepare a pre-migrated data directory that every test session copies (a fresh data
# directory takes a minute of migrations; a copied one starts in seconds).
#
#   LSML_LS_HOME (default ~/.cache/lsml/labelstudio-1.23.2)
#     venv/                 Label Studio's own virtualenv (about 1 GB)
#     data-template/        label_studio.sqlite3 after all migrations ran
#
# Idempotent: when both are there (marker files), it only prints the paths. A fresh machine
# installs from PyPI (a few minutes). LSML_SKIP_LABELSTUDIO=1 skips everything (the
# tests/labelstudio tier then skips with a message).
set -euo pipefail

LS_VERSION=1.23.2
LS_HOME=${LSML_LS_HOME:-$HOME/.cache/lsml/labelstudio-$LS_VERSION}
VENV="$LS_HOME/venv"
TEMPLATE="$LS_HOME/data-template"

if [ "${LSML_SKIP_LABELSTUDIO:-}" = "1" ]; then
  echo "setup_labelstudio: skipped (LSML_SKIP_LABELSTUDIO=1)"
  exit 0
fi

mkdir -p "$LS_HOME"
# One setup at a time per machine (two test runs starting together must not both install).
exec 9>"$LS_HOME/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi

log() { echo "setup_labelstudio: $*"; }

if [ -f "$VENV/.lsml-installed-$LS_VERSION" ] && [ -f "$TEMPLATE/.lsml-migrated" ]; then
  log "cached: $VENV, $TEMPLATE"
  exit 0
fi

# --- 1. the virtualenv -------------------------------------------------------------------
if [ ! -f "$VENV/.lsml-installed-$LS_VERSION" ]; then
  PY=${LSML_LS_PYTHON:-}
  if [ -z "$PY" ]; then
    for candidate in python3.11 python3.12 python3.10 python3; do
      if command -v "$candidate" >/dev/null 2>&1; then PY=$candidate; break; fi
    done
  fi
  log "installing label-studio==$LS_VERSION with $PY into $VENV (a few minutes)"
  start=$(date +%s)
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "label-studio==$LS_VERSION"
  # (not `label-studio --version`: it migrates the default data dir and then serves on 8080)
  "$VENV/bin/python" -c "import importlib.metadata as m; v = m.version('label-studio'); assert v == '$LS_VERSION', v"
  touch "$VENV/.lsml-installed-$LS_VERSION"
  log "installed in $(( $(date +%s) - start )) s"
fi

# --- 2. the pre-migrated data directory --------------------------------------------------
if [ ! -f "$TEMPLATE/.lsml-migrated" ]; then
  WORK="$LS_HOME/data-migrating"
  rm -rf "$WORK" "$TEMPLATE"
  mkdir -p "$WORK"
  PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  log "migrating a fresh data dir (about a minute) on port $PORT"
  start=$(date +%s)
  # LS reads the bare USERNAME/PASSWORD/HOST/PORT variables too: never let them leak in.
  env -u USERNAME -u PASSWORD -u HOST -u PORT \
    LABEL_STUDIO_BASE_DATA_DIR="$WORK" DJANGO_DB=sqlite LATEST_VERSION_CHECK=false \
    "$VENV/bin/label-studio" start --no-browser --internal-host 127.0.0.1 --port "$PORT" \
      --data-dir "$WORK" >"$LS_HOME/migrate.log" 2>&1 &
  pid=$!
  ok=0
  for _ in $(seq 1 600); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    if curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then ok=1; break; fi
    sleep 1
  done
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ "$ok" != 1 ]; then
    log "Label Studio did not answer /health; last lines of $LS_HOME/migrate.log:"
    tail -n 40 "$LS_HOME/migrate.log" >&2 || true
    exit 1
  fi
  if [ ! -f "$WORK/label_studio.sqlite3" ]; then
    log "no label_studio.sqlite3 in $WORK after start" >&2
    ls -la "$WORK" >&2
    exit 1
  fi
  touch "$WORK/.lsml-migrated"
  mv "$WORK" "$TEMPLATE"
  log "migrated in $(( $(date +%s) - start )) s"
fi
log "ready: $VENV, $TEMPLATE"
