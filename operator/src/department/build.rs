//! Builds the objects a Department owns from its spec and its Province. Pure: no
//! client, so every object is checked by fixture tests.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use pdc_api::labels::{self as l};
use pdc_api::{Department, DepartmentSubnet, Lifecycle, Province, Subjects};
use pdc_core::quantity;

/// Names of the objects created in every department namespace.
pub const QUOTA_NAME: &str = "pdc-guest-quota";
pub const LIMITS_NAME: &str = "pdc-defaults";
pub const DENY_POLICY: &str = "pdc-default-deny";
/// Egress for CDI's importer pods: the image servers over HTTP(S).
pub const IMPORTER_POLICY: &str = "pdc-allow-cdi-importer";
pub const ALLOW_POLICY: &str = "pdc-allow-namespace-and-dns";

/// The service accounts (in the operator's namespace) bound inside every department
/// namespace: the operator itself, and the identity the other DR site's operator uses
/// here. Cluster-wide they hold only reads and what makes a namespace; their writes
/// in a department namespace come from these bindings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    pub namespace: String,
    pub operator: String,
    pub dr_peer: Option<String>,
}

/// Everything a Department owns.
#[derive(Debug, Clone)]
pub struct Children {
    pub namespace: Namespace,
    /// The operator's and the DR peer's bindings: applied first, since the operator
    /// writes the rest with the rights they grant.
    pub own_bindings: Vec<RoleBinding>,
    pub quota: ResourceQuota,
    pub limits: LimitRange,
    pub bindings: Vec<RoleBinding>,
    pub policies: Vec<NetworkPolicy>,
}

/// Labels carried by every object a Department owns.
pub fn labels(dept: &Department, subdomain: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::from([
        (l::MANAGED_BY.to_string(), l::MANAGED_BY_VALUE.to_string()),
        (l::PART_OF.to_string(), "pdc".to_string()),
        (l::DEPARTMENT.to_string(), dept.name_any()),
        (l::CODE.to_string(), dept.spec.code.clone()),
        (l::KIND.to_string(), dept.spec.kind.as_str().to_string()),
    ]);
    // A label value holds at most 63 characters; the annotation always has the subdomain.
    if subdomain.len() <= 63 {
        m.insert(l::SUBDOMAIN.to_string(), subdomain.to_string());
    }
    m
}

fn meta(dept: &Department, name: &str, namespace: Option<&str>, subdomain: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels(dept, subdomain)),
        owner_references: dept.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    }
}

fn q(s: impl Into<String>) -> Quantity {
    Quantity(s.into())
}

/// Build every child. Assumes [`super::validate::problems`] returned nothing; a
/// quantity that still fails to parse counts as zero (never more than asked).
pub fn children(dept: &Department, province: &Province, bound: &Bound, subnets: &[DepartmentSubnet]) -> Children {
    let ns = dept.name_any();
    let subdomain = dept.subdomain_in(&province.spec.domain);
    let namespace = namespace(dept, province, subnets);

    let sa = |name: &str| Subject { kind: "ServiceAccount".into(), name: name.to_string(), namespace: Some(bound.namespace.clone()), api_group: None };
    let mut own_bindings = vec![binding(dept, &ns, &subdomain, l::OPERATOR_NAMESPACED_CLUSTERROLE, vec![sa(&bound.operator)])];
    if let Some(peer) = &bound.dr_peer {
        own_bindings.push(binding(dept, &ns, &subdomain, l::DR_PEER_NAMESPACED_CLUSTERROLE, vec![sa(peer)]));
    }
    Children {
        namespace,
        own_bindings,
        quota: resource_quota(dept, province, &ns, &subdomain),
        limits: limit_range(dept, &ns, &subdomain),
        bindings: people_bindings(dept, &ns, &subdomain),
        policies: network_policies(dept, &ns, &subdomain),
    }
}

