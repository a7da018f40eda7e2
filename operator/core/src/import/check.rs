//! The rules a plan must keep, against itself and against the cluster, and the
//! writes of a plan that keeps them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{
    AddressDecl, AddressWrite, Conflict, Entry, Holder, Item, Loc, Parsed, Report, SiteDecl, Snapshot, SubnetDecl, SubnetWrite, ZoneDecl,
    ZoneWrite,
};
use crate::ipam::{self, Addr, Family, Prefix};

type SitePrefixes = (Option<Prefix>, Option<Prefix>);
/// Every zone prefix, by zone and site, and its index.
type ZoneIndex<'a> = (&'a [((String, String), Prefix)], &'a Index);

fn pick(p: &SitePrefixes, f: Family) -> Option<Prefix> {
    if f == Family::V4 { p.0 } else { p.1 }
}

/// A zone as it will be: the cluster's, extended by the file.
#[derive(Clone, Debug, Default)]
struct ZoneModel {
    size_v4: u8,
    size_v6: u8,
    sites: BTreeMap<String, SitePrefixes>,
}

impl ZoneModel {
    fn size(&self, f: Family) -> u8 {
        if f == Family::V4 { self.size_v4 } else { self.size_v6 }
    }
}

/// A department subnet as it will be.
#[derive(Clone, Debug)]
struct SubnetModel {
    prefix: Prefix,
    zone: String,
    site: String,
    department: String,
}

/// Who a prefix belongs to, for overlap reports: a name and, when it is in the file, where.
#[derive(Clone, Debug)]
struct Owner {
    name: String,
    at: Option<Loc>,
}

fn where_(o: &Owner) -> String {
    o.at.as_ref().map_or_else(|| "in the cluster".to_string(), |l| format!("at {l}"))
}

/// Which non-overlapping prefix holds an address: (family, first) → index.
#[derive(Default)]
struct Index(BTreeMap<(Family, u128), usize>);

impl Index {
    fn find<'a, T>(&self, items: &'a [(T, Prefix)], a: &Addr) -> Option<&'a (T, Prefix)> {
        let (_, i) = self.0.range(..=(a.family, a.value)).next_back()?;
        items.get(*i).filter(|(_, p)| p.contains(a))
    }
}

struct Checker<'a> {
    snap: &'a Snapshot,
    report: Report,
    notes: BTreeSet<String>,
}

/// Check a parsed plan against itself and the cluster; the writes are filled only
/// when there is no conflict.
pub fn check(parsed: Parsed, snap: &Snapshot) -> Report {
    let mut k = Checker { snap, report: Report { conflicts: parsed.conflicts, ..Report::default() }, notes: BTreeSet::new() };
    let (mut sites, mut zones, mut subnets, mut addresses) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for Entry { at, item } in &parsed.entries {
        match item {
            Item::Site(d) => sites.push((at, d)),
            Item::Zone(d) => zones.push((at, d)),
            Item::Subnet(d) => subnets.push((at, d)),
            Item::Address(d) => addresses.push((at, d)),
        }
    }
    let known_sites = k.sites(&sites);
    let models = k.zones(&zones, &known_sites);
    let subnet_list = k.subnets(&subnets, &models);
    k.addresses(&addresses, &models, &subnet_list);
    let mut report = k.report;
    report.conflicts.sort();
    report.conflicts.dedup();
    report.notes = k.notes.into_iter().collect();
    if !report.conflicts.is_empty() {
        report.writes = super::Writes::default();
    }
    report
}

