#!/usr/bin/env bash
# Runs pdc and shows it working.
#
# With a reachable cluster (current kubeconfig context), pdc is installed there: the
# chart's CRDs, RBAC and admission policies through helm, and the operator runs from
# this checkout against that cluster. Without one, pdc's own tooling starts two local
# control planes (each a real etcd, kube-apiserver and kube-controller-manager, built
# from their Go modules): daklak, the primary site, and phuyen, the standby.
# Then the sample province (Đắk Lắk, absorbing Phú Yên), its VM sizes and its 109
# named tenants are loaded, and pdcctl shows them. A local Knot DNS server (DNSSEC,
# TSIG) receives the health department's records and the PTRs of its addresses.
#
# VMs: the health department asks for two VMs; pdc makes KubeVirt VirtualMachines,
# CDI DataVolumes, addresses and DNS names. KubeVirt, CDI and VolSync do not run on
# the local control planes (no kubelet): there the tests' players stand in for them
# (tests/src/players, run by pdc-demo play), and the demo says so. A cluster that
# serves KubeVirt and CDI itself is never given stand-ins and nothing is played
# there (its VMs boot from PDC_DEMO_IMAGE, an image URL it can reach); one that has
# neither is not given them either, and the VM and DR parts are skipped.
#
# DR (local mode): the health department's DR plan replicates its protected VM to
# phuyen, a drill runs there, then a failover, and DNS moves to phuyen's addresses.
#
#   bash deploy/demo.sh            # leaves pdc running until Ctrl-C
#   bash deploy/demo.sh --once     # shows the result and stops everything it started
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ONCE=0; [ "${1:-}" = "--once" ] && ONCE=1
say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
RUN=$(mktemp -d /tmp/pdc-demo.XXXXXX)
PIDS=()
SJOB=""; DNS_PID=""
cleanup() {
  # A second Ctrl-C or TERM must not cut the cleanup short.
  trap '' INT TERM
  [ -n "$SJOB" ] && kill "$SJOB" 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  # The DNS server's zones and keys (pdc-dns-server names its directory after its pid).
  [ -n "$DNS_PID" ] && rm -rf "${TMPDIR:-/tmp}/pdc-dns-server/knot-$DNS_PID-"*
  rm -rf "$RUN"
}
trap cleanup EXIT
SAMPLES="$ROOT/deploy/samples"
IMAGE=${PDC_DEMO_IMAGE:-https://images.daklak.gov.vn/ubuntu-24.04.qcow2}

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

# A field of one VM in `pdcctl vm list -d DEPT -o json` (name, ready, ipv4, ipv6, ...).
vm_field() {
  pdcctl vm list -d "$1" -o json | python3 -c "import json,sys; print(next((v['$3'] for v in json.load(sys.stdin) if v['name']=='$2'), ''))"
}

# Poll "$@" every half second for up to $1 seconds.
wait_until() {
  local secs=$1; shift
  for _ in $(seq 1 $((secs * 2))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  return 1
}

vm_ready() { [ "$(vm_field "$1" "$2" ready)" = True ]; }
# Ready, or stopped at something only a person can fix (a refusal, a failed import).
vm_settled() {
  case "$(vm_field "$1" "$2" ready)" in
    True|*"(DiskFailed)"|*"(UnknownSize)"|*"(UnknownTier)"|*"(ZoneNotAllowed)"|*"(QuotaExceeded)"|*"(InvalidSize)"|*"(IntegrationMissing)"|*"(NotADepartment)"|*"(NoProvince)") return 0 ;;
    *) return 1 ;;
  esac
}

# The reverse name of an IPv4 or IPv6 address.
reverse_name() {
  python3 -c "import ipaddress,sys; print(ipaddress.ip_address(sys.argv[1]).reverse_pointer + '.')" "$1"
}

# The answer of the DNS server for NAME TYPE contains WANT.
dns_has() { pdcctl dns check "$1" --type "$2" 2>/dev/null | grep -q -- "$3"; }

