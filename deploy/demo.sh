#!/usr/bin/env bash
# Runs pdc and shows it working.
#
# With a reachable cluster (current kubeconfig context), pdc is installed there: the
# chart's CRDs, RBAC and admission policies through helm, and the operator runs from
# this checkout against that cluster. Without one, pdc's own tooling starts a local
# control plane (a real etcd, kube-apiserver and kube-controller-manager, built from their Go modules) first.
# Then the sample province (Đắk Lắk, absorbing Phú Yên) and its 109 named tenants are
# loaded, and pdcctl shows them. A local Knot DNS server (DNSSEC, TSIG) receives the
# health department's records and the PTRs of its named addresses.
#
#   bash deploy/demo.sh            # leaves pdc running until Ctrl-C
#   bash deploy/demo.sh --once     # shows the result and stops everything it started
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ONCE=0; [ "${1:-}" = "--once" ] && ONCE=1
say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
RUN=$(mktemp -d /tmp/pdc-demo.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$RUN"
}
trap cleanup EXIT

say "Installing what pdc needs (Debian packages, kube-apiserver, kube-controller-manager, etcd and helm from Go modules; cached after the first run)"
bash "$ROOT/tests/setup.sh"
BIN=${K8S_BIN_DIR:-$HOME/.cache/pdc/bin}
(cd "$ROOT" && cargo build --quiet --bins -p pdc-operator -p pdcctl -p pdc-tests)
T="$ROOT/target/debug"
export PATH="$T:$PATH"

claim_bound() {
  pdcctl ip export -o json | python3 -c "import json,sys; print('True' if any(r['claim']=='$1/$2' for r in json.load(sys.stdin)) else 'False')"
}

cluster_reachable() {
  command -v kubectl >/dev/null 2>&1 || return 1
  { [ -n "${KUBECONFIG:-}" ] || [ -f "$HOME/.kube/config" ]; } || return 1
  kubectl version --request-timeout=5s >/dev/null 2>&1
}

if cluster_reachable; then
  say "Using the current cluster: $(kubectl config current-context 2>/dev/null || echo "$KUBECONFIG")"
else
  say "No cluster reachable: starting a local control plane (etcd, kube-apiserver and kube-controller-manager on 127.0.0.1)"
  "$T/pdc-controlplane" --env-file "$RUN/env" >"$RUN/controlplane.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 240); do [ -f "$RUN/env" ] && break; kill -0 "${PIDS[0]}" 2>/dev/null || { cat "$RUN/controlplane.log" >&2; exit 1; }; sleep 0.5; done
  [ -f "$RUN/env" ] || { echo "control plane did not start; see $RUN/controlplane.log" >&2; exit 1; }
  # shellcheck disable=SC1091
  . "$RUN/env"
  cat "$RUN/controlplane.log" >&2
fi

say "Installing the chart (CRDs, RBAC, department roles, admission policies)"
# The operator runs from this checkout below, so the chart's Deployment gets 0 replicas.
"$BIN/helm" upgrade --install pdc "$ROOT/charts/pdc" --namespace pdc-system --create-namespace \
  --set replicas=0 --wait=false >/dev/null
"$BIN/helm" list -n pdc-system >&2

say "Starting the operator as its service account pdc-system/pdc-operator, under the chart's RBAC (logs: $RUN/operator.log)"
# Its own identity, not yours: the chart's admission policies let only the operator's
# service account write the keys that make a namespace a department's.
for _ in $(seq 1 50); do
  "$T/pdc-controlplane" token-kubeconfig pdc-system pdc-operator "$RUN/operator.kubeconfig" 2>/dev/null && break; sleep 0.2
done
[ -f "$RUN/operator.kubeconfig" ] || "$T/pdc-controlplane" token-kubeconfig pdc-system pdc-operator "$RUN/operator.kubeconfig"
KUBECONFIG="$RUN/operator.kubeconfig" POD_NAMESPACE=pdc-system POD_NAME=pdc-demo PDC_METRICS_ADDR=127.0.0.1:0 PDC_LOG_FORMAT=json \
  "$T/pdc-operator" >"$RUN/operator.log" 2>&1 &
PIDS+=($!)

say "Loading the sample province: Đắk Lắk (domain daklak.gov.vn, legacy phuyen.gov.vn, codes H15 and H45)"
"$T/pdc-controlplane" apply "$ROOT/deploy/samples/province.yaml"
# The API server's admission policies take the Province as their parameter; wait
# until they see it (a server-side dry run of a Department is accepted).
for _ in $(seq 1 100); do
  pdcctl department create "Thăm dò" --code H15.1 --dry-run >/dev/null 2>&1 && break; sleep 0.3
done

