#!/usr/bin/env bash
# Prints the path of a python with a requirements file installed (default
# tests/interop/requirements.txt: confluent-kafka, fastavro; or the file
# given, relative to the repository, e.g. tests/openapi/requirements.txt),
# pinned, hash-checked wheels, creating the venv under
# ${BREAKWATER_TOOLS:-~/.cache/breakwater} on first use; one venv per
# requirements content. Progress goes to stderr. Needs python3 with venv
# (Debian: python3-venv).
set -euo pipefail
cd "$(dirname "$0")/../.."
tools="${BREAKWATER_TOOLS:-$HOME/.cache/breakwater}"
requirements="${1:-tests/interop/requirements.txt}"
key="$({ python3 --version; cat "$requirements"; } | sha256sum | cut -c1-12)"
venv="$tools/python-$key"
mkdir -p "$tools"
exec 9>"$tools/.python-$key.lock"
flock 9
if [ ! -f "$venv/.complete" ]; then
  echo "creating $venv from $requirements" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --require-hashes --only-binary=:all: -r "$requirements" >&2
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
