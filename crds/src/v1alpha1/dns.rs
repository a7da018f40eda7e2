//! DNS under the province domain: the zones pdc writes to, and the records
//! departments declare inside their own subdomain.

use kube::{CustomResource, KubeSchema};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde::{Deserialize, Serialize};

use super::DOMAIN_RULE;

/// What a zone holds.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ZoneKind {
    /// Names → addresses (`daklak.gov.vn`).
    #[default]
    Forward,
    /// Addresses → names (`15.10.in-addr.arpa`, `…ip6.arpa`).
    Reverse,
}

/// A reference to a TSIG key kept in a Secret of the operator's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TsigKeyRef {
    /// The Secret (in the operator's namespace) holding the key.
    #[schemars(length(max = 253))]
    pub secret_name: String,
    /// The key in the Secret whose value is the base64 TSIG secret (default `secret`).
    #[serde(default = "default_secret_key")]
    #[schemars(length(max = 253))]
    pub secret_key: String,
    /// The key's name as the DNS server knows it, e.g. `pdc-key`.
    #[schemars(length(max = 253))]
    pub name: String,
    /// `hmac-sha256` (default), `hmac-sha384` or `hmac-sha512`.
    #[serde(default = "default_algorithm")]
    #[x_kube(validation = Rule::new("self in ['hmac-sha256', 'hmac-sha384', 'hmac-sha512']").message("algorithm must be hmac-sha256, hmac-sha384 or hmac-sha512"))]
    #[schemars(length(max = 16))]
    pub algorithm: String,
}

fn default_secret_key() -> String {
    "secret".into()
}
fn default_algorithm() -> String {
    "hmac-sha256".into()
}

/// A zone on the province's authoritative DNS servers that pdc updates with RFC 2136
/// dynamic updates signed with TSIG.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "pdc.io",
    version = "v1alpha1",
    kind = "DnsZone",
    plural = "dnszones",
    status = "DnsZoneStatus",
    printcolumn(name = "Zone", type_ = "string", json_path = ".spec.zone"),
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.kind"),
    printcolumn(name = "Server", type_ = "string", json_path = ".spec.server"),
    printcolumn(name = "Serial", type_ = "integer", json_path = ".status.serial"),
    printcolumn(name = "Sets", type_ = "integer", json_path = ".status.recordSets"),
    printcolumn(name = "Pending", type_ = "integer", json_path = ".status.pending"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct DnsZoneSpec {
    /// The zone's name, e.g. `daklak.gov.vn` or `15.10.in-addr.arpa`.
    #[x_kube(validation = Rule::new(DOMAIN_RULE).message("zone must be a lowercase DNS name such as daklak.gov.vn or 15.10.in-addr.arpa"))]
    #[schemars(length(max = 253))]
    pub zone: String,
    /// `Forward` or `Reverse`.
    #[serde(default)]
    pub kind: ZoneKind,
    /// The primary server's address (IPv4 or IPv6).
    #[x_kube(validation = Rule::new("isIP(self)").message("server must be an IPv4 or IPv6 address"))]
    #[schemars(length(max = 45))]
    pub server: String,
    /// The primary server's port (default 53).
    #[serde(default = "default_port")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("port must be between 1 and 65535"))]
    pub port: i32,
    /// The TSIG key updates and transfers are signed with.
    pub tsig: TsigKeyRef,
    /// Whether answers must carry RRSIGs; pdc checks and reports it.
    #[serde(default)]
    pub dnssec: bool,
    /// TTL of records that give none (default: the Province's default TTL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 604800").message("defaultTtl must be between 0 and 604800 seconds"))]
    pub default_ttl: Option<i32>,
    /// Changes per UPDATE message (default 100).
    #[serde(default = "default_batch")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1000").message("batchSize must be between 1 and 1000"))]
    pub batch_size: i32,
}

fn default_port() -> i32 {
    53
}
fn default_batch() -> i32 {
    100
}

/// What the operator observed of a DnsZone.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DnsZoneStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the server answers and accepts pdc's key; `DnssecValid`: answers are signed.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The SOA serial last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<i64>,
    /// Changes waiting to be sent.
    #[serde(default)]
    pub pending: i32,
    /// Record sets pdc manages in the zone.
    #[serde(default)]
    pub record_sets: i32,
    /// Record sets pdc wants that a set it does not own holds.
    #[serde(default)]
    pub conflicts: i32,
    /// When the zone was last in sync with the DnsRecords.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// A DNS record type: a department declares any but `DNAME`.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub enum DnsRecordType {
    A,
    AAAA,
    CNAME,
    TXT,
    MX,
    SRV,
    CAA,
    /// A whole subdomain answering for another (RFC 6672): only pdc's
    /// reorganizations declare one, for a unit whose every name moves; a
    /// ValidatingAdmissionPolicy refuses it from anyone else.
    DNAME,
}

impl DnsZoneSpec {
    /// Whether `fqdn` (dot-terminated or not) lies in this zone.
    pub fn holds(&self, fqdn: &str) -> bool {
        let name = fqdn.trim_end_matches('.');
        let zone = self.zone.trim_end_matches('.');
        name == zone || name.strip_suffix(zone).is_some_and(|rest| rest.ends_with('.'))
    }
}

