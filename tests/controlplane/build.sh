#!/usr/bin/env bash
# Builds the real components the cluster tests run against, from their published Go modules,
# into a cache outside the repository: kube-apiserver, kube-controller-manager, etcd, helm.
# Idempotent: a binary whose version stamp matches is reused (a warm run takes seconds).
# usage: tests/controlplane/build.sh            prints the bin dir on its last line
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$HERE/versions.env"
export GOTOOLCHAIN=local CGO_ENABLED=0
BIN=${K8S_BIN_DIR:-$HOME/.cache/pdc/bin}
mkdir -p "$BIN"
log() { printf '[build] %s\n' "$*" >&2; }

stamp_ok() { [ -x "$BIN/$1" ] && [ -f "$BIN/$1.version" ] && [ "$(cat "$BIN/$1.version")" = "$2" ]; }

# kube-apiserver and kube-controller-manager come from one wrapper module (k8s.io/kubernetes),
# stamped with the same version so /version reports it.
build_kube() {
  local name=$1
  stamp_ok "$name" "$K8S_VERSION" && { log "$name $K8S_VERSION: cached"; return; }
  local minor major=1 t0=$SECONDS
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  local ldf="-s -w \
 -X k8s.io/component-base/version.gitMajor=$major \
 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z \
 -X k8s.io/client-go/pkg/version.gitMajor=$major \
 -X k8s.io/client-go/pkg/version.gitMinor=$minor \
 -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  log "building $name $K8S_VERSION (cold: kube-apiserver ~9 min, kube-controller-manager ~5 min)"
  (cd "$HERE/apiserver" && go build -trimpath -ldflags "$ldf" -o "$BIN/$name.tmp" "k8s.io/kubernetes/cmd/$name")
  mv "$BIN/$name.tmp" "$BIN/$name"
  echo "$K8S_VERSION" >"$BIN/$name.version"
  log "$name built in $((SECONDS - t0)) s"
}

build_etcd() {
  stamp_ok etcd "$ETCD_VERSION" && { log "etcd $ETCD_VERSION: cached"; return; }
  local t0=$SECONDS
  log "building etcd $ETCD_VERSION"
  (cd "$HERE/etcd" && go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$BIN/etcd.tmp" "$BIN/etcd"
  echo "$ETCD_VERSION" >"$BIN/etcd.version"
  log "etcd built in $((SECONDS - t0)) s"
}

build_helm() {
  stamp_ok helm "$HELM_VERSION" && { log "helm $HELM_VERSION: cached"; return; }
  local t0=$SECONDS
  log "building helm $HELM_VERSION"
  (cd "$HERE/helm" && go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" -o "$BIN/helm.tmp" helm.sh/helm/v3/cmd/helm)
  mv "$BIN/helm.tmp" "$BIN/helm"
  echo "$HELM_VERSION" >"$BIN/helm.version"
  log "helm built in $((SECONDS - t0)) s"
}

case "${1:-all}" in
  all) build_etcd; build_helm; build_kube kube-apiserver; build_kube kube-controller-manager ;;
  apiserver) build_kube kube-apiserver ;;
  controller-manager) build_kube kube-controller-manager ;;
  etcd) build_etcd ;;
  helm) build_helm ;;
  *) echo "usage: $0 [all|apiserver|controller-manager|etcd|helm]" >&2; exit 2 ;;
esac
echo "$BIN"