say "Loading the address plan: sites daklak (primary) and phuyen (standby); zones dmz, app, data, mgmt, tslcd"
"$T/pdc-controlplane" apply "$ROOT/deploy/samples/network.yaml"

say "Importing the 109 named tenants (13 departments, 96 communes and wards) with their quotas and the DMZ zone"
pdcctl department import "$ROOT/deploy/samples/daklak-tenants.yaml" --code-prefix H15 --zone dmz \
  --vcpu 16 --memory 32Gi --storage ssd=200Gi --storage hdd=500Gi --vms 8 --public-addresses 1

say "pdcctl department list"
pdcctl department list | head -20
echo "... ($(pdcctl department list -o json | grep -c '"name"') in all)"

say "pdcctl department show so-y-te"
pdcctl department show so-y-te

say "pdcctl department quota so-y-te"
pdcctl department quota so-y-te

say "Claiming addresses for the health department's portal (dual-stack, paired)"
"$T/pdc-controlplane" apply "$ROOT/deploy/samples/so-y-te-claims.yaml"
for _ in $(seq 1 60); do
  [ "$(claim_bound so-y-te cong-thong-tin)" = True ] && break; sleep 0.5
done
pdcctl ip find "$(pdcctl ip export -o json | python3 -c 'import json,sys; print(next(r["value"] for r in json.load(sys.stdin) if r["kind"]=="address" and r["claim"]=="so-y-te/cong-thong-tin" and ":" not in r["value"]))')"

say "pdcctl zone rules (the zone reachability matrix: NetworkPolicies for pods, MultiNetworkPolicies for VM NICs, and -o nftables for the zone firewalls)"
pdcctl zone rules

say "Starting the province's DNS server (Knot DNS on 127.0.0.1: DNSSEC signing, updates only with TSIG) and registering its zones"
"$T/pdc-dns-server" --env-file "$RUN/dns.env" daklak.gov.vn 15.10.in-addr.arpa 0.0.5.1.8.b.d.0.1.0.0.2.ip6.arpa \
  >"$RUN/dns.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 120); do [ -f "$RUN/dns.env" ] && break; sleep 0.5; done
[ -f "$RUN/dns.env" ] || { cat "$RUN/dns.log" >&2; exit 1; }
cat "$RUN/dns.log" >&2

say "The health department's DNS records (deploy/samples/so-y-te-dns.yaml)"
"$T/pdc-controlplane" apply "$ROOT/deploy/samples/so-y-te-dns.yaml"
for _ in $(seq 1 60); do
  [ "$(pdcctl dns records --department so-y-te -o json | grep -c '"programmed": "True"')" -ge 5 ] && break; sleep 0.5
done
pdcctl dns records --department so-y-te

say "pdcctl dns zones"
pdcctl dns zones

say "pdcctl dns check www.so-y-te.daklak.gov.vn (asks the server; DNSSEC state)"
pdcctl dns check www.so-y-te.daklak.gov.vn

say "The portal's address has its PTR (pdcctl dns check on the reverse name)"
PORTAL=$(pdcctl ip export -o json | python3 -c 'import json,sys; print(next(r["value"] for r in json.load(sys.stdin) if r["kind"]=="address" and r["claim"]=="so-y-te/cong-thong-tin" and ":" not in r["value"]))')
REV=$(echo "$PORTAL" | awk -F. '{print $4"."$3"."$2"."$1".in-addr.arpa"}')
for _ in $(seq 1 40); do pdcctl dns check "$REV" --type PTR | grep -q cong-thong-tin && break; sleep 0.5; done
pdcctl dns check "$REV" --type PTR

say "pdcctl ip plan (first lines)"
pdcctl ip plan | head -12

say "pdcctl ip usage"
pdcctl ip usage

say "pdcctl slug \"Xã Cư M’gar\" \"Xã M’Drắk\" \"Phường Phú Yên\""
pdcctl slug "Xã Cư M’gar" "Xã M’Drắk" "Phường Phú Yên"

say "A commune merger planned against this cluster (deploy/samples/reorg-communes.yaml)"
pdcctl reorg plan -f "$ROOT/deploy/samples/reorg-communes.yaml"

say "Phú Yên's merger planned offline, from manifests (deploy/samples/reorg-phuyen.yaml)"
pdcctl reorg plan -f "$ROOT/deploy/samples/reorg-phuyen.yaml" --estate "$ROOT/deploy/samples/phuyen-estate.yaml"

if [ "$ONCE" = 1 ]; then
  say "Done (--once): stopping what the demo started"
  exit 0
fi
say "pdc is running. Try: KUBECONFIG=$KUBECONFIG pdcctl department list   (Ctrl-C stops everything)"
echo "export KUBECONFIG=$KUBECONFIG PATH=$T:\$PATH"
wait "${PIDS[@]}"
