//! The address plan: sites, network zones, and the allocation objects whose names are
//! the prefix or address they hold, so the API server's name uniqueness makes a
//! double allocation impossible.

use kube::{CustomResource, KubeSchema};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde::{Deserialize, Serialize};

/// CEL: an IPv4 CIDR with its host bits zero.
const V4_CIDR: &str = "isCIDR(self) && cidr(self).ip().family() == 4 && cidr(self).masked() == cidr(self)";
const V4_CIDR_MSG: &str = "must be an IPv4 prefix in CIDR notation with the host bits zero, e.g. 10.20.0.0/16";
/// CEL: an IPv6 CIDR with its host bits zero.
const V6_CIDR: &str = "isCIDR(self) && cidr(self).ip().family() == 6 && cidr(self).masked() == cidr(self)";
const V6_CIDR_MSG: &str = "must be an IPv6 prefix in CIDR notation with the host bits zero, e.g. 2001:db8:20::/48";
/// CEL: an object name that is a DNS label.
const LABEL: &str = "self.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$')";

/// What a data centre is for.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SiteRole {
    /// Runs the province's services.
    #[default]
    Primary,
    /// Receives replicas and takes over on failover.
    Standby,
}

/// A data centre: its role, where it is, and the address blocks its zones' prefixes
/// are carved from.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "pdc.io",
    version = "v1alpha1",
    kind = "Site",
    plural = "sites",
    status = "SiteStatus",
    printcolumn(name = "Display", type_ = "string", json_path = ".spec.displayName"),
    printcolumn(name = "Role", type_ = "string", json_path = ".spec.role"),
    printcolumn(name = "Location", type_ = "string", json_path = ".spec.location"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new(LABEL_ON_NAME).message("a Site's name must be a DNS label, e.g. daklak or phuyen")
)]
#[serde(rename_all = "camelCase")]
pub struct SiteSpec {
    /// The data centre's name, e.g. `Trung tâm tích hợp dữ liệu Đắk Lắk`.
    #[x_kube(validation = Rule::new("size(self) > 0 && size(self) <= 200").message("displayName must be 1 to 200 characters"))]
    #[schemars(length(max = 200))]
    pub display_name: String,
    /// `Primary` or `Standby`.
    #[serde(default)]
    pub role: SiteRole,
    /// Where it is, e.g. `Buôn Ma Thuột`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    pub location: Option<String>,
    /// IPv4 blocks of this site. When given, every zone prefix at this site must lie inside one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(b, isCIDR(b) && cidr(b).ip().family() == 4 && cidr(b).masked() == cidr(b))").message("every IPv4 block must be an IPv4 prefix with the host bits zero, e.g. 10.20.0.0/16"))]
    #[schemars(length(max = 16), inner(length(max = 18)))]
    pub ipv4_blocks: Vec<String>,
    /// IPv6 blocks of this site. When given, every zone prefix at this site must lie inside one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(b, isCIDR(b) && cidr(b).ip().family() == 6 && cidr(b).masked() == cidr(b))").message("every IPv6 block must be an IPv6 prefix with the host bits zero, e.g. 2001:db8:20::/44"))]
    #[schemars(length(max = 16), inner(length(max = 43)))]
    pub ipv6_blocks: Vec<String>,
    /// How the operator at another site reaches this site's cluster: a Secret in the
    /// operator's namespace holding a kubeconfig (DR replication and failover).
    /// Absent for the site the operator itself runs at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_secret: Option<KubeconfigSecretRef>,
}

/// A Secret with a kubeconfig, in the operator's own namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubeconfigSecretRef {
    /// The Secret's name.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$')").message("name must be a Secret name"))]
    #[schemars(length(max = 253))]
    pub name: String,
    /// The key holding the kubeconfig (`kubeconfig` by default).
    #[serde(default = "kubeconfig_key")]
    #[schemars(length(max = 253))]
    pub key: String,
}

fn kubeconfig_key() -> String {
    "kubeconfig".into()
}