impl Checker<'_> {
    fn conflict(&mut self, at: &Loc, problem: String, fix: impl Into<String>) {
        self.report.conflicts.push(Conflict::new(at.clone(), problem, fix));
    }

    /// A reference to something neither the file nor the cluster holds; offline it
    /// may still be in the cluster.
    fn missing(&mut self, at: &Loc, what: String, fix: &str) {
        if self.snap.complete {
            self.conflict(at, format!("{what} is neither in the file nor in the cluster"), fix);
        } else {
            self.notes.insert(format!("{at}: {what} is not in the file; the import checks that the cluster has it"));
        }
    }

    /// Overlapping prefixes among `entries`, reported at the file's entry (the later
    /// one when both are in the file).
    fn overlaps(&mut self, entries: &[(Owner, Prefix)], what: &str) {
        for (i, j) in ipam::overlaps(entries) {
            let (Some((a, pa)), Some((b, pb))) = (entries.get(i), entries.get(j)) else { continue };
            let ((mine, pm), (other, po)) = match (&a.at, &b.at) {
                (None, None) => continue,
                (Some(x), Some(y)) if x < y => ((b, pb), (a, pa)),
                (Some(_), _) => ((a, pa), (b, pb)),
                (None, Some(_)) => ((b, pb), (a, pa)),
            };
            let Some(at) = mine.at.clone() else { continue };
            let problem = format!("{what} {pm} of {} overlaps {po} of {} {}", mine.name, other.name, where_(other));
            self.conflict(&at, problem, "declared prefixes never overlap: correct this one (or the other) to the declared value");
        }
    }

    fn sites(&mut self, decls: &[(&Loc, &SiteDecl)]) -> BTreeMap<String, (Vec<Prefix>, Vec<Prefix>)> {
        let mut known: BTreeMap<String, (Vec<Prefix>, Vec<Prefix>)> =
            self.snap.sites.iter().map(|s| (s.name.clone(), (s.ipv4_blocks.clone(), s.ipv6_blocks.clone()))).collect();
        let mut seen: BTreeMap<&str, &Loc> = BTreeMap::new();
        let mut blocks: Vec<(Owner, Prefix)> = Vec::new();
        for s in &self.snap.sites {
            if !decls.iter().any(|(_, d)| d.name == s.name) {
                let o = Owner { name: format!("site {}", s.name), at: None };
                blocks.extend(s.ipv4_blocks.iter().chain(&s.ipv6_blocks).map(|p| (o.clone(), *p)));
            }
        }
        for (at, d) in decls {
            if let Some(first) = seen.insert(&d.name, at) {
                self.conflict(at, format!("site {} is declared twice (also at {first})", d.name), "keep one row per site");
                continue;
            }
            let o = Owner { name: format!("site {}", d.name), at: Some((*at).clone()) };
            blocks.extend(d.ipv4_blocks.iter().chain(&d.ipv6_blocks).map(|p| (o.clone(), *p)));
            let Some(s) = self.snap.sites.iter().find(|s| s.name == d.name) else {
                known.insert(d.name.clone(), (d.ipv4_blocks.clone(), d.ipv6_blocks.clone()));
                self.report.writes.sites.push((*d).clone());
                continue;
            };
            let role = |p: bool| if p { "Primary" } else { "Standby" };
            let mut same = true;
            if s.primary != d.primary {
                same = false;
                let msg = format!("site {} is {} in the cluster; the plan says {}", d.name, role(s.primary), role(d.primary));
                self.conflict(at, msg, format!("write {} (a site's role changes only by failover)", role(s.primary)));
            }
            for b in d.ipv4_blocks.iter().chain(&d.ipv6_blocks) {
                if !s.ipv4_blocks.iter().chain(&s.ipv6_blocks).any(|c| c.covers(b)) {
                    same = false;
                    let msg = format!("block {b} of site {} is not among the Site's blocks in the cluster", d.name);
                    self.conflict(at, msg, format!("add {b} to Site {}'s spec first, or remove it from the plan", d.name));
                }
            }
            if same {
                self.report.writes.unchanged.sites += 1;
            }
        }
        self.overlaps(&blocks, "block");
        known
    }
}

/// A zone's settings read from its rows: the first row giving each wins, a row
/// giving another value is a conflict.
#[derive(Default)]
struct ZoneAttrs {
    vlan: Option<u16>,
    size_v4: Option<u8>,
    size_v6: Option<u8>,
    display_name: Option<String>,
    external: Option<bool>,
}