impl DnsRecord {
    /// The set this record declares under the department's `subdomain`, as pdc
    /// writes it (fully qualified name, canonical values, its TTL or `default_ttl`),
    /// or why it cannot be written, in words for the department.
    pub fn rrset(&self, subdomain: &str, default_ttl: u32) -> Result<pdc_core::dnsplan::RRset, String> {
        use pdc_core::dnsplan;
        let name = dnsplan::fqdn_in(&self.spec.name, subdomain).map_err(|e| e.to_string())?;
        let rtype = self.spec.rtype.core();
        let values = self.spec.values.iter().map(|v| dnsplan::canonical_value(rtype, v)).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
        let ttl = self.spec.ttl.and_then(|t| u32::try_from(t).ok()).unwrap_or(default_ttl);
        Ok(dnsplan::RRset { name, rtype, ttl, values })
    }

    /// The (name, type) this record was last programmed with, if any: the set pdc
    /// removes when the record is deleted or renamed.
    pub fn programmed_key(&self) -> Option<(String, pdc_core::dnsplan::RecordType)> {
        let st = self.status.as_ref()?;
        Some((st.fqdn.clone()?, st.programmed_type?.core()))
    }
}

impl DnsRecordType {
    /// The type a DnsRecord declares for a pdc-core type (`None` for PTR, which only
    /// the reverse zones' writer makes).
    pub fn from_core(t: pdc_core::dnsplan::RecordType) -> Option<DnsRecordType> {
        use pdc_core::dnsplan::RecordType as T;
        Some(match t {
            T::A => DnsRecordType::A,
            T::AAAA => DnsRecordType::AAAA,
            T::CNAME => DnsRecordType::CNAME,
            T::TXT => DnsRecordType::TXT,
            T::MX => DnsRecordType::MX,
            T::SRV => DnsRecordType::SRV,
            T::CAA => DnsRecordType::CAA,
            T::DNAME => DnsRecordType::DNAME,
            T::PTR => return None,
        })
    }

    /// The same type in pdc-core's DNS plan.
    pub fn core(self) -> pdc_core::dnsplan::RecordType {
        use pdc_core::dnsplan::RecordType as T;
        match self {
            DnsRecordType::A => T::A,
            DnsRecordType::AAAA => T::AAAA,
            DnsRecordType::CNAME => T::CNAME,
            DnsRecordType::TXT => T::TXT,
            DnsRecordType::MX => T::MX,
            DnsRecordType::SRV => T::SRV,
            DnsRecordType::CAA => T::CAA,
            DnsRecordType::DNAME => T::DNAME,
        }
    }
}

/// A record inside the department's subdomain. A ValidatingAdmissionPolicy refuses
/// names outside the subdomain recorded on the namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "pdc.io",
    version = "v1alpha1",
    kind = "DnsRecord",
    plural = "dnsrecords",
    shortname = "rec",
    namespaced,
    status = "DnsRecordStatus",
    printcolumn(name = "FQDN", type_ = "string", json_path = ".status.fqdn"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "Values", type_ = "string", json_path = ".spec.values"),
    printcolumn(name = "Programmed", type_ = "string", json_path = ".status.conditions[?(@.type==\"Programmed\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("!(self.spec.type in ['CNAME', 'DNAME']) || size(self.spec.values) == 1").message("a CNAME or DNAME has exactly one value")
)]
#[serde(rename_all = "camelCase")]
pub struct DnsRecordSpec {
    /// The name, relative to the department's subdomain (`www`, `@` for the subdomain
    /// itself) or a full name inside it (`www.so-y-te.daklak.gov.vn.`). ASCII only:
    /// `pdcctl slug` turns a Vietnamese name into a label.
    #[x_kube(validation = Rule::new("self.matches('^(@|[*]|[*][.][a-zA-Z0-9_.-]+|[a-zA-Z0-9_]([a-zA-Z0-9_.-]*[a-zA-Z0-9_.])?)$')").message("name must be ASCII letters, digits, '-', '_' and dots (no diacritics: run `pdcctl slug \"<name>\"` for a label), or @ for the subdomain itself"))]
    #[schemars(length(max = 253))]
    pub name: String,
    /// The record type.
    #[serde(rename = "type")]
    pub rtype: DnsRecordType,
    /// TTL in seconds (default: the zone's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 604800").message("ttl must be between 0 and 604800 seconds"))]
    pub ttl: Option<i32>,
    /// The values, e.g. `["10.15.0.5"]`, `["10 mail.daklak.gov.vn."]`.
    #[schemars(length(min = 1, max = 64), inner(length(max = 4000)))]
    pub values: Vec<String>,
}

/// What the operator observed of a DnsRecord.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DnsRecordStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Programmed`: the server answers with these values.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The fully qualified name, once programmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    /// The type programmed at `fqdn`; with it, the set pdc removes when the record
    /// is deleted or renamed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub programmed_type: Option<DnsRecordType>,
    /// When the server last changed for this record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}
