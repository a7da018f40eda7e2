//! Tenant compute and storage: VM sizes, VMs and volumes. A TenantVM becomes a KubeVirt
//! VirtualMachine with CDI DataVolumes, static dual-stack addresses and DNS records.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{QUANTITY_MESSAGE, QUANTITY_RULE};

/// A VM size, like an OpenStack flavor.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "pdc.io",
    version = "v1alpha1",
    kind = "SizeClass",
    plural = "sizeclasses",
    printcolumn(name = "vCPU", type_ = "integer", json_path = ".spec.vcpu"),
    printcolumn(name = "Memory", type_ = "string", json_path = ".spec.memory"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct SizeClassSpec {
    /// Virtual CPUs.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 256").message("vcpu must be between 1 and 256"))]
    pub vcpu: i32,
    /// Guest memory, e.g. `8Gi`.
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).compareTo(quantity('64Mi')) >= 0").message("memory must be a quantity of at least 64Mi, such as 8Gi"))]
    #[schemars(length(max = 32))]
    pub memory: String,
    /// What the size is for, shown by `pdcctl vm sizes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub description: Option<String>,
}

/// Where a VM's root disk comes from: exactly one of the three.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.url), has(self.registry), has(self.dataSource)].filter(x, x).size() == 1").message("image needs exactly one of url, registry or dataSource"))]
pub struct ImageSource {
    /// An HTTP(S) URL of a disk image (qcow2, raw, iso).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("url must start with http:// or https://"))]
    #[schemars(length(max = 2048))]
    pub url: Option<String>,
    /// A container disk in a registry, e.g. `docker://quay.io/containerdisks/ubuntu:24.04`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('docker://')").message("registry must start with docker://"))]
    #[schemars(length(max = 2048))]
    pub registry: Option<String>,
    /// A CDI DataSource, `namespace/name` or `name` (the VM's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 317))]
    pub data_source: Option<String>,
}

impl ImageSource {
    /// No source given (an adopted or external VM has none).
    pub fn is_unset(&self) -> bool {
        self.url.is_none() && self.registry.is_none() && self.data_source.is_none()
    }
}

/// A disk: its size and storage tier.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DiskSpec {
    /// The disk's name inside the VM (root disk: `root`).
    #[serde(default = "root")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$')").message("disk name must be a short DNS label such as data"))]
    #[schemars(length(max = 32))]
    pub name: String,
    /// Size, e.g. `40Gi`; it may grow, never shrink.
    #[x_kube(validation = Rule::new(QUANTITY_RULE).message(QUANTITY_MESSAGE))]
    #[x_kube(validation = Rule::new("quantity(self).compareTo(quantity(oldSelf)) >= 0").message("a disk cannot shrink; create a smaller one and copy the data"))]
    #[schemars(length(max = 32))]
    pub size: String,
    /// Storage tier from the Province, e.g. `ssd`.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$')").message("tier must be a tier name such as ssd"))]
    #[schemars(length(max = 32))]
    pub tier: String,
}

fn root() -> String {
    "root".into()
}

/// A network interface in one of the department's zones.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NicSpec {
    /// The NetworkZone, e.g. `dmz`.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$')").message("zone must be a NetworkZone name such as dmz"))]
    #[schemars(length(max = 63))]
    pub zone: String,
    /// The IPv4 address this NIC keeps (an adopted or moved VM's): its claim asks for
    /// exactly it. Without it pdc chooses one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isIP(self) && ip(self).family() == 4").message("ipv4 must be an IPv4 address such as 10.20.1.90"))]
    #[schemars(length(max = 15))]
    pub ipv4: Option<String>,
    /// The IPv6 address this NIC keeps; with `ipv4` it must be its partner under the
    /// pairing rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isIP(self) && ip(self).family() == 6").message("ipv6 must be an IPv6 address such as 2001:db8:20:1::26"))]
    #[schemars(length(max = 45))]
    pub ipv6: Option<String>,
    /// The MAC address the guest knows this NIC by (an adopted or moved VM's); without
    /// it pdc derives a stable one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9a-f]{2}(:[0-9a-f]{2}){5}$')").message("mac must be six lowercase hex pairs such as 02:00:0a:14:00:05"))]
    #[schemars(length(max = 17))]
    pub mac: Option<String>,
}

