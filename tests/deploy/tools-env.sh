#!/usr/bin/env bash
# Prints the bin directory of a venv with tests/deploy/requirements.txt
# installed (hadolint, check-jsonschema, kubernetes-validate: pinned,
# hash-checked wheels), creating it under ${BREAKWATER_TOOLS:-~/.cache/breakwater}
# on first use. Progress goes to stderr. Needs python3 with venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
tools="${BREAKWATER_TOOLS:-$HOME/.cache/breakwater}"
requirements=tests/deploy/requirements.txt
key="$({ python3 --version; cat "$requirements"; } | sha256sum | cut -c1-12)"
venv="$tools/deploy-tools-$key"
mkdir -p "$tools"
exec 9>"$tools/.deploy-tools-$key.lock"
flock 9
if [ ! -f "$venv/.complete" ]; then
  echo "creating $venv from $requirements" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --require-hashes --only-binary=:all: -r "$requirements" >&2
  touch "$venv/.complete"
fi
echo "$venv/bin"
