//! DNS under the province domain. Two controllers share what is here:
//! - [`record`] checks each DnsRecord (name inside the department's subdomain,
//!   values, a zone to hold it) and holds it with a finalizer while it is valid;
//! - [`writer`] is one writer per DnsZone: it reads the zone from its server, plans
//!   with `pdc_core::dnsplan`, sends RFC 2136 updates in batches and reports.
//!
//! Ownership lives in the API: a set is pdc's when a DnsRecord (with the
//! finalizer) declares it now or was programmed with it, or, in a reverse zone, when
//! it is the PTR of an address inside a NetworkZone's prefixes.

pub mod alias;
pub mod record;
pub mod writer;

use k8s_openapi::api::core::v1::Namespace;
use kube::{Resource, ResourceExt};
use kube::runtime::reflector::{ObjectRef, Store};
use pdc_api::labels as l;
use pdc_api::{DnsRecord, DnsZone, ZoneKind};

/// The department subdomain of a namespace, from the annotation the Department
/// controller writes on it.
pub fn subdomain_of(namespaces: &Store<Namespace>, ns: &str) -> Option<String> {
    namespaces.get(&ObjectRef::new(ns)).and_then(|n| n.annotations().get(l::SUBDOMAIN).cloned())
}

/// The zone of `kind` that holds `fqdn`: the longest zone name it ends in.
pub fn zone_for(fqdn: &str, kind: ZoneKind, zones: &[std::sync::Arc<DnsZone>]) -> Option<std::sync::Arc<DnsZone>> {
    zones
        .iter()
        .filter(|z| z.spec.kind == kind && z.meta().deletion_timestamp.is_none() && z.spec.holds(fqdn))
        .max_by_key(|z| z.spec.zone.len())
        .cloned()
}

pub fn has_finalizer(rec: &DnsRecord) -> bool {
    rec.finalizers().iter().any(|f| f == l::DNS_RECORD_FINALIZER)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use pdc_api::{DnsRecordSpec, DnsRecordType, DnsZoneSpec, TsigKeyRef};
    use std::sync::Arc;

    fn zone(name: &str, kind: ZoneKind) -> Arc<DnsZone> {
        Arc::new(DnsZone::new(
            name,
            DnsZoneSpec {
                zone: name.into(),
                kind,
                server: "127.0.0.1".into(),
                port: 53,
                tsig: TsigKeyRef { secret_name: "k".into(), secret_key: "secret".into(), name: "k".into(), algorithm: "hmac-sha256".into() },
                dnssec: true,
                default_ttl: None,
                batch_size: 100,
            },
        ))
    }

    #[test]
    fn the_longest_zone_holds_a_name() {
        let zones = vec![zone("gov.vn", ZoneKind::Forward), zone("daklak.gov.vn", ZoneKind::Forward), zone("15.10.in-addr.arpa", ZoneKind::Reverse)];
        assert_eq!(zone_for("www.so-y-te.daklak.gov.vn.", ZoneKind::Forward, &zones).unwrap().spec.zone, "daklak.gov.vn");
        assert_eq!(zone_for("daklak.gov.vn.", ZoneKind::Forward, &zones).unwrap().spec.zone, "daklak.gov.vn");
        assert!(zone_for("xdaklak.gov.vn.", ZoneKind::Forward, &zones).unwrap().spec.zone == "gov.vn");
        assert!(zone_for("example.org.", ZoneKind::Forward, &zones).is_none());
        assert_eq!(zone_for("5.0.15.10.in-addr.arpa.", ZoneKind::Reverse, &zones).unwrap().spec.zone, "15.10.in-addr.arpa");
    }

    #[test]
    fn a_record_becomes_a_set_or_a_message() {
        let rec = |name: &str, values: &[&str]| {
            DnsRecord::new("r", DnsRecordSpec { name: name.into(), rtype: DnsRecordType::A, ttl: None, values: values.iter().map(|v| v.to_string()).collect() })
        };
        let s = rec("www", &["10.15.0.5"]).rrset("so-y-te.daklak.gov.vn", 300).unwrap();
        assert_eq!((s.name.as_str(), s.ttl), ("www.so-y-te.daklak.gov.vn.", 300));
        assert!(rec("www", &["10.15.0.500"]).rrset("so-y-te.daklak.gov.vn", 300).unwrap_err().contains("not an IPv4 address"));
        assert!(rec("www.so-tai-chinh.daklak.gov.vn.", &["10.15.0.5"]).rrset("so-y-te.daklak.gov.vn", 300).unwrap_err().contains("outside"));
    }
}
