#!/usr/bin/env bash
# Runs every test of the workspace (meingpt-auth and meingpt-gateway) on a
# fresh Debian machine (Rust toolchain, Node, Python): installs what the
# tests need — Debian's chromium and chromium-driver for tests/it/browser.rs,
# nginx and caddy for gateway/tests/rig, Node's jose and the official MCP
# TypeScript SDK (interop/) for tests/it/interop.rs and
# tests/it/mcp_authorization.rs, Python's official MCP SDK and Streamlit (in a
# venv) for gateway/tests/rig and tests/it/mcp_authorization.rs — then
# runs `cargo test --workspace --all-features` (doc tests included).
# Quick when everything is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== Debian packages: chromium, chromium-driver, nginx, caddy"
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
{ command -v nginx || test -x /usr/sbin/nginx; } >/dev/null 2>&1 || missing+=(nginx)
command -v caddy >/dev/null 2>&1 || missing+=(caddy)
if [ ${#missing[@]} -gt 0 ]; then
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then as_root=(sudo); fi
  "${as_root[@]}" apt-get update
  # policy-rc.d-less machines would start the packages' services: the tests
  # start their own nginx and caddy on ephemeral ports, so stop those again.
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
  for service in nginx caddy; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
      "${as_root[@]}" systemctl stop "$service" || true
    fi
  done
fi
chromium --version 2>/dev/null || true
chromedriver --version
{ command -v nginx >/dev/null 2>&1 && nginx -v; } || /usr/sbin/nginx -v
caddy version

echo "== Python MCP SDK and Streamlit for gateway/tests/rig and tests/it/mcp_authorization.rs"
rig_python=gateway/tests/rig/python
if ! cmp -s "$rig_python/requirements.txt" "$rig_python/.venv/requirements.installed" 2>/dev/null; then
  rm -rf "$rig_python/.venv"
  python3 -m venv "$rig_python/.venv"
  "$rig_python/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$rig_python/requirements.txt"
  cp "$rig_python/requirements.txt" "$rig_python/.venv/requirements.installed"
fi
"$rig_python/.venv/bin/python" -c "import mcp.server.mcpserver, mcp.client.streamable_http, mcp.client.auth, streamlit"

echo "== Node packages for interop/ (jose, the MCP TypeScript SDK)"
# npm ci starts from an empty node_modules every time: only when the lock
# file changed since the last install.
if ! cmp -s interop/package-lock.json interop/node_modules/.lock.installed 2>/dev/null; then
  npm ci --prefix interop --no-audit --no-fund
  cp interop/package-lock.json interop/node_modules/.lock.installed
fi
cargo test --workspace --all-features
