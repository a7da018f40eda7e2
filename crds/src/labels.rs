//! Label and annotation keys written on the objects pdc manages.

/// `app.kubernetes.io/managed-by` value on every object the operator creates.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "pdc";
pub const PART_OF: &str = "app.kubernetes.io/part-of";
pub const COMPONENT: &str = "app.kubernetes.io/component";
/// The Department (by name = slug) an object belongs to.
pub const DEPARTMENT: &str = "pdc.io/department";
/// The Department's identifier code (`H15.23`).
pub const CODE: &str = "pdc.io/code";
/// The Department's subdomain (`soyte.daklak.gov.vn`).
pub const SUBDOMAIN: &str = "pdc.io/subdomain";
/// On a department namespace: the zones the Department may use, comma-separated
/// (`app,dmz`), for the admission policies that check its requests.
pub const ZONES: &str = "pdc.io/zones";
/// On a department namespace: its subnets as `zone=cidr`, comma-separated, both
/// families, every site (`app=10.15.3.0/24,app=2001:db8:1500:3::/64`).
pub const SUBNETS: &str = "pdc.io/subnets";
/// On a department namespace: the Department's lifecycle (`Active`, `Retiring`,
/// `Retired`); the admission policies refuse new workloads unless it is Active.
pub const LIFECYCLE: &str = "pdc.io/lifecycle";
/// On a Department and its namespace: the Reorganization that retires it.
pub const REORGANIZATION: &str = "pdc.io/reorganization";
/// On a DnsRecord: an old name answering for a new one during a reorganization's
/// transition (the value is the act's name). Once its target answers, the alias
/// replaces every other record at its name in one update, so the name never stops
/// answering; until then the others keep answering.
pub const ALIAS: &str = "pdc.io/alias";
/// On an alias DnsRecord: the last day of the transition (`YYYY-MM-DD`).
pub const ALIAS_UNTIL: &str = "pdc.io/alias-until";
/// On an alias DnsRecord: `"true"` once the transition is over. The name is
/// reclaimed: neither the alias nor the records it replaced answer any more.
pub const ALIAS_EXPIRED: &str = "pdc.io/alias-expired";
/// On a DnsRecord: `"true"` when it adopts a set that already runs in the zone
/// (`pdcctl dns adopt`). The set at its name and type is pdc's although pdc did not
/// write it: when the zone holds exactly the declared set nothing is sent, when it
/// differs the declared values replace it. No other set becomes pdc's.
pub const ADOPT: &str = "pdc.io/adopt";
/// On a VolumeSnapshot an act made of a halted VM's disk: the day until which it is
/// kept (`YYYY-MM-DD`); pdc never deletes it before.
pub const RETAIN_UNTIL: &str = "pdc.io/retain-until";
/// On an AddressAllocation: released by an act and held back from reuse, so an old
/// address is not handed to another unit at once; from this day (`YYYY-MM-DD`) the
/// hold goes and the address may be handed out again.
pub const HOLD_UNTIL: &str = "pdc.io/hold-until";
/// On an AddressAllocation: `"true"` for an address in use outside pdc, imported
/// from the declared plan. No claim owns it; claims, the orphan sweep and
/// reorganizations never release it; `pdcctl ip release-external` does.
pub const EXTERNAL: &str = "pdc.io/external";
/// On objects written by `pdcctl ip import`: the plan file's name they came from.
pub const PLAN: &str = "pdc.io/plan";
/// The Department's kind (department, commune, ward, agency).
pub const KIND: &str = "pdc.io/kind";
/// Finalizer that keeps a Department until its namespace holds no pdc resources.
pub const DEPARTMENT_FINALIZER: &str = "pdc.io/department-cleanup";
/// ClusterRoles bound in every department namespace (shipped in the chart).
pub const ADMIN_CLUSTERROLE: &str = "pdc-department-admin";
pub const VIEWER_CLUSTERROLE: &str = "pdc-department-viewer";
/// The operator's rights inside a department namespace (shipped in the chart, bound
/// by the operator in each department namespace it makes, nowhere else).
pub const OPERATOR_NAMESPACED_CLUSTERROLE: &str = "pdc-operator-namespaced";
/// The other DR site's rights inside a department namespace (likewise).
pub const DR_PEER_NAMESPACED_CLUSTERROLE: &str = "pdc-dr-peer-namespaced";
/// The NetworkZone an allocation or attachment belongs to.
pub const ZONE: &str = "pdc.io/zone";
/// The Site an allocation belongs to.
pub const SITE: &str = "pdc.io/site";
/// The address family of an allocation (`ipv4`, `ipv6`).
pub const FAMILY: &str = "pdc.io/family";
/// UID of the AddressClaim an AddressAllocation belongs to.
pub const CLAIM_UID: &str = "pdc.io/claim-uid";
/// Finalizer that releases an AddressClaim's addresses.
pub const CLAIM_FINALIZER: &str = "pdc.io/address-release";
/// Pod label prefix that attaches a workload to a zone: `pdc.io/zone-<zone>: "true"`.
pub const ZONE_MEMBER_PREFIX: &str = "pdc.io/zone-";
/// Finalizer that keeps a DnsRecord until its set is removed from the zone.
pub const DNS_RECORD_FINALIZER: &str = "pdc.io/dns-record";
/// The DrPlan a copied object or a drill object belongs to.
pub const DR_PLAN: &str = "pdc.io/dr-plan";
/// On drill objects (VMs, disks, records under the `drill` subdomain).
pub const DR_DRILL: &str = "pdc.io/dr-drill";
/// On a TenantVM copy: the addresses its first NIC has at the other site
/// (`<ipv4>,<ipv6>`), so a failover can remove their PTRs without that site.
pub const DR_PEER_ADDRESSES: &str = "pdc.io/dr-peer-addresses";
/// On a DataVolume restored from a replica: the VolumeSnapshot it came from.
pub const DR_RESTORED_FROM: &str = "pdc.io/dr-restored-from";
/// On a TenantVM a reorganization moved to its unit's successor:
/// `<old namespace>/<act>`. Its disks are restored from the snapshots the act cut
/// of the old VM's disks in the old namespace ([`move_snapshot`]).
pub const MOVED_FROM: &str = "pdc.io/moved-from";
/// On an AddressClaim a reorganization claimed again at a unit's successor: the
/// old claim's addresses (`<ipv4>,<ipv6>`), so the names that pointed at them
/// follow to the new ones. (A TenantVolume it moved carries [`MOVED_FROM`]: its
/// DataVolume is restored from the act's snapshot of the old one.)
pub const MOVED_ADDRESSES: &str = "pdc.io/moved-addresses";

