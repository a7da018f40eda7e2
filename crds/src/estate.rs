//! The estate and an act as the reorganization planner (`pdc_core::reorg`) reads
//! them: plain data taken from the API objects. The operator builds it from its
//! caches, `pdcctl reorg plan` from the cluster or from manifests on disk.

use std::collections::BTreeMap;

use kube::ResourceExt;
use pdc_core::quota::Charge;
use pdc_core::reorg;

use crate::{AddressClaim, Department, DnsRecord, GuestQuota, Lifecycle, QuotaCharge, ReorganizationSpec, RunStrategy, TenantVM, TenantVolume};

/// A ledger entry in guest units (negative values, which the schema refuses, count as 0).
pub fn charge(c: &QuotaCharge) -> Charge {
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    Charge { vcpu: u(c.vcpu), memory: u128::from(u(c.memory)), storage: c.storage.iter().map(|(t, b)| (t.clone(), u128::from(u(*b)))).collect(), vms: u(c.vms) }
}

/// A quota's limits; a malformed quantity counts as zero (the schema refuses them).
pub fn limits(q: &GuestQuota) -> Charge {
    let bytes = |s: &str| pdc_core::quantity::parse(s).unwrap_or(0);
    Charge {
        vcpu: u64::try_from(q.vcpu).unwrap_or(0),
        memory: bytes(&q.memory),
        storage: q.storage.iter().map(|(t, s)| (t.clone(), bytes(s))).collect(),
        vms: u64::try_from(q.vms).unwrap_or(0),
    }
}

/// The act as the planner reads it.
pub fn act(s: &ReorganizationSpec) -> reorg::Act {
    let days = |d: i32| u32::try_from(d).unwrap_or(0);
    reorg::Act {
        reference: s.reference.clone(),
        effective_date: s.effective_date.clone(),
        merges: s
            .merges
            .iter()
            .map(|m| reorg::Merge {
                units: m.units.clone(),
                successor: m.successor.clone(),
                successor_display_name: m.successor_display_name.clone(),
                successor_code: m.successor_code.clone(),
                keep: m.keep.clone(),
            })
            .collect(),
        dissolutions: s.dissolutions.iter().map(|d| reorg::Dissolution { unit: d.unit.clone(), lookups_go_to: d.lookups_go_to.clone() }).collect(),
        renames: s.renames.iter().map(|r| reorg::Rename { unit: r.unit.clone(), display_name: r.display_name.clone(), new_name: r.new_name.clone() }).collect(),
        code_reissues: s.code_reissues.iter().map(|c| reorg::CodeReissue { from: c.from.clone(), to: c.to.clone(), deadline: c.deadline.clone() }).collect(),
        transition_days: days(s.transition_days),
        retention_days: days(s.retention_days),
        cool_down_days: days(s.cool_down_days),
    }
}

/// The objects an estate is read from.
#[derive(Default)]
pub struct Objects {
    pub departments: Vec<Department>,
    pub vms: Vec<TenantVM>,
    pub volumes: Vec<TenantVolume>,
    pub claims: Vec<AddressClaim>,
    pub records: Vec<DnsRecord>,
}