const LABEL_ON_NAME: &str = "self.metadata.name.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$')";

/// What the operator observed of a Site.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SiteStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// A separated network zone (DMZ, application servers, database servers,
/// management, the government network TSLCD, …): a VLAN with an IPv4 and an IPv6
/// prefix at each site, from which every Department that may use the zone gets a
/// subnet pair.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "pdc.io",
    version = "v1alpha1",
    kind = "NetworkZone",
    plural = "networkzones",
    shortname = "zone",
    status = "NetworkZoneStatus",
    printcolumn(name = "Display", type_ = "string", json_path = ".spec.displayName"),
    printcolumn(name = "VLAN", type_ = "integer", json_path = ".spec.vlan"),
    printcolumn(name = "Internet", type_ = "boolean", json_path = ".spec.internetFacing"),
    printcolumn(name = "Subnets", type_ = "string", json_path = ".status.summary"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new(LABEL_ON_NAME).message("a NetworkZone's name must be a DNS label, e.g. dmz, app, data, mgmt, tslcd"),
    validation = Rule::new("self.spec.sites.all(s, !has(s.ipv4) || !isCIDR(s.ipv4) || cidr(s.ipv4).prefixLength() <= self.spec.subnetSizes.ipv4)").message("every site's IPv4 prefix must be at least as large as spec.subnetSizes.ipv4 (the department subnet)"),
    validation = Rule::new("self.spec.sites.all(s, !has(s.ipv6) || !isCIDR(s.ipv6) || cidr(s.ipv6).prefixLength() <= self.spec.subnetSizes.ipv6)").message("every site's IPv6 prefix must be at least as large as spec.subnetSizes.ipv6 (the department subnet)")
)]
#[serde(rename_all = "camelCase")]
pub struct NetworkZoneSpec {
    /// What the zone is, e.g. `Vùng DMZ – dịch vụ công`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    pub display_name: Option<String>,
    /// The zone's VLAN id.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 4094").message("vlan must be between 1 and 4094"))]
    pub vlan: i32,
    /// The zone's prefixes at each site. A site's prefixes cannot be changed or
    /// removed once set (renumbering is a new zone); a site, or a family at a site,
    /// can be added (e.g. IPv6 during the dual-stack rollout).
    #[x_kube(
        merge_strategy = ListMerge::Map(vec!["site".into()]),
        validation = Rule::new("oldSelf.all(o, self.exists(n, n.site == o.site && (!has(o.ipv4) || (has(n.ipv4) && n.ipv4 == o.ipv4)) && (!has(o.ipv6) || (has(n.ipv6) && n.ipv6 == o.ipv6))))").message("a site's prefixes cannot be changed or removed once set, because department subnets are carved from them; to renumber, create a new zone")
    )]
    #[schemars(length(min = 1, max = 8))]
    pub sites: Vec<ZoneSite>,
    /// Size of the subnet each department gets, per family. Fixed once set: every
    /// department subnet in a zone has the same size, so two can never partly overlap.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("subnetSizes cannot change once set; department subnets are carved at this size (create a new zone to change it)"))]
    pub subnet_sizes: SubnetSizes,
    /// Host numbers 1..N of every department subnet are kept back (1 is the
    /// gateway); addresses are handed out from N+1.
    #[serde(default = "default_reserved")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 64").message("reservedHosts must be between 1 (the gateway) and 64"))]
    pub reserved_hosts: i32,
    /// Whether the zone is reachable from the Internet (public services).
    #[serde(default)]
    pub internet_facing: bool,
    /// The ports the Internet reaches in an internet-facing zone; TCP 80 and 443 when
    /// none are given. The zone's other rules (SSH from the management zone, say) are
    /// never opened to the Internet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub internet_ports: Vec<ZonePort>,
    /// Who may reach machines in this zone, and on which ports. Everything else is denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub reachability: Vec<ReachRule>,
    /// DNS resolvers handed to machines in the zone (cloud-init network data).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(r, isIP(r))").message("every resolver must be an IPv4 or IPv6 address"))]
    #[schemars(length(max = 8), inner(length(max = 45)))]
    pub resolvers: Vec<String>,
    /// The zone's addresses are assigned outside pdc (the government data network
    /// TSLCD, planned centrally): pdc only records the plan imported with `pdcctl ip
    /// import`. No department subnet is carved from it and no AddressClaim is bound in
    /// it; the allocations it holds are all external.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub externally_assigned: bool,
    /// Linux bridge the zone's VLAN is attached to on the nodes (Multus bridge CNI);
    /// defaults to `br-<zone name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-zA-Z0-9._-]{1,15}$')").message("bridge must be a Linux interface name of at most 15 characters"))]
    #[schemars(length(max = 15))]
    pub bridge: Option<String>,
    /// Where the zone is in switching IPv4 off: `Active` (default; dual-stack),
    /// `Deprecated` (new AddressClaims get IPv6 only, a claim asking IPv4 itself is
    /// refused, a department newly allowed the zone gets no IPv4 subnet; IPv4
    /// addresses and subnets already held stay) or `Off` (likewise, and `pdcctl
    /// report ipv4-phase` lists the IPv4 addresses still held, to be released).
    #[serde(default, skip_serializing_if = "Ipv4Phase::is_active")]
    pub ipv4_phase: Ipv4Phase,
}

