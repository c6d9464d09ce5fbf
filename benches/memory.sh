#!/bin/sh
# Resident memory of a server after many distinct tokens: 12,000 tokens of
# ~15.8 KB (510 teams) and 200,000 small ones, each in a fresh process.
# Usage: benches/memory.sh
set -eu
cd "$(dirname "$0")/.."
cargo bench --bench memory --no-run >/dev/null 2>&1 || cargo bench --bench memory --no-run
for run in big small; do
    cargo bench --quiet --bench memory -- "$run" 2>/dev/null
done
