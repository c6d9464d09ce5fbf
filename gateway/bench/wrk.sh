#!/usr/bin/env bash
# The gateway's throughput next to nginx's, with wrk, all on loopback, each
# setup proxying to the same small upstream (an nginx worker answering "ok"):
#   upstream direct                   (for reference)
#   nginx proxy_pass, no auth         the yardstick: 1.00
#   meingpt-gateway proxy             every request verified
#   nginx auth_request -> gateway     gateway/deploy/nginx.conf
# each with its access log on and off (nginx's buffered, 64 KiB and 1 s; the
# gateway's batched; for auth_request both nginx's and the gateway's), every
# request carrying the same token header. Every nginx keeps at least as
# many idle upstream connections as wrk opens, so none churns. The rounds
# are interleaved (each round runs every setup once), and the script prints
# the median requests/s of each setup and its ratio to nginx proxy_pass with
# the same access-log setting. Needs wrk and nginx (apt-get install wrk nginx).
#
#   bash gateway/bench/wrk.sh                     # 3 rounds of 10 s, -t1 -c32
#   ROUNDS=5 DURATION=20s CONNECTIONS=64 bash gateway/bench/wrk.sh
#   GATEWAY_BIN=/path/to/meingpt-gateway bash gateway/bench/wrk.sh
#   COMPARE_BIN=/path/to/other/meingpt-gateway bash gateway/bench/wrk.sh
# With COMPARE_BIN, another build's gateway proxy runs in the same rounds
# (access log on and off), for a before/after measured side by side.
set -euo pipefail
cd "$(dirname "$0")/../.."

. gateway/bench/lib.sh

start_upstream
start_gateway gateway-log-on on
gateway_on=$gateway_port
token_on=$token
start_gateway gateway-log-off off
gateway_off=$gateway_port
token_off=$token
start_proxy_pass proxy-log-on on
proxy_on=$proxy_port
start_proxy_pass proxy-log-off off
proxy_off=$proxy_port
start_auth_request auth-log-on on "$gateway_on"
auth_on=$auth_port
start_auth_request auth-log-off off "$gateway_off"
auth_off=$auth_port
if [ -n "${COMPARE_BIN:-}" ]; then
  own_bin=$GATEWAY_BIN
  GATEWAY_BIN=$COMPARE_BIN
  start_gateway compare-log-on on
  compare_on=$gateway_port compare_token_on=$token
  start_gateway compare-log-off off
  compare_off=$gateway_port compare_token_off=$token
  GATEWAY_BIN=$own_bin
fi

# Each gateway checks its own development issuer's token; both tokens have
# the same claims and length. nginx proxy_pass gets the same header.
setups=(
  "upstream|upstream direct|$upstream_port|$token_on"
  "proxy-on|nginx proxy_pass, no auth|$proxy_on|$token_on"
  "gateway-on|meingpt-gateway proxy|$gateway_on|$token_on"
  "auth-on|nginx auth_request -> gateway|$auth_on|$token_on"
  "proxy-off|nginx proxy_pass, no auth|$proxy_off|$token_off"
  "gateway-off|meingpt-gateway proxy|$gateway_off|$token_off"
  "auth-off|nginx auth_request -> gateway|$auth_off|$token_off"
)
if [ -n "${COMPARE_BIN:-}" ]; then
  setups+=(
    "compare-on|COMPARE_BIN gateway proxy|$compare_on|$compare_token_on"
    "compare-off|COMPARE_BIN gateway proxy|$compare_off|$compare_token_off"
  )
fi

# One wrk run: prints requests/s, or fails on any non-2xx answer or error.
run() {
  local port=$1 header=$2 duration=$3 out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$duration" -H "X-meinGPT-JWT: $header" \
    "http://127.0.0.1:$port/")
  if grep -q -E 'Non-2xx|Socket errors' <<<"$out"; then
    echo "errors in: wrk against 127.0.0.1:$port" >&2
    echo "$out" >&2
    exit 1
  fi
  awk '/^Requests\/sec:/ {print $2}' <<<"$out"
}

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS rounds interleaved, $(nproc) cores," \
  "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $("$nginx_bin" -v 2>&1 | sed 's/.*: //')," \
  "nginx upstream keepalive $KEEPALIVE"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for setup in "${setups[@]}"; do
  IFS='|' read -r key _ port header <<<"$setup"
  run "$port" "$header" 2s >/dev/null # warm-up
done
results="$work/results"
for round in $(seq "$ROUNDS"); do
  for setup in "${setups[@]}"; do
    IFS='|' read -r key _ port header <<<"$setup"
    echo "$round $key $(run "$port" "$header" "$DURATION")" >>"$results"
  done
  echo "round $round done, load average $(cut -d' ' -f1-3 /proc/loadavg)"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -n "${COMPARE_BIN:-}" ] && echo "COMPARE_BIN: $COMPARE_BIN"

python3 - "$results" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    _, key, rps = line.split()
    runs.setdefault(key, []).append(float(rps))
median = {key: statistics.median(v) for key, v in runs.items()}
rows = [
    ("upstream", "upstream direct", None),
    ("proxy-on", "nginx proxy_pass, no auth", "proxy-on"),
    ("gateway-on", "meingpt-gateway proxy", "proxy-on"),
    ("auth-on", "nginx auth_request -> gateway", "proxy-on"),
    ("proxy-off", "nginx proxy_pass, no auth", "proxy-off"),
    ("gateway-off", "meingpt-gateway proxy", "proxy-off"),
    ("auth-off", "nginx auth_request -> gateway", "proxy-off"),
    ("compare-on", "COMPARE_BIN gateway proxy", "proxy-on"),
    ("compare-off", "COMPARE_BIN gateway proxy", "proxy-off"),
]
rows = [row for row in rows if row[0] in runs]
print(f"{'setup':<32} {'access log':<11} {'median req/s':>12} {'x proxy_pass':>12}   rounds")
for key, name, base in rows:
    log = "" if base is None else key.split("-")[1]
    ratio = f"{median[key] / median[base]:.2f}" if base else ""
    each = " ".join(f"{r:.0f}" for r in runs[key])
    print(f"{name:<32} {log:<11} {median[key]:>12.0f} {ratio:>12}   {each}")
for log in ("on", "off"):
    c = median[f"gateway-{log}"] / median[f"proxy-{log}"]
    d = median[f"auth-{log}"] / median[f"proxy-{log}"]
    print(f"access log {log}: gateway {c:.2f}x (target >= 0.80: {'met' if c >= 0.8 else 'NOT met'}),"
          f" auth_request {d:.2f}x (target >= 0.70: {'met' if d >= 0.7 else 'NOT met'})")
PY
