#!/usr/bin/env bash
# CPU time per proxied request, user and system, of the gateway process and
# of nginx proxy_pass (its workers) beside it: the processes' utime and
# stime in /proc/PID/stat (all threads) before and after a wrk run, divided
# by the requests wrk made. Less sensitive to other load on the machine
# than requests/s, though not immune (caches, frequency). Same setups as
# gateway/bench/wrk.sh (access log on and off, the same token header, nginx
# upstream keep-alive >= connections), rounds interleaved, medians printed.
#
#   bash gateway/bench/cpu.sh                 # 3 rounds of 10 s, -t1 -c32
#   ROUNDS=5 DURATION=20s bash gateway/bench/cpu.sh
#   COMPARE_BIN=/path/to/other/meingpt-gateway bash gateway/bench/cpu.sh
# With COMPARE_BIN, another build's gateway is measured in the same rounds.
#
# With INSTRUCTIONS=1 it instead counts the instructions the gateway
# executes per proxied request under valgrind's callgrind (independent of
# load; ~50x slower, so a few thousand requests): callgrind_control zeroes
# the counters after a warm-up and dumps them after the measured run;
# KEEP=DIR keeps the dumps there for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/../.."

. gateway/bench/lib.sh

# wrk against port $1 with token $2 for $3; prints the number of requests,
# or fails on any non-2xx answer or socket error.
requests() {
  local out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$3" -H "X-meinGPT-JWT: $2" "http://127.0.0.1:$1/")
  if grep -q -E 'Non-2xx|Socket errors' <<<"$out"; then
    echo "errors in: wrk against 127.0.0.1:$1" >&2
    echo "$out" >&2
    exit 1
  fi
  awk '/ requests in / {print $1}' <<<"$out"
}

start_upstream

if [ "${INSTRUCTIONS:-0}" = 1 ]; then
  command -v valgrind >/dev/null || { echo "needs valgrind: apt-get install valgrind" >&2; exit 1; }
  real_bin=$GATEWAY_BIN
  GATEWAY_BIN="$work/under-callgrind"
  cat >"$GATEWAY_BIN" <<SH
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file=$work/callgrind.out.%p $real_bin "\$@"
SH
  chmod +x "$GATEWAY_BIN"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  for log in on off; do
    start_gateway "callgrind-$log" "$log"
    requests "$gateway_port" "$token" 3s >/dev/null # warm-up
    callgrind_control -z "$gateway_pid" >/dev/null
    n=$(requests "$gateway_port" "$token" "$DURATION")
    callgrind_control -d "$gateway_pid" >/dev/null
    sleep 1
    dump=$(ls -t "$work"/callgrind.out."$gateway_pid"* | head -1)
    ir=$(awk '/^summary:/ {print $2}' "$dump")
    echo "gateway proxying, access log $log: $n requests, $((ir / n)) instructions per request" \
      "(callgrind, all threads)"
    [ -n "${KEEP:-}" ] && cp "$dump" "$KEEP/callgrind.$log.out"
    kill "$gateway_pid"
  done
  exit 0
fi

start_gateway gateway-log-on on
gateway_on=$gateway_port gateway_on_pid=$gateway_pid token_on=$token
start_gateway gateway-log-off off
gateway_off=$gateway_port gateway_off_pid=$gateway_pid token_off=$token
start_proxy_pass proxy-log-on on
proxy_on=$proxy_port
start_proxy_pass proxy-log-off off
proxy_off=$proxy_port
start_auth_request auth-log-off off "$gateway_off"
auth_off=$auth_port
if [ -n "${COMPARE_BIN:-}" ]; then
  own_bin=$GATEWAY_BIN
  GATEWAY_BIN=$COMPARE_BIN
  start_gateway compare-log-on on
  compare_on=$gateway_port compare_on_pid=$gateway_pid compare_token_on=$token
  start_gateway compare-log-off off
  compare_off=$gateway_port compare_off_pid=$gateway_pid compare_token_off=$token
  GATEWAY_BIN=$own_bin
fi

# key | what is measured | port wrk loads | token | processes measured
setups=(
  "proxy-on|nginx proxy_pass workers, log on|$proxy_on|$token_on|$(nginx_pids proxy-log-on)"
  "proxy-off|nginx proxy_pass workers, log off|$proxy_off|$token_off|$(nginx_pids proxy-log-off)"
  "gateway-on|gateway proxying, log on|$gateway_on|$token_on|$gateway_on_pid"
  "gateway-off|gateway proxying, log off|$gateway_off|$token_off|$gateway_off_pid"
  "forward-auth|gateway answering auth_request, log off|$auth_off|$token_off|$gateway_off_pid"
  "auth-nginx|nginx auth_request workers, log off|$auth_off|$token_off|$(nginx_pids auth-log-off)"
  "upstream|upstream nginx, per proxied request|$proxy_off|$token_off|$(nginx_pids upstream)"
)
if [ -n "${COMPARE_BIN:-}" ]; then
  setups+=(
    "compare-on|COMPARE_BIN gateway proxying, log on|$compare_on|$compare_token_on|$compare_on_pid"
    "compare-off|COMPARE_BIN gateway proxying, log off|$compare_off|$compare_token_off|$compare_off_pid"
  )
fi

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS rounds interleaved, $(nproc) cores"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
results="$work/results"
for round in $(seq "$ROUNDS"); do
  for setup in "${setups[@]}"; do
    IFS='|' read -r key _ port header procs <<<"$setup"
    # shellcheck disable=SC2086
    read -r u0 s0 < <(cpu_ticks $procs)
    n=$(requests "$port" "$header" "$DURATION")
    # shellcheck disable=SC2086
    read -r u1 s1 < <(cpu_ticks $procs)
    echo "$key $n $((u1 - u0)) $((s1 - s0))" >>"$results"
  done
  echo "round $round done, load average $(cut -d' ' -f1-3 /proc/loadavg)"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -n "${COMPARE_BIN:-}" ] && echo "COMPARE_BIN: $COMPARE_BIN"

ticks=$(getconf CLK_TCK)
python3 - "$results" "$ticks" "${setups[@]}" <<'PY'
import statistics, sys
results, ticks, setups = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
runs = {}
for line in open(results):
    key, n, user, system = line.split()
    n = int(n)
    runs.setdefault(key, []).append((1e6 * int(user) / ticks / n, 1e6 * int(system) / ticks / n))
print(f"{'CPU per request':<44} {'user us':>8} {'system us':>10} {'total':>7}   rounds (user+system)")
for setup in setups:
    key, name = setup.split("|")[:2]
    user = statistics.median(u for u, _ in runs[key])
    system = statistics.median(s for _, s in runs[key])
    each = " ".join(f"{u:.1f}+{s:.1f}" for u, s in runs[key])
    print(f"{name:<44} {user:>8.1f} {system:>10.1f} {user + system:>7.1f}   {each}")
PY
