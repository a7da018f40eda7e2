#!/usr/bin/env bash
# Installs everything the tests and the demo need on a fresh machine, idempotently:
# Debian packages (promtool from prometheus, Knot DNS and its tools, curl, openssl), then kube-apiserver, etcd
# and helm built from their Go modules into ~/.cache/pdc/bin (tests/controlplane/build.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
log() { printf '[setup] %s\n' "$*" >&2; }

need_pkgs=()
command -v promtool >/dev/null 2>&1 || need_pkgs+=(prometheus)
command -v knotd >/dev/null 2>&1 || need_pkgs+=(knot)
command -v kdig >/dev/null 2>&1 || need_pkgs+=(knot-dnsutils)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing Debian packages: ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  # --no-install-recommends: promtool is all we need from prometheus; no service is started.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  # Debian starts the prometheus service on install where systemd runs; we only want promtool.
  # Likewise knot: the tests start their own knotd on loopback.
  for svc in prometheus knot; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
      $SUDO systemctl stop "$svc" || true
    fi
  done
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo is required (rustup)" >&2; exit 1; }
command -v go >/dev/null 2>&1 || { echo "go is required to build kube-apiserver, etcd and helm" >&2; exit 1; }
bash "$HERE/controlplane/build.sh" all >/dev/null
log "ready: $(promtool --version 2>&1 | head -1); $(knotd --version 2>&1 | head -1); binaries in ${K8S_BIN_DIR:-$HOME/.cache/pdc/bin}"