/// A zone's phase in switching IPv4 off (the IPv6 rollout's last step).
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Ipv4Phase {
    /// Dual-stack: claims get what they ask for.
    #[default]
    Active,
    /// New claims get IPv6 only; IPv4 addresses already held stay.
    Deprecated,
    /// No IPv4 is handed out; the IPv4 addresses still held are to be released.
    Off,
}

impl Ipv4Phase {
    fn is_active(&self) -> bool {
        *self == Ipv4Phase::Active
    }

    /// The same phase in pdc-core's reports and claim rule.
    pub fn core(self) -> pdc_core::report::Ipv4Phase {
        match self {
            Ipv4Phase::Active => pdc_core::report::Ipv4Phase::Active,
            Ipv4Phase::Deprecated => pdc_core::report::Ipv4Phase::Deprecated,
            Ipv4Phase::Off => pdc_core::report::Ipv4Phase::Off,
        }
    }
}

fn default_reserved() -> i32 {
    3
}

/// A zone's prefixes at one site.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZoneSite {
    /// The Site's name.
    #[x_kube(validation = Rule::new(LABEL).message("site must be a Site's name"))]
    #[schemars(length(max = 63))]
    pub site: String,
    /// The zone's IPv4 prefix at this site, e.g. `10.20.0.0/20`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(V4_CIDR).message(V4_CIDR_MSG))]
    #[schemars(length(max = 18))]
    pub ipv4: Option<String>,
    /// The zone's IPv6 prefix at this site, e.g. `2001:db8:20::/48`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(V6_CIDR).message(V6_CIDR_MSG))]
    #[schemars(length(max = 43))]
    pub ipv6: Option<String>,
}

/// Prefix length of a department subnet, per family.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SubnetSizes {
    /// IPv4 prefix length, 16 to 30 (default 26: 64 addresses).
    #[serde(default = "default_v4")]
    #[x_kube(validation = Rule::new("self >= 16 && self <= 30").message("subnetSizes.ipv4 must be between 16 and 30"))]
    pub ipv4: i32,
    /// IPv6 prefix length, 48 to 120 (default 64).
    #[serde(default = "default_v6")]
    #[x_kube(validation = Rule::new("self >= 48 && self <= 120").message("subnetSizes.ipv6 must be between 48 and 120"))]
    pub ipv6: i32,
}

fn default_v4() -> i32 {
    26
}
fn default_v6() -> i32 {
    64
}

impl Default for SubnetSizes {
    fn default() -> Self {
        SubnetSizes { ipv4: default_v4(), ipv6: default_v6() }
    }
}

