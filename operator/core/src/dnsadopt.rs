//! Taking over record sets that already run in a zone: which sets a department's
//! DnsRecords may adopt, under what object names, and what pdc then owns.
//!
//! Adoption never changes the zone by itself: a DnsRecord that declares exactly the
//! set the zone holds plans to nothing ([`crate::dnsplan::plan`] leaves equal sets
//! alone), so the serial does not move. The adoption marker only makes the adopted
//! (name, type) pdc's, so a later edit of the record replaces the set with a
//! prerequisite-guarded update instead of being refused as a conflict. It never
//! makes pdc own any other set: a CNAME that would join a set of another type at the
//! name stays a conflict.

use std::collections::{BTreeMap, BTreeSet};

use crate::dnsplan::{self, RRset, RecordType, Zone};

type Key = (String, RecordType);

/// The sets pdc owns once the records that carry the adoption marker are counted:
/// `owned` plus the exact (name, type) of each adopted set that pdc declares.
pub fn owned_with_adopted(owned: &BTreeSet<Key>, desired: &Zone, adopted: &BTreeSet<Key>) -> BTreeSet<Key> {
    owned.iter().cloned().chain(adopted.iter().filter(|k| desired.contains_key(*k)).cloned()).collect()
}

/// DNSSEC records: the server's own signing, never adopted nor reported.
pub const DNSSEC_TYPES: [&str; 8] = ["RRSIG", "NSEC", "NSEC3", "NSEC3PARAM", "DNSKEY", "CDS", "CDNSKEY", "DS"];

/// The types a DnsRecord may declare (the others, PTR included, only pdc writes).
const DECLARABLE: [RecordType; 7] = [RecordType::A, RecordType::AAAA, RecordType::CNAME, RecordType::TXT, RecordType::MX, RecordType::SRV, RecordType::CAA];

/// A department as adoption sees it: its namespace and its subdomain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Department {
    pub namespace: String,
    pub subdomain: String,
}

/// One DnsRecord to create: the set the zone holds, under a department.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Adoption {
    pub namespace: String,
    /// The DnsRecord's object name (see [`object_name`]).
    pub object: String,
    /// The record name relative to the subdomain (`www`, `@`).
    pub name: String,
    pub set: RRset,
}

/// A set (or a type at a name) left where it is, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub reason: String,
}

/// What adopting a zone would do.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Proposal {
    pub adopt: Vec<Adoption>,
    /// Sets outside every department's subdomain: they stay as they are.
    pub foreign: Vec<RRset>,
    /// Sets inside a subdomain that pdc will not manage (see each reason).
    pub skipped: Vec<Skipped>,
    /// Sets a DnsRecord already declares or was programmed with.
    pub already_owned: usize,
}

/// Everything a zone transfer showed: the sets of types pdc manages, and the other
/// records as counts by (owner, type).
pub struct ZoneContents<'a> {
    pub zone: &'a str,
    pub sets: &'a Zone,
    pub other: &'a BTreeMap<(String, String), u32>,
    /// Owners of TXT records split into character-strings otherwise than pdc would
    /// write them (255 bytes each, the rest last).
    pub split_txt: &'a BTreeSet<String>,
}

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.').to_ascii_lowercase())
}

fn is_under(name: &str, parent: &str) -> bool {
    name == parent || name.ends_with(&format!(".{parent}"))
}

/// The subdomain (of `departments`) that holds `name`: the longest one it ends in.
fn department_of<'a>(name: &str, departments: &'a [Department]) -> Option<&'a Department> {
    departments.iter().filter(|d| is_under(name, &fqdn(&d.subdomain))).max_by_key(|d| d.subdomain.len())
}

/// The name of a set relative to `subdomain`: `@` for the subdomain itself.
pub fn relative_name(name: &str, subdomain: &str) -> Option<String> {
    let sub = fqdn(subdomain);
    if name == sub {
        return Some("@".into());
    }
    name.strip_suffix(&format!(".{sub}")).map(str::to_string)
}