# The VM did not become Ready: say why; with played KubeVirt and CDI that is a failure.
vm_not_ready() {
  echo "tenantvm $1/$2 is not Ready; pdcctl vm show says why:"
  pdcctl vm show "$2" -d "$1" || true
  if [ "$PLAYED" = 1 ]; then exit 1; fi
}

start_operator() { # SITE ADMIN-KUBECONFIG
  local site=$1 admin=$2 kc="$RUN/operator-$1.kubeconfig"
  for _ in $(seq 1 50); do
    KUBECONFIG="$admin" "$T/pdc-controlplane" token-kubeconfig pdc-system pdc-operator "$kc" 2>/dev/null && break; sleep 0.2
  done
  [ -f "$kc" ] || KUBECONFIG="$admin" "$T/pdc-controlplane" token-kubeconfig pdc-system pdc-operator "$kc"
  KUBECONFIG="$kc" POD_NAMESPACE=pdc-system POD_NAME="pdc-demo-$site" PDC_SITE="$site" PDC_METRICS_ADDR=127.0.0.1:0 PDC_LOG_FORMAT=json \
    "$T/pdc-operator" >"$RUN/operator-$site.log" 2>&1 &
  PIDS+=($!)
}

install_chart() { # SITE
  "$BIN/helm" upgrade --install pdc "$ROOT/charts/pdc" --namespace pdc-system --create-namespace \
    --set replicas=0 --set site="$1" --wait=false >/dev/null
}

# The province's definitions at a site: Province, Sites and zones, sizes, the tenants.
load_definitions() {
  "$T/pdc-controlplane" apply "$SAMPLES/province.yaml"
  # The API server's admission policies take the Province as their parameter; wait
  # until they see it (a server-side dry run of a Department is accepted).
  for _ in $(seq 1 100); do
    pdcctl department create "Thăm dò" --code H15.1 --dry-run >/dev/null 2>&1 && break; sleep 0.3
  done
  "$T/pdc-controlplane" apply "$SAMPLES/network.yaml" "$SAMPLES/sizes.yaml"
  pdcctl department import "$SAMPLES/daklak-tenants.yaml" --code-prefix H15 --zone dmz \
    --vcpu 16 --memory 32Gi --storage ssd=200Gi --storage hdd=500Gi --vms 8 --public-addresses 1
}

LOCAL=0
if cluster_reachable; then
  say "Using the current cluster: $(kubectl config current-context 2>/dev/null || echo "$KUBECONFIG")"
else
  LOCAL=1
  say "No cluster reachable: starting two local control planes on 127.0.0.1 (each a real etcd, kube-apiserver and kube-controller-manager): daklak, the primary site, and phuyen, the standby"
  "$T/pdc-controlplane" --count 2 --env-file "$RUN/env" >"$RUN/controlplane.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 480); do [ -f "$RUN/env" ] && break; kill -0 "${PIDS[0]}" 2>/dev/null || { cat "$RUN/controlplane.log" >&2; exit 1; }; sleep 0.5; done
  [ -f "$RUN/env" ] || { echo "control planes did not start; see $RUN/controlplane.log" >&2; exit 1; }
  # shellcheck disable=SC1091
  . "$RUN/env"
  STANDBY=$PDC_STANDBY_KUBECONFIG
  sed -e 's/^control plane primary:/daklak (primary):/' -e 's/^control plane standby:/phuyen (standby):/' "$RUN/controlplane.log" >&2
fi

if [ "$LOCAL" = 1 ]; then
  say "Installing the chart at both sites (CRDs, RBAC, department roles, admission policies)"
  (KUBECONFIG=$STANDBY install_chart phuyen) & HELM_STANDBY=$!
  install_chart daklak
  wait "$HELM_STANDBY"
else
  say "Installing the chart (CRDs, RBAC, department roles, admission policies)"
  # The operator runs from this checkout below, so the chart's Deployment gets 0 replicas.
  install_chart daklak
fi
"$BIN/helm" list -n pdc-system >&2

say "KubeVirt, CDI and VolSync: does the cluster serve them?"
PLAYED=0; VMS=0
case "$("$T/pdc-demo" detect)" in
  play)
    if [ "$LOCAL" = 1 ]; then
      PLAYED=1; VMS=1
      cat <<'EOF'
