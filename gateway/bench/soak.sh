#!/usr/bin/env bash
# The gateway's soak (gateway/bench/soak/main.rs): two release-build
# replicas behind nginx, about two minutes of load with attacks, a key
# rotation, a JWKS outage, upstream restarts and a replica killed. Builds
# it, runs it, and exits with its status (1 on any wrong identity, token at
# the upstream, failure outside a disruption or RSS growth). Needs nginx
# (apt-get install nginx). Not part of CI: it takes minutes.
#
#   bash gateway/bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

{ command -v nginx || test -x /usr/sbin/nginx; } >/dev/null 2>&1 || {
  echo "needs nginx: apt-get install nginx" >&2
  exit 1
}
# `cargo bench` builds the gateway with the bench profile (release).
cargo bench --quiet -p meingpt-gateway --bench soak --no-run
echo "$(nproc) cores; load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
exec cargo bench --quiet -p meingpt-gateway --bench soak
