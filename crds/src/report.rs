//! The estate as the reports (`pdc_core::report`) read it: plain data taken from the
//! API objects. `pdcctl report` builds it from lists of the cluster's objects, the
//! operator from its caches (for the `pdc_ipv6_ready_ratio` gauge).

use std::collections::BTreeMap;

use kube::ResourceExt;
use pdc_core::report::{self as r, Dnssec, Dr, Ipv4Phase};

use crate::{conditions, labels};
use crate::{AddressAllocation, Department, DnsRecord, DnsRecordType, DnsZone, DrPlan, Lifecycle, NetworkZone, Province, TenantVM};

/// The objects the reports are read from.
#[derive(Default, Clone)]
pub struct Objects {
    pub province: Option<Province>,
    pub departments: Vec<Department>,
    pub zones: Vec<NetworkZone>,
    pub vms: Vec<TenantVM>,
    pub records: Vec<DnsRecord>,
    pub allocations: Vec<AddressAllocation>,
    pub plans: Vec<DrPlan>,
    pub dns_zones: Vec<DnsZone>,
}

impl Objects {
    /// Every unit, by name.
    pub fn units(&self) -> Vec<r::Unit> {
        let mut depts: Vec<&Department> = self.departments.iter().collect();
        depts.sort_by_key(|d| d.name_any());
        depts.into_iter().map(|d| self.unit(d)).collect()
    }

    /// The storage tiers of the Province, by name.
    pub fn tiers(&self) -> Vec<String> {
        let mut t: Vec<String> = self.province.iter().flat_map(|p| p.spec.storage_tiers.iter().map(|t| t.name.clone())).collect();
        t.sort();
        t.dedup();
        t
    }

    /// Every zone's IPv4 phase.
    pub fn phases(&self) -> BTreeMap<String, Ipv4Phase> {
        self.zones.iter().map(|z| (z.name_any(), z.spec.ipv4_phase.core())).collect()
    }

    /// The DNS zones, with their DNSSEC state.
    pub fn dns_zones(&self) -> Vec<r::DnsZone> {
        self.dns_zones
            .iter()
            .map(|z| {
                let valid = z.status.as_ref().and_then(|s| conditions::find(&s.conditions, "DnssecValid"));
                let dnssec = match (z.spec.dnssec, valid.map(|c| c.status.as_str())) {
                    (false, _) => Dnssec::Unsigned,
                    (true, Some("True")) => Dnssec::Signed,
                    (true, Some("False")) => Dnssec::Invalid,
                    (true, _) => Dnssec::Unknown,
                };
                r::DnsZone { zone: z.spec.zone.trim_end_matches('.').to_string(), dnssec }
            })
            .collect()
    }

    fn domain(&self) -> &str {
        self.province.as_ref().map_or("", |p| p.spec.domain.as_str())
    }

    /// The subdomain `d`'s records live under.
    fn subdomain(&self, d: &Department) -> String {
        d.status.as_ref().and_then(|s| s.subdomain.clone()).unwrap_or_else(|| d.subdomain_in(self.domain()))
    }

    fn unit(&self, d: &Department) -> r::Unit {
        let name = d.name_any();
        let subdomain = self.subdomain(d);
        let ledger = d.status.as_ref().map(|s| &s.quota_ledger);
        let charges = ledger.into_iter().flat_map(|l| l.values()).map(crate::estate::charge);
        let used = charges.fold(pdc_core::quota::Charge::default(), |mut a, c| {
            a.add(&c);
            a
        });
        r::Unit {
            department: name.clone(),
            vms: self.vms_of(&name),
            vcpu: used.vcpu,
            memory: used.memory,
            storage: used.storage,
            addresses: self
                .allocations
                .iter()
                .filter(|a| a.spec.department == name)
                .map(|a| r::Address { zone: a.spec.zone.clone(), address: a.spec.address.clone(), ipv6: a.spec.address.contains(':') })
                .collect(),
            names: self.names_of(&name, &subdomain),
            zones: self.zones_of(d),
            domains: self.domains_of(d, subdomain),
        }
    }