impl Checker<'_> {
    fn zone_attrs(&mut self, name: &str, rows: &[(&Loc, &ZoneDecl)]) -> ZoneAttrs {
        let mut a = ZoneAttrs::default();
        for (at, d) in rows {
            let mut agree = |what: &str, mine: String, first: Option<String>| {
                if let Some(first) = first.filter(|f| *f != mine) {
                    let fix = format!("write {what} {first} on every row of zone {name}, or leave it empty after the first");
                    self.report.conflicts.push(Conflict::new((*at).clone(), format!("zone {name}'s {what} is {first} on an earlier row, {mine} here"), fix));
                }
            };
            if let Some(v) = d.vlan {
                agree("vlan", v.to_string(), a.vlan.map(|x| x.to_string()));
                a.vlan.get_or_insert(v);
            }
            if let Some(v) = d.size_v4 {
                agree("subnet_ipv4", v.to_string(), a.size_v4.map(|x| x.to_string()));
                a.size_v4.get_or_insert(v);
            }
            if let Some(v) = d.size_v6 {
                agree("subnet_ipv6", v.to_string(), a.size_v6.map(|x| x.to_string()));
                a.size_v6.get_or_insert(v);
            }
            agree("role", role_word(d.externally_assigned).into(), a.external.map(|x| role_word(x).to_string()));
            a.external.get_or_insert(d.externally_assigned);
            if a.display_name.is_none() {
                a.display_name.clone_from(&d.display_name);
            }
        }
        a
    }

    /// The zone's settings against the cluster's zone of that name.
    fn zone_settings(&mut self, name: &str, at: &Loc, a: &ZoneAttrs) -> Option<ZoneModel> {
        let Some(z) = self.snap.zones.iter().find(|z| z.name == name) else {
            if a.vlan.is_none() {
                self.conflict(at, format!("zone {name} is new and no row gives its VLAN"), "write the zone's VLAN id in the vlan column");
            }
            return Some(ZoneModel { size_v4: a.size_v4.unwrap_or(26), size_v6: a.size_v6.unwrap_or(64), sites: BTreeMap::new() });
        };
        let mut differ = |what: &str, theirs: String, mine: Option<String>, fix: &str| {
            if let Some(m) = mine.filter(|m| *m != theirs) {
                self.report.conflicts.push(Conflict::new(at.clone(), format!("zone {name}'s {what} is {theirs} in the cluster; the plan says {m}"), format!("write {theirs}: {fix}")));
            }
        };
        differ("vlan", z.vlan.to_string(), a.vlan.map(|v| v.to_string()), "pdc takes the declared zone as it is");
        differ("subnet_ipv4", z.size_v4.to_string(), a.size_v4.map(|v| v.to_string()), "a zone's subnet size never changes");
        differ("subnet_ipv6", z.size_v6.to_string(), a.size_v6.map(|v| v.to_string()), "a zone's subnet size never changes");
        differ("role", role_word(z.externally_assigned).into(), a.external.map(|e| role_word(e).to_string()), "the zone is recorded so in the cluster");
        Some(ZoneModel { size_v4: z.size_v4, size_v6: z.size_v6, sites: z.sites.clone() })
    }
}

fn role_word(external: bool) -> &'static str {
    if external { "external" } else { "pdc" }
}

