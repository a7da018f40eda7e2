//! `meta/v1` conditions: every status carries `observedGeneration`, and a condition
//! keeps its `lastTransitionTime` while its status does not change, so `kubectl wait`
//! and alerting on transitions behave.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub const READY: &str = "Ready";
/// On a TenantVM: its names answer with its addresses (the DR runner waits for it).
pub const DNS_PROGRAMMED: &str = "DnsProgrammed";
/// The reason of a DnsRecord's `Programmed=False` when the other DR site carries
/// its name (the zone answers with that site's addresses).
pub const AT_OTHER_SITE: &str = "AtOtherSite";

/// `True`/`False` as the API spells them.
pub fn status_str(ok: bool) -> &'static str {
    if ok { "True" } else { "False" }
}

/// A condition to be merged into a status with [`merge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub type_: &'static str,
    pub ok: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Cond {
    pub fn new(type_: &'static str, ok: bool, reason: &'static str, message: impl Into<String>) -> Self {
        Self { type_, ok, reason, message: message.into() }
    }
}

/// Merge `new` into `current` for object generation `generation` at time `now`.
/// Conditions of other types are kept; a condition whose status is unchanged keeps
/// its `lastTransitionTime`.
pub fn merge(current: &[Condition], new: &[Cond], generation: Option<i64>, now: Timestamp) -> Vec<Condition> {
    let mut out: Vec<Condition> = current.to_vec();
    for c in new {
        let status = status_str(c.ok).to_string();
        let last_transition_time = match out.iter().find(|o| o.type_ == c.type_) {
            Some(old) if old.status == status => old.last_transition_time.clone(),
            _ => Time(now),
        };
        let cond = Condition {
            type_: c.type_.to_string(),
            status,
            reason: c.reason.to_string(),
            message: c.message.clone(),
            observed_generation: generation,
            last_transition_time,
        };
        match out.iter_mut().find(|o| o.type_ == c.type_) {
            Some(slot) => *slot = cond,
            None => out.push(cond),
        }
    }
    out
}

/// Whether `conditions` hold `type_` with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

/// The condition of `type_`, if any.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let t0 = Timestamp::from_second(1_767_225_600).unwrap();
        let t1 = Timestamp::from_second(1_767_225_900).unwrap();
        let a = merge(&[], &[Cond::new(READY, false, "Pending", "x")], Some(1), t0);
        let b = merge(&a, &[Cond::new(READY, false, "Pending", "y")], Some(2), t1);
        assert_eq!(b[0].last_transition_time.0, a[0].last_transition_time.0);
        assert_eq!(b[0].observed_generation, Some(2));
        assert_eq!(b[0].message, "y");
        let c = merge(&b, &[Cond::new(READY, true, "Ready", "z")], Some(2), t1);
        assert_eq!(c.len(), 1);
        assert!(is_true(&c, READY));
        assert_ne!(c[0].last_transition_time.0, a[0].last_transition_time.0);
    }
}