/// The estate under a province whose domain is `domain`: each Department with what
/// its namespace holds. Objects outside every Department's namespace are left out.
pub fn estate(o: &Objects, domain: &str) -> reorg::Estate {
    let mut units: BTreeMap<String, reorg::Unit> = o.departments.iter().map(|d| (d.name_any(), unit(d, domain))).collect();
    for vm in &o.vms {
        let Some(u) = vm.namespace().and_then(|ns| units.get_mut(&ns)) else { continue };
        let name = vm.name_any();
        let nics = vm.status.as_ref().map(|s| s.nics.as_slice()).unwrap_or_default();
        let addresses = nics.iter().flat_map(|n| n.ipv4.iter().chain(n.ipv6.iter()).cloned()).collect();
        let disks = std::iter::once(&vm.spec.root_disk).chain(vm.spec.disks.iter()).map(|d| format!("{name}-{}", d.name)).collect();
        let fqdn = vm.status.as_ref().and_then(|s| s.fqdn.clone()).unwrap_or_else(|| format!("{}.{}", vm.spec.hostname, u.subdomain));
        for (family, rtype) in [(nics.first().and_then(|n| n.ipv4.as_ref()), "A"), (nics.first().and_then(|n| n.ipv6.as_ref()), "AAAA")] {
            if family.is_some() {
                u.records.push(reorg::Record { fqdn: fqdn.trim_end_matches('.').to_string(), rtype: rtype.into(), vm: Some(name.clone()) });
            }
        }
        let zones = vm.spec.nics.iter().map(|n| n.zone.clone()).collect();
        let taken_over = vm.spec.adopt.as_ref().map(|a| if a.external { reorg::TakenOver::External } else { reorg::TakenOver::Adopted });
        u.vms.insert(name, reorg::Vm { disks, addresses, running: vm.spec.run_strategy != RunStrategy::Halted, zones, taken_over });
    }
    for v in &o.volumes {
        if let Some(u) = v.namespace().and_then(|ns| units.get_mut(&ns)) {
            u.volumes.insert(v.name_any(), v.spec.vm.clone());
        }
    }
    for c in &o.claims {
        let owned_by_vm = c.owner_references().iter().any(|r| r.kind == "TenantVM");
        let Some(u) = c.namespace().and_then(|ns| units.get_mut(&ns)).filter(|_| !owned_by_vm) else { continue };
        let addresses = c.status.as_ref().map(|s| s.ipv4.iter().chain(s.ipv6.iter()).map(|a| a.address.clone()).collect()).unwrap_or_default();
        u.claim_zones.insert(c.name_any(), c.spec.zone.clone());
        u.claims.insert(c.name_any(), addresses);
    }
    for r in &o.records {
        // An act's aliases are its own doing, not part of what the unit holds.
        if r.labels().contains_key(crate::labels::ALIAS) {
            continue;
        }
        let Some(u) = r.namespace().and_then(|ns| units.get_mut(&ns)) else { continue };
        let vm = r.owner_references().iter().find(|o| o.kind == "TenantVM").map(|o| o.name.clone());
        let fqdn = r.status.as_ref().and_then(|s| s.fqdn.clone()).unwrap_or_else(|| {
            match r.spec.name.as_str() {
                "@" | "" => u.subdomain.clone(),
                n if n.ends_with('.') => n.to_string(),
                n => format!("{n}.{}", u.subdomain),
            }
        });
        u.records.push(reorg::Record { fqdn: fqdn.trim_end_matches('.').to_string(), rtype: format!("{:?}", r.spec.rtype), vm });
    }
    for u in units.values_mut() {
        // A VM's names come from the VM and from the DnsRecords pdc made for it:
        // one entry per name and type, the VM's.
        u.records.sort_by(|a, b| (&a.fqdn, &a.rtype, a.vm.is_none()).cmp(&(&b.fqdn, &b.rtype, b.vm.is_none())));
        u.records.dedup_by(|later, first| later.fqdn == first.fqdn && later.rtype == first.rtype);
    }
    reorg::Estate { units }
}

fn unit(d: &Department, domain: &str) -> reorg::Unit {
    let st = d.status.as_ref();
    reorg::Unit {
        display_name: d.spec.display_name.clone(),
        code: d.spec.code.clone(),
        subdomain: st.and_then(|s| s.subdomain.clone()).unwrap_or_else(|| d.subdomain_in(domain)),
        lifecycle: match d.spec.lifecycle {
            Lifecycle::Active => reorg::Lifecycle::Active,
            Lifecycle::Retiring => reorg::Lifecycle::Retiring,
            Lifecycle::Retired => reorg::Lifecycle::Retired,
        },
        quota: limits(&d.spec.quota),
        ledger: st.map(|s| s.quota_ledger.iter().map(|(k, c)| (k.clone(), charge(c))).collect()).unwrap_or_default(),
        zones: d.spec.zones.iter().cloned().collect(),
        ..reorg::Unit::default()
    }
}