/// Who may reach a zone, and on which ports.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReachRule {
    /// Zones whose machines may connect (the zone's own name allows traffic inside it).
    #[x_kube(validation = Rule::new("self.all(z, z.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'))").message("fromZones must be NetworkZone names"))]
    #[schemars(length(min = 1, max = 32), inner(length(max = 63)))]
    pub from_zones: Vec<String>,
    /// Ports allowed; none means every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub ports: Vec<ZonePort>,
}

/// A port or port range.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.endPort) || self.endPort >= self.port").message("endPort must not be below port"))]
pub struct ZonePort {
    /// `TCP`, `UDP` or `SCTP`.
    #[serde(default)]
    pub protocol: Protocol,
    /// Port number.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("port must be between 1 and 65535"))]
    pub port: i32,
    /// Last port of a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("endPort must be between 1 and 65535"))]
    pub end_port: Option<i32>,
}

/// A transport protocol.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[allow(clippy::upper_case_acronyms)]
pub enum Protocol {
    #[default]
    TCP,
    UDP,
    SCTP,
}

impl NetworkZone {
    /// Every prefix of the zone: IPv4 then IPv6, site by site.
    pub fn prefixes(&self) -> Vec<String> {
        let v4 = self.spec.sites.iter().filter_map(|s| s.ipv4.clone());
        v4.chain(self.spec.sites.iter().filter_map(|s| s.ipv6.clone())).collect()
    }

    /// The ports the Internet reaches, when the zone faces it.
    pub fn internet_ports(&self) -> Option<Vec<ZonePort>> {
        let web = |port| ZonePort { protocol: Protocol::TCP, port, end_port: None };
        self.spec.internet_facing.then(|| if self.spec.internet_ports.is_empty() { vec![web(80), web(443)] } else { self.spec.internet_ports.clone() })
    }

    /// The zone as the reachability matrix sees it.
    pub fn matrix_zone(&self) -> pdc_core::zonerules::Zone {
        let port = |p: &ZonePort| pdc_core::zonerules::Port {
            protocol: p.protocol.as_str().to_string(),
            port: u16::try_from(p.port).unwrap_or(0),
            end_port: p.end_port.and_then(|e| u16::try_from(e).ok()),
        };
        pdc_core::zonerules::Zone {
            name: self.metadata.name.clone().unwrap_or_default(),
            prefixes: self.prefixes(),
            internet: self.internet_ports().map(|p| p.iter().map(port).collect()),
            rules: self
                .spec
                .reachability
                .iter()
                .map(|r| pdc_core::zonerules::Reach { from: r.from_zones.clone(), ports: r.ports.iter().map(port).collect() })
                .collect(),
        }
    }
}

/// The province's reachability matrix (see [`pdc_core::zonerules`]).
pub fn zone_flows<'a>(zones: impl IntoIterator<Item = &'a NetworkZone>) -> Vec<pdc_core::zonerules::Flow> {
    let z: Vec<pdc_core::zonerules::Zone> = zones.into_iter().map(NetworkZone::matrix_zone).collect();
    pdc_core::zonerules::flows(&z)
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::TCP => "TCP",
            Protocol::UDP => "UDP",
            Protocol::SCTP => "SCTP",
        }
    }
}

/// What the operator observed of a NetworkZone.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NetworkZoneStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the prefixes are valid, inside their site's blocks and overlap no other zone.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Utilisation per site and family.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<ZoneUsage>,
    /// Department subnets allocated, per family, e.g. `v4 12/64, v6 12/65536`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// Utilisation of a zone at one site in one family. Counts are decimal strings:
/// an IPv6 zone holds more addresses than a JSON number can carry.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ZoneUsage {
    /// The Site.
    pub site: String,
    /// `IPv4` or `IPv6`.
    pub family: String,
    /// The zone's prefix at the site.
    pub prefix: String,
    /// Department subnets allocated from the prefix.
    pub subnets_allocated: String,
    /// Department subnets the prefix holds.
    pub subnets_total: String,
    /// Addresses allocated inside those subnets.
    pub addresses_allocated: String,
    /// Usable addresses inside the allocated subnets.
    pub addresses_total: String,
}

