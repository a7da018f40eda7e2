#!/usr/bin/env bash
# Benchmark of the operator's memory over a province-sized estate (see tests/src/bin/bench-memory.rs).
#   bash bench/memory.sh [--count 10000] [--claims 20000] [--records 100000] [--admitted 10]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash tests/setup.sh
cargo build --release --quiet --bins -p pdc-operator -p pdcctl -p pdc-tests
exec target/release/bench-memory "$@"
