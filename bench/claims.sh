#!/usr/bin/env bash
# Benchmark of the address plan (see tests/src/bin/bench-claims.rs and bench-ipam-engine.rs).
#   bash bench/claims.sh [--count 10000] [--concurrency 16]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash tests/setup.sh
cargo build --release --quiet --bins -p pdc-operator -p pdc-tests
target/release/bench-ipam-engine
exec target/release/bench-claims "$@"
