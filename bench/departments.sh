#!/usr/bin/env bash
# Benchmark of the Department capability (see tests/src/bin/bench-departments.rs).
#   bash bench/departments.sh [--count 1000] [--concurrency 16]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash tests/setup.sh
cargo build --release --quiet --bins -p pdc-operator -p pdc-tests
exec target/release/bench-departments "$@"