impl Checker<'_> {
    fn zones(&mut self, decls: &[(&Loc, &ZoneDecl)], sites: &BTreeMap<String, (Vec<Prefix>, Vec<Prefix>)>) -> BTreeMap<String, ZoneModel> {
        let mut models: BTreeMap<String, ZoneModel> =
            self.snap.zones.iter().map(|z| (z.name.clone(), ZoneModel { size_v4: z.size_v4, size_v6: z.size_v6, sites: z.sites.clone() })).collect();
        let mut by_name: BTreeMap<&str, Vec<(&Loc, &ZoneDecl)>> = BTreeMap::new();
        for (at, d) in decls {
            by_name.entry(d.name.as_str()).or_default().push((*at, *d));
        }
        let mut prefixes: Vec<(Owner, Prefix)> = Vec::new();
        for (name, rows) in &by_name {
            let Some((first, _)) = rows.first() else { continue };
            let attrs = self.zone_attrs(name, rows);
            let Some(mut model) = self.zone_settings(name, first, &attrs) else { continue };
            let cluster = self.snap.zones.iter().find(|z| z.name == *name);
            let mut write = ZoneWrite {
                name: (*name).to_string(),
                create: cluster.is_none(),
                vlan: attrs.vlan.unwrap_or(0),
                size_v4: model.size_v4,
                size_v6: model.size_v6,
                display_name: attrs.display_name.clone(),
                externally_assigned: attrs.external.unwrap_or(false),
                sites: BTreeMap::new(),
            };
            let mut seen: BTreeMap<&str, &Loc> = BTreeMap::new();
            for (at, d) in rows {
                if let Some(prev) = seen.insert(&d.site, at) {
                    self.conflict(at, format!("zone {name} at site {} is declared twice (also at {prev})", d.site), "keep one row per zone and site");
                    continue;
                }
                self.zone_site(at, d, &mut model, &mut write, sites);
                let o = Owner { name: format!("zone {name} at site {}", d.site), at: Some((*at).clone()) };
                prefixes.extend([d.ipv4, d.ipv6].into_iter().flatten().map(|p| (o.clone(), p)));
            }
            if write.sites.is_empty() && !write.create {
                self.report.writes.unchanged.zones += 1;
            } else {
                self.report.writes.zones.push(write);
            }
            models.insert((*name).to_string(), model);
        }
        // The cluster's prefixes the file does not restate.
        for z in &self.snap.zones {
            for (site, p) in &z.sites {
                let restated = decls.iter().any(|(_, d)| d.name == z.name && d.site == *site);
                if !restated {
                    let o = Owner { name: format!("zone {} at site {site}", z.name), at: None };
                    prefixes.extend([p.0, p.1].into_iter().flatten().map(|p| (o.clone(), p)));
                }
            }
        }
        self.overlaps(&prefixes, "prefix");
        models
    }

    /// One zone row: its prefixes against the cluster's, the subnet size and the site's blocks.
    fn zone_site(&mut self, at: &Loc, d: &ZoneDecl, model: &mut ZoneModel, write: &mut ZoneWrite, sites: &BTreeMap<String, (Vec<Prefix>, Vec<Prefix>)>) {
        let site_blocks = sites.get(&d.site);
        if site_blocks.is_none() {
            self.missing(at, format!("site {}", d.site), "declare the site with a site row, or fix the site column");
        }
        let current = model.sites.get(&d.site).copied().unwrap_or_default();
        let mut added = (None, None);
        for (p, f) in [(d.ipv4, Family::V4), (d.ipv6, Family::V6)] {
            let Some(p) = p else { continue };
            match pick(&current, f) {
                Some(old) if old != p => {
                    let msg = format!("zone {} has {f} prefix {old} at site {} in the cluster; the plan says {p}", d.name, d.site);
                    self.conflict(at, msg, format!("write {old}: pdc never renumbers a zone (a new prefix is a new zone)"));
                }
                Some(_) => {}
                None => {
                    if f == Family::V4 { added.0 = Some(p) } else { added.1 = Some(p) }
                }
            }
            let size = model.size(f);
            if p.len > size {
                let msg = format!("zone prefix {p} is smaller than one department subnet (/{size}) of zone {}", d.name);
                self.conflict(at, msg, format!("declare a prefix of /{size} or larger, or a longer subnet_{}", if f == Family::V4 { "ipv4" } else { "ipv6" }));
            }
            let blocks = site_blocks.map(|b| if f == Family::V4 { &b.0 } else { &b.1 });
            if let Some(blocks) = blocks.filter(|b| !b.is_empty())
                && !blocks.iter().any(|b| b.covers(&p))
            {
                let list = blocks.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                self.conflict(at, format!("{f} prefix {p} of zone {} is outside site {}'s blocks ({list})", d.name, d.site), "correct the prefix, or the site's blocks");
            }
        }
        let merged = (current.0.or(added.0), current.1.or(added.1));
        model.sites.insert(d.site.clone(), merged);
        if added.0.is_some() || added.1.is_some() || write.create {
            write.sites.insert(d.site.clone(), if write.create { (d.ipv4, d.ipv6) } else { added });
        }
    }
}