/// The VolumeSnapshot an act cuts of disk (DataVolume) `dv` to move it.
pub fn move_snapshot(act: &str, dv: &str) -> String {
    let mut n = format!("move.{act}.{dv}");
    n.truncate(253);
    n.trim_end_matches(['.', '-']).to_string()
}
/// Finalizer that removes a DrPlan's replication objects.
pub const DR_FINALIZER: &str = "pdc.io/dr-plan";
/// On a VolumeSnapshot a DR restore or drill reads from: the DrPlan that holds it
/// (with VolSync's [`VOLSYNC_DO_NOT_DELETE`]) until the restore no longer needs it.
pub const DR_HOLD: &str = "pdc.io/dr-hold";
/// VolSync leaves a snapshot with this label alone (any value): it is not deleted when
/// a newer replica arrives, nor with its ReplicationDestination.
pub const VOLSYNC_DO_NOT_DELETE: &str = "volsync.backube/do-not-delete";
/// On a VirtualMachine's template, hence on each instance it starts: the size the
/// instance runs as (what `RestartRequired` compares with the TenantVM's size).
pub const VM_SIZE: &str = "pdc.io/size";
/// On a VirtualMachine's template, hence on each instance it starts: the
/// `spec.restartRequest` the instance was started after; an instance without the
/// current one is restarted, once, whatever the operator's cache says.
pub const VM_RESTART_REQUEST: &str = "pdc.io/restart-request";
