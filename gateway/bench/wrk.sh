#!/usr/bin/env bash
# The gateway's throughput next to nginx's, with wrk: one run each, all on
# loopback, against the same small upstream (an nginx answering "ok"):
#   (a) the upstream directly
#   (b) nginx proxy_pass to it, no authentication
#   (c) meingpt-gateway proxying to it, every request with the same token
#   (d) nginx auth_request -> meingpt-gateway (gateway/deploy/nginx.conf)
# Prints requests/s and p99 latency of each, the ratios (c)/(b) and (d)/(b),
# and the gateway's peak RSS. Needs wrk and nginx (apt-get install wrk nginx).
#
#   bash gateway/bench/wrk.sh              # 10 s per run, 32 connections
#   DURATION=30s CONNECTIONS=64 bash gateway/bench/wrk.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}

nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
for tool in wrk "$nginx_bin"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "needs $tool: apt-get install wrk nginx" >&2; exit 1; }
done

cargo build --quiet --release -p meingpt-gateway
gateway_bin=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/meingpt-gateway

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  exit 1
}

# nginx in the foreground with its own prefix; $1 name, $2 workers, $3 the
# http-level configuration.
start_nginx() {
  local dir="$work/$1"
  mkdir -p "$dir"
  printf '%s\n' "$3" >"$dir/site.conf"
  cat >"$dir/nginx.conf" <<EOF
daemon off;
worker_processes $2;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    include $dir/site.conf;
}
EOF
  "$nginx_bin" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" &
  pids+=($!)
}

upstream_port=$(free_port)
start_nginx upstream 1 "server {
    listen 127.0.0.1:$upstream_port;
    location / { default_type text/plain; return 200 \"ok\n\"; }
}"
wait_port "$upstream_port"

proxy_port=$(free_port)
start_nginx proxy auto "upstream app {
    server 127.0.0.1:$upstream_port;
    keepalive 16;
}
server {
    listen 127.0.0.1:$proxy_port;
    location / {
        proxy_http_version 1.1;
        proxy_set_header Connection \"\";
        proxy_pass http://app;
    }
}"
wait_port "$proxy_port"

# The gateway with nothing configured but its upstream: the development
# issuer, whose admin token it prints.
gateway_port=$(free_port)
LISTEN_ADDR="127.0.0.1:$gateway_port" GATEWAY_UPSTREAM="http://127.0.0.1:$upstream_port" \
  RUST_LOG=info "$gateway_bin" >"$work/gateway.out" 2>"$work/gateway.err" &
gateway_pid=$!
pids+=("$gateway_pid")
wait_port "$gateway_port"
for _ in $(seq 100); do grep -q '^ADMIN=' "$work/gateway.out" && break; sleep 0.05; done
token=$(sed -n 's/^ADMIN=//p' "$work/gateway.out")
[ -n "$token" ] || { echo "the gateway printed no token" >&2; exit 1; }

auth_port=$(free_port)
auth_site=$(sed -e "s/127\.0\.0\.1:3000/127.0.0.1:$gateway_port/" \
  -e "s/127\.0\.0\.1:3001/127.0.0.1:$gateway_port/" \
  -e "s/127\.0\.0\.1:9000/127.0.0.1:$upstream_port/" \
  -e "s/127\.0\.0\.1:8080/127.0.0.1:$auth_port/" gateway/deploy/nginx.conf)
start_nginx auth auto "$auth_site"
wait_port "$auth_port"

# One wrk run: prints "requests/s p99" or fails on any non-2xx answer.
run() {
  local out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@")
  if grep -q 'Non-2xx' <<<"$out"; then
    echo "non-2xx answers in: wrk $*" >&2
    echo "$out" >&2
    exit 1
  fi
  local rps p99
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  echo "$rps $p99"
}

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $(nproc) cores, $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $("$nginx_bin" -v 2>&1 | sed 's/.*: //')"
echo "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
read -r a_rps a_p99 < <(run "http://127.0.0.1:$upstream_port/")
read -r b_rps b_p99 < <(run "http://127.0.0.1:$proxy_port/")
read -r c_rps c_p99 < <(run -H "X-meinGPT-JWT: $token" "http://127.0.0.1:$gateway_port/")
read -r d_rps d_p99 < <(run -H "X-meinGPT-JWT: $token" "http://127.0.0.1:$auth_port/")

printf '%-46s %12s %10s\n' setup requests/s p99
printf '%-46s %12s %10s\n' "(a) upstream direct" "$a_rps" "$a_p99"
printf '%-46s %12s %10s\n' "(b) nginx proxy_pass, no auth" "$b_rps" "$b_p99"
printf '%-46s %12s %10s\n' "(c) meingpt-gateway proxy, repeated token" "$c_rps" "$c_p99"
printf '%-46s %12s %10s\n' "(d) nginx auth_request -> meingpt-gateway" "$d_rps" "$d_p99"
python3 - "$b_rps" "$c_rps" "$d_rps" <<'EOF'
import sys
b, c, d = map(float, sys.argv[1:])
print(f"(c)/(b) = {c / b:.2f} (target >= 0.80: {'met' if c / b >= 0.8 else 'NOT met'})")
print(f"(d)/(b) = {d / b:.2f}")
EOF
echo "gateway peak RSS: $(awk '/^VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$gateway_pid/status")"
