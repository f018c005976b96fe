#!/usr/bin/env bash
# Refresh every lock of this repository (run it after editing requirements-dev.txt,
# runtime/pyproject.toml or the template's requirements*.txt; tests/test_locks.py says when):
#   requirements-dev.lock                         the development and test environment
#                                                 (requirements-dev.txt + the runtime's dependencies)
#   {{cookiecutter.backend_name}}/requirements.lock       what a generated repo's image installs
#   {{cookiecutter.backend_name}}/requirements-test.lock  what its CI installs
#   ...and the same two in .locks-sdk/, used when the hook adds label-studio-sdk.
# The template's locks are made the way a generated repo refreshes its own (its lock.sh, in a
# fresh bake), minus the vendored runtime wheel's line, which the post-gen hook writes.
# Existing pins are kept when they still fit; `bash scripts/lock.sh --upgrade` takes the newest.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
if [ ! -x .venv/bin/uv ] || [ ! -x .venv/bin/cookiecutter ]; then
  echo "scripts/lock.sh needs .venv with uv and cookiecutter: run bash scripts/bootstrap.sh first" >&2
  exit 1
fi
export PATH="$ROOT/.venv/bin:$PATH"
UPGRADE=()
if [ "${1:-}" = "--upgrade" ]; then UPGRADE=(--upgrade); fi

# 1. the development environment: Python 3.11 (what CI runs) or newer (check-jsonschema needs 3.11)
uv pip compile --quiet --universal --python-version 3.11 --generate-hashes "${UPGRADE[@]}" \
  --custom-compile-command "bash scripts/lock.sh" \
  requirements-dev.txt runtime/pyproject.toml --extra init --extra sdk -o requirements-dev.lock

# 2. the template: bake the built-in example offline, run the generated lock.sh in it
TEMPLATE="$ROOT/{{cookiecutter.backend_name}}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cookiecutter --no-input --output-dir "$WORK" "$ROOT" backend_name=lock_backend >/dev/null
BAKED="$WORK/lock_backend"
without_vendor() {  # drop the ./vendor/<wheel> entry (its line, hashes and annotations)
  awk '/^\.\/vendor\//{skip=1; next} skip && /^[ \t]/{next} {skip=0; print}' "$1" >"$2"
}
(cd "$BAKED" && sh lock.sh "${UPGRADE[@]}")
without_vendor "$BAKED/requirements.lock" "$TEMPLATE/requirements.lock"
without_vendor "$BAKED/requirements-test.lock" "$TEMPLATE/requirements-test.lock"

# 3. the same with the SDK line the post-gen hook adds for scripts that use label_studio_sdk
SDK=$(sed -n 's/^SDK_REQUIREMENT = "\(.*\)"$/\1/p' hooks/lsml_hooklib.py)
echo "$SDK" >>"$BAKED/requirements.txt"
for lock in requirements.lock requirements-test.lock; do  # keep the SDK variant's own pins
  if [ -f "$TEMPLATE/.locks-sdk/$lock" ]; then cp "$TEMPLATE/.locks-sdk/$lock" "$BAKED/$lock"; fi
done
(cd "$BAKED" && sh lock.sh "${UPGRADE[@]}")
mkdir -p "$TEMPLATE/.locks-sdk"
without_vendor "$BAKED/requirements.lock" "$TEMPLATE/.locks-sdk/requirements.lock"
without_vendor "$BAKED/requirements-test.lock" "$TEMPLATE/.locks-sdk/requirements-test.lock"
echo "refreshed requirements-dev.lock and the template's locks ($SDK variant in .locks-sdk/)"
