# Sourced by the HTTP benchmark scripts (run from the repository's root):
# starts the release build of examples/quickstart against a JWKS served by
# `python3 -m http.server`, with tokens minted by Node jose.
#
# Reads:  PIN=1 (server on core 0 with one Tokio worker, clients on core 1),
#         TOKENS (how many distinct tokens to mint), QUICKSTART (the binary;
#         default: cargo's release build of the example, built here).
# Sets:   work (a temporary directory: one.txt, tokens.txt, jwks.log,
#         app.log), pids (JWKS server, quickstart), app_port, one (a token),
#         server_cpu and client_cpu (the taskset prefixes, empty unless PIN),
#         placement (where server and clients run, in words).
server_cpu=() client_cpu=()
placement="server and wrk share both cores"
if [ "${PIN:-0}" = 1 ]; then
  server_cpu=(taskset -c 0)
  client_cpu=(taskset -c 1)
  export TOKIO_WORKER_THREADS=1
  placement="server on core 0 (one Tokio worker), wrk on core 1"
fi

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
[ -d interop/node_modules/jose ] || npm ci --prefix interop --no-audit --no-fund
if [ -z "${QUICKSTART:-}" ]; then
  cargo build --release --example quickstart -q
  QUICKSTART=target/release/examples/quickstart
fi

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
jwks_port=$(free_port)
app_port=$(free_port)
issuer="http://127.0.0.1:$jwks_port"

node benches/http/mint.mjs "$work" "$issuer" bench-org "${TOKENS:-1}"
python3 -m http.server "$jwks_port" --bind 127.0.0.1 --directory "$work" 2>"$work/jwks.log" >/dev/null &
pids+=($!)
for _ in $(seq 100); do curl -sf "$issuer/jwks.json" >/dev/null && break; sleep 0.1; done
: >"$work/jwks.log" # count only the server's own fetches

MEINGPT_ORG_ID=bench-org MEINGPT_ISSUER="$issuer" MEINGPT_JWKS_URL="$issuer/jwks.json" \
  LISTEN_ADDR="127.0.0.1:$app_port" RUST_LOG=warn \
  "${server_cpu[@]}" "$QUICKSTART" >"$work/app.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -s "127.0.0.1:$app_port/health" >/dev/null && break; sleep 0.1; done
one=$(head -1 "$work/one.txt")
status=$(curl -s -o /dev/null -w '%{http_code}' -H "X-meinGPT-JWT: $one" "127.0.0.1:$app_port/me")
[ "$status" = 200 ] || { echo "warm-up /me answered $status"; cat "$work/app.log"; exit 1; }
