#!/usr/bin/env bash
# Builds the real components the cluster tests run against, from their published Go modules,
# into a cache outside the repository: kube-apiserver, etcd, helm.
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

build_apiserver() {
  stamp_ok kube-apiserver "$K8S_VERSION" && { log "kube-apiserver $K8S_VERSION: cached"; return; }
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
  log "building kube-apiserver $K8S_VERSION (cold: ~10-25 min)"
  (cd "$HERE/apiserver" && go build -trimpath -ldflags "$ldf" -o "$BIN/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv "$BIN/kube-apiserver.tmp" "$BIN/kube-apiserver"
  echo "$K8S_VERSION" >"$BIN/kube-apiserver.version"
  log "kube-apiserver built in $((SECONDS - t0)) s"
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
  all) build_etcd; build_helm; build_apiserver ;;
  apiserver) build_apiserver ;;
  etcd) build_etcd ;;
  helm) build_helm ;;
  *) echo "usage: $0 [all|apiserver|etcd|helm]" >&2; exit 2 ;;
esac
echo "$BIN"
