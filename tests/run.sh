#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this). On a fresh machine it
# installs and builds everything first (tests/setup.sh).
#   engines and build steps: table and property tests (pdc-core, pdc-api, operator)
#   CRDs: generated from the Rust types; fails if charts/pdc/crds drifted
#   chart: helm lint; rendered and applied to a real API server by the cluster tests
#   cluster: real etcd + kube-apiserver, operator processes under the chart's RBAC
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
step() { printf '\n== %s\n' "$*" >&2; }
t0=$SECONDS

step "setup (Debian packages; kube-apiserver, etcd, helm from Go modules)"
bash tests/setup.sh
BIN=${K8S_BIN_DIR:-$HOME/.cache/pdc/bin}

step "build"
# A clean checkout gains nothing from incremental compilation, which costs disk and time.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
cargo build --workspace --bins --quiet

step "CRDs generated from the Rust types match charts/pdc/crds"
gen=$(mktemp -d); trap 'rm -rf "$gen"' EXIT
cargo run --quiet -p pdc-api --bin crdgen -- "$gen"
if ! diff -ru charts/pdc/crds "$gen"; then
  echo "charts/pdc/crds drifted from the Rust types: run 'cargo run -p pdc-api --bin crdgen -- charts/pdc/crds'" >&2
  exit 1
fi

step "helm lint"
"$BIN/helm" lint charts/pdc --strict --kube-version 1.36.3

step "clippy (no unwrap/expect/panic outside tests)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "tests"
OUT=$(mktemp /tmp/pdc-test-output.XXXXXX)
# A panic's message is on the lines after "panicked at": they are printed too.
cargo test --workspace --no-fail-fast 2>&1 | tee "$OUT" | awk '/panicked at/ {n = 4} n > 0 {print; n--; next} /^(test |running|test result|failures|---- )/' || true
passed=$(grep -Eo "test result: [a-zA-Z]+\. [0-9]+ passed" "$OUT" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo "[0-9]+ failed" "$OUT" | awk '{s+=$1} END {print s+0}')
if grep -q "error: test failed\|error\[E\|could not compile" "$OUT"; then failed=$((failed > 0 ? failed : 1)); fi
echo "tests took $((SECONDS - t0)) s in all" >&2
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
