#!/usr/bin/env bash
# Benchmark of tenant VMs (see tests/src/bin/bench-vms.rs).
#   bash bench/vms.sh [--count 1000] [--concurrency 16]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash tests/setup.sh
cargo build --release --quiet --bins -p pdc-operator -p pdcctl -p pdc-tests
exec target/release/bench-vms "$@"
