//! The aliases a reorganization declares (DnsRecords labelled `pdc.io/alias`) as the
//! zone writer carries them out:
//! - a CNAME per old name answers once its target does, in place of the records
//!   there (so the name never points at nothing), and after the transition neither
//!   answers;
//! - a DNAME for an old subdomain whose every name moves answers in place of the
//!   CNAMEs below it once they all answer and every set at and below its owner is
//!   pdc's (a DNAME hides every name below it, RFC 6672 §2.4, and pdc never touches
//!   what is not its own). Until then, and wherever that never holds, each name
//!   answers as its own CNAME. A DNAME does not redirect its owner (§2.3): the old
//!   apex answers with the new apex's sets of the types it had.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::ResourceExt;
use pdc_api::DnsRecord;
use pdc_api::labels as l;
use pdc_core::dnsplan::{self, RRset, RecordType, Zone};

/// What a CNAME alias does at its name in this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AliasState {
    /// Its target does not answer yet: the records at its name keep answering.
    Waiting { target: String },
    /// It answers for the name, in place of every other record there.
    Active { target: String, until: String },
    /// The transition is over: nothing answers at the name.
    Expired,
}

/// A DNAME alias of an old subdomain.
#[derive(Clone, Debug)]
pub struct Dname {
    /// The subdomain it answers for, dot-terminated.
    pub target: String,
    pub until: String,
    pub expired: bool,
}

/// A zone's aliases.
#[derive(Default)]
pub struct Aliases {
    /// CNAME aliases by name (lowercase, without the final dot).
    pub names: BTreeMap<String, AliasState>,
    /// DNAME aliases by owner (dot-terminated, as the zone's names are).
    pub dnames: BTreeMap<String, Dname>,
}

/// Whether each DNAME alias answers in this pass, by owner: `Err` says why not.
pub type Verdicts = BTreeMap<String, std::result::Result<(), String>>;

pub fn norm(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn is_alias(rec: &DnsRecord) -> bool {
    rec.labels().contains_key(l::ALIAS)
}

fn expired(rec: &DnsRecord) -> bool {
    rec.annotations().get(l::ALIAS_EXPIRED).is_some_and(|v| v == "true")
}

/// The aliases among `records` (live ones, with the finalizer): `set_of` gives the
/// set a record declares, `answers` whether a name (normalized) is answered by a
/// programmed record.
pub fn states<'a>(records: impl IntoIterator<Item = &'a Arc<DnsRecord>>, set_of: impl Fn(&DnsRecord) -> Option<RRset>, answers: impl Fn(&str) -> bool) -> Aliases {
    let mut out = Aliases::default();
    for rec in records.into_iter().filter(|r| is_alias(r)) {
        let Some(set) = set_of(rec) else { continue };
        let target = rec.spec.values.first().map(String::as_str).unwrap_or_default();
        let until = rec.annotations().get(l::ALIAS_UNTIL).cloned().unwrap_or_default();
        if set.rtype == RecordType::DNAME {
            out.dnames.insert(set.name.clone(), Dname { target: format!("{}.", norm(target)), until, expired: expired(rec) });
            continue;
        }
        let target = norm(target);
        let state = if expired(rec) {
            AliasState::Expired
        } else if answers(&target) {
            AliasState::Active { target, until }
        } else {
            AliasState::Waiting { target }
        };
        out.names.insert(norm(&set.name), state);
    }
    out
}

/// Whether each DNAME alias may answer now: every CNAME alias at and below its owner
/// answers, and no set there that a DNAME would hide or clash with is another's
/// (`pdcs`: the sets pdc declares or owns in this zone).
pub fn verdicts(aliases: &Aliases, current: &Zone, pdcs: impl Fn(&(String, RecordType)) -> bool) -> Verdicts {
    let mut out = Verdicts::new();
    for (owner, d) in aliases.dnames.iter().filter(|(_, d)| !d.expired) {
        let o = norm(owner);
        let below = |n: &str| n == o || n.ends_with(&format!(".{o}"));
        let waiting = aliases.names.iter().find(|(n, s)| below(n) && !matches!(s, AliasState::Active { .. }));
        let verdict = if let Some((n, _)) = waiting {
            Err(format!("{owner} answers name by name until every alias below it answers ({n} does not yet); then as a DNAME of {}", d.target))
        } else if let Some(f) = dnsplan::dname_blocker(current, owner, &pdcs) {
            Err(format!(
                "{} {} is not pdc's and a DNAME at {owner} would hide it: each name pdc moved answers as its own CNAME until {}",
                f.name,
                f.rtype.as_str(),
                d.until
            ))
        } else {
            Ok(())
        };
        out.insert(owner.clone(), verdict);
    }
    out
}