/// A prefix handed to a Department: one object per prefix, named after it
/// (`10.20.1.64-26`, `2001-db8-20-1-0-0-0-0-64`). Written only by the operator.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "pdc.io",
    version = "v1alpha1",
    kind = "SubnetAllocation",
    plural = "subnetallocations",
    shortname = "suba",
    printcolumn(name = "Prefix", type_ = "string", json_path = ".spec.prefix"),
    printcolumn(name = "Zone", type_ = "string", json_path = ".spec.zone"),
    printcolumn(name = "Site", type_ = "string", json_path = ".spec.site"),
    printcolumn(name = "Department", type_ = "string", json_path = ".spec.department"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.spec == oldSelf.spec").message("an allocation cannot be changed; release it and allocate another")
)]
#[serde(rename_all = "camelCase")]
pub struct SubnetAllocationSpec {
    /// The prefix, in CIDR notation.
    #[x_kube(validation = Rule::new("isCIDR(self) && cidr(self).masked() == cidr(self)").message("prefix must be a CIDR with the host bits zero"))]
    #[schemars(length(max = 43))]
    pub prefix: String,
    /// The NetworkZone it was carved from.
    #[schemars(length(max = 63))]
    pub zone: String,
    /// The Site whose zone prefix it was carved from.
    #[schemars(length(max = 63))]
    pub site: String,
    /// The Department it belongs to.
    #[schemars(length(max = 63))]
    pub department: String,
}

/// An address handed to an AddressClaim: one object per address, named after it
/// (`10.20.1.90`, `2001-db8-20-1-0-0-0-26`). Written only by the operator.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "pdc.io",
    version = "v1alpha1",
    kind = "AddressAllocation",
    plural = "addressallocations",
    shortname = "addra",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.address"),
    printcolumn(name = "Zone", type_ = "string", json_path = ".spec.zone"),
    printcolumn(name = "Site", type_ = "string", json_path = ".spec.site"),
    printcolumn(name = "Department", type_ = "string", json_path = ".spec.department"),
    printcolumn(name = "Claim", type_ = "string", json_path = ".spec.claim.name"),
    printcolumn(name = "External", type_ = "string", json_path = ".spec.external.role"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.spec == oldSelf.spec").message("an allocation cannot be changed; release it and allocate another"),
    validation = Rule::new("!has(self.spec.external) || (self.spec.claim.name == '' && self.spec.claim.uid == '')").message("an external allocation belongs to no AddressClaim: spec.claim must be empty")
)]
#[serde(rename_all = "camelCase")]
pub struct AddressAllocationSpec {
    /// The address.
    #[x_kube(validation = Rule::new("isIP(self)").message("address must be an IPv4 or IPv6 address"))]
    #[schemars(length(max = 45))]
    pub address: String,
    /// The department subnet it is in.
    #[schemars(length(max = 43))]
    pub subnet: String,
    /// The NetworkZone.
    #[schemars(length(max = 63))]
    pub zone: String,
    /// The Site.
    #[schemars(length(max = 63))]
    pub site: String,
    /// The Department (and namespace) of the claim.
    #[schemars(length(max = 63))]
    pub department: String,
    /// The AddressClaim holding it.
    pub claim: ClaimRef,
    /// The host name the address answers to (for PTR records), when the claim gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub hostname: Option<String>,
    /// Set on an address in use outside pdc, imported from the province's declared
    /// plan (`pdcctl ip import`): held, never handed to a claim, released only by
    /// `pdcctl ip release-external`. Its `claim` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalUse>,
}

/// What holds an external address.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExternalUse {
    /// What it is: `server`, `network-point`, `gateway`, `firewall`, …
    #[schemars(length(max = 63))]
    pub role: String,
    /// The plan file it was imported from (its name, without directories).
    #[schemars(length(max = 253))]
    pub plan: String,
    /// A note from the plan (the machine's or the point's description).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 500))]
    pub description: Option<String>,
}

