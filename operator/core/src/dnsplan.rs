//! DNS records under the province domain, as values: name and value checks, and the
//! plan that turns what a zone holds into what pdc wants without touching what pdc
//! does not own. The operator's writer and `pdcctl dns plan` share this diff.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Record types pdc manages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum RecordType {
    A,
    AAAA,
    CNAME,
    TXT,
    MX,
    SRV,
    CAA,
    PTR,
}

impl RecordType {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::AAAA => "AAAA",
            RecordType::CNAME => "CNAME",
            RecordType::TXT => "TXT",
            RecordType::MX => "MX",
            RecordType::SRV => "SRV",
            RecordType::CAA => "CAA",
            RecordType::PTR => "PTR",
        }
    }
}

/// Why a name or value is refused; the message says what would be accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("{0}")]
    Name(String),
    #[error("{0}")]
    Value(String),
    #[error("{0}")]
    Conflict(String),
}

/// The fully qualified, lowercase, dot-terminated form of `name` under `subdomain`:
/// `www` → `www.so-y-te.daklak.gov.vn.`, `@` → the subdomain itself; an absolute
/// name (ending in a dot) must lie inside the subdomain. The chart's admission policy
/// applies the same rule.
pub fn fqdn_in(name: &str, subdomain: &str) -> Result<String, DnsError> {
    let sub = subdomain.trim_end_matches('.').to_ascii_lowercase();
    let raw = name.trim();
    if raw.is_empty() {
        return Err(DnsError::Name("the record name is empty; use @ for the subdomain itself".into()));
    }
    if !raw.is_ascii() {
        let suggestion = raw.split('.').map(|l| crate::slug::slug(l, crate::slug::SlugRule::default()).map(|s| s.label).unwrap_or_default()).collect::<Vec<_>>().join(".");
        return Err(DnsError::Name(format!(
            "{raw:?} has letters outside ASCII (diacritics); DNS names are ASCII: try {suggestion:?} (`pdcctl slug` derives labels)"
        )));
    }
    let lower = raw.to_ascii_lowercase();
    let full = if lower == "@" || lower.trim_end_matches('.') == sub {
        sub.clone()
    } else if lower.ends_with('.') {
        let n = lower.trim_end_matches('.').to_string();
        if !n.ends_with(&format!(".{sub}")) && n != sub {
            return Err(DnsError::Name(format!("{raw} is outside the department's subdomain {sub}")));
        }
        n
    } else {
        format!("{lower}.{sub}")
    };
    for label in full.split('.') {
        let ok_label = !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        // `*` is allowed as a whole leftmost label (wildcard).
        let wildcard = label == "*" && full.starts_with("*.");
        if !(ok_label || wildcard) {
            return Err(DnsError::Name(format!(
                "{raw}: label {label:?} is not a DNS label (letters, digits, '-', '_', at most 63, not starting or ending with '-')"
            )));
        }
    }
    if full.len() > 253 {
        return Err(DnsError::Name(format!("{raw}: the full name is {} characters; DNS allows 253", full.len())));
    }
    Ok(format!("{full}."))
}

