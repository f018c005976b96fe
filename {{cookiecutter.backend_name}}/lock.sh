#!/bin/sh
# Refresh the locks after you edit requirements.txt or requirements-test.txt:
#   sh lock.sh              (sh lock.sh --upgrade: every package to its newest release)
# requirements.lock (what the Docker image installs) is requirements.txt's whole dependency
# tree, requirements-test.lock (what CI installs) that of both files: every package pinned with
# the hashes of its files, for Python 3.10 to 3.13 on any OS, so `pip install --require-hashes`
# installs the same files on every machine. Pins that still fit are kept. Needs uv
# (requirements-test.txt installs it; or: pip install uv).
set -eu
cd "$(dirname "$0")"
if command -v uv >/dev/null 2>&1; then uv=uv; else uv="python -m uv"; fi
compile() {
  $uv pip compile --quiet --universal --python-version 3.10 --generate-hashes "$@"
}
compile requirements.txt -o requirements.lock "$@"
compile requirements.txt requirements-test.txt -o requirements-test.lock "$@"