/// The claim an address belongs to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClaimRef {
    /// Namespace of the AddressClaim.
    #[schemars(length(max = 63))]
    pub namespace: String,
    /// Name of the AddressClaim.
    #[schemars(length(max = 253))]
    pub name: String,
    /// UID of the AddressClaim: a claim deleted and created again under the same name is another claim.
    #[schemars(length(max = 64))]
    pub uid: String,
}

/// Which addresses a claim asks for.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IpFamilies {
    /// An IPv4 address and its IPv6 partner (the pairing rule).
    #[default]
    DualStack,
    /// IPv4 only.
    IPv4,
    /// IPv6 only.
    IPv6,
}

/// A request for an address pair (or one address) in a zone at a site, for one
/// network interface. Lives in a Department's namespace; the zone must be one the
/// Department may use.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "pdc.io",
    version = "v1alpha1",
    kind = "AddressClaim",
    plural = "addressclaims",
    shortname = "addrc",
    namespaced,
    status = "AddressClaimStatus",
    printcolumn(name = "Zone", type_ = "string", json_path = ".spec.zone"),
    printcolumn(name = "Site", type_ = "string", json_path = ".status.site"),
    printcolumn(name = "IPv4", type_ = "string", json_path = ".status.ipv4.address"),
    printcolumn(name = "IPv6", type_ = "string", json_path = ".status.ipv6.address"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.spec == oldSelf.spec").message("an AddressClaim cannot be changed once made; delete it and create another"),
    validation = Rule::new("!has(self.spec.ipv4Address) || self.spec.families != 'IPv6'").message("ipv4Address cannot be given for an IPv6-only claim"),
    validation = Rule::new("!has(self.spec.ipv6Address) || self.spec.families != 'IPv4'").message("ipv6Address cannot be given for an IPv4-only claim")
)]
#[serde(rename_all = "camelCase")]
pub struct AddressClaimSpec {
    /// The NetworkZone, e.g. `dmz`.
    #[x_kube(validation = Rule::new(LABEL).message("zone must be a NetworkZone's name, e.g. dmz"))]
    #[schemars(length(max = 63))]
    pub zone: String,
    /// The Site; the Primary site when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(LABEL).message("site must be a Site's name"))]
    #[schemars(length(max = 63))]
    pub site: Option<String>,
    /// `DualStack` (default), `IPv4` or `IPv6`.
    #[serde(default)]
    pub families: IpFamilies,
    /// A specific IPv4 address inside the department's subnet; its IPv6 partner follows the pairing rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isIP(self) && ip(self).family() == 4").message("ipv4Address must be an IPv4 address such as 10.20.1.90"))]
    #[schemars(length(max = 15))]
    pub ipv4_address: Option<String>,
    /// A specific IPv6 address inside the department's subnet, following the pairing rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isIP(self) && ip(self).family() == 6").message("ipv6Address must be an IPv6 address such as 2001:db8:20:1::26"))]
    #[schemars(length(max = 45))]
    pub ipv6_address: Option<String>,
    /// Host name the addresses answer to (a DNS label), for reverse records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(LABEL).message("hostname must be a DNS label: lowercase letters, digits and '-', no diacritics"))]
    #[schemars(length(max = 63))]
    pub hostname: Option<String>,
}

/// What the operator observed of an AddressClaim.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AddressClaimStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the addresses are allocated.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The Site the addresses are at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// The IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<ClaimedAddress>,
    /// The IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<ClaimedAddress>,
}

/// An allocated address with what a machine needs to configure it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClaimedAddress {
    /// The address.
    pub address: String,
    /// Prefix length of its subnet.
    pub prefix_length: i32,
    /// The subnet's gateway.
    pub gateway: String,
    /// The subnet, in CIDR notation.
    pub subnet: String,
}

/// A department's subnet pair in one zone at one site.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DepartmentSubnet {
    /// The NetworkZone.
    pub zone: String,
    /// The Site.
    pub site: String,
    /// The IPv4 subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    /// The IPv6 subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
}
