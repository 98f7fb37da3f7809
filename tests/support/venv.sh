#!/usr/bin/env bash
# Usage: tests/support/venv.sh REQUIREMENTS NAME
# Prints the path of a venv with REQUIREMENTS installed (wheels only,
# hash-checked), creating it as ${BREAKWATER_TOOLS:-~/.cache/breakwater}/NAME-KEY
# on first use; KEY hashes the python version and the requirements, so a
# changed pin makes a new venv. Parallel callers wait for each other.
# Progress goes to stderr. Needs python3 with venv (Debian: python3-venv).
set -euo pipefail
requirements="$1"
name="$2"
tools="${BREAKWATER_TOOLS:-$HOME/.cache/breakwater}"
key="$({ python3 --version; cat "$requirements"; } | sha256sum | cut -c1-12)"
venv="$tools/$name-$key"
mkdir -p "$tools"
exec 9>"$tools/.$name-$key.lock"
flock 9
if [ ! -f "$venv/.complete" ]; then
  echo "creating $venv from $requirements" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --require-hashes --only-binary=:all: -r "$requirements" >&2
  touch "$venv/.complete"
fi
echo "$venv"
