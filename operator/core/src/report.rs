//! Reports on the estate, per unit: the inventory, IPv6 readiness, each zone's IPv4
//! phase (the rollout's last step, switching IPv4 off) and the unit's domains with
//! their DNSSEC state. The callers read the API objects into [`Unit`]s; every count,
//! share and rule is computed here, and [`csv_line`] writes the CSV rows.
//!
//! The IPv4 phase rule the address claims follow ([`claim_families`]) lives here too:
//! the same phase the report shows decides what a new claim gets.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::ipam::Want;

/// `have` out of `of` (names with AAAA out of the unit's address names, …).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Share {
    pub have: u64,
    pub of: u64,
}

impl Share {
    /// How many of `items` are true, out of how many there are.
    pub fn count(items: impl IntoIterator<Item = bool>) -> Share {
        items.into_iter().fold(Share::default(), |s, yes| Share { have: s.have + u64::from(yes), of: s.of + 1 })
    }

    /// `have / of`, or `None` when there is nothing to count.
    #[allow(clippy::cast_precision_loss)]
    pub fn ratio(self) -> Option<f64> {
        (self.of > 0).then(|| self.have as f64 / self.of as f64)
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.have, self.of)
    }
}

/// Where a zone is in switching IPv4 off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Ipv4Phase {
    /// Dual-stack: claims get what they ask for.
    #[default]
    Active,
    /// New claims get IPv6 only; IPv4 addresses already held stay.
    Deprecated,
    /// No IPv4 is handed out; the IPv4 addresses still held are to be released.
    Off,
}

impl Ipv4Phase {
    pub const ALL: [Ipv4Phase; 3] = [Ipv4Phase::Active, Ipv4Phase::Deprecated, Ipv4Phase::Off];

    pub fn as_str(self) -> &'static str {
        match self {
            Ipv4Phase::Active => "Active",
            Ipv4Phase::Deprecated => "Deprecated",
            Ipv4Phase::Off => "Off",
        }
    }
}

/// Why a claim gets no address in a zone whose IPv4 is deprecated or off.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("zone {zone}'s IPv4 is {}: new claims get IPv6 only; ask for families: IPv6 (or DualStack) and no ipv4Address", phase.as_str())]
pub struct PhaseRefusal {
    pub zone: String,
    pub phase: Ipv4Phase,
}

/// The families a claim in `zone` gets under the zone's IPv4 `phase`. `asks_v4`: the
/// claim names IPv4 itself (families `IPv4`, or an `ipv4Address`); `holds_v4`: it
/// already holds an IPv4 address, which stays whatever the phase (Off lists it to be
/// released; nothing takes it away).
///
/// Active: what it asks. Deprecated and Off: a claim holding IPv4 keeps what it asks
/// (its IPv4 is not taken away, and the IPv6 half of its pair may still be completed);
/// any other claim gets IPv6 only, and one that asks IPv4 itself is refused.
pub fn claim_families(zone: &str, phase: Ipv4Phase, requested: Want, asks_v4: bool, holds_v4: bool) -> Result<Want, PhaseRefusal> {
    match phase {
        Ipv4Phase::Active => Ok(requested),
        _ if holds_v4 => Ok(requested),
        _ if asks_v4 || requested == Want::V4Only => Err(PhaseRefusal { zone: zone.to_string(), phase }),
        _ => Ok(Want::V6Only),
    }
}

/// Whether a department is given a new IPv4 subnet in a zone under the zone's IPv4
/// `phase`: only while it is Active (no new claim could use one afterwards). A subnet
/// it already `holds` stays.
pub fn carves_ipv4_subnet(phase: Ipv4Phase, holds: bool) -> bool {
    holds || phase == Ipv4Phase::Active
}

/// How a unit's VM is protected by disaster recovery.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Dr {
    /// No DR plan selects it.
    #[default]
    None,
    /// A plan selects it, but the plan is not Protected (yet).
    Covered,
    /// A Protected plan selects it.
    Protected,
}

/// A VM of the unit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Vm {
    pub name: String,
    /// Whether any of its NICs has an IPv6 address.
    pub ipv6: bool,
    pub dr: Dr,
}

/// A zone the unit may use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Zone {
    pub name: String,
    /// Whether the zone has an IPv6 prefix at every site it spans.
    pub ipv6: bool,
    pub phase: Ipv4Phase,
}

/// An address the unit holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Address {
    pub zone: String,
    pub address: String,
    pub ipv6: bool,
}

/// What a unit's domain is to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum DomainRole {
    /// Its own subdomain under the province domain.
    Own,
    /// Its own subdomain, under a legacy domain of an absorbed province.
    Legacy,
    /// The subdomain of a unit merged into it, kept answering by a reorganization's
    /// aliases until the end of its transition (`YYYY-MM-DD`, when known).
    KeptFrom { unit: String, until: Option<String> },
}