/// The canonical text of one value of a record type, or why it is not one.
pub fn canonical_value(t: RecordType, value: &str) -> Result<String, DnsError> {
    let v = value.trim();
    let bad = |why: &str| DnsError::Value(format!("{} value {v:?}: {why}", t.as_str()));
    let host = |h: &str| -> Result<String, DnsError> {
        let h = h.trim_end_matches('.').to_ascii_lowercase();
        let ok = !h.is_empty()
            && h.len() <= 253
            && h.split('.').all(|l| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        if ok { Ok(format!("{h}.")) } else { Err(bad("not a host name")) }
    };
    match t {
        RecordType::A => v.parse::<Ipv4Addr>().map(|a| a.to_string()).map_err(|_| bad("not an IPv4 address")),
        RecordType::AAAA => v.parse::<Ipv6Addr>().map(|a| a.to_string()).map_err(|_| bad("not an IPv6 address")),
        RecordType::CNAME | RecordType::PTR => host(v),
        RecordType::TXT => {
            if v.len() > 4000 {
                return Err(bad("longer than 4000 characters"));
            }
            if !v.is_ascii() {
                return Err(bad("TXT values are ASCII here; escape other characters"));
            }
            Ok(v.to_string())
        }
        RecordType::MX => {
            let mut it = v.split_whitespace();
            let (Some(pref), Some(h), None) = (it.next(), it.next(), it.next()) else { return Err(bad("expected `<preference> <host>`, e.g. `10 mail.daklak.gov.vn.`")) };
            let p: u16 = pref.parse().map_err(|_| bad("preference must be 0-65535"))?;
            Ok(format!("{p} {}", host(h)?))
        }
        RecordType::SRV => {
            let parts: Vec<&str> = v.split_whitespace().collect();
            let [prio, weight, port, target] = parts.as_slice() else { return Err(bad("expected `<priority> <weight> <port> <target>`")) };
            let n = |s: &str| s.parse::<u16>().map_err(|_| bad("priority, weight and port must be 0-65535"));
            Ok(format!("{} {} {} {}", n(prio)?, n(weight)?, n(port)?, host(target)?))
        }
        RecordType::CAA => {
            let mut it = v.splitn(3, ' ');
            let (Some(flags), Some(tag), Some(val)) = (it.next(), it.next(), it.next()) else { return Err(bad("expected `<flags> <tag> \"<value>\"`, e.g. `0 issue \"letsencrypt.org\"`")) };
            let f: u8 = flags.parse().map_err(|_| bad("flags must be 0-255"))?;
            if !["issue", "issuewild", "iodef"].contains(&tag) {
                return Err(bad("tag must be issue, issuewild or iodef"));
            }
            let val = val.trim();
            let quoted = if val.starts_with('"') && val.ends_with('"') && val.len() >= 2 { val.to_string() } else { format!("\"{val}\"") };
            Ok(format!("{f} {tag} {quoted}"))
        }
    }
}

/// A record set: one name, one type, a TTL and its values (canonical, sorted).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct RRset {
    pub name: String,
    pub rtype: RecordType,
    pub ttl: u32,
    pub values: BTreeSet<String>,
}

/// Record sets by (name, type).
pub type Zone = BTreeMap<(String, RecordType), RRset>;

/// Check that desired sets obey CNAME exclusivity: a name with a CNAME has nothing else.
pub fn check_cname_exclusive(desired: &Zone) -> Result<(), DnsError> {
    let mut by_name: BTreeMap<&str, Vec<RecordType>> = BTreeMap::new();
    for (name, t) in desired.keys() {
        by_name.entry(name.as_str()).or_default().push(*t);
    }
    for (name, types) in by_name {
        if types.contains(&RecordType::CNAME) && types.len() > 1 {
            let others: Vec<&str> = types.iter().filter(|t| **t != RecordType::CNAME).map(|t| t.as_str()).collect();
            return Err(DnsError::Conflict(format!("{name} has a CNAME, so it cannot also have {}", others.join(", "))));
        }
    }
    Ok(())
}

/// One change to a zone. `expect` is what the set must be for the change to apply
/// (an RFC 2136 prerequisite): `None` means "the set must not exist".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Create a set that does not exist.
    Create(RRset),
    /// Replace a set pdc owns, as long as it still is `expect`.
    Replace { expect: RRset, new: RRset },
    /// Delete a set pdc owns, as long as it still is `expect`.
    Delete(RRset),
}

/// A set pdc wants but another owner's set holds the name and type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub wanted: RRset,
    pub found: RRset,
}

/// What to do to turn `current` into `desired` for the sets pdc owns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub conflicts: Vec<Conflict>,
}

/// Plan the changes. `owned` is every (name, type) pdc is responsible for: what its
/// DnsRecords declare now and declared before (so removed records are deleted). A set
/// in `current` that pdc does not own is never changed: when `desired` wants it, or
/// when a CNAME would share a name with it (RFC 1034 §3.6.2; servers silently drop
/// such an addition), that is a conflict. Changes come deletes first, then
/// replacements, then creations, so a name can change type within one plan.
pub fn plan(current: &Zone, desired: &Zone, owned: &BTreeSet<(String, RecordType)>) -> Plan {
    let mut p = Plan::default();
    let (mut deletes, mut replaces, mut creates) = (Vec::new(), Vec::new(), Vec::new());
    for (key, want) in desired {
        match current.get(key) {
            None => {
                let clash = current
                    .range((key.0.clone(), RecordType::A)..)
                    .take_while(|((n, _), _)| *n == key.0)
                    .find(|((_, t), _)| *t != key.1 && (*t == RecordType::CNAME || key.1 == RecordType::CNAME))
                    .filter(|(k, _)| !owned.contains(*k));
                match clash {
                    Some((_, found)) => p.conflicts.push(Conflict { wanted: want.clone(), found: found.clone() }),
                    None => creates.push(Change::Create(want.clone())),
                }
            }
            Some(have) if have == want => {}
            Some(have) if owned.contains(key) => replaces.push(Change::Replace { expect: have.clone(), new: want.clone() }),
            Some(have) => p.conflicts.push(Conflict { wanted: want.clone(), found: have.clone() }),
        }
    }
    for key in owned {
        if desired.contains_key(key) {
            continue;
        }
        if let Some(have) = current.get(key) {
            deletes.push(Change::Delete(have.clone()));
        }
    }
    // Per name: what goes before what comes (a CNAME replacing an address, or the
    // reverse, in one update); the names in order, so a batch boundary never falls
    // between the two halves of a name's change (see `batch_ends`).
    let mut changes: Vec<Change> = deletes.into_iter().chain(replaces).chain(creates).collect();
    changes.sort_by(|a, b| a.name().cmp(b.name()));
    p.changes = changes;
    p
}