/// FNV-1a: a stable hash (the same in every version and on every machine).
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The DnsRecord object name for the set `rtype` at `relative` (a name relative to
/// the subdomain, `@` for the subdomain itself): `www-a`, `mail-mx`, `api.v2-aaaa`,
/// and the bare type (`txt`) at the subdomain itself. The type is always the last
/// `-` part, so two sets never get the same name. A name that is not already a
/// Kubernetes name (`_sip._tcp`, `*`, very long) is cleaned and gets a hash of the
/// original, so it stays unique and is the same on every run.
pub fn object_name(relative: &str, rtype: RecordType) -> String {
    let t = rtype.as_str().to_ascii_lowercase();
    if relative == "@" {
        return t;
    }
    let clean_label = |l: &str| l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') && l.starts_with(|c: char| c.is_ascii_alphanumeric()) && l.ends_with(|c: char| c.is_ascii_alphanumeric());
    let plain = relative.split('.').all(clean_label);
    if plain && relative.len() + t.len() < 200 {
        return format!("{relative}-{t}");
    }
    let labels: Vec<String> = relative
        .split('.')
        .map(|l| if l == "*" { "wildcard".to_string() } else { l.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect::<String>().to_ascii_lowercase() })
        .map(|l| l.trim_matches('-').to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let mut base = labels.join(".");
    base.truncate(180);
    let base = base.trim_end_matches(['.', '-']);
    let hash = fnv(&format!("{relative} {}", rtype.as_str())) & 0xffff_ffff;
    if base.is_empty() { format!("{t}-{hash:08x}") } else { format!("{base}-{t}-{hash:08x}") }
}

/// Why pdc cannot declare `set` at `relative` as it stands, if it cannot.
fn unwritable(set: &RRset, relative: &str, subdomain: &str) -> Option<String> {
    if !DECLARABLE.contains(&set.rtype) {
        return Some(format!("{} records are not a department's to declare", set.rtype.as_str()));
    }
    match dnsplan::fqdn_in(relative, subdomain) {
        Ok(n) if n == set.name => {}
        Ok(n) => return Some(format!("pdc would write the name as {n}")),
        Err(e) => return Some(e.to_string()),
    }
    let name_ok = relative == "@"
        || relative == "*"
        || relative.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '*') && !relative.ends_with('-');
    if !name_ok {
        return Some("the name is not one a DnsRecord can hold".into());
    }
    if set.ttl > 604_800 {
        return Some(format!("TTL {} is above the 604800 s a DnsRecord allows", set.ttl));
    }
    if set.values.len() > 64 {
        return Some(format!("{} values; a DnsRecord holds at most 64", set.values.len()));
    }
    for v in &set.values {
        match dnsplan::canonical_value(set.rtype, v) {
            Ok(c) if c == *v => {}
            Ok(c) => return Some(format!("value {v:?} would be written as {c:?}")),
            Err(e) => return Some(e.to_string()),
        }
    }
    None
}

/// Which records of other types stop adoption or are reported: delegations below
/// the apex (everything at and under them is another server's), and the types pdc
/// does not manage. SOA and NS at the apex and DNSSEC records are the server's own.
fn delegations_and_unmanaged(c: &ZoneContents<'_>) -> (BTreeSet<String>, Vec<(String, String)>) {
    let apex = fqdn(c.zone);
    let mut cuts = BTreeSet::new();
    let mut unmanaged = Vec::new();
    for (owner, t) in c.other.keys() {
        let owner = fqdn(owner);
        if DNSSEC_TYPES.contains(&t.as_str()) || (owner == apex && (t == "SOA" || t == "NS")) {
            continue;
        }
        if t == "NS" {
            cuts.insert(owner.clone());
        }
        unmanaged.push((owner, t.clone()));
    }
    (cuts, unmanaged)
}

/// The proposal for a zone: each set inside a department's subdomain (the longest
/// that holds it) that no DnsRecord owns becomes a DnsRecord holding exactly the
/// zone's set; sets outside every subdomain are foreign; delegated names, types pdc
/// does not manage, and sets pdc would write differently are skipped with a reason.
/// `departments` are the ones adopting (all, or the one asked for); `all_subdomains`
/// decides what is foreign. Stable: the same zone and records give the same proposal.
pub fn propose(c: &ZoneContents<'_>, departments: &[Department], all_subdomains: &[String], owned: &BTreeSet<Key>) -> Proposal {
    let mut p = Proposal::default();
    let (cuts, unmanaged) = delegations_and_unmanaged(c);
    let below_cut = |name: &str| cuts.iter().find(|cut| is_under(name, cut)).cloned();
    let in_any = |name: &str| all_subdomains.iter().any(|s| is_under(name, &fqdn(s)));
    let mut names: BTreeMap<(String, String), Key> = BTreeMap::new();
    for (key, set) in c.sets {
        if !in_any(&set.name) {
            p.foreign.push(set.clone());
            continue;
        }
        let Some(d) = department_of(&set.name, departments) else { continue };
        if owned.contains(key) {
            p.already_owned += 1;
            continue;
        }
        let skip = |reason: String| Skipped { name: set.name.clone(), rtype: set.rtype.as_str().into(), reason };
        if let Some(cut) = below_cut(&set.name) {
            p.skipped.push(skip(format!("at or below the delegation {cut}: another server answers for it")));
            continue;
        }
        if set.rtype == RecordType::TXT && c.split_txt.contains(&set.name) {
            p.skipped.push(skip("its strings are split otherwise than pdc writes a TXT value (255 bytes each): a later change could not name them".into()));
            continue;
        }
        let Some(rel) = relative_name(&set.name, &d.subdomain) else { continue };
        if let Some(why) = unwritable(set, &rel, &d.subdomain) {
            p.skipped.push(skip(why));
            continue;
        }
        let object = object_name(&rel, set.rtype);
        if let Some(other) = names.insert((d.namespace.clone(), object.clone()), key.clone()) {
            p.skipped.push(skip(format!("its object name {object} is also {} {}'s", other.0, other.1.as_str())));
            continue;
        }
        p.adopt.push(Adoption { namespace: d.namespace.clone(), object, name: rel, set: set.clone() });
    }
    for (owner, t) in unmanaged {
        if department_of(&owner, departments).is_none() {
            continue;
        }
        let reason = if t == "NS" { "a delegation: pdc does not manage NS records".to_string() } else { format!("pdc does not manage {t} records") };
        p.skipped.push(Skipped { name: owner, rtype: t, reason });
    }
    p
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::dnsplan::{apply, plan};
    use proptest::prelude::*;

    const Z: &str = "daklak.gov.vn";

    fn set(name: &str, t: RecordType, ttl: u32, values: &[&str]) -> RRset {
        RRset { name: name.into(), rtype: t, ttl, values: values.iter().map(|v| v.to_string()).collect() }
    }

    fn zone(sets: &[RRset]) -> Zone {
        sets.iter().map(|s| ((s.name.clone(), s.rtype), s.clone())).collect()
    }

    fn depts() -> Vec<Department> {
        vec![
            Department { namespace: "so-y-te".into(), subdomain: "so-y-te.daklak.gov.vn".into() },
            Department { namespace: "bv".into(), subdomain: "bv.so-y-te.daklak.gov.vn".into() },
            Department { namespace: "so-tc".into(), subdomain: "so-tc.daklak.gov.vn".into() },
        ]
    }

    fn subs(d: &[Department]) -> Vec<String> {
        d.iter().map(|d| d.subdomain.clone()).collect()
    }

    #[test]
    fn object_names_are_stable_unique_and_valid() {
        assert_eq!(object_name("www", RecordType::A), "www-a");
        assert_eq!(object_name("@", RecordType::TXT), "txt");
        assert_eq!(object_name("api.v2", RecordType::AAAA), "api.v2-aaaa");
        let srv = object_name("_sip._tcp", RecordType::SRV);
        assert!(srv.starts_with("sip.tcp-srv-") && srv.len() == "sip.tcp-srv-".len() + 8, "{srv}");
        assert_eq!(srv, object_name("_sip._tcp", RecordType::SRV));
        // `sip.tcp` written plainly and `_sip._tcp` differ.
        assert_ne!(object_name("sip.tcp", RecordType::SRV), srv);
        assert!(object_name("*", RecordType::A).starts_with("wildcard-a-"));
        assert_ne!(object_name("a-b", RecordType::A), object_name("a_b", RecordType::A));
        let long = "x".repeat(63) + "." + &"y".repeat(63) + "." + &"z".repeat(63) + "." + &"w".repeat(40);
        assert!(object_name(&long, RecordType::TXT).len() <= 253);
    }

    #[test]
    fn sets_go_to_the_longest_subdomain_and_the_rest_is_foreign_or_skipped() {
        let sets = zone(&[
            set("www.so-y-te.daklak.gov.vn.", RecordType::A, 300, &["192.0.2.1"]),
            set("so-y-te.daklak.gov.vn.", RecordType::MX, 3600, &["10 mail.daklak.gov.vn."]),
            set("web.bv.so-y-te.daklak.gov.vn.", RecordType::A, 300, &["192.0.2.2"]),
            set("mail.daklak.gov.vn.", RecordType::A, 300, &["192.0.2.25"]),
            set("ns.lab.so-tc.daklak.gov.vn.", RecordType::A, 300, &["192.0.2.53"]),
            set("odd.so-tc.daklak.gov.vn.", RecordType::CAA, 300, &["0 bogus x"]),
            set("old.so-tc.daklak.gov.vn.", RecordType::A, 300, &["192.0.2.9"]),
            set("dkim.so-tc.daklak.gov.vn.", RecordType::TXT, 300, &["v=DKIM1; p=abc"]),
            set("host.so-tc.daklak.gov.vn.", RecordType::PTR, 300, &["x.daklak.gov.vn."]),
        ]);
        let other: BTreeMap<(String, String), u32> = [
            (("daklak.gov.vn.".to_string(), "SOA".to_string()), 1),
            (("daklak.gov.vn.".to_string(), "NS".to_string()), 1),
            (("www.so-y-te.daklak.gov.vn.".to_string(), "RRSIG".to_string()), 1),
            (("lab.so-tc.daklak.gov.vn.".to_string(), "NS".to_string()), 1),
            (("so-y-te.daklak.gov.vn.".to_string(), "NAPTR".to_string()), 1),
        ]
        .into();
        let owned = BTreeSet::from([("old.so-tc.daklak.gov.vn.".to_string(), RecordType::A)]);
        let split = BTreeSet::from(["dkim.so-tc.daklak.gov.vn.".to_string()]);
        let d = depts();
        let p = propose(&ZoneContents { zone: Z, sets: &sets, other: &other, split_txt: &split }, &d, &subs(&d), &owned);
        let adopted: Vec<(&str, &str, &str)> = p.adopt.iter().map(|a| (a.namespace.as_str(), a.object.as_str(), a.name.as_str())).collect();
        assert_eq!(adopted, vec![("so-y-te", "mx", "@"), ("bv", "web-a", "web"), ("so-y-te", "www-a", "www")]);
        assert_eq!(p.adopt[0].set.ttl, 3600);
        assert_eq!(p.foreign.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), vec!["mail.daklak.gov.vn."]);
        assert_eq!(p.already_owned, 1);
        let why: BTreeMap<(&str, &str), &str> = p.skipped.iter().map(|s| ((s.name.as_str(), s.rtype.as_str()), s.reason.as_str())).collect();
        assert!(why[&("ns.lab.so-tc.daklak.gov.vn.", "A")].contains("delegation lab.so-tc.daklak.gov.vn."), "{why:?}");
        assert!(why[&("odd.so-tc.daklak.gov.vn.", "CAA")].contains("tag must be"), "{why:?}");
        assert!(why[&("lab.so-tc.daklak.gov.vn.", "NS")].contains("delegation"), "{why:?}");
        assert!(why[&("so-y-te.daklak.gov.vn.", "NAPTR")].contains("does not manage NAPTR"), "{why:?}");
        assert!(why[&("dkim.so-tc.daklak.gov.vn.", "TXT")].contains("split"), "{why:?}");
        assert!(why[&("host.so-tc.daklak.gov.vn.", "PTR")].contains("not a department's to declare"), "{why:?}");
        assert_eq!(p.skipped.len(), 6, "{why:?}");
        // One department only: the others' sets are neither proposed nor foreign.
        let p = propose(&ZoneContents { zone: Z, sets: &sets, other: &other, split_txt: &split }, std::slice::from_ref(&d[2]), &subs(&d), &owned);
        assert!(p.adopt.is_empty() && p.foreign.len() == 1, "{p:?}");
    }

    #[test]
    fn adoption_never_lets_a_cname_replace_a_set_of_another_type() {
        let a = set("www.x.", RecordType::A, 300, &["192.0.2.1"]);
        let cname = set("www.x.", RecordType::CNAME, 300, &["web.x."]);
        let current = zone(&[a]);
        let desired = zone(&[cname]);
        let adopted = BTreeSet::from([("www.x.".to_string(), RecordType::CNAME)]);
        let owned = owned_with_adopted(&BTreeSet::new(), &desired, &adopted);
        let p = plan(&current, &desired, &owned);
        assert!(p.changes.is_empty() && p.conflicts.len() == 1, "{p:?}");
    }

    fn rrset() -> impl Strategy<Value = RRset> {
        (0u8..6, prop_oneof![Just(RecordType::A), Just(RecordType::TXT), Just(RecordType::CNAME)], 0u32..3, proptest::collection::btree_set(0u8..4, 1..3))
            .prop_map(|(n, t, ttl, vals)| {
                let values = if t == RecordType::CNAME { BTreeSet::from([format!("t{}.x.", vals.first().copied().unwrap_or(0))]) } else { vals.iter().map(|v| format!("v{v}")).collect() };
                RRset { name: format!("h{n}.x."), rtype: t, ttl: 300 + ttl, values }
            })
    }

    fn any_zone() -> impl Strategy<Value = Zone> {
        proptest::collection::vec(rrset(), 0..12).prop_map(|v| v.into_iter().map(|s| ((s.name.clone(), s.rtype), s)).collect())
    }

    proptest! {
        /// Adopting sets the zone holds, exactly as it holds them, plans nothing; an
        /// adopted set declared differently is replaced; no set outside the adopted and
        /// owned ones ever changes; and a second plan has nothing to do.
        #[test]
        fn adoption_changes_nothing_but_what_pdc_declares_differently(current in any_zone(), pick in proptest::collection::btree_set(0usize..12, 0..8), edits in proptest::collection::btree_set(0usize..12, 0..4)) {
            let keys: Vec<Key> = current.keys().cloned().collect();
            let adopted: BTreeSet<Key> = pick.iter().filter_map(|i| keys.get(*i).cloned()).collect();
            let mut desired: Zone = adopted.iter().map(|k| (k.clone(), current[k].clone())).collect();
            let owned = owned_with_adopted(&BTreeSet::new(), &desired, &adopted);
            let p = plan(&current, &desired, &owned);
            prop_assert!(p.changes.is_empty() && p.conflicts.is_empty(), "{:?}", p);
            // Some adopted records are then edited: only those sets change.
            for i in &edits {
                if let Some(s) = keys.get(*i).and_then(|k| desired.get_mut(k)) {
                    s.ttl += 1;
                }
            }
            let owned = owned_with_adopted(&BTreeSet::new(), &desired, &adopted);
            let p = plan(&current, &desired, &owned);
            let after = apply(&current, &p.changes);
            for (k, s) in &current {
                if !adopted.contains(k) {
                    prop_assert_eq!(after.get(k), Some(s), "foreign set {:?} changed", k);
                }
            }
            for (k, want) in &desired {
                prop_assert_eq!(after.get(k), Some(want));
            }
            prop_assert!(plan(&after, &desired, &owned).changes.is_empty());
        }
    }
}
