#!/usr/bin/env python3
"""Prints the medians criterion measured in the last `cargo bench --bench verify`,
with each one's ratio to the RSA floor. Reads target/criterion/**/new/estimates.json."""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
rows = []
for estimates in sorted(root.glob("**/new/estimates.json")):
    name = "/".join(estimates.parent.parent.relative_to(root).parts)
    median_ns = json.loads(estimates.read_text())["median"]["point_estimate"]
    rows.append((name, median_ns))
floor = dict(rows).get("verify/floor_rsa2048_pkcs1_sha256")

def show(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"

print(f"{'benchmark':<52}{'median':>12}{'÷ floor':>10}")
for name, ns in rows:
    ratio = f"{ns / floor:.2f}x" if floor else "-"
    print(f"{name:<52}{show(ns):>12}{ratio:>10}")