impl Change {
    /// The name the change is at.
    pub fn name(&self) -> &str {
        match self {
            Change::Create(s) | Change::Delete(s) | Change::Replace { new: s, .. } => &s.name,
        }
    }
}

/// Split `changes` (ordered by name, as [`plan`] orders them) into batches of about
/// `batch` changes, never splitting one name's changes: a name whose records are
/// replaced by a CNAME (or a CNAME by records) changes in one atomic update, so it
/// never stops answering in between. Returns the end index of each batch.
pub fn batch_ends(changes: &[Change], batch: usize) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut start = 0;
    for i in 1..=changes.len() {
        let boundary = i == changes.len() || changes.get(i).map(Change::name) != changes.get(i - 1).map(Change::name);
        if boundary && (i - start >= batch.max(1) || i == changes.len()) {
            ends.push(i);
            start = i;
        }
    }
    ends
}

/// `current` after `changes`, where every prerequisite holds (what a server does).
/// A change whose prerequisite fails is skipped, as RFC 2136 servers refuse it.
pub fn apply(current: &Zone, changes: &[Change]) -> Zone {
    let mut z = current.clone();
    for c in changes {
        match c {
            Change::Create(s) => {
                z.entry((s.name.clone(), s.rtype)).or_insert_with(|| s.clone());
            }
            Change::Replace { expect, new } => {
                let k = (expect.name.clone(), expect.rtype);
                if z.get(&k) == Some(expect) {
                    z.insert(k, new.clone());
                }
            }
            Change::Delete(s) => {
                let k = (s.name.clone(), s.rtype);
                if z.get(&k) == Some(s) {
                    z.remove(&k);
                }
            }
        }
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SUB: &str = "so-y-te.daklak.gov.vn";

    #[test]
    fn names_inside_the_subdomain_only() {
        assert_eq!(fqdn_in("www", SUB).unwrap(), "www.so-y-te.daklak.gov.vn.");
        assert_eq!(fqdn_in("@", SUB).unwrap(), "so-y-te.daklak.gov.vn.");
        assert_eq!(fqdn_in("API.so-y-te.daklak.gov.vn.", SUB).unwrap(), "api.so-y-te.daklak.gov.vn.");
        assert!(fqdn_in("www.so-tai-chinh.daklak.gov.vn.", SUB).unwrap_err().to_string().contains("outside the department's subdomain"));
        assert!(fqdn_in("daklak.gov.vn.", SUB).is_err());
        let e = fqdn_in("cổng-thông-tin", SUB).unwrap_err().to_string();
        assert!(e.contains("diacritics") && e.contains("cong-thong-tin"), "{e}");
        assert!(fqdn_in("-bad", SUB).is_err());
        assert!(fqdn_in("*.apps", SUB).is_ok());
    }

    #[test]
    fn values_are_checked_and_canonical() {
        assert_eq!(canonical_value(RecordType::AAAA, "2001:DB8:0:0::1").unwrap(), "2001:db8::1");
        assert!(canonical_value(RecordType::A, "10.15.0.300").is_err());
        assert_eq!(canonical_value(RecordType::MX, "10 Mail.daklak.gov.vn").unwrap(), "10 mail.daklak.gov.vn.");
        assert_eq!(canonical_value(RecordType::SRV, "0 5 5060 sip.daklak.gov.vn.").unwrap(), "0 5 5060 sip.daklak.gov.vn.");
        assert_eq!(canonical_value(RecordType::CAA, "0 issue letsencrypt.org").unwrap(), "0 issue \"letsencrypt.org\"");
        assert!(canonical_value(RecordType::CAA, "0 bogus x").is_err());
        assert!(canonical_value(RecordType::CNAME, "not a host").is_err());
    }

    #[test]
    fn cname_is_exclusive() {
        let mut z = Zone::new();
        let s = |t, v: &str| RRset { name: "www.x.".into(), rtype: t, ttl: 300, values: BTreeSet::from([v.to_string()]) };
        z.insert(("www.x.".into(), RecordType::CNAME), s(RecordType::CNAME, "a.x."));
        assert!(check_cname_exclusive(&z).is_ok());
        z.insert(("www.x.".into(), RecordType::A), s(RecordType::A, "10.0.0.1"));
        assert!(check_cname_exclusive(&z).unwrap_err().to_string().contains("cannot also have A"));
    }

    #[test]
    fn a_cname_never_joins_a_foreign_set() {
        let s = |t, v: &str| RRset { name: "www.x.".into(), rtype: t, ttl: 300, values: BTreeSet::from([v.to_string()]) };
        let current: Zone = [(("www.x.".to_string(), RecordType::A), s(RecordType::A, "10.0.0.1"))].into();
        let desired: Zone = [(("www.x.".to_string(), RecordType::CNAME), s(RecordType::CNAME, "a.x."))].into();
        let owned: BTreeSet<_> = desired.keys().cloned().collect();
        let p = plan(&current, &desired, &owned);
        assert!(p.changes.is_empty());
        assert_eq!(p.conflicts.len(), 1);
        // Once pdc owns the A set, the A goes first and the CNAME follows.
        let mut owned = owned;
        owned.insert(("www.x.".into(), RecordType::A));
        let p = plan(&current, &desired, &owned);
        assert!(p.conflicts.is_empty());
        assert!(matches!(p.changes.as_slice(), [Change::Delete(_), Change::Create(_)]), "{:?}", p.changes);
    }

    fn rrset() -> impl Strategy<Value = RRset> {
        (0u8..6, prop_oneof![Just(RecordType::A), Just(RecordType::AAAA), Just(RecordType::TXT)], 0u32..3, proptest::collection::btree_set(0u8..4, 1..3))
            .prop_map(|(n, t, ttl, vals)| RRset { name: format!("h{n}.x."), rtype: t, ttl: 300 + ttl, values: vals.iter().map(|v| format!("v{v}")).collect() })
    }

    fn zone() -> impl Strategy<Value = Zone> {
        proptest::collection::vec(rrset(), 0..10).prop_map(|v| v.into_iter().map(|s| ((s.name.clone(), s.rtype), s)).collect())
    }

    proptest! {
        /// Applying the plan gives pdc's sets as desired, leaves every set pdc does not
        /// own as it was, and a second plan has nothing to do.
        #[test]
        fn plan_converges_and_never_touches_what_pdc_does_not_own(current in zone(), desired in zone(), extra in proptest::collection::btree_set((0u8..6, 0u8..3), 0..5)) {
            let types = [RecordType::A, RecordType::AAAA, RecordType::TXT];
            let mut owned: BTreeSet<(String, RecordType)> = desired.keys().cloned().collect();
            // Some keys pdc owned before (now removed from desired) …
            owned.extend(extra.iter().map(|(n, t)| (format!("h{n}.x."), types[usize::from(*t)])));
            // … but a current set that pdc never owned stays foreign.
            let foreign: Vec<(String, RecordType)> = current.keys().filter(|k| !owned.contains(*k)).cloned().collect();
            let p = plan(&current, &desired, &owned);
            let after = apply(&current, &p.changes);
            for k in &foreign {
                prop_assert_eq!(after.get(k), current.get(k), "foreign set {:?} changed", k);
            }
            for (k, want) in &desired {
                if !p.conflicts.iter().any(|c| (c.wanted.name.clone(), c.wanted.rtype) == *k) {
                    prop_assert_eq!(after.get(k), Some(want));
                }
            }
            for k in owned.iter().filter(|k| !desired.contains_key(*k)) {
                prop_assert!(!after.contains_key(k), "{:?} should be deleted", k);
            }
            let again = plan(&after, &desired, &owned);
            prop_assert!(again.changes.is_empty(), "{:?}", again.changes);
        }
    }
}
