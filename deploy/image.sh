#!/usr/bin/env bash
# Builds the operator image with no container daemon and no registry: the release
# binary, the root filesystem deploy/rootfs.sh assembles (the Containerfile's final
# stage holds the same files), packed by deploy/oci.py into an OCI image layout
# archive tagged pdc-operator:<version>, <version> being pdc-operator's crate version.
# The same sources give the same digest (SOURCE_DATE_EPOCH sets the files' mtimes and
# the image's creation time; 0 when unset).
#
#   bash deploy/image.sh                   # cargo build --release -p pdc-operator, then pack
#   bash deploy/image.sh --binary PATH     # pack an operator binary built elsewhere
#
# Prints the archive's path and the manifest digest. Load or push it with e.g.
#   skopeo copy oci-archive:target/image/pdc-operator-0.1.0.oci.tar docker://REGISTRY/pdc/pdc-operator:0.1.0
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BINARY=""
case "${1:-}" in
  --binary) BINARY=${2:?--binary PATH} ;;
  "") ;;
  *) echo "usage: deploy/image.sh [--binary PATH]" >&2; exit 2 ;;
esac
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ -z "$BINARY" ]; then
  cargo build --release --locked -p pdc-operator
  BINARY=$TARGET/release/pdc-operator
fi
read -r VERSION LICENSE < <(cargo metadata --no-deps --format-version 1 --offline | python3 -c '
import json, sys
p = next(p for p in json.load(sys.stdin)["packages"] if p["name"] == "pdc-operator")
print(p["version"], p["license"] or "")')
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
bash deploy/rootfs.sh "$BINARY" "$WORK/rootfs"
mkdir -p "$TARGET/image"
OUT=$TARGET/image/pdc-operator-$VERSION.oci.tar
DIGEST=$(python3 deploy/oci.py pack --rootfs "$WORK/rootfs" --out "$OUT" \
  --ref "pdc-operator:$VERSION" \
  --entrypoint /usr/local/bin/pdc-operator \
  --user 65532:65532 \
  --workdir / \
  --env PATH=/usr/local/bin \
  --label "org.opencontainers.image.title=pdc-operator" \
  --label "org.opencontainers.image.description=The pdc operator: a province's private cloud on Kubernetes" \
  --label "org.opencontainers.image.version=$VERSION" \
  --label "org.opencontainers.image.revision=$REVISION" \
  --label "org.opencontainers.image.licenses=$LICENSE")
echo "$OUT pdc-operator:$VERSION $DIGEST ($(du -h "$OUT" | cut -f1))"