impl fmt::Display for DomainRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainRole::Own => f.write_str("own"),
            DomainRole::Legacy => f.write_str("legacy"),
            DomainRole::KeptFrom { unit, until: None } => write!(f, "kept from {unit}"),
            DomainRole::KeptFrom { unit, until: Some(d) } => write!(f, "kept from {unit} until {d}"),
        }
    }
}

/// The DNSSEC state of the DNS zone holding a domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Dnssec {
    /// The zone is signed and its answers validate (`DnssecValid` true).
    Signed,
    /// The zone should be signed and its answers do not validate (`DnssecValid` false).
    Invalid,
    /// The zone is not meant to be signed (`spec.dnssec: false`).
    Unsigned,
    /// Not checked yet.
    Unknown,
    /// No DnsZone holds the domain.
    NoZone,
}

impl Dnssec {
    pub fn as_str(self) -> &'static str {
        match self {
            Dnssec::Signed => "signed",
            Dnssec::Invalid => "invalid",
            Dnssec::Unsigned => "unsigned",
            Dnssec::Unknown => "unknown",
            Dnssec::NoZone => "no zone",
        }
    }
}

/// A DNS zone as the domains report reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsZone {
    /// The zone's apex, e.g. `daklak.gov.vn`.
    pub zone: String,
    pub dnssec: Dnssec,
}

/// A domain of the unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Domain {
    pub name: String,
    pub role: DomainRole,
}

/// What a report knows of one unit (a Department).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Unit {
    pub department: String,
    pub vms: Vec<Vm>,
    /// What its VMs and volumes hold (the quota ledger): vCPUs, bytes of guest memory,
    /// bytes per storage tier.
    pub vcpu: u64,
    pub memory: u128,
    pub storage: BTreeMap<String, u128>,
    pub addresses: Vec<Address>,
    /// Its names with an address record: FQDN → (has A, has AAAA).
    pub names: BTreeMap<String, (bool, bool)>,
    pub zones: Vec<Zone>,
    pub domains: Vec<Domain>,
}

/// Addresses in one zone, per family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Held {
    pub ipv4: u64,
    pub ipv6: u64,
}

/// One unit's inventory.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    pub department: String,
    pub vms: u64,
    pub vcpu: u64,
    pub memory_bytes: u128,
    /// Bytes per storage tier, every tier of the province (0 when none is held).
    pub storage_bytes: BTreeMap<String, u128>,
    /// Addresses per zone (every zone the unit holds addresses in or may use).
    pub addresses: BTreeMap<String, Held>,
    /// Names with an address record (A or AAAA).
    pub names: u64,
    /// VMs a Protected DR plan selects, out of all its VMs.
    pub dr_protected: Share,
}

/// The inventory of `u`, with a column for each of the province's `tiers`.
pub fn inventory(u: &Unit, tiers: &[String]) -> Inventory {
    let mut addresses: BTreeMap<String, Held> = u.zones.iter().map(|z| (z.name.clone(), Held::default())).collect();
    for a in &u.addresses {
        let h = addresses.entry(a.zone.clone()).or_default();
        if a.ipv6 { h.ipv6 += 1 } else { h.ipv4 += 1 }
    }
    let mut storage: BTreeMap<String, u128> = tiers.iter().map(|t| (t.clone(), 0)).collect();
    for (t, b) in &u.storage {
        *storage.entry(t.clone()).or_default() += *b;
    }
    Inventory {
        department: u.department.clone(),
        vms: u.vms.len() as u64,
        vcpu: u.vcpu,
        memory_bytes: u.memory,
        storage_bytes: storage,
        addresses,
        names: u.names.len() as u64,
        dr_protected: Share::count(u.vms.iter().map(|v| v.dr == Dr::Protected)),
    }
}

/// One unit's IPv6 readiness.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ipv6Readiness {
    pub department: String,
    /// Its address names (A or AAAA) that have an AAAA record.
    pub names_with_aaaa: Share,
    /// Its VMs with an IPv6 address on some NIC.
    pub vms_with_ipv6: Share,
    /// The zones it may use that have an IPv6 prefix at every site they span.
    pub zones_with_ipv6: Share,
    /// The mean of the three shares, leaving out a share with nothing to count;
    /// `None` when all three are empty.
    pub ratio: Option<f64>,
}

/// The IPv6 readiness of `u`.
pub fn ipv6_readiness(u: &Unit) -> Ipv6Readiness {
    let names = Share::count(u.names.values().map(|(_, aaaa)| *aaaa));
    let vms = Share::count(u.vms.iter().map(|v| v.ipv6));
    let zones = Share::count(u.zones.iter().map(|z| z.ipv6));
    Ipv6Readiness { department: u.department.clone(), names_with_aaaa: names, vms_with_ipv6: vms, zones_with_ipv6: zones, ratio: mean([names, vms, zones]) }
}