impl Checker<'_> {
    fn subnets(&mut self, decls: &[(&Loc, &SubnetDecl)], zones: &BTreeMap<String, ZoneModel>) -> Vec<(SubnetModel, Prefix)> {
        let mut out: Vec<(Owner, SubnetModel)> = Vec::new();
        let mut seen: HashMap<(String, String, String, Family), &Loc> = HashMap::new();
        let cluster: HashMap<Prefix, &super::SubnetState> = self.snap.subnets.iter().map(|s| (s.prefix, s)).collect();
        for (at, d) in decls {
            for (p, f) in [(d.ipv4, Family::V4), (d.ipv6, Family::V6)] {
                let Some(p) = p else { continue };
                if let Some(prev) = seen.insert((d.department.clone(), d.zone.clone(), d.site.clone(), f), at) {
                    let msg = format!("department {}'s {f} subnet in zone {} at site {} is declared twice (also at {prev})", d.department, d.zone, d.site);
                    self.conflict(at, msg, "a department has one subnet per zone, site and family: keep one row");
                    continue;
                }
                self.subnet_in_zone(at, d, p, f, zones);
                let m = SubnetModel { prefix: p, zone: d.zone.clone(), site: d.site.clone(), department: d.department.clone() };
                match cluster.get(&p) {
                    Some(c) if c.department == d.department && c.zone == d.zone && c.site == d.site => self.report.writes.unchanged.subnets += 1,
                    Some(c) => {
                        let msg = format!("subnet {p} belongs to department {} (zone {}, site {}) in the cluster", c.department, c.zone, c.site);
                        self.conflict(at, msg, "correct the department, zone or site to the cluster's, or the prefix");
                    }
                    None => {
                        self.renumbering(at, d, p, f);
                        self.report.writes.subnets.push(SubnetWrite { prefix: p, zone: d.zone.clone(), site: d.site.clone(), department: d.department.clone() });
                    }
                }
                out.push((Owner { name: format!("department {}", d.department), at: Some((*at).clone()) }, m));
            }
        }
        for s in &self.snap.subnets {
            if !out.iter().any(|(_, m)| m.prefix == s.prefix) {
                let m = SubnetModel { prefix: s.prefix, zone: s.zone.clone(), site: s.site.clone(), department: s.department.clone() };
                out.push((Owner { name: format!("department {}", s.department), at: None }, m));
            }
        }
        let entries: Vec<(Owner, Prefix)> = out.iter().map(|(o, m)| (o.clone(), m.prefix)).collect();
        self.overlaps(&entries, "subnet");
        self.covers_external(&out);
        out.into_iter().map(|(_, m)| (m.clone(), m.prefix)).collect()
    }

    /// The department already holds another subnet there: the plan would renumber it.
    fn renumbering(&mut self, at: &Loc, d: &SubnetDecl, p: Prefix, f: Family) {
        let held = self.snap.subnets.iter().find(|s| s.department == d.department && s.zone == d.zone && s.site == d.site && s.prefix.family == f);
        if let Some(s) = held {
            let msg = format!("department {} already holds {f} subnet {} in zone {} at site {}; the plan says {p}", d.department, s.prefix, d.zone, d.site);
            self.conflict(at, msg, format!("write {}: pdc never renumbers a department", s.prefix));
        }
    }

    fn subnet_in_zone(&mut self, at: &Loc, d: &SubnetDecl, p: Prefix, f: Family, zones: &BTreeMap<String, ZoneModel>) {
        let Some(z) = zones.get(&d.zone) else {
            self.missing(at, format!("zone {}", d.zone), "declare the zone with zone rows, or fix the zone column");
            return;
        };
        let Some(zp) = z.sites.get(&d.site).and_then(|s| pick(s, f)) else {
            self.missing(at, format!("an {f} prefix of zone {} at site {}", d.zone, d.site), "declare the zone's prefix at that site with a zone row");
            return;
        };
        if !zp.covers(&p) {
            self.conflict(at, format!("subnet {p} is outside zone {}'s {f} prefix {zp} at site {}", d.zone, d.site), "correct the subnet or its zone and site");
        }
        let size = z.size(f);
        if p.len != size {
            let msg = format!("subnet {p} is a /{}, but zone {} gives every department a /{size} ({f})", p.len, d.zone);
            self.conflict(at, msg, format!("declare a /{size} from {zp}, or put the subnet in a zone whose subnet_{} is {}", if f == Family::V4 { "ipv4" } else { "ipv6" }, p.len));
        }
    }

    /// A new department subnet around an external address the cluster holds with no department.
    fn covers_external(&mut self, subnets: &[(Owner, SubnetModel)]) {
        for a in self.snap.addresses.iter().filter(|a| a.department.is_empty()) {
            for (o, m) in subnets {
                if let Some(at) = &o.at
                    && m.prefix.contains(&a.address)
                {
                    let msg = format!("subnet {} holds {}, imported earlier with no department", m.prefix, a.address);
                    let fix = format!("pdcctl ip release-external {} and import it again with department {}", a.address, m.department);
                    self.conflict(at, msg, fix);
                }
            }
        }
    }
}

