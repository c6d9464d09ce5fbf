#!/usr/bin/env bash
# Runs every test of meingpt-auth on a fresh machine (Rust toolchain, Node,
# Python): installs what the tests need — Debian's chromium and
# chromium-driver for tests/it/browser.rs, Node's jose for tests/it/interop.rs —
# then runs `cargo test --workspace --all-features` (doc tests included).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== browser for tests/it/browser.rs"
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then as_root=(sudo); fi
  "${as_root[@]}" apt-get update
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver
fi
chromium --version 2>/dev/null || true
chromedriver --version

npm ci --prefix interop --no-audit --no-fund
cargo test --workspace --all-features