/// A VM pdc takes over rather than makes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.virtualMachine) != (has(self.external) && self.external)").message("adopt needs exactly one of virtualMachine (a KubeVirt VM in the namespace) or external: true (a VM on the old hypervisor)"))]
pub struct Adopt {
    /// A KubeVirt VirtualMachine already in the namespace, named as the TenantVM: pdc
    /// takes it over as it runs (never restarted), its disks named by `rootDisk` and
    /// `disks` (each the VM's volume name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub virtual_machine: Option<String>,
    /// The VM still runs outside this cluster (the old hypervisor): pdc holds its
    /// addresses, its quota and its names, and makes no VirtualMachine.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
}

/// KubeVirt's run strategies.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RunStrategy {
    #[default]
    Always,
    Halted,
    Manual,
    RerunOnFailure,
}

/// What happens to a VM's disks when it is deleted.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DiskDeletionPolicy {
    #[default]
    Delete,
    Retain,
}

/// A department's virtual machine.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "pdc.io",
    version = "v1alpha1",
    kind = "TenantVM",
    plural = "tenantvms",
    shortname = "tvm",
    namespaced,
    status = "TenantVMStatus",
    validation = Rule::new("!has(self.spec.adopt) || !has(self.spec.adopt.virtualMachine) || self.spec.adopt.virtualMachine == self.metadata.name").message("an adopting TenantVM takes the VirtualMachine's name: spec.adopt.virtualMachine must equal metadata.name"),
    printcolumn(name = "Size", type_ = "string", json_path = ".spec.size"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "IPv4", type_ = "string", json_path = ".status.nics[0].ipv4"),
    printcolumn(name = "FQDN", type_ = "string", json_path = ".status.fqdn"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.image) || has(self.adopt)").message("image is required (only an adopted VM has none)"))]
#[x_kube(validation = Rule::new("has(self.adopt) == has(oldSelf.adopt) ? (!has(self.adopt) || self.adopt == oldSelf.adopt) : (has(oldSelf.adopt) && has(oldSelf.adopt.external) && oldSelf.adopt.external && has(self.image))").message("adopt cannot be added or changed after creation; only an external VM's record drops it, with an image to import (pdcctl vm import --from-image)"))]
#[x_kube(validation = Rule::new("!has(self.adopt) || self.nics.all(n, has(n.ipv4) || has(n.ipv6))").message("an adopted VM's NICs name the addresses it has (ipv4 and/or ipv6)"))]
#[x_kube(validation = Rule::new("!has(self.adopt) || !has(self.drProtected) || !self.drProtected").message("an adopted or external VM is not DR-protected: protect it once it is pdc's own VM (after pdcctl vm import --from-image)"))]
pub struct TenantVMSpec {
    /// A SizeClass name.
    #[schemars(length(max = 63))]
    pub size: String,
    /// The root disk's source (none for an adopted VM).
    #[serde(default, skip_serializing_if = "ImageSource::is_unset")]
    pub image: ImageSource,
    /// Take over a VM that already runs instead of making one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopt: Option<Adopt>,
    /// The root disk.
    pub root_disk: DiskSpec,
    /// Blank data disks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(max = 8))]
    pub disks: Vec<DiskSpec>,
    /// Network interfaces, each with a static IPv4 + IPv6 pair; the first carries the
    /// hostname's A and AAAA records.
    #[x_kube(validation = Rule::new("size(self) == 0 || self == oldSelf").message("NICs cannot change after creation: a VM keeps its addresses"))]
    #[schemars(length(min = 1, max = 4))]
    pub nics: Vec<NicSpec>,
    /// The host name (a DNS label); the FQDN is it under the department's subdomain.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$')").message("hostname must be a DNS label: lowercase letters, digits and '-', no diacritics (`pdcctl slug` derives one)"))]
    #[schemars(length(max = 63))]
    pub hostname: String,
    /// `Always` (default), `Halted`, `Manual` or `RerunOnFailure`.
    #[serde(default)]
    pub run_strategy: RunStrategy,
    /// A Secret in the namespace with cloud-init user data under key `userdata`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub cloud_init_secret: Option<String>,
    /// Whether the DR plan protects this VM.
    #[serde(default)]
    pub dr_protected: bool,
    /// What happens to the disks when the VM is deleted (`Delete` by default).
    #[serde(default)]
    pub disk_deletion_policy: DiskDeletionPolicy,
    /// A restart request: set it to a new value (`pdcctl vm restart` writes the time)
    /// and the running instance is restarted once, with the current spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub restart_request: Option<String>,
}

