#!/usr/bin/env bash
# HTTP load benchmark: the quickstart's routes under wrk on loopback.
#   /health            no auth
#   /health + header   no auth, but the same token header sent (a control:
#                      what the bigger request alone costs; the token's size
#                      in bytes is printed)
#   /ping (repeated)   one token on every request, a route that answers
#                      "pong": the layer's own cost, without /me's JSON body
#   /me (repeated)     one token on every request (the MCP case)
#   /me (distinct)     20,000 distinct tokens, rotated by a Lua script
# Runs ROUNDS rounds; in each, every route's run comes right after a run of
# /health, and its ratio is taken to that /health run, so that the machine's
# drift (these machines are shared) touches both sides of each ratio alike.
# For each route it prints the median over the rounds of requests/s, p50
# and p99, and the median of its ratios; then every round's requests/s and
# ratio, the total number of requests, the JWKS fetches and the server's
# peak RSS. The table is printed as BENCHMARKS.md shows it.
#
# With PIN=1 the server runs on core 0 with one Tokio worker and wrk on core
# 1: each side has its own core, so the ratios measure the server's CPU per
# request and move much less from run to run than when the three threads
# share both cores.
#
# Usage: [PIN=1] benches/http_load.sh [DURATION_SECONDS] [ROUNDS] [CONNECTIONS]
# (defaults: 8 s, 3 rounds, 32 connections; BENCHMARKS.md uses 8 5)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-8}
ROUNDS=${2:-3}
CONNECTIONS=${3:-32}
TOKENS=20000
source benches/http/serve.sh

run() { # name, extra wrk args...
  local name=$1; shift
  "${client_cpu[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" >"$work/$name.$round.txt"
}
health() { run "health_before_$1" "http://127.0.0.1:$app_port/health"; }
for round in $(seq "$ROUNDS"); do
  health health_header
  run health_header -H "X-meinGPT-JWT: $one" "http://127.0.0.1:$app_port/health"
  health ping
  run ping -H "X-meinGPT-JWT: $one" "http://127.0.0.1:$app_port/ping"
  health repeated
  run repeated -H "X-meinGPT-JWT: $one" "http://127.0.0.1:$app_port/me"
  health distinct
  TOKENS_FILE="$work/tokens.txt" run distinct -s benches/http/rotate.lua "http://127.0.0.1:$app_port/me"
done

fetches=$(grep -c 'GET /jwks.json' "$work/jwks.log" || true)
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/${pids[1]}/status")
python3 - "$work" "$ROUNDS" "$fetches" "$rss_kb" "$CONNECTIONS" "$DURATION" "${#one}" "$placement" <<'PY'
import re, sys, statistics
work, rounds, fetches, rss_kb, conns, duration, token_bytes, placement = sys.argv[1:9]
rounds = int(rounds)
def parse(path):
    text = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", text, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    total = int(re.search(r"^\s+(\d+) requests in", text, re.M).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {"rps": rps, "p50": pct(50), "p99": pct(99), "total": total,
            "non2xx": int(non2xx.group(1)) if non2xx else 0}
routes = ["health_header", "ping", "repeated", "distinct"]
names = ["health"] + routes
labels = {
    "health": "`/health` (no auth)",
    "health_header": f"`/health` + the same {token_bytes}-byte token header (control)",
    "ping": "`/ping` (behind the layer, answers `pong`), one repeated token",
    "repeated": "`/me`, one repeated token",
    "distinct": "`/me`, 20,000 distinct tokens",
}
runs = {name: [parse(f"{work}/{name}.{r}.txt") for r in range(1, rounds + 1)] for name in routes}
before = {name: [parse(f"{work}/health_before_{name}.{r}.txt") for r in range(1, rounds + 1)] for name in routes}
runs["health"] = [run for name in routes for run in before[name]]
# Each ratio is taken to the /health run right before it.
ratios = {name: [run["rps"] / base["rps"] for run, base in zip(runs[name], before[name])] for name in routes}
ratios["health"] = [1.0]
median = statistics.median
print(f"wrk -t1 -c{conns} -d{duration}s, {rounds} rounds; token {token_bytes} bytes; {placement}")
print("medians over the rounds; the ratio is the median of each run's ratio to the /health run right before it")
print()
print("| route | req/s | p50 | p99 | ÷ /health | rounds (req/s) |")
print("| --- | ---: | ---: | ---: | ---: | --- |")
for name in names:
    r = runs[name]
    rps = [run["rps"] for run in r]
    print(f"| {labels[name]} | {median(rps):,.0f} | {median(run['p50'] for run in r):.3f} ms "
          f"| {median(run['p99'] for run in r):.3f} ms | {median(ratios[name]):.2f}× "
          f"| {min(rps):,.0f} – {max(rps):,.0f} |")
print()
for name in routes:
    print(f"{name}: per round req/s {[round(run['rps']) for run in runs[name]]}, "
          f"ratio to the /health run before it {[round(x, 2) for x in ratios[name]]}")
total = sum(run["total"] for name in names for run in runs[name])
non2xx = sum(run["non2xx"] for name in names for run in runs[name])
print(f"requests in all runs: {total:,}")
print(f"non-2xx answers: {non2xx}")
print(f"JWKS fetches during the whole run: {fetches}")
print(f"server peak RSS: {int(rss_kb) / 1024:.1f} MiB")
PY