/// The department's namespace. Its annotations carry what the admission policies
/// check a department's requests against (CEL sees the namespace, not the
/// Department): the subdomain, the zones it may use and its subnets.
pub fn namespace(dept: &Department, province: &Province, subnets: &[DepartmentSubnet]) -> Namespace {
    let subdomain = dept.subdomain_in(&province.spec.domain);
    let mut meta = meta(dept, &dept.name_any(), None, &subdomain);
    let cidrs: Vec<String> =
        subnets.iter().flat_map(|s| [&s.ipv4, &s.ipv6].into_iter().flatten().map(move |c| format!("{}={c}", s.zone))).collect();
    meta.annotations = Some(BTreeMap::from([
        (l::SUBDOMAIN.to_string(), subdomain),
        ("pdc.io/display-name".to_string(), dept.spec.display_name.clone()),
        (l::ZONES.to_string(), dept.spec.zones.join(",")),
        (l::SUBNETS.to_string(), cidrs.join(",")),
        (l::LIFECYCLE.to_string(), format!("{:?}", dept.spec.lifecycle)),
    ]));
    if let Some(act) = dept.annotations().get(l::REORGANIZATION)
        && let Some(a) = meta.annotations.as_mut()
    {
        a.insert(l::REORGANIZATION.to_string(), act.clone());
    }
    Namespace { metadata: meta, ..Default::default() }
}

/// Guest units → ResourceQuota. VMs' CPU and memory (plus the per-VM overhead),
/// storage per tier on the tier's StorageClass (tiers not granted get zero), VM
/// count, and public addresses as LoadBalancer services.
fn resource_quota(dept: &Department, province: &Province, ns: &str, subdomain: &str) -> ResourceQuota {
    let gq = &dept.spec.quota;
    let vms = u128::try_from(gq.vms.max(0)).unwrap_or(0);
    let memory = quantity::parse(&gq.memory).unwrap_or(0);
    let overhead = quantity::parse(&province.spec.vm_memory_overhead).unwrap_or(0);
    let mem_total = memory.saturating_add(overhead.saturating_mul(vms));
    let mut hard = BTreeMap::from([
        ("requests.cpu".to_string(), q(gq.vcpu.max(0).to_string())),
        ("limits.cpu".to_string(), q(gq.vcpu.max(0).to_string())),
        ("requests.memory".to_string(), q(quantity::format_bytes(mem_total))),
        ("limits.memory".to_string(), q(quantity::format_bytes(mem_total))),
        // Twice the VMs: a DR drill starts a copy of each protected VM beside the
        // halted standby copy at the standby site. pdc's own ledger still charges
        // each TenantVM once, so no department runs more than `quota.vms` VMs.
        ("count/virtualmachines.kubevirt.io".to_string(), q(gq.vms.max(0).saturating_mul(2).to_string())),
        ("services.loadbalancers".to_string(), q(gq.public_addresses.max(0).to_string())),
    ]);
    // Storage likewise twice the department's: at a DR standby site a protected disk
    // has its replica claim and, during a drill or after a failover, the disk restored
    // from it. pdc's ledger charges each disk once against the department's quota.
    let mut total: u128 = 0;
    for tier in &province.spec.storage_tiers {
        let bytes = gq.storage.get(&tier.name).and_then(|s| quantity::parse(s).ok()).unwrap_or(0).saturating_mul(2);
        total = total.saturating_add(bytes);
        hard.insert(format!("{}.storageclass.storage.k8s.io/requests.storage", tier.storage_class), q(quantity::format_bytes(bytes)));
    }
    hard.insert("requests.storage".to_string(), q(quantity::format_bytes(total)));
    ResourceQuota {
        metadata: meta(dept, QUOTA_NAME, Some(ns), subdomain),
        spec: Some(ResourceQuotaSpec { hard: Some(hard), ..Default::default() }),
        ..Default::default()
    }
}