They are not installed on the local control planes: no kubelet runs their Pods here.
PLAYED from here on (tests/src/players, run by `pdc-demo play`, with the rules of the real ones):
  - KubeVirt: a VirtualMachine's run strategy starts or stops its VirtualMachineInstance,
    which runs once its DataVolumes have succeeded and the Secrets it mounts exist;
  - CDI and a CSI driver: DataVolumes import their image (the image server is imaginary),
    claims bind at the size asked, snapshots are cut, disks are restored from them;
  - VolSync: each ReplicationSource syncs to its ReplicationDestination at the other
    site every 2 s and leaves a snapshot there.
Their kinds are stand-in CRDs with the upstream schemas (tests/crds, labelled
pdc.io/stand-in); Multus is present by its CRDs only (no CNI attaches NICs here).
REAL: etcd, kube-apiserver and kube-controller-manager at each site, the pdc operator at
each site under the chart's RBAC, Knot DNS, pdcctl.
EOF
      "$T/pdc-demo" play --ready-file "$RUN/players.ready" daklak="$KUBECONFIG" phuyen="$STANDBY" >"$RUN/players.log" 2>&1 &
      PIDS+=($!)
      for _ in $(seq 1 240); do [ -f "$RUN/players.ready" ] && break; kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$RUN/players.log" >&2; exit 1; }; sleep 0.5; done
      [ -f "$RUN/players.ready" ] || { cat "$RUN/players.log" >&2; exit 1; }
      cat "$RUN/players.log" >&2
    else
      echo "This cluster has no KubeVirt and no CDI. The demo plays them only on its own local control"
      echo "planes, never in a cluster of yours: the VM and DR parts are skipped."
    fi ;;
  real)
    VMS=1
    echo "This cluster serves KubeVirt and CDI itself: nothing is played, pdc drives the real ones."
    echo "The VMs boot from $IMAGE (set PDC_DEMO_IMAGE to an image URL this cluster can reach)." ;;
  *)
    echo "This cluster serves only part of KubeVirt and CDI: nothing is played and the VM and DR parts are skipped." ;;
esac

say "Starting the operator as its service account pdc-system/pdc-operator, under the chart's RBAC, as site daklak (logs: $RUN/operator-daklak.log)"
# Its own identity, not yours: the chart's admission policies let only the operator's
# service account write the keys that make a namespace a department's.
start_operator daklak "$KUBECONFIG"
if [ "$LOCAL" = 1 ]; then
  echo "and at phuyen, the standby (logs: $RUN/operator-phuyen.log)" >&2
  start_operator phuyen "$STANDBY"
  # The standby gets the province's definitions meanwhile (shown in the DR part).
  (export KUBECONFIG=$STANDBY; load_definitions) >"$RUN/standby.log" 2>&1 &
  SJOB=$!
fi

say "Loading the sample province: Đắk Lắk (domain daklak.gov.vn, legacy phuyen.gov.vn, codes H15 and H45)"
"$T/pdc-controlplane" apply "$SAMPLES/province.yaml"
for _ in $(seq 1 100); do
  pdcctl department create "Thăm dò" --code H15.1 --dry-run >/dev/null 2>&1 && break; sleep 0.3
done

say "Loading the address plan (sites daklak and phuyen; zones dmz, app, data, mgmt, tslcd) and the VM sizes (deploy/samples/sizes.yaml)"
"$T/pdc-controlplane" apply "$SAMPLES/network.yaml" "$SAMPLES/sizes.yaml"

say "Importing the 109 named tenants (13 departments, 96 communes and wards) with their quotas and the DMZ zone"
pdcctl department import "$SAMPLES/daklak-tenants.yaml" --code-prefix H15 --zone dmz \
  --vcpu 16 --memory 32Gi --storage ssd=200Gi --storage hdd=500Gi --vms 8 --public-addresses 1

say "pdcctl department list"
pdcctl department list | head -20
echo "... ($(pdcctl department list -o json | grep -c '"name"') in all)"

say "pdcctl department show so-y-te"
pdcctl department show so-y-te

