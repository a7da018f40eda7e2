//! The quota ledger in the Department's status, written with optimistic concurrency:
//! read the Department, decide with `pdc_core::quota`, replace the status carrying the
//! resourceVersion read. A concurrent writer makes the API server answer 409 and the
//! decision is taken again on fresh data, so no two admissions share a unit.

use std::collections::BTreeMap;

use kube::{Api, Client};
use pdc_api::{Department, GuestQuota, QuotaCharge};
use pdc_core::quota::{self, Charge};

use crate::error::{Error, Result, is_conflict};

const ATTEMPTS: usize = 64;

fn to_core(c: &QuotaCharge) -> Charge {
    pdc_api::estate::charge(c)
}

pub fn to_api(c: &Charge, uid: &str) -> QuotaCharge {
    let i = |v: u128| i64::try_from(v).unwrap_or(i64::MAX);
    QuotaCharge {
        vcpu: i(u128::from(c.vcpu)),
        memory: i(c.memory),
        storage: c.storage.iter().map(|(t, b)| (t.clone(), i(*b))).collect(),
        vms: i(u128::from(c.vms)),
        uid: Some(uid.to_string()),
    }
}

/// Whether `d` records exactly `want` for `key`, charged to the object `uid`. A charge
/// of an earlier object of the same name (deleted, its charge released since, but a
/// cache may not have seen that yet) does not count.
pub fn records(d: &Department, key: &str, uid: &str, want: &Charge) -> bool {
    d.status.as_ref().and_then(|s| s.quota_ledger.get(key)).is_some_and(|c| c.uid.as_deref() == Some(uid) && to_core(c) == *want)
}

/// The limits of a quota; a malformed quantity counts as zero (the schema refuses them).
pub fn limits(q: &GuestQuota) -> Charge {
    pdc_api::estate::limits(q)
}

/// Charge `key` (the object `uid`) with `want` on Department `dept`, or say which
/// limits it would pass. `want = None` releases the key. Idempotent. When `cached`
/// (the Department as a cache last saw it) already records exactly `want` for this
/// object ([`records`]), nothing is read or written: only the key's own release
/// removes a charge.
pub async fn charge(client: &Client, cached: Option<&Department>, dept: &str, key: &str, uid: &str, want: Option<&Charge>) -> Result<std::result::Result<(), Vec<String>>> {
    if let (Some(d), Some(w)) = (cached, want)
        && records(d, key, uid, w)
    {
        return Ok(Ok(()));
    }
    let api: Api<Department> = Api::all(client.clone());
    for _ in 0..ATTEMPTS {
        let mut d = api.get(dept).await.map_err(|source| Error::Read { what: format!("Department {dept}"), source })?;
        let mut status = d.status.clone().unwrap_or_default();
        let ledger: BTreeMap<String, Charge> = status.quota_ledger.iter().map(|(k, c)| (k.clone(), to_core(c))).collect();
        match want {
            Some(w) => {
                if records(&d, key, uid, w) {
                    return Ok(Ok(()));
                }
                if let Err(over) = quota::admit(&limits(&d.spec.quota), &ledger, key, w) {
                    return Ok(Err(over));
                }
                status.quota_ledger.insert(key.to_string(), to_api(w, uid));
            }
            None => {
                if status.quota_ledger.remove(key).is_none() {
                    return Ok(Ok(()));
                }
            }
        }
        d.status = Some(status);
        d.metadata.managed_fields = None;
        match crate::apply::replace(&api, dept, &d, true).await {
            Ok(_) => return Ok(Ok(())),
            Err(e) if is_conflict(&e) => continue,
            Err(source) => return Err(Error::PatchStatus { what: format!("the quota ledger of Department {dept}"), source }),
        }
    }
    Err(Error::Invalid(format!("the quota ledger of Department {dept} kept changing during {ATTEMPTS} attempts")))
}

/// What all of a Department's charges add up to.
pub fn used(d: &Department) -> Charge {
    let ledger: BTreeMap<String, Charge> = d.status.as_ref().map(|s| s.quota_ledger.iter().map(|(k, c)| (k.clone(), to_core(c))).collect()).unwrap_or_default();
    quota::used(&ledger, None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_cached_charge_of_an_earlier_object_of_the_same_name_does_not_count() {
        let w = Charge { vcpu: 2, memory: 4 << 30, storage: Default::default(), vms: 1 };
        let mut d: Department = serde_json::from_value(serde_json::json!({
            "apiVersion": "pdc.io/v1alpha1", "kind": "Department", "metadata": {"name": "so-y-te"},
            "spec": {"displayName": "Sở Y tế", "code": "H15.23"}
        }))
        .unwrap();
        d.status = Some(Default::default());
        d.status.as_mut().unwrap().quota_ledger.insert("vm/his".into(), to_api(&w, "uid-old"));
        assert!(records(&d, "vm/his", "uid-old", &w));
        // The VM deleted and made again under the same name: a cache that still shows
        // the old charge must not admit the new VM without charging it.
        assert!(!records(&d, "vm/his", "uid-new", &w));
        // A charge recorded before charges carried UIDs is not taken either.
        d.status.as_mut().unwrap().quota_ledger.get_mut("vm/his").unwrap().uid = None;
        assert!(!records(&d, "vm/his", "uid-old", &w));
    }
}
