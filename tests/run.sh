#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this). On a fresh machine it
# installs and builds everything first (tests/setup.sh).
#   build: every workspace crate and test compiled with clippy's lints as errors
#   engines and build steps: table and property tests (pdc-core, pdc-api, operator)
#   CRDs: generated from the Rust types; fails if charts/pdc/crds drifted
#   chart: helm lint; rendered and applied to a real API server by the cluster tests
#   image: deploy/image.sh builds the operator image (release build, OCI archive);
#          tests/tests/image.rs runs it as a runtime would
#   cluster: real etcd + kube-apiserver, operator processes under the chart's RBAC
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
step() { printf '\n== %s\n' "$*" >&2; }
t0=$SECONDS

# The setup (Debian packages; kube-apiserver, kube-controller-manager, etcd and helm
# built from Go modules) runs beside the Rust build: neither needs the other, and
# on a fresh machine each leaves the other core idle much of the time.
step "setup in the background (Debian packages; kube-apiserver, kube-controller-manager, etcd, helm from Go modules)"
SETUP_LOG=$(mktemp /tmp/pdc-setup.XXXXXX)
bash tests/setup.sh >"$SETUP_LOG" 2>&1 &
setup_pid=$!
gen=$(mktemp -d)
trap 'rm -rf "$gen"; kill "$setup_pid" 2>/dev/null || true' EXIT
BIN=${K8S_BIN_DIR:-$HOME/.cache/pdc/bin}

# Clippy's lints run inside the real compile of the workspace's crates: clippy-driver
# is the workspace's rustc wrapper, as `cargo clippy` sets it up, so dependencies are
# compiled once instead of a second time in check mode (3 minutes on a 2-core
# machine). Every cargo command below keeps the same environment, so nothing is
# rebuilt between them.
CLIPPY_DRIVER="$(rustc --print sysroot)/bin/clippy-driver"
[ -x "$CLIPPY_DRIVER" ] || { echo "clippy is required: rustup component add clippy" >&2; exit 1; }
export RUSTC_WORKSPACE_WRAPPER="$CLIPPY_DRIVER"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

step "build, with clippy's lints as errors (no unwrap/expect/panic outside tests)"
# A clean checkout gains nothing from incremental compilation, which costs disk and time.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
cargo build --workspace --bins --quiet

step "CRDs generated from the Rust types match charts/pdc/crds"
# The binary the workspace build made: `cargo run -p pdc-api` would build pdc-api's
# dependencies again with that package's own feature set.
"${CARGO_TARGET_DIR:-target}/debug/crdgen" "$gen"
if ! diff -ru charts/pdc/crds "$gen"; then
  echo "charts/pdc/crds drifted from the Rust types: run 'cargo run -p pdc-api --bin crdgen -- charts/pdc/crds'" >&2
  exit 1
fi

step "build the tests, with clippy's lints as errors"
cargo test --workspace --no-run --quiet

step "operator image (deploy/image.sh: release build, root filesystem, OCI archive)"
# tests/tests/image.rs runs what this writes to target/image. Built without clippy's
# wrapper: the same release build deploy/image.sh makes on its own, sharing its cache.
env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS bash deploy/image.sh

step "setup: waiting for it to finish"
if ! wait "$setup_pid"; then
  cat "$SETUP_LOG" >&2
  echo "tests/setup.sh failed (its output is above)" >&2
  exit 1
fi
grep -v "^go: downloading" "$SETUP_LOG" >&2 || true
echo "setup and Rust build done after $((SECONDS - t0)) s" >&2

step "helm lint"
"$BIN/helm" lint charts/pdc --strict --kube-version 1.36.3

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
