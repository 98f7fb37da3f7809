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
requirements="${1:-tests/interop/requirements.txt}"
venv="$(bash tests/support/venv.sh "$requirements" python)"
echo "$venv/bin/python"
