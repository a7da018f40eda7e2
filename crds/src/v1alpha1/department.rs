use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde::{Deserialize, Serialize};

use super::{DOMAIN_RULE, QUANTITY_MESSAGE, QUANTITY_RULE};

/// A tenant: a provincial department, a commune or ward, or a central agency based in
/// the province. The object's name is its slug: the name of its namespace and the
/// first label of its subdomain (`so-y-te` → namespace `so-y-te`,
/// `so-y-te.daklak.gov.vn`). Names are unique, so two Departments can never share a
/// slug; `pdcctl slug "<Vietnamese name>"` suggests one.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "pdc.io",
    version = "v1alpha1",
    kind = "Department",
    plural = "departments",
    shortname = "dept",
    status = "DepartmentStatus",
    printcolumn(name = "Display", type_ = "string", json_path = ".spec.displayName"),
    printcolumn(name = "Code", type_ = "string", json_path = ".spec.code"),
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.kind"),
    printcolumn(name = "Subdomain", type_ = "string", json_path = ".status.subdomain"),
    printcolumn(name = "Lifecycle", type_ = "string", json_path = ".spec.lifecycle"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$')").message("a Department's name is its slug, its namespace name and the first label of its subdomain: at most 63 lowercase letters, digits and '-', without diacritics (run `pdcctl slug \"<name>\"` for a suggestion)"),
    validation = Rule::new("!has(self.spec.subdomain) || self.spec.subdomain.startsWith(self.metadata.name + '.')").message("spec.subdomain must start with the Department's name followed by a dot, e.g. so-y-te.daklak.gov.vn for Department so-y-te")
)]
#[serde(rename_all = "camelCase")]
pub struct DepartmentSpec {
    /// The unit's official name in Vietnamese, e.g. `Sở Y tế` or `Xã Cư M’gar`.
    #[x_kube(validation = Rule::new("size(self) > 0 && size(self) <= 200").message("displayName must be 1 to 200 characters"))]
    #[schemars(length(max = 200))]
    pub display_name: String,

    /// Electronic identifier code (Decision 20/2020/QĐ-TTg), e.g. `H15.23`: the
    /// province prefix, then up to four dotted groups of 1-3 digits.
    #[x_kube(validation = Rule::new("self.matches('^[A-Z][0-9]{2}(\\\\.[0-9]{1,3}){0,4}$')").message("code must look like H15.23: a province prefix (letter and two digits) and up to four dotted groups of 1-3 digits"))]
    #[schemars(length(max = 32))]
    pub code: String,

    /// What kind of body this is.
    #[serde(default)]
    pub kind: DepartmentKind,

    /// The DNS name the department's records live under. Defaults to
    /// `<name>.<province domain>`; when given it must lie inside the province domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(DOMAIN_RULE).message("subdomain must be a lowercase DNS name such as so-y-te.daklak.gov.vn"))]
    #[schemars(length(max = 253))]
    pub subdomain: Option<String>,

    /// Who administers the department's namespace (bound to ClusterRole `pdc-department-admin`).
    #[serde(default)]
    pub admins: Subjects,

    /// Who may read the department's namespace (bound to ClusterRole `pdc-department-viewer`).
    #[serde(default)]
    pub viewers: Subjects,

    /// Resource quota in guest units.
    #[serde(default)]
    pub quota: GuestQuota,

    /// NetworkZones the department may use. For each, it gets an IPv4 and an IPv6
    /// subnet at every site the zone spans, a NetworkAttachmentDefinition and the
    /// zone's reachability as NetworkPolicies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set, validation = Rule::new("self.all(z, z.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'))").message("zones must be NetworkZone names such as dmz or app"))]
    #[schemars(length(max = 32), inner(length(max = 63)))]
    pub zones: Vec<String>,

    /// Where the unit is in its life: `Active`; `Retiring` (merged away, being drained);
    /// `Retired` (kept read-only for lookups).
    #[serde(default)]
    pub lifecycle: Lifecycle,

    /// While true, the API server refuses to delete this Department.
    #[serde(default)]
    pub deletion_protection: bool,

    /// Where a Retiring or Retired unit went: the Department that took it over
    /// (written by the Reorganization that merged it or that its lookups go to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$')").message("successor must be a Department name such as xa-hoa-phu"))]
    #[schemars(length(max = 63))]
    pub successor: Option<String>,