/// Defaults for containers that come without requests (helper pods, importers).
fn limit_range(dept: &Department, ns: &str, subdomain: &str) -> LimitRange {
    let item = LimitRangeItem {
        type_: "Container".into(),
        default: Some(BTreeMap::from([("cpu".into(), q("500m")), ("memory".into(), q("512Mi"))])),
        default_request: Some(BTreeMap::from([("cpu".into(), q("100m")), ("memory".into(), q("128Mi"))])),
        ..Default::default()
    };
    LimitRange {
        metadata: meta(dept, LIMITS_NAME, Some(ns), subdomain),
        spec: Some(LimitRangeSpec { limits: vec![item] }),
    }
}

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The admins' and viewers' bindings. Once a unit is no longer Active (a
/// reorganization retires it) its admins become viewers: the admin binding keeps its
/// name and role (a RoleBinding's role cannot change) with no subjects, and the
/// viewer binding names both.
fn people_bindings(dept: &Department, ns: &str, subdomain: &str) -> Vec<RoleBinding> {
    let s = &dept.spec;
    if s.lifecycle == Lifecycle::Active {
        return vec![role_binding(dept, ns, subdomain, l::ADMIN_CLUSTERROLE, &s.admins), role_binding(dept, ns, subdomain, l::VIEWER_CLUSTERROLE, &s.viewers)];
    }
    let mut viewers = s.viewers.clone();
    viewers.users.extend(s.admins.users.iter().filter(|u| !s.viewers.users.contains(u)).cloned());
    viewers.groups.extend(s.admins.groups.iter().filter(|g| !s.viewers.groups.contains(g)).cloned());
    vec![role_binding(dept, ns, subdomain, l::ADMIN_CLUSTERROLE, &Subjects::default()), role_binding(dept, ns, subdomain, l::VIEWER_CLUSTERROLE, &viewers)]
}

fn role_binding(dept: &Department, ns: &str, subdomain: &str, role: &str, who: &Subjects) -> RoleBinding {
    let subject = |kind: &str, name: &String| Subject { kind: kind.into(), name: name.clone(), api_group: Some(RBAC_GROUP.into()), namespace: None };
    let subjects = who.users.iter().map(|u| subject("User", u)).chain(who.groups.iter().map(|g| subject("Group", g))).collect();
    binding(dept, ns, subdomain, role, subjects)
}

/// A RoleBinding named after the ClusterRole it binds in `ns`.
fn binding(dept: &Department, ns: &str, subdomain: &str, role: &str, subjects: Vec<Subject>) -> RoleBinding {
    RoleBinding {
        metadata: meta(dept, role, Some(ns), subdomain),
        role_ref: RoleRef { api_group: Some(RBAC_GROUP.into()), kind: "ClusterRole".into(), name: role.to_string() },
        subjects: Some(subjects),
    }
}

/// Default deny in both directions, then: traffic inside the namespace, and DNS.
/// Zone reachability policies are added per network zone.
fn network_policies(dept: &Department, ns: &str, subdomain: &str) -> Vec<NetworkPolicy> {
    let all = LabelSelector::default();
    let deny = NetworkPolicy {
        metadata: meta(dept, DENY_POLICY, Some(ns), subdomain),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(all.clone()),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ..Default::default()
        }),
    };
    let same_ns = NetworkPolicyPeer { pod_selector: Some(all.clone()), ..Default::default() };
    let kube_system = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([("kubernetes.io/metadata.name".into(), "kube-system".into())])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let dns_ports = ["UDP", "TCP"]
        .into_iter()
        .map(|p| NetworkPolicyPort { protocol: Some(p.into()), port: Some(IntOrString::Int(53)), ..Default::default() })
        .collect();
    let allow = NetworkPolicy {
        metadata: meta(dept, ALLOW_POLICY, Some(ns), subdomain),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(all),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule { from: Some(vec![same_ns.clone()]), ..Default::default() }]),
            egress: Some(vec![
                NetworkPolicyEgressRule { to: Some(vec![same_ns]), ..Default::default() },
                NetworkPolicyEgressRule { to: Some(vec![kube_system]), ports: Some(dns_ports) },
            ]),
        }),
    };
    // CDI imports a VM's image from a URL or registry with an importer pod in this
    // namespace (labels `app: containerized-data-importer`, `cdi.kubevirt.io: importer`):
    // it resolves the image host (the DNS rule above) and fetches over HTTP(S).
    let importer = NetworkPolicy {
        metadata: meta(dept, IMPORTER_POLICY, Some(ns), subdomain),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([("app".into(), "containerized-data-importer".into()), ("cdi.kubevirt.io".into(), "importer".into())])),
                ..Default::default()
            }),
            policy_types: Some(vec!["Egress".into()]),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(
                    ["0.0.0.0/0", "::/0"]
                        .into_iter()
                        .map(|c| NetworkPolicyPeer { ip_block: Some(IPBlock { cidr: c.into(), except: None }), ..Default::default() })
                        .collect(),
                ),
                ports: Some([80, 443].into_iter().map(|p| NetworkPolicyPort { protocol: Some("TCP".into()), port: Some(IntOrString::Int(p)), ..Default::default() }).collect()),
            }]),
            ..Default::default()
        }),
    };
    vec![deny, allow, importer]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use pdc_api::{DepartmentSpec, GuestQuota, ProvinceSpec, StorageTier};

    pub fn province() -> Province {
        let mut p = Province::new(
            "daklak",
            ProvinceSpec {
                display_name: "Đắk Lắk".into(),
                domain: "daklak.gov.vn".into(),
                legacy_domains: vec!["phuyen.gov.vn".into()],
                code_prefix: "H15".into(),
                absorbed_code_prefixes: vec!["H45".into()],
                storage_tiers: vec![
                    StorageTier { name: "ssd".into(), storage_class: "pdc-ssd".into(), description: None },
                    StorageTier { name: "hdd".into(), storage_class: "pdc-hdd".into(), description: None },
                ],
                default_ttl: 300,
                naming: Default::default(),
                vm_memory_overhead: "256Mi".into(),
                image_libraries: Vec::new(),
            },
        );
        p.metadata.uid = Some("p-uid".into());
        p
    }

    pub fn department() -> Department {
        let mut d = Department::new(
            "so-y-te",
            DepartmentSpec {
                display_name: "Sở Y tế".into(),
                code: "H15.23".into(),
                kind: Default::default(),
                subdomain: None,
                admins: Subjects { users: vec!["an@soyte".into()], groups: vec!["soyte-admins".into()] },
                viewers: Subjects::default(),
                quota: GuestQuota {
                    vcpu: 64,
                    memory: "128Gi".into(),
                    storage: BTreeMap::from([("ssd".into(), "1Ti".into())]),
                    vms: 10,
                    public_addresses: 2,
                },
                zones: Vec::new(),
                lifecycle: Default::default(),
                deletion_protection: false,
                successor: None,
                previous_codes: Vec::new(),
            },
        );
        d.metadata.uid = Some("d-uid".into());
        d
    }

    #[test]
    fn namespace_is_the_slug_and_carries_identity_labels() {
        let c = children(&department(), &province(), &bound(), &[]);
        let ns = &c.namespace.metadata;
        assert_eq!(ns.name.as_deref(), Some("so-y-te"));
        let lab = ns.labels.as_ref().unwrap();
        assert_eq!(lab[l::DEPARTMENT], "so-y-te");
        assert_eq!(lab[l::CODE], "H15.23");
        assert_eq!(lab[l::SUBDOMAIN], "so-y-te.daklak.gov.vn");
        assert_eq!(ns.annotations.as_ref().unwrap()["pdc.io/display-name"], "Sở Y tế");
        let mut d = department();
        d.spec.zones = vec!["app".into(), "dmz".into()];
        let subnet = |zone: &str, v4: &str, v6: Option<&str>| DepartmentSubnet {
            zone: zone.into(),
            site: "daklak".into(),
            ipv4: Some(v4.into()),
            ipv6: v6.map(str::to_string),
        };
        let with = namespace(&d, &province(), &[subnet("app", "10.15.3.0/24", Some("2001:db8:1500:3::/64")), subnet("dmz", "10.16.3.0/24", None)]);
        let a = with.metadata.annotations.unwrap();
        assert_eq!(a[l::ZONES], "app,dmz");
        assert_eq!(a[l::SUBNETS], "app=10.15.3.0/24,app=2001:db8:1500:3::/64,dmz=10.16.3.0/24");
        assert_eq!(ns.owner_references.as_ref().unwrap()[0].uid, "d-uid");
    }

    #[test]
    fn quota_is_in_guest_units_with_overhead_and_zero_for_ungranted_tiers() {
        let c = children(&department(), &province(), &bound(), &[]);
        let hard = c.quota.spec.unwrap().hard.unwrap();
        assert_eq!(hard["requests.cpu"].0, "64");
        // 128Gi guest memory + 10 VMs × 256Mi overhead = 130.5Gi
        assert_eq!(hard["requests.memory"].0, quantity::format_bytes((128u128 << 30) + 10 * (256u128 << 20)));
        assert_eq!(hard["pdc-ssd.storageclass.storage.k8s.io/requests.storage"].0, "2Ti", "a replica and a restored disk for each");
        assert_eq!(hard["pdc-hdd.storageclass.storage.k8s.io/requests.storage"].0, "0");
        assert_eq!(hard["requests.storage"].0, "2Ti");
        assert_eq!(hard["count/virtualmachines.kubevirt.io"].0, "20", "a drill copy beside each VM");
        assert_eq!(hard["services.loadbalancers"].0, "2");
    }

    pub fn bound() -> Bound {
        Bound { namespace: "pdc-system".into(), operator: "pdc-operator".into(), dr_peer: Some("pdc-dr-peer".into()) }
    }

    #[test]
    fn the_operator_and_the_dr_peer_are_bound_in_the_namespace_only() {
        let c = children(&department(), &province(), &bound(), &[]);
        let names: Vec<_> = c.own_bindings.iter().map(|b| (b.role_ref.name.as_str(), b.metadata.namespace.as_deref())).collect();
        assert_eq!(names, [(l::OPERATOR_NAMESPACED_CLUSTERROLE, Some("so-y-te")), (l::DR_PEER_NAMESPACED_CLUSTERROLE, Some("so-y-te"))]);
        let s = &c.own_bindings[0].subjects.as_ref().unwrap()[0];
        assert_eq!((s.kind.as_str(), s.name.as_str(), s.namespace.as_deref()), ("ServiceAccount", "pdc-operator", Some("pdc-system")));
        let without_peer = children(&department(), &province(), &Bound { dr_peer: None, ..bound() }, &[]);
        assert_eq!(without_peer.own_bindings.len(), 1);
    }

    #[test]
    fn bindings_name_users_and_groups() {
        let c = children(&department(), &province(), &bound(), &[]);
        let admin = &c.bindings[0];
        assert_eq!(admin.role_ref.name, l::ADMIN_CLUSTERROLE);
        let s = admin.subjects.as_ref().unwrap();
        assert_eq!((s[0].kind.as_str(), s[0].name.as_str()), ("User", "an@soyte"));
        assert_eq!((s[1].kind.as_str(), s[1].name.as_str()), ("Group", "soyte-admins"));
        assert!(c.bindings[1].subjects.as_ref().unwrap().is_empty());
    }

    #[test]
    fn default_deny_covers_both_directions() {
        let c = children(&department(), &province(), &bound(), &[]);
        let deny = c.policies[0].spec.as_ref().unwrap();
        assert_eq!(deny.policy_types.as_deref(), Some(&["Ingress".to_string(), "Egress".to_string()][..]));
        assert!(deny.ingress.is_none() && deny.egress.is_none());
    }

    #[test]
    fn validation_messages_say_what_to_change() {
        let p = province();
        let mut d = department();
        assert!(super::super::validate::problems(&d, &p).is_empty());
        d.spec.code = "H08.1".into();
        d.spec.quota.storage.insert("nvme".into(), "1Ti".into());
        d.spec.subdomain = Some("so-y-te.gialai.gov.vn".into());
        let msgs = super::super::validate::problems(&d, &p);
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(msgs[0].contains("H15 or H45"), "{}", msgs[0]);
        assert!(msgs[1].contains("not inside the province domain daklak.gov.vn"));
        assert!(msgs[2].contains("known tiers: ssd, hdd"));
        d.spec.code = "H45.7".into();
        assert_eq!(super::super::validate::problems(&d, &p).len(), 2);
    }
}
