#!/usr/bin/env bash
# Benchmark of DR failover (see tests/src/bin/bench-dr.rs).
#   bash bench/dr.sh [--count 50]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash tests/setup.sh
cargo build --release --quiet --bins -p pdc-operator -p pdcctl -p pdc-tests
exec target/release/bench-dr "$@"
