#!/usr/bin/env bash
# Renders deploy/grafana/dashboard.png from real data: a Tansu broker, a
# `breakwater run` job, a real Prometheus with deploy/prometheus/ (scrape
# config and rules), `breakwater chaos` producing scenarios/mixed.yaml and
# bad_input.py some malformed records (for the dead-letter panel);
# then plot.py sends every query of deploy/grafana/breakwater.json to
# Prometheus' query_range and draws the panels where the dashboard has them.
# Grafana itself cannot be installed here, so this stands in for a screenshot.
#
#     deploy/grafana/render/render.sh [OUT.png]     # default deploy/grafana/dashboard.png
#
# Takes 40 minutes of scenario / SPEED (default 10: about 4 minutes) plus
# start-up. Environment: SPEED, SCRAPE (scrape interval, default 2s), AGENT
# (the drill-down's $agent, default support-agent-0: tool failures from
# +5 to +13 minutes), BREAKWATER_BIN (default target/release/breakwater,
# built if missing), TANSU_BIN, PROMETHEUS, KEEP=1 to keep the work dir.
# Needs python3 with venv, curl, and Debian's `prometheus`; installs pinned,
# hash-checked matplotlib (requirements.txt) and confluent-kafka
# (tests/interop) on first use.
set -euo pipefail
cd "$(dirname "$0")/../../.."

out="${1:-deploy/grafana/dashboard.png}"
speed="${SPEED:-10}"
scrape="${SCRAPE:-2s}"
agent="${AGENT:-support-agent-0}"
bin="${BREAKWATER_BIN:-target/release/breakwater}"
prometheus="${PROMETHEUS:-prometheus}"

say() { echo "render: $*" >&2; }

if [ ! -x "$bin" ]; then
  say "building $bin"
  cargo build --release --bin breakwater >&2
fi
venv="$(bash tests/support/venv.sh deploy/grafana/render/requirements.txt plot)"
kafka_python="$(bash tests/interop/python-env.sh)"

