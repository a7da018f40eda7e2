//! Taking over the province's declared address plan without renumbering anything.
//!
//! A plan file (CSV or YAML, see [`parse`]) lists sites, zones with their prefix at
//! each site, department subnets, and the addresses in use outside pdc. [`check`]
//! compares it with itself and with a snapshot of the cluster and returns every
//! conflict with its line and a fix; only a plan without conflicts gets its writes
//! ([`Writes`]): the objects to create or extend, and how many already are as
//! declared. Nothing here talks to a cluster: `pdcctl ip import` reads the snapshot,
//! calls this, and applies the writes.

mod parse;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

pub use parse::{COLUMNS, Parsed, YamlPlan, csv, item_lines, yaml};

use crate::ipam::{Addr, Prefix};

/// Where an item is in its file: a line, and for YAML its entry (`addresses[3]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Loc {
    pub line: Option<usize>,
    pub entry: Option<(&'static str, usize)>,
}

impl Loc {
    pub fn line(n: usize) -> Loc {
        Loc { line: Some(n), entry: None }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.entry) {
            (Some(l), Some((s, i))) => write!(f, "line {l} ({s}[{i}])"),
            (Some(l), None) => write!(f, "line {l}"),
            (None, Some((s, i))) => write!(f, "{s}[{i}]"),
            (None, None) => write!(f, "the file"),
        }
    }
}

/// One thing wrong, where, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Conflict {
    pub at: Loc,
    pub problem: String,
    pub fix: String,
}

impl Conflict {
    pub fn new(at: Loc, problem: String, fix: impl Into<String>) -> Conflict {
        Conflict { at, problem, fix: fix.into() }
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}\n    fix: {}", self.at, self.problem, self.fix)
    }
}

/// A data centre as declared.
#[derive(Clone, Debug, PartialEq)]
pub struct SiteDecl {
    pub name: String,
    pub primary: bool,
    pub display_name: Option<String>,
    pub ipv4_blocks: Vec<Prefix>,
    pub ipv6_blocks: Vec<Prefix>,
}

/// A zone's prefixes at one site, with the zone's own settings (they must agree on
/// every row of the zone).
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneDecl {
    pub name: String,
    pub site: String,
    pub ipv4: Option<Prefix>,
    pub ipv6: Option<Prefix>,
    pub vlan: Option<u16>,
    pub size_v4: Option<u8>,
    pub size_v6: Option<u8>,
    pub display_name: Option<String>,
    pub externally_assigned: bool,
}

/// A department's subnet pair in a zone at a site.
#[derive(Clone, Debug, PartialEq)]
pub struct SubnetDecl {
    pub department: String,
    pub zone: String,
    pub site: String,
    pub ipv4: Option<Prefix>,
    pub ipv6: Option<Prefix>,
}

/// An address (or pair) in use outside pdc: a server, a network point, a gateway.
#[derive(Clone, Debug, PartialEq)]
pub struct AddressDecl {
    pub hostname: Option<String>,
    pub zone: String,
    pub site: String,
    /// `None`: no department (network equipment, a TSLCD point).
    pub department: Option<String>,
    pub ipv4: Option<Addr>,
    pub ipv6: Option<Addr>,
    pub role: String,
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Site(SiteDecl),
    Zone(ZoneDecl),
    Subnet(SubnetDecl),
    Address(AddressDecl),
}

/// An item and where it was.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub at: Loc,
    pub item: Item,
}

// ---- the cluster, as the importer sees it ----

/// A Site in the cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SiteState {
    pub name: String,
    pub primary: bool,
    pub ipv4_blocks: Vec<Prefix>,
    pub ipv6_blocks: Vec<Prefix>,
}

/// A NetworkZone in the cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ZoneState {
    pub name: String,
    pub vlan: i32,
    pub size_v4: u8,
    pub size_v6: u8,
    pub externally_assigned: bool,
    /// Site → (IPv4, IPv6) prefix.
    pub sites: BTreeMap<String, (Option<Prefix>, Option<Prefix>)>,
}

/// A SubnetAllocation in the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct SubnetState {
    pub prefix: Prefix,
    pub zone: String,
    pub site: String,
    pub department: String,
}

/// Who holds an address in the cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum Holder {
    /// An AddressClaim (`namespace/name`).
    Claim(String),
    /// Imported earlier: what the allocation says.
    External { role: String, plan: String, description: Option<String> },
}

/// An AddressAllocation in the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct AddressState {
    pub address: Addr,
    pub subnet: String,
    pub zone: String,
    pub site: String,
    pub department: String,
    pub hostname: Option<String>,
    pub holder: Holder,
}

/// What the cluster holds. `complete: false` (an offline check) means "unknown": a
/// reference to something not in the file is then a note, not a conflict.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub complete: bool,
    pub sites: Vec<SiteState>,
    pub zones: Vec<ZoneState>,
    pub subnets: Vec<SubnetState>,
    pub addresses: Vec<AddressState>,
}

impl Snapshot {
    /// Checking the file alone.
    pub fn offline() -> Snapshot {
        Snapshot::default()
    }
}

// ---- the writes ----

/// A zone to create, or the sites to add to one.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneWrite {
    pub name: String,
    /// `true`: the zone does not exist yet (all its settings are written).
    pub create: bool,
    pub vlan: u16,
    pub size_v4: u8,
    pub size_v6: u8,
    pub display_name: Option<String>,
    pub externally_assigned: bool,
    /// Site → prefixes: every site for a new zone; for an existing one, the sites
    /// (or families) the file adds.
    pub sites: BTreeMap<String, (Option<Prefix>, Option<Prefix>)>,
}

/// A SubnetAllocation to create.
#[derive(Clone, Debug, PartialEq)]
pub struct SubnetWrite {
    pub prefix: Prefix,
    pub zone: String,
    pub site: String,
    pub department: String,
}

/// An external AddressAllocation to create.
#[derive(Clone, Debug, PartialEq)]
pub struct AddressWrite {
    pub address: Addr,
    /// The department subnet it is in, or the zone's prefix when it is in none.
    pub subnet: Prefix,
    pub zone: String,
    pub site: String,
    /// Empty when no department holds it.
    pub department: String,
    pub hostname: Option<String>,
    pub role: String,
    pub description: Option<String>,
}

/// How many declared objects the cluster already holds exactly as declared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unchanged {
    pub sites: usize,
    pub zones: usize,
    pub subnets: usize,
    pub addresses: usize,
}

/// Everything an import writes, in the order it is written: sites, then subnets and
/// addresses (so the operator never carves over a declared block in between), then
/// zones.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Writes {
    pub sites: Vec<SiteDecl>,
    pub subnets: Vec<SubnetWrite>,
    pub addresses: Vec<AddressWrite>,
    pub zones: Vec<ZoneWrite>,
    pub unchanged: Unchanged,
}

impl Writes {
    /// Objects to write.
    pub fn count(&self) -> usize {
        self.sites.len() + self.subnets.len() + self.addresses.len() + self.zones.len()
    }
}

/// The outcome of a check: conflicts (empty: the plan can be imported), notes
/// about what only the cluster can confirm, and the writes.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub conflicts: Vec<Conflict>,
    pub notes: Vec<String>,
    pub writes: Writes,
}

mod check;
pub use check::check;
