# Shared by gateway/bench/wrk.sh and gateway/bench/cpu.sh: the release
# build, the small nginx upstream, nginx proxies and gateways on loopback,
# each in its own directory and stopped on exit. Sourced, not run.

# The load both scripts apply, each overridable from the environment.
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
KEEPALIVE=${KEEPALIVE:-$((CONNECTIONS * 2))}

nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
for tool in wrk "$nginx_bin"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "needs $tool: apt-get install wrk nginx" >&2; exit 1; }
done

# GATEWAY_BIN runs a given build instead of this checkout's release build.
if [ -z "${GATEWAY_BIN:-}" ]; then
  cargo build --quiet --release -p meingpt-gateway
  GATEWAY_BIN=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/meingpt-gateway
fi

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

# nginx in the foreground with its own prefix: $1 name, $2 workers, $3 the
# http-level configuration. Its access log is $work/$1/access.log when a
# server block says `access_log ACCESS_LOG`, written as nginx does with a
# buffer (64 KiB, flushed every second), the same batching the gateway does.
# Sets nginx_pid.
start_nginx() {
  local dir="$work/$1"
  mkdir -p "$dir"
  printf '%s\n' "${3//ACCESS_LOG/$dir/access.log combined buffer=64k flush=1s}" >"$dir/site.conf"
  cat >"$dir/nginx.conf" <<CONF
daemon off;
worker_processes $2;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    include $dir/site.conf;
}
CONF
  "$nginx_bin" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" &
  nginx_pid=$!
  pids+=("$nginx_pid")
}

# The upstream every setup proxies to: one nginx worker answering "ok".
# Sets upstream_port.
start_upstream() {
  upstream_port=$(free_port)
  start_nginx upstream 1 "server {
    listen 127.0.0.1:$upstream_port;
    keepalive_requests 1000000;
    location / { default_type text/plain; return 200 \"ok\n\"; }
}"
  wait_port "$upstream_port"
}

# A gateway in development mode (its embedded issuer) proxying everything
# to the upstream: $1 name, $2 "on" or "off" for its access log. Sets
# gateway_port, gateway_pid and token (the admin token it printed).
start_gateway() {
  local dir="$work/$1" filter=info
  mkdir -p "$dir"
  [ "$2" = off ] && filter="info,meingpt_gateway::access=off"
  gateway_port=$(free_port)
  LISTEN_ADDR="127.0.0.1:$gateway_port" GATEWAY_UPSTREAM="http://127.0.0.1:$upstream_port" \
    RUST_LOG=$filter "$GATEWAY_BIN" >"$dir/out" 2>"$dir/err" &
  gateway_pid=$!
  pids+=("$gateway_pid")
  wait_port "$gateway_port"
  for _ in $(seq 100); do grep -q '^ADMIN=' "$dir/out" && break; sleep 0.05; done
  token=$(sed -n 's/^ADMIN=//p' "$dir/out")
  [ -n "$token" ] || { echo "the gateway printed no token" >&2; exit 1; }
}

# nginx proxy_pass to the upstream, no authentication, its upstream
# keep-alive pool larger than the client connections so that no upstream
# connection churns: $1 name, $2 "on" or "off" for its access log. Sets
# proxy_port.
start_proxy_pass() {
  local log=off
  [ "$2" = on ] && log=ACCESS_LOG
  proxy_port=$(free_port)
  start_nginx "$1" auto "upstream app {
    server 127.0.0.1:$upstream_port;
    keepalive $KEEPALIVE;
    keepalive_requests 1000000;
}
server {
    listen 127.0.0.1:$proxy_port;
    access_log $log;
    location / {
        proxy_http_version 1.1;
        proxy_set_header Connection \"\";
        proxy_pass http://app;
    }
}"
  wait_port "$proxy_port"
}

# nginx auth_request -> the gateway on $3, configured by
# gateway/deploy/nginx.conf itself (keep-alive pools raised to $KEEPALIVE):
# $1 name, $2 "on" or "off" for nginx's access log. Sets auth_port.
start_auth_request() {
  local log=off
  [ "$2" = on ] && log=ACCESS_LOG
  auth_port=$(free_port)
  local site
  site=$(sed -e "s/127\.0\.0\.1:3000/127.0.0.1:$3/" \
    -e "s/127\.0\.0\.1:3001/127.0.0.1:$3/" \
    -e "s/127\.0\.0\.1:9000/127.0.0.1:$upstream_port/" \
    -e "s/127\.0\.0\.1:8080;/127.0.0.1:$auth_port;\n    access_log $log;/" \
    -e "s/keepalive 16;/keepalive $KEEPALIVE;\n    keepalive_requests 1000000;/" \
    gateway/deploy/nginx.conf)
  start_nginx "$1" auto "$site"
  wait_port "$auth_port"
}

# The process ids of nginx $1's master and workers.
nginx_pids() {
  local master
  master=$(cat "$work/$1/nginx.pid")
  echo "$master" $(pgrep -P "$master")
}

# User and system CPU ticks of the processes $@, summed (threads included).
cpu_ticks() {
  local user=0 system=0 pid fields
  for pid in "$@"; do
    fields=$(sed 's/^.*) //' "/proc/$pid/stat")
    read -r -a f <<<"$fields"
    # After "(comm) ": state is field 0, utime 11, stime 12.
    user=$((user + f[11]))
    system=$((system + f[12]))
  done
  echo "$user $system"
}