/// One NIC's addresses.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NicStatus {
    /// The NIC's NetworkZone.
    pub zone: String,
    /// Its static IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    /// Its static IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    /// Its MAC address (stable: derived from the VM's UID and the NIC's index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// What the operator observed of a TenantVM.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TenantVMStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `QuotaAccepted`, `AddressesAllocated`, `DnsProgrammed`, `RestartRequired`.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// KubeVirt's printable status (`Provisioning`, `Starting`, `Running`, `Stopped`, …),
    /// or pdc's own before the VirtualMachine exists (`Pending`, `Failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Addresses per NIC, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nics: Vec<NicStatus>,
    /// The VM's fully qualified name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    /// The size the running guest was started with (differs after a resize until restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_size: Option<String>,
    /// The last `spec.restartRequest` carried out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_for: Option<String>,
}

/// Volume access modes.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AccessMode {
    #[default]
    ReadWriteOnce,
    ReadWriteMany,
}

/// A department's volume.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "pdc.io",
    version = "v1alpha1",
    kind = "TenantVolume",
    plural = "tenantvolumes",
    shortname = "tvol",
    namespaced,
    status = "TenantVolumeStatus",
    printcolumn(name = "Size", type_ = "string", json_path = ".spec.size"),
    printcolumn(name = "Tier", type_ = "string", json_path = ".spec.tier"),
    printcolumn(name = "VM", type_ = "string", json_path = ".spec.vm"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct TenantVolumeSpec {
    /// Size, e.g. `100Gi`; it may grow, never shrink.
    #[x_kube(validation = Rule::new(QUANTITY_RULE).message(QUANTITY_MESSAGE))]
    #[x_kube(validation = Rule::new("quantity(self).compareTo(quantity(oldSelf)) >= 0").message("a volume cannot shrink; create a smaller one and copy the data"))]
    #[schemars(length(max = 32))]
    pub size: String,
    /// Storage tier from the Province.
    #[x_kube(validation = Rule::new("self == oldSelf").message("a volume's tier cannot change"))]
    #[schemars(length(max = 32))]
    pub tier: String,
    #[serde(default)]
    pub access_mode: AccessMode,
    /// A TenantVM in the namespace to attach the volume to (hotplug).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub vm: Option<String>,
}

/// What the operator observed of a TenantVolume.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TenantVolumeStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the DataVolume is provisioned; `QuotaAccepted`.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// What a department's VMs and volumes hold of its quota: one charge per object.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct QuotaCharge {
    #[serde(default)]
    pub vcpu: i64,
    /// Bytes of guest memory.
    #[serde(default)]
    pub memory: i64,
    /// Bytes per storage tier.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub storage: std::collections::BTreeMap<String, i64>,
    #[serde(default)]
    pub vms: i64,
    /// UID of the object charged: a charge left by an earlier object of the same name
    /// is never taken for a new one's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}