say "pdcctl department quota so-y-te"
pdcctl department quota so-y-te

say "Claiming addresses for the health department's portal (dual-stack, paired)"
"$T/pdc-controlplane" apply "$SAMPLES/so-y-te-claims.yaml"
for _ in $(seq 1 60); do
  [ "$(claim_bound so-y-te cong-thong-tin)" = True ] && break; sleep 0.5
done
pdcctl ip find "$(pdcctl ip export -o json | python3 -c 'import json,sys; print(next(r["value"] for r in json.load(sys.stdin) if r["kind"]=="address" and r["claim"]=="so-y-te/cong-thong-tin" and ":" not in r["value"]))')"

say "pdcctl zone rules (the zone reachability matrix: NetworkPolicies for pods, MultiNetworkPolicies for VM NICs, and -o nftables for the zone firewalls)"
pdcctl zone rules

say "Starting the province's DNS server (Knot DNS on 127.0.0.1: DNSSEC signing, updates only with TSIG) and registering its zones"
"$T/pdc-dns-server" --env-file "$RUN/dns.env" daklak.gov.vn 15.10.in-addr.arpa 0.0.5.1.8.b.d.0.1.0.0.2.ip6.arpa \
  45.10.in-addr.arpa 0.0.5.4.8.b.d.0.1.0.0.2.ip6.arpa >"$RUN/dns.log" 2>&1 &
DNS_PID=$!; PIDS+=("$DNS_PID")
for _ in $(seq 1 120); do [ -f "$RUN/dns.env" ] && break; sleep 0.5; done
[ -f "$RUN/dns.env" ] || { cat "$RUN/dns.log" >&2; exit 1; }
cat "$RUN/dns.log" >&2

say "The health department's DNS records (deploy/samples/so-y-te-dns.yaml)"
"$T/pdc-controlplane" apply "$SAMPLES/so-y-te-dns.yaml"
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
REV=$(reverse_name "$PORTAL")
wait_until 20 dns_has "$REV" PTR cong-thong-tin || true
pdcctl dns check "$REV" --type PTR

# Played VMs are Ready within seconds; real ones import their image first.
VM_WAIT=900; [ "$PLAYED" = 1 ] && VM_WAIT=120
if [ "$VMS" = 1 ]; then
  say "pdcctl vm sizes (the province's VM sizes, deploy/samples/sizes.yaml)"
  pdcctl vm sizes

  say "A VM from the command line: pdcctl vm create thu-nghiem (it follows each step until the VM is Ready)"
  if [ "$PLAYED" = 1 ]; then
    timeout 300 pdcctl vm create thu-nghiem -d so-y-te --size m1.tiny --image "$IMAGE" --root 20Gi:ssd --zone dmz \
      || vm_not_ready so-y-te thu-nghiem
  else
    # A real import takes minutes, and one that fails never ends: follow it here.
    pdcctl vm create thu-nghiem -d so-y-te --size m1.tiny --image "$IMAGE" --root 20Gi:ssd --zone dmz --no-wait
    wait_until "$VM_WAIT" vm_settled so-y-te thu-nghiem || true
    vm_ready so-y-te thu-nghiem || vm_not_ready so-y-te thu-nghiem
  fi

  say "A VM as a department asks for it in a manifest (deploy/samples/so-y-te-vm.yaml; drProtected, for the DR part)"
  grep -v '^#' "$SAMPLES/so-y-te-vm.yaml" | sed "s|https://images.daklak.gov.vn/ubuntu-24.04.qcow2|$IMAGE|" >"$RUN/so-y-te-vm.yaml"
  cat "$RUN/so-y-te-vm.yaml"
  "$T/pdc-controlplane" apply "$RUN/so-y-te-vm.yaml"
  wait_until "$VM_WAIT" vm_settled so-y-te ho-so || true
  vm_ready so-y-te ho-so || vm_not_ready so-y-te ho-so

  say "pdcctl vm list -d so-y-te"
  pdcctl vm list -d so-y-te

  say "pdcctl vm show ho-so -d so-y-te"
  pdcctl vm show ho-so -d so-y-te

  say "What pdc made for KubeVirt and CDI (pdc-demo made so-y-te ho-so)"
  "$T/pdc-demo" made so-y-te ho-so

  HO_SO4=$(vm_field so-y-te ho-so ipv4); HO_SO6=$(vm_field so-y-te ho-so ipv6)
  say "The VM's addresses: its AddressClaim ho-so-nic0, dual-stack, in the department's DMZ subnet (pdcctl ip find)"
  pdcctl ip find "$HO_SO4"
  pdcctl ip find "$HO_SO6"

  say "The VM's DNS names: DnsRecords ho-so-a and ho-so-aaaa (pdcctl dns records), and what the DNS server answers"
  pdcctl dns records --department so-y-te
  wait_until 20 dns_has ho-so.so-y-te.daklak.gov.vn A "$HO_SO4" || true
  pdcctl dns check ho-so.so-y-te.daklak.gov.vn

  say "Its PTRs, IPv4 and IPv6"
  wait_until 20 dns_has "$(reverse_name "$HO_SO4")" PTR ho-so || true
  wait_until 20 dns_has "$(reverse_name "$HO_SO6")" PTR ho-so || true
  pdcctl dns check "$(reverse_name "$HO_SO4")" --type PTR
  pdcctl dns check "$(reverse_name "$HO_SO6")" --type PTR