impl Checker<'_> {
    fn addresses(&mut self, decls: &[(&Loc, &AddressDecl)], zones: &BTreeMap<String, ZoneModel>, subnets: &[(SubnetModel, Prefix)]) {
        let mut index = Index::default();
        for (i, (_, p)) in subnets.iter().enumerate() {
            index.0.insert((p.family, p.first()), i);
        }
        let zone_list: Vec<((String, String), Prefix)> =
            zones.iter().flat_map(|(z, m)| m.sites.iter().flat_map(move |(s, p)| [p.0, p.1].into_iter().flatten().map(move |p| ((z.clone(), s.clone()), p)))).collect();
        let mut zone_index = Index::default();
        for (i, (_, p)) in zone_list.iter().enumerate() {
            zone_index.0.insert((p.family, p.first()), i);
        }
        let cluster: HashMap<Addr, &super::AddressState> = self.snap.addresses.iter().map(|a| (a.address, a)).collect();
        let mut seen: HashMap<Addr, &Loc> = HashMap::new();
        for (at, d) in decls {
            for a in [d.ipv4, d.ipv6].into_iter().flatten() {
                if let Some(prev) = seen.insert(a, at) {
                    self.conflict(at, format!("address {a} is declared twice (also at {prev})"), "keep one row per address");
                    continue;
                }
                let Some(w) = self.place(at, d, a, zones, subnets, &index, (&zone_list, &zone_index)) else { continue };
                self.against_cluster(at, w, cluster.get(&a).copied());
            }
        }
    }

    /// Where an address lies: its zone's prefix, and the department subnet holding it.
    #[allow(clippy::too_many_arguments)]
    fn place(
        &mut self,
        at: &Loc,
        d: &AddressDecl,
        a: Addr,
        zones: &BTreeMap<String, ZoneModel>,
        subnets: &[(SubnetModel, Prefix)],
        index: &Index,
        zone_index: ZoneIndex<'_>,
    ) -> Option<AddressWrite> {
        let f = a.family;
        let Some(z) = zones.get(&d.zone) else {
            self.missing(at, format!("zone {}", d.zone), "declare the zone with zone rows, or fix the zone column");
            return None;
        };
        let zp = z.sites.get(&d.site).and_then(|s| pick(s, f));
        let Some(zp) = zp.filter(|zp| zp.contains(&a)) else {
            let actual = zone_index.1.find(zone_index.0, &a).map(|((z, s), _)| format!("it lies in zone {z} at site {s}: correct the zone and site columns"));
            let prefix = zp.map_or_else(|| format!("which has no {f} prefix there"), |p| format!("({p})"));
            let fix = actual.unwrap_or_else(|| "the address is in no zone: correct it, or declare its zone".into());
            self.conflict(at, format!("address {a} is outside zone {} at site {} {prefix}", d.zone, d.site), fix);
            return None;
        };
        let holder = index.find(subnets, &a).filter(|(s, _)| s.zone == d.zone && s.site == d.site);
        let (department, subnet) = match (holder, &d.department) {
            (Some((s, p)), Some(want)) if *want != s.department => {
                let msg = format!("address {a} is in subnet {p} of department {}, not of {want}", s.department);
                self.conflict(at, msg, format!("write department {}, or correct the address", s.department));
                return None;
            }
            (Some((s, p)), _) => (s.department.clone(), *p),
            (None, Some(want)) => {
                let theirs = subnets.iter().find(|(s, p)| s.department == *want && s.zone == d.zone && s.site == d.site && p.family == f);
                match theirs {
                    Some((_, p)) => self.conflict(at, format!("address {a} is outside department {want}'s subnet {p} in zone {}", d.zone), "correct the address, or leave the department empty if it is in no department's subnet"),
                    None => self.missing(at, format!("an {f} subnet of department {want} in zone {} at site {}", d.zone, d.site), "declare it with a subnet row, or leave the department empty"),
                }
                return None;
            }
            (None, None) => (String::new(), zp),
        };
        if !department.is_empty() && f == Family::V4 && subnet.len <= 30 && (a.value == subnet.first() || a.value == subnet.last()) {
            let what = if a.value == subnet.first() { "network" } else { "broadcast" };
            self.conflict(at, format!("address {a} is the {what} address of subnet {subnet}"), "correct the address");
            return None;
        }
        let (zone, site, hostname, role, description) = (d.zone.clone(), d.site.clone(), d.hostname.clone(), d.role.clone(), d.description.clone());
        Some(AddressWrite { address: a, subnet, zone, site, department, hostname, role, description })
    }

    fn against_cluster(&mut self, at: &Loc, w: AddressWrite, held: Option<&super::AddressState>) {
        let Some(h) = held else {
            self.report.writes.addresses.push(w);
            return;
        };
        match &h.holder {
            Holder::Claim(claim) => {
                let msg = format!("address {} is held in the cluster by AddressClaim {claim} (department {})", w.address, h.department);
                self.conflict(at, msg, "the plan and the cluster disagree: delete that claim first (its machine must move), or correct the plan");
            }
            Holder::External { role, plan, description } => {
                let same = h.subnet == w.subnet.to_string()
                    && h.zone == w.zone
                    && h.site == w.site
                    && h.department == w.department
                    && h.hostname == w.hostname
                    && *role == w.role
                    && *description == w.description;
                if same {
                    self.report.writes.unchanged.addresses += 1;
                } else {
                    let msg = format!(
                        "address {} was imported from {plan} as {role} {} (department {}, zone {}); the plan now says {} {} (department {}, zone {})",
                        w.address,
                        h.hostname.as_deref().unwrap_or("-"),
                        if h.department.is_empty() { "none" } else { &h.department },
                        h.zone,
                        w.role,
                        w.hostname.as_deref().unwrap_or("-"),
                        if w.department.is_empty() { "none" } else { &w.department },
                        w.zone
                    );
                    self.conflict(at, msg, format!("pdcctl ip release-external {} and import again, or write what the cluster holds", w.address));
                }
            }
        }
    }
}