    /// Identifier codes the unit held before a reissue, oldest first (`H45.12`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(c, c.matches('^[A-Z][0-9]{2}(\\\\.[0-9]{1,3}){0,4}$'))").message("previousCodes must be identifier codes such as H45.12"))]
    #[schemars(length(max = 16), inner(length(max = 32)))]
    pub previous_codes: Vec<String>,
}

/// The kind of state body a Department is.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DepartmentKind {
    /// A provincial department ("Sở") or the provincial office.
    #[default]
    Department,
    /// A commune ("Xã").
    Commune,
    /// A ward ("Phường").
    Ward,
    /// A central agency based in the province (police, courts, treasury, tax).
    Agency,
}

impl DepartmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DepartmentKind::Department => "department",
            DepartmentKind::Commune => "commune",
            DepartmentKind::Ward => "ward",
            DepartmentKind::Agency => "agency",
        }
    }
}

/// A Department's place in its life.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lifecycle {
    #[default]
    Active,
    Retiring,
    Retired,
}

/// Users and groups, as the cluster's authenticator names them.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Subjects {
    /// User names, e.g. `nguyenvana@soyte.daklak.gov.vn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set, validation = Rule::new("self.all(u, size(u) > 0 && size(u) <= 253)").message("user names must be 1 to 253 characters"))]
    #[schemars(length(max = 64), inner(length(max = 253)))]
    pub users: Vec<String>,
    /// Group names, e.g. `soyte-admins`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set, validation = Rule::new("self.all(g, size(g) > 0 && size(g) <= 253)").message("group names must be 1 to 253 characters"))]
    #[schemars(length(max = 64), inner(length(max = 253)))]
    pub groups: Vec<String>,
}

/// A quota in guest units: what the department's VMs and volumes may add up to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GuestQuota {
    /// Virtual CPUs across all VMs.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 100000").message("vcpu must be between 0 and 100000"))]
    pub vcpu: i32,
    /// Guest memory across all VMs, e.g. `64Gi`.
    #[serde(default = "zero")]
    #[x_kube(validation = Rule::new(QUANTITY_RULE).message(QUANTITY_MESSAGE))]
    #[schemars(length(max = 32))]
    pub memory: String,
    /// Storage per tier (tier names from the Province), e.g. `{ssd: 500Gi, hdd: 2Ti}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new("self.all(t, isQuantity(self[t]) && quantity(self[t]).compareTo(quantity('0')) >= 0)").message("every storage quota must be a non-negative quantity such as 500Gi"))]
    #[schemars(extend("maxProperties" = 16, "additionalProperties" = {"type": "string", "maxLength": 32}))]
    pub storage: BTreeMap<String, String>,
    /// Number of VMs.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 100000").message("vms must be between 0 and 100000"))]
    pub vms: i32,
    /// Number of public (internet-facing) addresses.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 65536").message("publicAddresses must be between 0 and 65536"))]
    pub public_addresses: i32,
}

fn zero() -> String {
    "0".into()
}

impl Default for GuestQuota {
    fn default() -> Self {
        Self { vcpu: 0, memory: zero(), storage: BTreeMap::new(), vms: 0, public_addresses: 0 }
    }
}

/// What the operator observed of a Department.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DepartmentStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: namespace, quota, limits, role bindings and network policies are in place.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The department's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The DNS name the department's records live under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
    /// The department's subnets, per zone and site.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<super::DepartmentSubnet>,
    /// The quota ledger: what each VM (`vm/<name>`) and volume (`volume/<name>`)
    /// holds. Written by the TenantVM and TenantVolume controllers with optimistic
    /// concurrency, so no two admissions take the same unit.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub quota_ledger: std::collections::BTreeMap<String, super::QuotaCharge>,
}

impl DepartmentSpec {
    /// A department of the default kind with `quota` and nothing else yet: no people,
    /// zones or subdomain of its own, Active.
    pub fn new(display_name: impl Into<String>, code: impl Into<String>, quota: GuestQuota) -> Self {
        DepartmentSpec {
            display_name: display_name.into(),
            code: code.into(),
            kind: DepartmentKind::default(),
            subdomain: None,
            admins: Subjects::default(),
            viewers: Subjects::default(),
            quota,
            zones: Vec::new(),
            lifecycle: Lifecycle::default(),
            deletion_protection: false,
            successor: None,
            previous_codes: Vec::new(),
        }
    }
}

impl Department {
    /// The subdomain this Department's records live under, in a province with `domain`.
    pub fn subdomain_in(&self, domain: &str) -> String {
        match &self.spec.subdomain {
            Some(s) => s.clone(),
            None => format!("{}.{}", kube::ResourceExt::name_any(self), domain),
        }
    }
}