fi

protected() {
  pdcctl dr status -d so-y-te -o json | python3 -c "import json,sys; print(any(c['type']=='Protected' and c['status']=='True' for p in json.load(sys.stdin) for c in (p.get('status') or {}).get('conditions', [])))" | grep -q True
}

if [ "$VMS" = 1 ] && [ "$LOCAL" = 1 ]; then
  say "DR: the standby site phuyen (the second control plane) has the same province, address plan, sizes and tenants (loaded meanwhile), the province's DNS zones, and each site a kubeconfig for the other"
  if ! wait "$SJOB"; then cat "$RUN/standby.log" >&2; exit 1; fi
  SJOB=""
  grep -E '^(applied|[0-9]+/[0-9]+ ready)' "$RUN/standby.log" | sed 's/^/phuyen: /'
  "$T/pdc-demo" copy-dns "$KUBECONFIG" "$STANDBY"
  "$T/pdc-demo" link-sites daklak="$KUBECONFIG" phuyen="$STANDBY"

  say "The health department's DR plan (deploy/samples/so-y-te-drplan.yaml), applied at daklak"
  grep -v '^#' "$SAMPLES/so-y-te-drplan.yaml"
  "$T/pdc-controlplane" apply "$SAMPLES/so-y-te-drplan.yaml"
  wait_until 180 protected || { echo "the plan is not Protected:" >&2; pdcctl dr show so-y-te -d so-y-te; exit 1; }

  say "pdcctl dr status -d so-y-te (at daklak: ho-so's disks replicate to phuyen; VolSync is played)"
  pdcctl dr status -d so-y-te

  say "At phuyen, ho-so is defined and halted, with phuyen's addresses and no DNS names (KUBECONFIG=phuyen pdcctl vm list -d so-y-te)"
  KUBECONFIG=$STANDBY pdcctl vm list -d so-y-te
  HO_SO4_S=$(KUBECONFIG=$STANDBY vm_field so-y-te ho-so ipv4)

  say "A drill, asked at phuyen: a copy starts there as ho-so.drill.so-y-te.daklak.gov.vn from the newest replica, is checked and removed; daklak keeps serving"
  KUBECONFIG=$STANDBY pdcctl dr drill so-y-te -d so-y-te

  say "Before the failover: ho-so.so-y-te.daklak.gov.vn answers with daklak's address"
  pdcctl dns check ho-so.so-y-te.daklak.gov.vn --type A

  YES=()
  if pdcctl dr failover --help 2>/dev/null | grep -q -- '--yes'; then YES=(--yes); fi
  say "Failover to phuyen, asked at phuyen: pdcctl dr failover so-y-te -d so-y-te ${YES[*]}"
  KUBECONFIG=$STANDBY pdcctl dr failover so-y-te -d so-y-te "${YES[@]}"

  say "After: the name answers with phuyen's address, the PTR is in phuyen's reverse zone (asked through phuyen, whose records now carry the name)"
  wait_until 30 dns_has ho-so.so-y-te.daklak.gov.vn A "$HO_SO4_S" || true
  KUBECONFIG=$STANDBY pdcctl dns check ho-so.so-y-te.daklak.gov.vn
  KUBECONFIG=$STANDBY wait_until 30 dns_has "$(reverse_name "$HO_SO4_S")" PTR ho-so || true
  KUBECONFIG=$STANDBY pdcctl dns check "$(reverse_name "$HO_SO4_S")" --type PTR
  say "daklak's address $HO_SO4 no longer has a PTR"
  wait_until 30 bash -c "! pdcctl dns check '$(reverse_name "$HO_SO4")' --type PTR | grep -q 'PTR ho-so'" || true
  KUBECONFIG=$STANDBY pdcctl dns check "$(reverse_name "$HO_SO4")" --type PTR

  say "pdcctl dr status -d so-y-te at phuyen, now the active site"
  KUBECONFIG=$STANDBY pdcctl dr status -d so-y-te
  say "pdcctl vm list -d so-y-te at daklak (ho-so halted by the fence; thu-nghiem is not protected and stays) and at phuyen (ho-so running)"
  pdcctl vm list -d so-y-te
  KUBECONFIG=$STANDBY pdcctl vm list -d so-y-te
