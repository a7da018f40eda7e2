#!/usr/bin/env bash
# Regenerates the wrapper Go modules (go.mod + go.sum) for the versions in versions.env.
# Run by a developer when a version changes; the results are committed as lock files.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/versions.env"
export GOTOOLCHAIN=local CGO_ENABLED=0

# kube-apiserver: upstream's go.mod replaces its staging modules with ./staging/...;
# replace each with its published v0.N.M tag instead.
STAGING="v0.${K8S_VERSION#v1.}"
cd "$HERE/apiserver"
rm -f go.mod go.sum
go mod init local.invalid/pdc-bins/apiserver
GOMOD=$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
for m in $(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$GOMOD" | sort -u); do
  go mod edit "-replace=${m}=${m}@${STAGING}"
done
UPSTREAM_GO=$(awk '$1=="go"{print $2; exit}' "$GOMOD")
go mod edit -go="$UPSTREAM_GO"
GODEBUG_LINE=$(awk '$1=="godebug"{print; exit}' "$GOMOD")
if [ -n "$GODEBUG_LINE" ]; then printf '\n%s\n' "$GODEBUG_LINE" >>go.mod; fi
go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@${K8S_VERSION}"
go get -tool "k8s.io/kubernetes/cmd/kube-controller-manager@${K8S_VERSION}"
go mod tidy

# etcd: the module root is package main; all dependencies are published, no replaces needed.
cd "$HERE/etcd"
rm -f go.mod go.sum
go mod init local.invalid/pdc-bins/etcd
go get -tool "go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
go mod tidy

# helm: an ordinary module.
cd "$HERE/helm"
rm -f go.mod go.sum
go mod init local.invalid/pdc-bins/helm
go get -tool "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
go mod tidy
