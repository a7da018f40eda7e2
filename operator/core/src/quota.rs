//! The quota ledger in guest units: each VM or volume holds one charge, keyed by
//! object; a new or changed charge is admitted only if the ledger's sum stays within
//! the limits. The operator persists the ledger in the Department's status and writes
//! it with optimistic concurrency, so two admissions can never both take the last unit.

use std::collections::BTreeMap;

/// What one object holds (or, as limits, what all may hold).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Charge {
    pub vcpu: u64,
    /// Bytes.
    pub memory: u128,
    /// Bytes per storage tier.
    pub storage: BTreeMap<String, u128>,
    pub vms: u64,
}

impl Charge {
    /// Add `o` to this charge (saturating).
    pub fn add(&mut self, o: &Charge) {
        self.vcpu = self.vcpu.saturating_add(o.vcpu);
        self.memory = self.memory.saturating_add(o.memory);
        self.vms = self.vms.saturating_add(o.vms);
        for (t, b) in &o.storage {
            let e = self.storage.entry(t.clone()).or_default();
            *e = e.saturating_add(*b);
        }
    }
}

/// The sum of every charge in `ledger` except `skip`'s.
pub fn used(ledger: &BTreeMap<String, Charge>, skip: Option<&str>) -> Charge {
    let mut total = Charge::default();
    for (k, c) in ledger {
        if Some(k.as_str()) != skip {
            total.add(c);
        }
    }
    total
}

fn gib(b: u128) -> String {
    crate::quantity::format_bytes(b)
}

/// Whether `key` may hold `want` (replacing what it holds now). `Err` lists every
/// limit it would pass, each with by how much, in words a department can act on.
pub fn admit(limits: &Charge, ledger: &BTreeMap<String, Charge>, key: &str, want: &Charge) -> Result<(), Vec<String>> {
    let mut after = used(ledger, Some(key));
    let before = after.clone();
    after.add(want);
    let mut over = Vec::new();
    let mut check = |what: String, used: u128, asked: u128, now: u128, limit: u128, fmt: &dyn Fn(u128) -> String| {
        if asked > 0 && used > limit {
            over.push(format!("{what}: asks {}, {} of {} already in use, {} over", fmt(asked), fmt(now), fmt(limit), fmt(used - limit)));
        }
    };
    let n = |v: u128| v.to_string();
    check("vCPU".into(), u128::from(after.vcpu), u128::from(want.vcpu), u128::from(before.vcpu), u128::from(limits.vcpu), &n);
    check("memory".into(), after.memory, want.memory, before.memory, limits.memory, &gib);
    check("VMs".into(), u128::from(after.vms), u128::from(want.vms), u128::from(before.vms), u128::from(limits.vms), &n);
    for (tier, b) in &after.storage {
        let limit = limits.storage.get(tier).copied().unwrap_or(0);
        let asked = want.storage.get(tier).copied().unwrap_or(0);
        let now = before.storage.get(tier).copied().unwrap_or(0);
        check(format!("{tier} storage"), *b, asked, now, limit, &gib);
    }
    if over.is_empty() { Ok(()) } else { Err(over) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn vm(vcpu: u64, gi: u128, ssd_gi: u128) -> Charge {
        Charge { vcpu, memory: gi << 30, storage: BTreeMap::from([("ssd".to_string(), ssd_gi << 30)]), vms: 1 }
    }

    #[test]
    fn over_quota_says_which_limit_and_by_how_much() {
        let limits = Charge { vcpu: 8, memory: 16 << 30, storage: BTreeMap::from([("ssd".to_string(), 100 << 30)]), vms: 10 };
        let mut ledger = BTreeMap::new();
        ledger.insert("vm/a".to_string(), vm(4, 8, 40));
        assert!(admit(&limits, &ledger, "vm/b", &vm(4, 8, 40)).is_ok());
        ledger.insert("vm/b".to_string(), vm(4, 8, 40));
        let e = admit(&limits, &ledger, "vm/c", &vm(2, 4, 40)).unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[2].contains("ssd storage: asks 40Gi, 80Gi of 100Gi already in use, 20Gi over"), "{e:?}");
        assert!(e[0].starts_with("vCPU: asks 2, 8 of 8 already in use, 2 over"), "{e:?}");
        assert!(e[1].contains("memory: asks 4Gi, 16Gi of 16Gi already in use, 4Gi over"), "{e:?}");
        // Resizing a VM replaces its own charge: a to 2 vCPU fits.
        assert!(admit(&limits, &ledger, "vm/a", &vm(2, 4, 40)).is_ok());
        // A tier without quota.
        let mut hdd = vm(0, 0, 0);
        hdd.vms = 0;
        hdd.storage = BTreeMap::from([("hdd".to_string(), 1 << 30)]);
        assert!(admit(&limits, &ledger, "volume/x", &hdd).unwrap_err()[0].starts_with("hdd storage: asks 1Gi, 0 of 0"));
    }

    proptest! {
        /// Whatever order requests come in, a ledger built only from admitted charges
        /// stays within the limits.
        #[test]
        fn admitted_charges_never_exceed_the_limits(reqs in proptest::collection::vec((0u8..20, 1u64..8, 1u128..16, 0u128..200), 1..80)) {
            let limits = Charge { vcpu: 32, memory: 64 << 30, storage: BTreeMap::from([("ssd".to_string(), 500 << 30)]), vms: 10 };
            let mut ledger = BTreeMap::new();
            for (k, c, m, s) in reqs {
                let key = format!("vm/{k}");
                let want = vm(c, m, s);
                if admit(&limits, &ledger, &key, &want).is_ok() {
                    ledger.insert(key, want);
                }
                let u = used(&ledger, None);
                prop_assert!(u.vcpu <= limits.vcpu && u.memory <= limits.memory && u.vms <= limits.vms);
                prop_assert!(u.storage.get("ssd").copied().unwrap_or(0) <= 500 << 30);
            }
        }
    }
}