work="$(mktemp -d)"
pids=()
cleanup() {
  # Only the processes started here, newest first: Prometheus, then the job
  # (SIGTERM: it stops gracefully while the broker is still up), the broker.
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "${KEEP:-}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for() { # DESCRIPTION SECONDS COMMAND...
  local what="$1" secs="$2"
  shift 2
  for _ in $(seq "$((secs * 5))"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  say "timed out waiting for $what (logs in $work)"
  tail -n 20 "$work"/*.log >&2 || true
  KEEP=1
  exit 1
}

kafka_port="$(free_port)"
http_port="$(free_port)"
prom_port="$(free_port)"
brokers="127.0.0.1:$kafka_port"

bash deploy/tansu/start.sh "$kafka_port" >"$work/tansu.log" 2>&1 &
pids=("$!" "${pids[@]}")
wait_for "Tansu on $brokers" 60 bash -c "exec 3<>/dev/tcp/127.0.0.1/$kafka_port"

# The chaos SLOs with this broker and the HTTP endpoint: event-time timers
# (chaos event times are synthetic), snapshots and librdkafka statistics
# every 2 s so gauges move between scrapes, and a short session timeout
# (Tansu holds each group join for about half of it).
python3 - "$work/slo.yaml" "$brokers" "$http_port" <<'PY'
import sys
path, brokers, port = sys.argv[1:]
slo = open("scenarios/slo.yaml", encoding="utf-8").read()
old = "kafka:\n  timers: event_time\n"
assert slo.count(old) == 1, "scenarios/slo.yaml: its kafka section changed; update render.sh"
new = (f'kafka:\n  brokers: "{brokers}"\n  group_id: breakwater-render\n  partitions: 3\n'
       "  snapshot_interval: 2s\n  timers: event_time\n"
       "  consumer_properties: {session.timeout.ms: 6000, heartbeat.interval.ms: 1000}\n"
       f"http:\n  listen: 127.0.0.1:{port}\n")
open(path, "w", encoding="utf-8").write(slo.replace(old, new))
PY

"$bin" run --config "$work/slo.yaml" >"$work/job.log" 2>&1 &
pids=("$!" "${pids[@]}")
wait_for "breakwater run ready on :$http_port" 120 curl -sf "http://127.0.0.1:$http_port/readyz"

# The shipped scrape config and rules, with this job's address and a short
# scrape interval (the run lasts minutes, not hours); checked by promtool.
mkdir -p "$work/prometheus"
cp deploy/prometheus/rules.yml "$work/prometheus/"
sed -e "s/^\(  scrape_interval:\).*/\1 $scrape/" -e "s/^\(  evaluation_interval:\).*/\1 $scrape/" \
  -e "s/\"localhost:9464\"/\"127.0.0.1:$http_port\"/" \
  deploy/prometheus/prometheus.yml >"$work/prometheus/prometheus.yml"
if ! grep -q "127.0.0.1:$http_port" "$work/prometheus/prometheus.yml" ||
  ! grep -q "scrape_interval: $scrape" "$work/prometheus/prometheus.yml"; then
  say "deploy/prometheus/prometheus.yml changed shape; update render.sh"
  exit 1
fi
promtool check config "$work/prometheus/prometheus.yml" >&2

"$prometheus" --config.file="$work/prometheus/prometheus.yml" --storage.tsdb.path="$work/prometheus/data" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
pids=("$!" "${pids[@]}")
prom="http://127.0.0.1:$prom_port"
wait_for "Prometheus scraping the job" 60 \
  bash -c "curl -sf '$prom/api/v1/query?query=up' | grep -q '\"value\":\[[0-9.]*,\"1\"\]'"

start="$(date +%s)"
say "chaos: scenarios/mixed.yaml at ${speed}x to $brokers (job :$http_port, Prometheus :$prom_port)"
# Malformed records alongside the scenario, for as long as it lasts.
minutes="$(sed -n 's/^duration: \([0-9][0-9]*\)m$/\1/p' scenarios/mixed.yaml)"
[ -n "$minutes" ] || { say "scenarios/mixed.yaml: no 'duration: Nm'; update render.sh"; exit 1; }
"$kafka_python" deploy/grafana/render/bad_input.py "$brokers" "$(python3 -c "print($minutes * 60 / $speed)")" \
  >"$work/bad_input.log" 2>&1 &
bad_input="$!"
pids=("$bad_input" "${pids[@]}")
# In the background and waited for: bash runs a signal's trap only once the
# foreground command ends, and `wait` returns at once on a signal.
"$bin" chaos --config "$work/slo.yaml" --brokers "$brokers" --scenario scenarios/mixed.yaml \
  --speed "$speed" --manifest "$work/mixed.json" >"$work/chaos.log" 2>&1 &
chaos="$!"
pids=("$chaos" "${pids[@]}")
wait "$chaos" || { say "breakwater chaos failed:"; cat "$work/chaos.log" >&2; exit 1; }
cat "$work/chaos.log" >&2
wait "$bad_input" || { say "bad_input.py failed:"; cat "$work/bad_input.log" >&2; exit 1; }
# A few scrapes after the last event, so the tail of the run is in the picture.
sleep 20 &
pids=("$!" "${pids[@]}")
wait "$!"
end="$(date +%s)"

# What the job made of the faults, for the log (not drawn).
"$bin" chaos report --config "$work/slo.yaml" --brokers "$brokers" --manifest "$work/mixed.json" \
  --scenario scenarios/mixed.yaml >&2 || say "chaos report failed (the picture does not depend on it)"

# With KEEP=1 the scrape stays in $work/prometheus/data: a Prometheus on it
# and plot.py with these times redraw the same data (when changing plot.py).
say "plot: --start $start --end $end --step $scrape --agent $agent"
"$venv/bin/python" deploy/grafana/render/plot.py --prometheus "$prom" --start "$start" --end "$end" \
  --step "$scrape" --agent "$agent" --out "$out" \
  --note "scenarios/mixed.yaml at ${speed}x via breakwater chaos (event time runs ahead of the wall clock)"
size="$(stat -c %s "$out")"
[ "$size" -lt 409600 ] || say "warning: $out is $((size / 1024)) KiB"
