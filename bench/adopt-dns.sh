#!/usr/bin/env bash
# Benchmark of taking over a running zone with `pdcctl dns adopt` against raw creates
# of the same DnsRecords (see tests/src/bin/bench-adopt-dns.rs).
#   bash bench/adopt-dns.sh [--count 20000] [--concurrency 16] [--out bench/results/adopt-dns.json]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash tests/setup.sh
cargo build --release --quiet --bins -p pdc-operator -p pdcctl -p pdc-tests
exec target/release/bench-adopt-dns "$@"
