#!/usr/bin/env bash
# Benchmark of a reorganization act (see tests/src/bin/bench-reorg.rs).
#   bash bench/reorg.sh [--communes 100] [--successors 30] [--vms 1000] [--records 5000] [--keep-every 10]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash tests/setup.sh
cargo build --release --quiet --bins -p pdc-operator -p pdcctl -p pdc-tests
exec target/release/bench-reorg "$@"