/// How a record at or below a DNAME that answers takes part in the zone.
pub enum UnderDname {
    /// The DNAME itself: a set like any other.
    Member,
    /// A CNAME alias: its name answers through the DNAME (its set is removed).
    Covered(String),
    /// Another record: kept out (at the owner, its type answers with the new apex's
    /// set of that type).
    KeptOut { owner: String, message: String },
}

/// Where `rec`, declaring `set`, stands under the DNAMEs that answer (`on`, by owner).
pub fn under_dname(rec: &DnsRecord, set: &RRset, on: &BTreeMap<&String, &Dname>) -> Option<UnderDname> {
    let (owner, d) = on.iter().filter(|(o, _)| set.name == ***o || dnsplan::is_below(&set.name, o)).min_by_key(|(o, _)| o.len())?;
    Some(if is_alias(rec) && set.rtype == RecordType::DNAME && set.name == ***owner {
        UnderDname::Member
    } else if is_alias(rec) {
        UnderDname::Covered(format!("{} answers through the DNAME {owner} → {} until {}", set.name, d.target, d.until))
    } else {
        let apex = if set.name == ***owner { format!(", with the {} set of {}", set.rtype.as_str(), d.target) } else { String::new() };
        UnderDname::KeptOut { owner: (*owner).clone(), message: format!("{owner} answers as a DNAME of {} until {}{apex}, in place of this record", d.target, d.until) }
    })
}

/// Why `rec` (whose set is at `name`) is kept out of the zone by the aliases that do
/// not answer as a DNAME: a DNAME alias that does not answer (yet), a CNAME alias
/// waiting for its target or expired, or another record at an alias's name.
pub fn aliased(rec: &DnsRecord, set: &RRset, aliases: &Aliases, verdicts: &Verdicts) -> Option<(&'static str, String)> {
    let name = &set.name;
    if is_alias(rec) && set.rtype == RecordType::DNAME {
        let d = aliases.dnames.get(name)?;
        if d.expired {
            return Some(("Expired", format!("the transition is over: the names below {name} are reclaimed and no longer answer")));
        }
        let why = match verdicts.get(name) {
            Some(Err(why)) => why.clone(),
            _ => format!("{name} answers name by name until every alias below it answers; then as a DNAME of {}", d.target),
        };
        return Some(("NameByName", why));
    }
    match (is_alias(rec), aliases.names.get(&norm(name))?) {
        (true, AliasState::Waiting { target }) => Some(("WaitingForTarget", format!("{name} will alias {target} once {target} answers; until then its records keep answering"))),
        (true, AliasState::Expired) => Some(("Expired", format!("the transition is over: {name} is reclaimed and no longer answers"))),
        (true, AliasState::Active { .. }) | (false, AliasState::Waiting { .. }) => None,
        (false, AliasState::Active { target, until }) => Some(("Aliased", format!("{name} answers as an alias of {target} until {until}, in place of this record"))),
        (false, AliasState::Expired) => Some(("Reclaimed", format!("{name} was aliased during a reorganization and is reclaimed: it no longer answers"))),
    }
}

/// The old apex under a DNAME that answers: for each type it had (`apex`), the new
/// apex's set of that type, so the old apex keeps answering what the new one does.
pub fn apex_sets(sets: &mut Zone, apex: BTreeSet<(String, RecordType)>, on: &BTreeMap<&String, &Dname>) {
    for (owner, t) in apex {
        let Some(d) = on.get(&owner) else { continue };
        if let Some(src) = sets.get(&(d.target.clone(), t)).cloned() {
            sets.insert((owner.clone(), t), RRset { name: owner, ..src });
        }
    }
}