/// The mean of the shares that count something.
#[allow(clippy::cast_precision_loss)]
fn mean(shares: [Share; 3]) -> Option<f64> {
    let ratios: Vec<f64> = shares.iter().filter_map(|s| s.ratio()).collect();
    (!ratios.is_empty()).then(|| ratios.iter().sum::<f64>() / ratios.len() as f64)
}

/// One unit's standing in one zone's IPv4 phase.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseRow {
    pub department: String,
    pub zone: String,
    pub phase: Ipv4Phase,
    pub ipv4_held: u64,
    pub ipv6_held: u64,
    /// The IPv4 addresses still held in a zone whose IPv4 is Off: to be released.
    pub to_release: Vec<String>,
}

/// `u`'s zones (those it may use, and any it still holds addresses in), by name,
/// with what it holds there; `phases` gives the phase of a zone it may no longer use.
pub fn ipv4_phase(u: &Unit, phases: &BTreeMap<String, Ipv4Phase>) -> Vec<PhaseRow> {
    let mut rows: BTreeMap<String, PhaseRow> = BTreeMap::new();
    let row = |zone: &str, phase: Ipv4Phase| PhaseRow { department: u.department.clone(), zone: zone.to_string(), phase, ipv4_held: 0, ipv6_held: 0, to_release: Vec::new() };
    for z in &u.zones {
        rows.insert(z.name.clone(), row(&z.name, z.phase));
    }
    for a in &u.addresses {
        let r = rows.entry(a.zone.clone()).or_insert_with(|| row(&a.zone, phases.get(&a.zone).copied().unwrap_or_default()));
        if a.ipv6 {
            r.ipv6_held += 1;
        } else {
            r.ipv4_held += 1;
            if r.phase == Ipv4Phase::Off {
                r.to_release.push(a.address.clone());
            }
        }
    }
    let mut rows: Vec<PhaseRow> = rows.into_values().collect();
    for r in &mut rows {
        r.to_release.sort_by_key(|a| a.split('.').map(|o| o.parse::<u16>().unwrap_or(0)).collect::<Vec<_>>());
    }
    rows
}

/// One of a unit's domains, the DNS zone holding it and its DNSSEC state.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainRow {
    pub department: String,
    pub domain: String,
    pub role: String,
    /// The most specific DnsZone holding the domain.
    pub dns_zone: Option<String>,
    pub dnssec: Dnssec,
}

/// `u`'s domains, its own first, with the zone of `zones` holding each.
pub fn domains(u: &Unit, zones: &[DnsZone]) -> Vec<DomainRow> {
    u.domains
        .iter()
        .map(|d| {
            let zone = holding_zone(&d.name, zones);
            DomainRow {
                department: u.department.clone(),
                domain: d.name.clone(),
                role: d.role.to_string(),
                dns_zone: zone.map(|z| z.zone.clone()),
                dnssec: zone.map_or(Dnssec::NoZone, |z| z.dnssec),
            }
        })
        .collect()
}

/// The most specific of `zones` whose apex is `name` or a parent of it.
pub fn holding_zone<'a>(name: &str, zones: &'a [DnsZone]) -> Option<&'a DnsZone> {
    let name = name.trim_end_matches('.');
    zones
        .iter()
        .filter(|z| {
            let apex = z.zone.trim_end_matches('.');
            name == apex || name.strip_suffix(apex).is_some_and(|rest| rest.ends_with('.'))
        })
        .max_by_key(|z| z.zone.trim_end_matches('.').len())
}

/// The role of `subdomain` for its unit: under one of the province's `legacy`
/// domains, or its own.
pub fn own_role(subdomain: &str, legacy: &[String]) -> DomainRole {
    if legacy.iter().any(|l| holding_zone(subdomain, &[DnsZone { zone: l.clone(), dnssec: Dnssec::Unknown }]).is_some()) {
        DomainRole::Legacy
    } else {
        DomainRole::Own
    }
}

/// One CSV line (RFC 4180): a cell holding a comma, quote or line break is quoted.
pub fn csv_line<S: AsRef<str>>(cells: &[S]) -> String {
    cells
        .iter()
        .map(|c| {
            let c = c.as_ref();
            if c.contains([',', '"', '\n', '\r']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c.to_string() }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A ratio as the reports print it: three decimals, empty when there is none.
pub fn ratio_text(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.3}")).unwrap_or_default()
}

/// A ratio as a percentage for people, `-` when there is none.
pub fn percent_text(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{:.0}%", r * 100.0))
}

#[cfg(test)]
mod tests;
