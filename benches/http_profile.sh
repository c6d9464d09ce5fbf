#!/usr/bin/env bash
# Where a repeated-token request's CPU time goes in the server: the
# quickstart (built with line tables, `--profile profiling`) under wrk, one
# route at a time, sampled with `perf record` (call stacks by DWARF) while
# wrk runs; each sample is sorted by benches/http/shares.py into the auth
# layer, the request's extensions, the application's handler and the rest.
#   /health  outside the layer, answers "ok" (the token header sent anyway)
#   /ping    behind the layer, answers "pong"
#   /me      behind the layer, answers the user as JSON
# Needs perf (Debian: linux-perf) and kernel.perf_event_paranoid ≤ 2.
#
# Usage: [PIN=1] benches/http_profile.sh [SECONDS]   (default 6)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_SAMPLED=${1:-6}
command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf; }
cargo build --profile profiling --example quickstart -q
QUICKSTART=target/profiling/examples/quickstart
source benches/http/serve.sh
server=${pids[1]}

echo "perf samples of the quickstart ($placement), ${SECONDS_SAMPLED} s per route, one token repeated"
for route in health ping me; do
  "${client_cpu[@]}" wrk -t1 -c32 -d"$((SECONDS_SAMPLED + 2))s" -H "X-meinGPT-JWT: $one" \
    "http://127.0.0.1:$app_port/$route" >"$work/$route.wrk" &
  wrk_pid=$!
  sleep 1
  perf record -q -F 2000 -g --call-graph dwarf,16384 -p "$server" -o "$work/$route.data" \
    -- sleep "$SECONDS_SAMPLED" >/dev/null 2>&1
  wait "$wrk_pid"
  perf script -i "$work/$route.data" -F ip,sym 2>/dev/null >"$work/$route.stacks"
  echo
  echo "/$route ($(awk '/Requests\/sec/ {printf "%.0f", $2}' "$work/$route.wrk") req/s while sampled):"
  python3 benches/http/shares.py "$work/$route.stacks" | sed 's/^/  /'
  rm -f "$work/$route.data" "$work/$route.stacks"
done
