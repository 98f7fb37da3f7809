#!/usr/bin/env bash
# Starts a local Tansu broker (Kafka-compatible) on 127.0.0.1:PORT, in the
# foreground, for trying Breakwater against Kafka. Ctrl-C stops it.
#
#     deploy/tansu/start.sh [PORT]        # default 9092
#
# Storage is in memory: topics and data are gone when the broker stops.
# Installs Tansu first if needed (deploy/tansu/install.sh); TANSU_BIN
# overrides the binary.
set -euo pipefail

port="${1:-9092}"
case "$port" in
  '' | *[!0-9]*) echo "usage: $0 [PORT]" >&2; exit 2 ;;
esac
if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
  echo "PORT must be in 1..65535" >&2
  exit 2
fi

bin="${TANSU_BIN:-}"
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  bin="$(bash "$(dirname "$0")/install.sh")"
fi

url="tcp://127.0.0.1:$port"
cat >&2 <<MSG
Tansu on 127.0.0.1:$port (bootstrap.servers=127.0.0.1:$port), memory storage.
Create topics explicitly: producing to an unknown topic creates it with 4 partitions.
Consumers: set session.timeout.ms low (e.g. 6000): Tansu holds each group join for about half of it.
MSG
# The advertised URL must match: without it Tansu sends clients to localhost:9092.
exec "$bin" broker --listener-url "$url" --advertised-listener-url "$url" --storage-engine memory://tansu/
