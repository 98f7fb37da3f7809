#!/usr/bin/env bash
# Prints the bin directory of a venv with tests/deploy/requirements.txt
# installed (hadolint, check-jsonschema, kubernetes-validate: pinned,
# hash-checked wheels), creating it under ${BREAKWATER_TOOLS:-~/.cache/breakwater}
# on first use. Progress goes to stderr. Needs python3 with venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="$(bash tests/support/venv.sh tests/deploy/requirements.txt deploy-tools)"
echo "$venv/bin"
