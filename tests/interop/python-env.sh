#!/usr/bin/env bash
# Prints the path of a python with tests/interop/requirements.txt installed
# (confluent-kafka, fastavro: pinned, hash-checked wheels), creating the venv
# under ${BREAKWATER_TOOLS:-~/.cache/breakwater} on first use. Progress goes
# to stderr. Needs python3 with venv (Debian: python3-venv).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="$(bash tests/support/venv.sh tests/interop/requirements.txt python)"
echo "$venv/bin/python"
