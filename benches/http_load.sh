#!/usr/bin/env bash
# HTTP load benchmark: the quickstart's routes under wrk on loopback.
#   /health            no auth
#   /health + header   no auth, but the same 800-byte token header sent
#                      (a control: what the bigger request alone costs)
#   /me (repeated)     one token on every request (the MCP case)
#   /me (distinct)     20,000 distinct tokens, rotated by a Lua script
# Prints requests/s, p50 and p99 for each, the ratios to /health, and how
# many times the JWKS was fetched. Runs ROUNDS rounds of the three, side by
# side, and reports the median round.
#
# Usage: benches/http_load.sh [DURATION_SECONDS] [ROUNDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-8}
ROUNDS=${2:-3}
CONNECTIONS=${3:-32}
TOKENS=20000

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
[ -d interop/node_modules/jose ] || npm ci --prefix interop --no-audit --no-fund
cargo build --release --example quickstart -q

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
jwks_port=$(free_port)
app_port=$(free_port)
issuer="http://127.0.0.1:$jwks_port"

node benches/http/mint.mjs "$work" "$issuer" bench-org "$TOKENS"
python3 -m http.server "$jwks_port" --bind 127.0.0.1 --directory "$work" 2>"$work/jwks.log" >/dev/null &
pids+=($!)
for _ in $(seq 100); do curl -sf "$issuer/jwks.json" >/dev/null && break; sleep 0.1; done
: >"$work/jwks.log" # count only the server's own fetches

MEINGPT_ORG_ID=bench-org MEINGPT_ISSUER="$issuer" MEINGPT_JWKS_URL="$issuer/jwks.json" \
  LISTEN_ADDR="127.0.0.1:$app_port" RUST_LOG=warn \
  target/release/examples/quickstart >"$work/app.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -s "127.0.0.1:$app_port/health" >/dev/null && break; sleep 0.1; done
one=$(head -1 "$work/one.txt")
status=$(curl -s -o /dev/null -w '%{http_code}' -H "X-meinGPT-JWT: $one" "127.0.0.1:$app_port/me")
[ "$status" = 200 ] || { echo "warm-up /me answered $status"; cat "$work/app.log"; exit 1; }

run() { # name, extra wrk args...
  local name=$1; shift
  wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" >"$work/$name.$round.txt"
}
for round in $(seq "$ROUNDS"); do
  run health "http://127.0.0.1:$app_port/health"
  run health_header -H "X-meinGPT-JWT: $one" "http://127.0.0.1:$app_port/health"
  run repeated -H "X-meinGPT-JWT: $one" "http://127.0.0.1:$app_port/me"
  TOKENS_FILE="$work/tokens.txt" run distinct -s benches/http/rotate.lua "http://127.0.0.1:$app_port/me"
done

fetches=$(grep -c 'GET /jwks.json' "$work/jwks.log" || true)
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/${pids[1]}/status")
python3 - "$work" "$ROUNDS" "$fetches" "$rss_kb" "$CONNECTIONS" "$DURATION" <<'PY'
import re, sys, statistics
work, rounds, fetches, rss_kb, conns, duration = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
def parse(path):
    text = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", text, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return rps, pct(50), pct(99), int(non2xx.group(1)) if non2xx else 0
rows = {}
names = ["health", "health_header", "repeated", "distinct"]
for name in names:
    runs = [parse(f"{work}/{name}.{r}.txt") for r in range(1, rounds + 1)]
    runs.sort(key=lambda r: r[0])
    rows[name] = runs[len(runs) // 2]
    rows[name + "_all"] = [round(r[0]) for r in runs]
base = rows["health"][0]
print(f"wrk -t1 -c{conns} -d{duration}s, {rounds} rounds side by side; median round shown")
print(f"{'route':<30}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs /health':>12}{'non-2xx':>9}   all rounds req/s")
labels = {"health": "/health (no auth)", "health_header": "/health + token header", "repeated": "/me, one repeated token", "distinct": "/me, 20,000 distinct tokens"}
for name in names:
    rps, p50, p99, bad = rows[name]
    print(f"{labels[name]:<30}{rps:>10.0f}{p50:>9.3f}{p99:>9.3f}{rps / base:>11.2f}x{bad:>9}   {rows[name + '_all']}")
print(f"JWKS fetches during the whole run: {fetches}")
print(f"server peak RSS: {int(rss_kb) / 1024:.1f} MiB")
PY
