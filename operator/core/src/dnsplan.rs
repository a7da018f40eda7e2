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
    /// Only pdc writes one: a renamed unit's old subdomain aliasing its new one
    /// (RFC 6672) for the transition.
    DNAME,
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
            RecordType::DNAME => "DNAME",
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
        RecordType::CNAME | RecordType::PTR | RecordType::DNAME => host(v),
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
    // Another owner's DNAMEs: nothing can be added below one (RFC 6672 §2.4).
    let dnames: Vec<(&(String, RecordType), &RRset)> = current.iter().filter(|(k, _)| k.1 == RecordType::DNAME && !owned.contains(*k)).collect();
    for (key, want) in desired {
        match current.get(key) {
            None => {
                let clash = current
                    .range((key.0.clone(), RecordType::A)..)
                    .take_while(|((n, _), _)| *n == key.0)
                    .find(|((_, t), _)| *t != key.1 && exclusive(*t, key.1))
                    .filter(|(k, _)| !owned.contains(*k));
                // A DNAME occludes every name below it (RFC 6672 §2.4): it comes only
                // where every set below is pdc's, and those go in the same update.
                let occluded = || (key.1 == RecordType::DNAME).then(|| dname_blocker(current, &key.0, |k| owned.contains(k)).map(|s| (key, s))).flatten();
                let under_dname = || dnames.iter().find(|(k, _)| is_below(&key.0, &k.0)).copied();
                match clash.or_else(occluded).or_else(under_dname) {
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
    // reverse, in one update); the names in order, and a DNAME's changes with those
    // of every name below it, so a batch boundary never falls between the two halves
    // of a name's change (see `batch_ends`).
    let mut changes: Vec<Change> = deletes.into_iter().chain(replaces).chain(creates).collect();
    let owners = dname_owners(&changes);
    // Within a DNAME's group the names below it go first: a server adds a DNAME only
    // where nothing is below it any more.
    let key = |c: &Change| (group(c.name(), &owners).to_string(), owners.iter().any(|o| o == c.name()), c.name().to_string());
    changes.sort_by_cached_key(key);
    p.changes = changes;
    p
}

/// Whether two types may not share a name: a CNAME shares it with nothing (RFC 1034
/// §3.6.2), and a DNAME not with a CNAME (RFC 6672 §2.4).
fn exclusive(a: RecordType, b: RecordType) -> bool {
    a == RecordType::CNAME || b == RecordType::CNAME || (a == RecordType::DNAME && b == RecordType::DNAME)
}

/// The first set of `current` that keeps a DNAME from `owner`: one below it (a
/// DNAME hides every name below its owner, RFC 6672 §2.4) or a CNAME or DNAME at
/// it, that is not pdc's (`pdcs`). pdc's own go in the same update as the DNAME.
pub fn dname_blocker<'a>(current: &'a Zone, owner: &str, pdcs: impl Fn(&(String, RecordType)) -> bool) -> Option<&'a RRset> {
    let at_owner = |k: &(String, RecordType)| k.0 == owner && matches!(k.1, RecordType::CNAME | RecordType::DNAME);
    current.iter().find(|(k, _)| (is_below(&k.0, owner) || at_owner(k)) && !pdcs(k)).map(|(_, s)| s)
}

/// Whether `name` lies strictly below `owner` (both dot-terminated, lowercase).
pub fn is_below(name: &str, owner: &str) -> bool {
    !owner.is_empty() && name.strip_suffix(owner).is_some_and(|rest| rest.ends_with('.'))
}

/// The names of the DNAMEs that `changes` create, replace or delete.
fn dname_owners(changes: &[Change]) -> Vec<String> {
    let rtype = |c: &Change| match c {
        Change::Create(s) | Change::Delete(s) | Change::Replace { new: s, .. } => s.rtype,
    };
    changes.iter().filter(|c| rtype(c) == RecordType::DNAME).map(|c| c.name().to_string()).collect()
}

/// The name whose changes go with `name`'s in one update: the highest DNAME among
/// `owners` at or above it, or the name itself.
fn group<'a>(name: &'a str, owners: &'a [String]) -> &'a str {
    owners.iter().filter(|o| name == o.as_str() || is_below(name, o)).min_by_key(|o| o.len()).map_or(name, String::as_str)
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
/// never stops answering in between, and so does a DNAME with every name below it
/// (which it occludes). Returns the end index of each batch.
pub fn batch_ends(changes: &[Change], batch: usize) -> Vec<usize> {
    let owners = dname_owners(changes);
    let at = |i: usize| changes.get(i).map(|c| group(c.name(), &owners));
    let mut ends = Vec::new();
    let mut start = 0;
    for i in 1..=changes.len() {
        let boundary = i == changes.len() || at(i) != at(i - 1);
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

    fn set(name: &str, t: RecordType, v: &str) -> RRset {
        RRset { name: name.into(), rtype: t, ttl: 300, values: BTreeSet::from([v.to_string()]) }
    }

    #[test]
    fn a_dname_replaces_the_whole_subtree_in_one_batch() {
        let old = "cu.x.";
        let current: Zone = [
            set("cu.x.", RecordType::A, "10.0.0.1"),
            set("a.cu.x.", RecordType::A, "10.0.0.2"),
            set("b.a.cu.x.", RecordType::TXT, "t"),
            set("cux.x.", RecordType::A, "10.0.0.9"),
            set("d.x.", RecordType::A, "10.0.0.3"),
        ]
        .into_iter()
        .map(|s| ((s.name.clone(), s.rtype), s))
        .collect();
        let mut desired: Zone = [set("cu.x.", RecordType::DNAME, "moi.x."), set("cu.x.", RecordType::A, "10.0.0.1")].into_iter().map(|s| ((s.name.clone(), s.rtype), s)).collect();
        desired.insert(("d.x.".into(), RecordType::A), set("d.x.", RecordType::A, "10.0.0.4"));
        // pdc owns everything at and below the old apex; cux.x. only looks alike.
        let owned: BTreeSet<(String, RecordType)> = current.keys().filter(|(n, _)| n == old || is_below(n, old)).cloned().chain(desired.keys().cloned()).collect();
        let p = plan(&current, &desired, &owned);
        assert!(p.conflicts.is_empty(), "{:?}", p.conflicts);
        let names: Vec<&str> = p.changes.iter().map(Change::name).collect();
        assert_eq!(names, ["a.cu.x.", "b.a.cu.x.", "cu.x.", "d.x."], "the subtree is contiguous, the DNAME last");
        // However small the batches, the DNAME and the deletions below it go together.
        assert_eq!(batch_ends(&p.changes, 1), [3, 4]);
        let after = apply(&current, &p.changes);
        assert!(after.keys().all(|(n, _)| !is_below(n, old)), "{after:?}");
        assert_eq!(after.get(&("cux.x.".into(), RecordType::A)), current.get(&("cux.x.".into(), RecordType::A)));
        assert!(after.contains_key(&(old.into(), RecordType::DNAME)) && after.contains_key(&(old.into(), RecordType::A)), "a DNAME keeps its owner's addresses");
    }

    #[test]
    fn a_dname_never_occludes_a_foreign_set() {
        let current: Zone = [set("a.cu.x.", RecordType::A, "10.0.0.2"), set("ns.cu.x.", RecordType::TXT, "foreign")].into_iter().map(|s| ((s.name.clone(), s.rtype), s)).collect();
        let desired: Zone = [(("cu.x.".to_string(), RecordType::DNAME), set("cu.x.", RecordType::DNAME, "moi.x."))].into();
        let owned: BTreeSet<_> = [("a.cu.x.".to_string(), RecordType::A), ("cu.x.".to_string(), RecordType::DNAME)].into();
        let p = plan(&current, &desired, &owned);
        assert_eq!(p.conflicts.len(), 1);
        assert_eq!(p.conflicts.first().map(|c| c.found.name.as_str()), Some("ns.cu.x."));
        assert!(p.changes.iter().all(|c| c.name() != "cu.x."), "{:?}", p.changes);
        // A CNAME and a DNAME never share a name.
        let current: Zone = [(("cu.x.".to_string(), RecordType::CNAME), set("cu.x.", RecordType::CNAME, "y.x."))].into();
        let p = plan(&current, &desired, &[("cu.x.".to_string(), RecordType::DNAME)].into());
        assert_eq!(p.conflicts.len(), 1);
        // Nothing is added below another owner's DNAME.
        let current: Zone = [(("cu.x.".to_string(), RecordType::DNAME), set("cu.x.", RecordType::DNAME, "moi.x."))].into();
        let desired: Zone = [(("www.cu.x.".to_string(), RecordType::A), set("www.cu.x.", RecordType::A, "10.0.0.1"))].into();
        let p = plan(&current, &desired, &desired.keys().cloned().collect());
        assert_eq!((p.changes.len(), p.conflicts.first().map(|c| c.found.rtype)), (0, Some(RecordType::DNAME)));
        assert!(canonical_value(RecordType::DNAME, "Moi.X").is_ok_and(|v| v == "moi.x."));
        // What keeps a DNAME out: a foreign set below its owner, or a foreign CNAME at it.
        let current: Zone = [set("cu.x.", RecordType::A, "10.0.0.1"), set("a.cu.x.", RecordType::A, "10.0.0.2"), set("cux.x.", RecordType::A, "10.0.0.9")]
            .into_iter()
            .map(|s| ((s.name.clone(), s.rtype), s))
            .collect();
        assert_eq!(dname_blocker(&current, "cu.x.", |_| false).map(|s| s.name.as_str()), Some("a.cu.x."));
        assert_eq!(dname_blocker(&current, "cu.x.", |k| k.0 == "a.cu.x."), None, "the owner's own addresses stay beside a DNAME");
        let cname: Zone = [set("cu.x.", RecordType::CNAME, "y.x.")].into_iter().map(|s| ((s.name.clone(), s.rtype), s)).collect();
        assert!(dname_blocker(&cname, "cu.x.", |_| false).is_some() && dname_blocker(&cname, "cu.x.", |_| true).is_none());
        assert!(!is_below("cux.x.", "x.x.") && is_below("a.x.", "x.") && !is_below("x.", "x."));
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

        /// A DNAME that replaces a subtree never lands in a batch without the changes
        /// below it, whatever the batch size, and no batch splits a name.
        #[test]
        fn batches_keep_a_dname_with_its_subtree(current in zone(), apex in 0u8..6, batch in 1usize..4) {
            let owner = format!("h{apex}.x.");
            // The zone's names nested: h3.x. lies below h{apex}.x. when renamed so.
            let current: Zone = current.into_values().map(|mut s| { if s.name != owner { s.name = format!("{}{owner}", s.name.trim_end_matches("x.")); } ((s.name.clone(), s.rtype), s) }).collect();
            let desired: Zone = [((owner.clone(), RecordType::DNAME), set(&owner, RecordType::DNAME, "moi.x."))].into();
            let owned: BTreeSet<_> = current.keys().cloned().chain(desired.keys().cloned()).collect();
            let p = plan(&current, &desired, &owned);
            prop_assert!(p.conflicts.is_empty());
            let ends = batch_ends(&p.changes, batch);
            let mut start = 0;
            for end in ends {
                let part = p.changes.get(start..end).unwrap_or_default();
                let has_dname = part.iter().any(|c| matches!(c, Change::Create(s) if s.rtype == RecordType::DNAME));
                if has_dname {
                    prop_assert_eq!(part.len(), p.changes.len(), "the DNAME went without its subtree: {:?}", part);
                }
                start = end;
            }
            let after = apply(&current, &p.changes);
            prop_assert!(after.keys().all(|(n, _)| !is_below(n, &owner)));
        }
    }
}