elif [ "$VMS" = 1 ]; then
  say "DR is not shown against the current cluster: it needs a second cluster as the standby site (see the README's DR section)"
fi

say "pdcctl ip plan (first lines)"
pdcctl ip plan | head -12

say "pdcctl ip usage"
pdcctl ip usage

say "pdcctl report inventory -d so-y-te (VMs, vCPU, memory, storage per tier, addresses, names, DR)"
pdcctl report inventory -d so-y-te

say "pdcctl report ipv6 (the IPv6 rollout per unit; first lines) and ipv4-phase"
pdcctl report ipv6 | sed -n 1,8p
pdcctl report ipv4-phase | sed -n 1,8p

say "pdcctl slug \"Xã Cư M’gar\" \"Xã M’Drắk\" \"Phường Phú Yên\""
pdcctl slug "Xã Cư M’gar" "Xã M’Drắk" "Phường Phú Yên"

say "A commune merger planned against this cluster (deploy/samples/reorg-communes.yaml)"
pdcctl reorg plan -f "$SAMPLES/reorg-communes.yaml"

say "Phú Yên's merger planned offline, from manifests (deploy/samples/reorg-phuyen.yaml)"
pdcctl reorg plan -f "$SAMPLES/reorg-phuyen.yaml" --estate "$SAMPLES/phuyen-estate.yaml"

if [ "$LOCAL" = 1 ]; then
  # Only on the demo's own control plane: an act changes the units it names.
  say "The commune merger carried out on the demo's cluster: pdcctl reorg apply follows its steps (Release waits for the end of the retention period)"
  "$T/pdc-controlplane" apply "$SAMPLES/reorg-communes.yaml"
  wait_until 60 sh -c "pdcctl reorg status | grep -q 'nq-sap-xep-xa-2025.*Planned'" || true
  pdcctl reorg apply nq-sap-xep-xa-2025 --yes --timeout 2m || true
  pdcctl reorg status
  say "pdcctl department list -o wide: the merged and dissolved communes are Retired"
  pdcctl department list -o wide | grep -E 'NAME|xa-ea-(sup|rok|bung|ning)' || true
fi

if [ "$ONCE" = 1 ]; then
  say "Done (--once): stopping what the demo started"
  exit 0
fi
say "pdc is running. Try: KUBECONFIG=$KUBECONFIG pdcctl department list   (Ctrl-C stops everything)"
echo "export KUBECONFIG=$KUBECONFIG PATH=$T:\$PATH"
if [ "$LOCAL" = 1 ]; then echo "the standby site phuyen: KUBECONFIG=$STANDBY pdcctl dr status -d so-y-te"; fi
wait "${PIDS[@]}"