    fn vms_of(&self, ns: &str) -> Vec<r::Vm> {
        let plans: Vec<&DrPlan> = self.plans.iter().filter(|p| p.namespace().as_deref() == Some(ns)).collect();
        let mut vms: Vec<r::Vm> = self
            .vms
            .iter()
            .filter(|v| v.namespace().as_deref() == Some(ns))
            .map(|v| {
                let labels = v.labels();
                let selecting: Vec<&&DrPlan> =
                    plans.iter().filter(|p| v.spec.dr_protected && p.spec.selector.iter().all(|(k, val)| labels.get(k) == Some(val))).collect();
                let protected = selecting.iter().any(|p| p.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, "Protected")));
                let dr = match (selecting.is_empty(), protected) {
                    (true, _) => Dr::None,
                    (false, true) => Dr::Protected,
                    (false, false) => Dr::Covered,
                };
                let ipv6 = v.status.as_ref().is_some_and(|s| s.nics.iter().any(|n| n.ipv6.is_some()));
                r::Vm { name: v.name_any(), ipv6, dr }
            })
            .collect();
        vms.sort_by(|a, b| a.name.cmp(&b.name));
        vms
    }

    /// The unit's names with an A or AAAA record (its aliases are CNAMEs and do not count).
    fn names_of(&self, ns: &str, subdomain: &str) -> BTreeMap<String, (bool, bool)> {
        let mut names: BTreeMap<String, (bool, bool)> = BTreeMap::new();
        for rec in self.records.iter().filter(|x| x.namespace().as_deref() == Some(ns)) {
            let (a, aaaa) = (rec.spec.rtype == DnsRecordType::A, rec.spec.rtype == DnsRecordType::AAAA);
            if !(a || aaaa) {
                continue;
            }
            let Ok(fqdn) = pdc_core::dnsplan::fqdn_in(&rec.spec.name, subdomain) else { continue };
            let e = names.entry(fqdn.trim_end_matches('.').to_string()).or_default();
            e.0 |= a;
            e.1 |= aaaa;
        }
        names
    }

    fn zones_of(&self, d: &Department) -> Vec<r::Zone> {
        let mut zones: Vec<r::Zone> = d
            .spec
            .zones
            .iter()
            .map(|name| {
                let z = self.zones.iter().find(|z| z.name_any() == *name);
                r::Zone {
                    name: name.clone(),
                    ipv6: z.is_some_and(|z| !z.spec.sites.is_empty() && z.spec.sites.iter().all(|s| s.ipv6.is_some())),
                    phase: z.map(|z| z.spec.ipv4_phase.core()).unwrap_or_default(),
                }
            })
            .collect();
        zones.sort_by(|a, b| a.name.cmp(&b.name));
        zones
    }

    /// Its own subdomain, then the subdomains of the units merged into it (no longer
    /// Active) whose names still answer as aliases of its own: a reorganization's
    /// alias DnsRecords in their namespaces, not yet expired.
    fn domains_of(&self, d: &Department, subdomain: String) -> Vec<r::Domain> {
        let legacy = self.province.as_ref().map(|p| p.spec.legacy_domains.clone()).unwrap_or_default();
        let mut out = vec![r::Domain { role: r::own_role(&subdomain, &legacy), name: subdomain }];
        let name = d.name_any();
        let mut kept: Vec<(String, r::DomainRole)> = self
            .departments
            .iter()
            .filter(|p| p.spec.successor.as_deref() == Some(name.as_str()) && p.spec.lifecycle != Lifecycle::Active)
            .filter_map(|p| {
                let until = self.aliases_until(&p.name_any())?;
                Some((self.subdomain(p), r::DomainRole::KeptFrom { unit: p.name_any(), until }))
            })
            .collect();
        kept.sort_by(|a, b| a.0.cmp(&b.0));
        out.extend(kept.into_iter().map(|(name, role)| r::Domain { name, role }));
        out
    }

    /// Whether namespace `ns` holds a reorganization's alias that still answers:
    /// `Some` with the latest end of transition among them (if they carry one).
    fn aliases_until(&self, ns: &str) -> Option<Option<String>> {
        let live: Vec<&DnsRecord> = self
            .records
            .iter()
            .filter(|r| r.namespace().as_deref() == Some(ns) && r.labels().contains_key(labels::ALIAS))
            .filter(|r| r.annotations().get(labels::ALIAS_EXPIRED).map(String::as_str) != Some("true"))
            .collect();
        (!live.is_empty()).then(|| live.iter().filter_map(|r| r.annotations().get(labels::ALIAS_UNTIL).cloned()).max())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn obj<K: serde::de::DeserializeOwned>(v: serde_json::Value) -> K {
        serde_json::from_value(v).unwrap()
    }

    fn dept(name: &str, lifecycle: &str, successor: Option<&str>) -> Department {
        obj(serde_json::json!({"apiVersion": "pdc.io/v1alpha1", "kind": "Department", "metadata": {"name": name},
            "spec": {"displayName": name, "code": "H15.101", "lifecycle": lifecycle, "successor": successor},
            "status": {"subdomain": format!("{name}.daklak.gov.vn")}}))
    }

    fn alias(ns: &str, until: &str, expired: bool) -> DnsRecord {
        let mut annotations = serde_json::json!({labels::ALIAS_UNTIL: until});
        if expired {
            annotations[labels::ALIAS_EXPIRED] = "true".into();
        }
        obj(serde_json::json!({"apiVersion": "pdc.io/v1alpha1", "kind": "DnsRecord",
            "metadata": {"name": format!("alias.www.{ns}.daklak.gov.vn"), "namespace": ns, "labels": {labels::ALIAS: "nq-1"}, "annotations": annotations},
            "spec": {"name": format!("www.{ns}.daklak.gov.vn."), "type": "CNAME", "values": ["www.xa-ea-sup.daklak.gov.vn."]}}))
    }

    #[test]
    fn a_merged_units_subdomain_is_kept_by_its_successor_while_an_alias_answers() {
        let mut o = Objects {
            departments: vec![dept("xa-ea-sup", "Active", None), dept("xa-ea-rok", "Retired", Some("xa-ea-sup")), dept("xa-ea-bung", "Retired", Some("xa-ea-sup"))],
            records: vec![alias("xa-ea-rok", "2026-12-28", false), alias("xa-ea-bung", "2026-12-28", true)],
            ..Default::default()
        };
        let units = o.units();
        let sup = units.iter().find(|u| u.department == "xa-ea-sup").unwrap();
        let roles: Vec<String> = sup.domains.iter().map(|d| format!("{} {}", d.name, d.role)).collect();
        assert_eq!(roles, ["xa-ea-sup.daklak.gov.vn own", "xa-ea-rok.daklak.gov.vn kept from xa-ea-rok until 2026-12-28"], "an expired alias keeps nothing");
        o.records.clear();
        let sup = o.units().into_iter().find(|u| u.department == "xa-ea-sup").unwrap();
        assert_eq!(sup.domains.len(), 1, "no alias, nothing kept");
    }
}
