#!/usr/bin/env bash
# Benchmark of DNS programming (see tests/src/bin/bench-dns.rs).
#   bash bench/dns.sh [--count 10000] [--concurrency 16]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash tests/setup.sh
cargo build --release --quiet --bins -p pdc-operator -p pdcctl -p pdc-tests
exec target/release/bench-dns "$@"
