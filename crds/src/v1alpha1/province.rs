use kube::{CustomResource, KubeSchema};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde::{Deserialize, Serialize};

use super::{DOMAIN_RULE, QUANTITY_MESSAGE, QUANTITY_RULE};

/// A province: the domain its services live under, its identifier-code prefix, its
/// storage tiers and naming rule. One Province per cluster; a merged province keeps
/// the absorbed province's domain in `legacyDomains` and its code prefix in
/// `absorbedCodePrefixes`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "pdc.io",
    version = "v1alpha1",
    kind = "Province",
    plural = "provinces",
    shortname = "prov",
    status = "ProvinceStatus",
    printcolumn(name = "Display", type_ = "string", json_path = ".spec.displayName"),
    printcolumn(name = "Domain", type_ = "string", json_path = ".spec.domain"),
    printcolumn(name = "Code", type_ = "string", json_path = ".spec.codePrefix"),
    printcolumn(name = "Departments", type_ = "integer", json_path = ".status.departments"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ProvinceSpec {
    /// The province's name in Vietnamese, e.g. `Đắk Lắk`.
    #[x_kube(validation = Rule::new("size(self) > 0 && size(self) <= 200").message("displayName must be 1 to 200 characters"))]
    #[schemars(length(max = 200))]
    pub display_name: String,

    /// The DNS domain government systems live under, e.g. `daklak.gov.vn`.
    /// Every department subdomain is a name under it.
    #[x_kube(validation = Rule::new(DOMAIN_RULE).message("domain must be a lowercase DNS name such as daklak.gov.vn"))]
    #[schemars(length(max = 253))]
    pub domain: String,

    /// Domains of absorbed provinces that keep answering during a merger, e.g. `phuyen.gov.vn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set, validation = Rule::new("self.all(d, d.matches('^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\\\\.)+[a-z]{2,63}$'))").message("every legacy domain must be a lowercase DNS name such as phuyen.gov.vn"))]
    #[schemars(length(max = 16), inner(length(max = 253)))]
    pub legacy_domains: Vec<String>,

    /// Identifier-code prefix of the province (Decision 20/2020/QĐ-TTg), e.g. `H15`.
    /// Every Department code starts with it or with one of `absorbedCodePrefixes`.
    #[x_kube(validation = Rule::new("self.matches('^[A-Z][0-9]{2}$')").message("codePrefix must be a letter and two digits, e.g. H15"))]
    #[schemars(length(max = 3))]
    pub code_prefix: String,

    /// Code prefixes of absorbed provinces whose codes are still in use, e.g. `H45`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set, validation = Rule::new("self.all(p, p.matches('^[A-Z][0-9]{2}$'))").message("every absorbed code prefix must be a letter and two digits, e.g. H45"))]
    #[schemars(length(max = 16), inner(length(max = 3)))]
    pub absorbed_code_prefixes: Vec<String>,

    /// Storage tiers departments may ask for, each backed by a StorageClass.
    /// Department storage quotas are given per tier name.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(max = 16))]
    pub storage_tiers: Vec<StorageTier>,

    /// Default TTL in seconds of the DNS records pdc writes.
    #[serde(default = "default_ttl")]
    #[x_kube(validation = Rule::new("self >= 30 && self <= 86400").message("defaultTtl must be between 30 and 86400 seconds"))]
    pub default_ttl: i32,

    /// How unit names become slugs (namespace names and subdomain labels).
    #[serde(default)]
    pub naming: NamingRule,

    /// Memory added per VM to a department's namespace ResourceQuota for the
    /// virtualisation overhead of each guest (the guest's own memory is the quota).
    #[serde(default = "default_overhead")]
    #[x_kube(validation = Rule::new(QUANTITY_RULE).message(QUANTITY_MESSAGE))]
    #[schemars(length(max = 32))]
    pub vm_memory_overhead: String,

    /// Namespaces whose CDI DataSources every department may start VMs from (the
    /// province's image libraries, e.g. `pdc-images`). A department may use its own
    /// namespace's DataSources and these, no others: CDI clones with pdc's rights.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set, validation = Rule::new("self.all(n, n.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'))").message("every image library must be a namespace name such as pdc-images"))]
    #[schemars(length(max = 16), inner(length(max = 63)))]
    pub image_libraries: Vec<String>,
}

fn default_ttl() -> i32 {
    300
}

fn default_overhead() -> String {
    "256Mi".into()
}

/// A storage tier: a name departments use, backed by a StorageClass.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageTier {
    /// Tier name used in quotas and volume requests, e.g. `ssd`, `hdd`, `archive`.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$')").message("tier name must be a short DNS label such as ssd"))]
    #[schemars(length(max = 32))]
    pub name: String,
    /// The StorageClass that provisions this tier.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?$')").message("storageClass must be a StorageClass name"))]
    #[schemars(length(max = 253))]
    pub storage_class: String,
    /// What the tier is for, e.g. `SSD for databases`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    pub description: Option<String>,
}

/// The naming rule for unit slugs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NamingRule {
    /// `Hyphenated` joins words with `-` (`so-y-te`); `Compact` runs them together (`soyte`).
    #[serde(default)]
    pub style: SlugStyle,
    /// Drop the unit-type word that starts a name (`Xã`, `Phường`, `Sở`).
    #[serde(default)]
    pub drop_unit_prefix: bool,
}

/// How words are joined in a slug.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SlugStyle {
    #[default]
    Hyphenated,
    Compact,
}

impl From<&NamingRule> for pdc_core::slug::SlugRule {
    fn from(r: &NamingRule) -> Self {
        pdc_core::slug::SlugRule {
            style: match r.style {
                SlugStyle::Hyphenated => pdc_core::slug::SlugStyle::Hyphenated,
                SlugStyle::Compact => pdc_core::slug::SlugStyle::Compact,
            },
            drop_unit_prefix: r.drop_unit_prefix,
        }
    }
}

/// What the operator observed of a Province.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProvinceStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the province is the cluster's only one and its settings are usable.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Number of Departments in the province.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub departments: Option<i32>,
}

impl Province {
    /// The StorageClass behind tier `name`, if the province has that tier.
    pub fn storage_class(&self, tier: &str) -> Option<&str> {
        self.spec.storage_tiers.iter().find(|t| t.name == tier).map(|t| t.storage_class.as_str())
    }
}
