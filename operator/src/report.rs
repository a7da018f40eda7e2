//! The report gauges, computed from the operator's caches every 15 s:
//! `pdc_ipv6_ready_ratio{department}` (the ratio `pdcctl report ipv6` prints) and
//! `pdc_zone_ipv4_phase{zone,phase}` (a state set: 1 for the zone's phase). The
//! numbers are pdc-core's (`pdc_core::report`), read from the same objects the CLI
//! lists, so the gauge and the report agree.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::reflector::Store;
use pdc_api::report::Objects;
use pdc_api::{Department, DnsRecord, NetworkZone, Province, TenantVM};
use pdc_core::report::{Ipv4Phase, ipv6_readiness};
use tracing::debug;

use crate::cache::{cloned, synced};
use crate::context::Context;
use crate::metrics::Metrics;

/// How often the gauges are computed again.
const EVERY: Duration = Duration::from_secs(15);

/// The caches the gauges read.
pub struct Caches {
    pub departments: Store<Department>,
    pub zones: Store<NetworkZone>,
    pub provinces: Store<Province>,
    pub vms: Store<TenantVM>,
    pub records: Store<DnsRecord>,
}

/// (zone, phase, 0 or 1): one series of the state set.
pub type PhaseSeries = (String, &'static str, f64);

/// The gauges' values: (department, ratio) for each unit with something to count,
/// and the phase series of every zone.
pub fn values(o: &Objects) -> (Vec<(String, f64)>, Vec<PhaseSeries>) {
    let ratios = o.units().iter().map(ipv6_readiness).filter_map(|r| Some((r.department, r.ratio?))).collect();
    let phases = o
        .phases()
        .into_iter()
        .flat_map(|(zone, phase)| Ipv4Phase::ALL.map(|p| (zone.clone(), p.as_str(), if p == phase { 1.0 } else { 0.0 })))
        .collect();
    (ratios, phases)
}

fn set(m: &Metrics, o: &Objects) {
    let (ratios, phases) = values(o);
    // Reset first: a removed department or zone leaves no stale series.
    m.ipv6_ready_ratio.reset();
    for (d, r) in &ratios {
        m.ipv6_ready_ratio.with_label_values(&[d.as_str()]).set(*r);
    }
    m.zone_ipv4_phase.reset();
    for (z, p, v) in &phases {
        m.zone_ipv4_phase.with_label_values(&[z.as_str(), p]).set(*v);
    }
    debug!(departments = ratios.len(), zones = phases.len() / Ipv4Phase::ALL.len(), "report gauges computed");
}

/// Compute the gauges every [`EVERY`] once every cache holds its first full list.
pub async fn run(ctx: Arc<Context>, caches: Caches) {
    loop {
        let c = &caches;
        let ready = synced(&c.departments) && synced(&c.zones) && synced(&c.provinces) && synced(&c.vms) && synced(&c.records);
        if ready {
            let o = Objects {
                province: c.provinces.state().first().map(|p| p.as_ref().clone()),
                departments: cloned(&c.departments),
                zones: cloned(&c.zones),
                vms: cloned(&c.vms),
                records: cloned(&c.records),
                ..Default::default()
            };
            set(&ctx.metrics, &o);
        }
        tokio::time::sleep(if ready { EVERY } else { Duration::from_secs(1) }).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn obj<K: serde::de::DeserializeOwned>(v: serde_json::Value) -> K {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_gauges_carry_each_units_ratio_and_each_zones_phase_as_a_state_set() {
        let zone = |name: &str, v6: bool, phase: &str| {
            let site = if v6 { serde_json::json!({"site": "daklak", "ipv4": "10.15.0.0/20", "ipv6": "2001:db8:1500::/48"}) } else { serde_json::json!({"site": "daklak", "ipv4": "10.15.16.0/20"}) };
            obj::<NetworkZone>(serde_json::json!({"apiVersion": "pdc.io/v1alpha1", "kind": "NetworkZone", "metadata": {"name": name}, "spec": {"vlan": 110, "sites": [site], "ipv4Phase": phase}}))
        };
        let dept = |name: &str, zones: &[&str]| {
            obj::<Department>(serde_json::json!({"apiVersion": "pdc.io/v1alpha1", "kind": "Department", "metadata": {"name": name}, "spec": {"displayName": name, "code": "H15.1", "zones": zones}, "status": {"subdomain": format!("{name}.daklak.gov.vn")}}))
        };
        let rec = |name: &str, t: &str, v: &str| {
            obj::<DnsRecord>(serde_json::json!({"apiVersion": "pdc.io/v1alpha1", "kind": "DnsRecord", "metadata": {"name": format!("{name}-{t}"), "namespace": "so-y-te"}, "spec": {"name": name, "type": t, "values": [v]}}))
        };
        let o = Objects {
            departments: vec![dept("so-y-te", &["dmz", "app"]), dept("so-noi-vu", &[])],
            zones: vec![zone("dmz", true, "Active"), zone("app", false, "Deprecated")],
            records: vec![rec("www", "A", "10.15.0.5"), rec("www", "AAAA", "2001:db8:1500::5"), rec("his", "A", "10.15.0.6"), rec("www", "TXT", "x")],
            ..Default::default()
        };
        let (ratios, phases) = values(&o);
        assert_eq!(ratios, [("so-y-te".to_string(), 0.5)], "names 1/2, zones 1/2, no VMs; a unit with nothing to count has no series");
        let app: Vec<(&str, f64)> = phases.iter().filter(|(z, _, _)| z == "app").map(|(_, p, v)| (*p, *v)).collect();
        assert_eq!(app, [("Active", 0.0), ("Deprecated", 1.0), ("Off", 0.0)]);
        assert_eq!(phases.len(), 6);
    }
}
