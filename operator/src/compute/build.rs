//! The objects a TenantVM becomes, as values: AddressClaims, CDI DataVolumes, the
//! KubeVirt VirtualMachine (Multus bridge NICs, cloud-init NoCloud network data with
//! the static addresses) and the DnsRecords of its FQDN.

use std::collections::BTreeMap;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ObjectMeta};
use kube::{Resource, ResourceExt};
use pdc_api::labels as l;
use pdc_api::{AddressClaim, AddressClaimSpec, DiskDeletionPolicy, DiskSpec, DnsRecord, DnsRecordSpec, DnsRecordType, IpFamilies, RunStrategy, TenantVM};
use pdc_core::netdata;

use crate::ipam::attach::{member_label, zone_object_name};

/// Label on every child: the TenantVM it belongs to.
pub const VM_LABEL: &str = "pdc.io/tenantvm";

pub fn vm_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachine"), "virtualmachines")
}

pub fn vmi_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachineInstance"), "virtualmachineinstances")
}

pub fn snapshot_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshot"), "volumesnapshots")
}

pub fn dv_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("cdi.kubevirt.io", "v1beta1", "DataVolume"), "datavolumes")
}

pub fn meta(vm: &TenantVM, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: vm.namespace(),
        labels: Some(BTreeMap::from([
            (l::MANAGED_BY.to_string(), l::MANAGED_BY_VALUE.to_string()),
            (VM_LABEL.to_string(), vm.name_any()),
        ])),
        owner_references: vm.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    }
}

pub fn claim_name(vm: &TenantVM, i: usize) -> String {
    format!("{}-nic{i}", vm.name_any())
}

/// The TenantVM whose NIC claim is named `claim` ([`claim_name`]).
pub fn vm_of_claim(claim: &str) -> Option<&str> {
    claim.rsplit_once("-nic").map(|(vm, _)| vm)
}

/// One dual-stack AddressClaim per NIC at `site` (the Primary site when `None`),
/// asking for the addresses the NIC keeps if it names them; the first carries the
/// hostname (for its PTRs).
pub fn claims(vm: &TenantVM, site: Option<&str>) -> Vec<AddressClaim> {
    vm.spec
        .nics
        .iter()
        .enumerate()
        .map(|(i, n)| AddressClaim {
            metadata: meta(vm, claim_name(vm, i)),
            spec: AddressClaimSpec {
                zone: n.zone.clone(),
                site: site.map(str::to_string),
                // A NIC that keeps only one family's address (an adopted VM's) asks
                // for that family alone.
                families: match (&n.ipv4, &n.ipv6) {
                    (Some(_), None) => IpFamilies::IPv4,
                    (None, Some(_)) => IpFamilies::IPv6,
                    _ => IpFamilies::DualStack,
                },
                ipv4_address: n.ipv4.clone(),
                ipv6_address: n.ipv6.clone(),
                hostname: (i == 0).then(|| vm.spec.hostname.clone()),
            },
            status: None,
        })
        .collect()
}

pub fn disk_name(vm: &TenantVM, d: &DiskSpec) -> String {
    format!("{}-{}", vm.name_any(), d.name)
}

/// A DataVolume: the root from the image, the others blank, on the tier's StorageClass;
/// or, with `restore` (namespace, name), from that VolumeSnapshot (a replica promoted
/// by a failover, or the old VM's disk when a reorganization moves the VM).
pub fn data_volume(vm: &TenantVM, d: &DiskSpec, root: bool, storage_class: &str, restore: Option<(&str, &str)>) -> DynamicObject {
    let ns = vm.namespace().unwrap_or_default();
    let img = &vm.spec.image;
    let storage = serde_json::json!({"resources": {"requests": {"storage": d.size}}, "storageClassName": storage_class, "accessModes": ["ReadWriteOnce"]});
    let (key, source) = match (root, &img.url, &img.registry, &img.data_source) {
        _ if restore.is_some() => ("source", serde_json::json!({"snapshot": {"namespace": restore.map(|r| r.0), "name": restore.map(|r| r.1)}})),
        (true, Some(u), _, _) => ("source", serde_json::json!({"http": {"url": u}})),
        (true, None, Some(r), _) => ("source", serde_json::json!({"registry": {"url": r}})),
        (true, None, None, Some(ds)) => {
            let (dns, dname) = ds.split_once('/').unwrap_or((ns.as_str(), ds.as_str()));
            ("sourceRef", serde_json::json!({"kind": "DataSource", "namespace": dns, "name": dname}))
        }
        _ => ("source", serde_json::json!({"blank": {}})),
    };
    let mut spec = serde_json::Map::new();
    spec.insert("storage".into(), storage);
    spec.insert(key.into(), source);
    let mut o = DynamicObject::new(&disk_name(vm, d), &dv_resource()).within(&ns);
    o.metadata = meta(vm, disk_name(vm, d));
    // Kept disks must outlive the VM: no owner reference, or the garbage collector
    // would delete them with it.
    if vm.spec.disk_deletion_policy == DiskDeletionPolicy::Retain {
        o.metadata.owner_references = None;
    }
    if let Some((_, snap)) = restore {
        o.metadata.annotations = Some(BTreeMap::from([(l::DR_RESTORED_FROM.to_string(), snap.to_string())]));
    }
    o.data = serde_json::json!({ "spec": spec });
    o
}

/// What the VirtualMachine needs to know of each NIC.
pub struct NicPlan {
    pub zone: String,
    pub mac: String,
    pub ipv4: Option<(String, String)>,
    pub ipv6: Option<(String, String)>,
}

impl NicPlan {
    /// The IPv4 address without its prefix length.
    pub fn ipv4_address(&self) -> Option<String> {
        address(&self.ipv4)
    }

    /// The IPv6 address without its prefix length.
    pub fn ipv6_address(&self) -> Option<String> {
        address(&self.ipv6)
    }
}

fn address(x: &Option<(String, String)>) -> Option<String> {
    x.as_ref().and_then(|(a, _)| a.split('/').next().map(str::to_string))
}

fn run_strategy(r: RunStrategy) -> &'static str {
    match r {
        RunStrategy::Always => "Always",
        RunStrategy::Halted => "Halted",
        RunStrategy::Manual => "Manual",
        RunStrategy::RerunOnFailure => "RerunOnFailure",
    }
}

/// The KubeVirt VirtualMachine.
/// `hotplug`: DataVolumes of TenantVolumes attached to the VM, as hot-pluggable disks.
/// `halted`: kept stopped whatever the run strategy (the standby copy of a protected VM).
#[allow(clippy::too_many_arguments)]
pub fn virtual_machine(vm: &TenantVM, vcpu: i32, memory: &str, nics: &[NicPlan], resolvers: &[String], subdomain: &str, hotplug: &[String], halted: bool) -> DynamicObject {
    let ns = vm.namespace().unwrap_or_default();
    let name = vm.name_any();
    let mut disks = vec![serde_json::json!({"name": "root", "disk": {"bus": "virtio"}})];
    let mut volumes = vec![serde_json::json!({"name": "root", "dataVolume": {"name": disk_name(vm, &vm.spec.root_disk)}})];
    for d in &vm.spec.disks {
        disks.push(serde_json::json!({"name": d.name, "disk": {"bus": "virtio"}}));
        volumes.push(serde_json::json!({"name": d.name, "dataVolume": {"name": disk_name(vm, d)}}));
    }
    for dv in hotplug {
        disks.push(serde_json::json!({"name": dv, "disk": {"bus": "scsi"}}));
        volumes.push(serde_json::json!({"name": dv, "dataVolume": {"name": dv, "hotpluggable": true}}));
    }
    disks.push(serde_json::json!({"name": "cloudinit", "disk": {"bus": "virtio"}}));
    let net = netdata::network_config(
        &nics.iter().map(|n| netdata::Nic { mac: n.mac.clone(), ipv4: n.ipv4.clone(), ipv6: n.ipv6.clone() }).collect::<Vec<_>>(),
        resolvers,
        subdomain,
    );
    let fqdn = format!("{}.{subdomain}", vm.spec.hostname);
    let mut cloudinit = serde_json::Map::new();
    cloudinit.insert("networkData".into(), serde_json::json!(net));
    match &vm.spec.cloud_init_secret {
        Some(s) => cloudinit.insert("secretRef".into(), serde_json::json!({"name": s})),
        None => cloudinit.insert("userData".into(), serde_json::json!(format!("#cloud-config\nhostname: {}\nfqdn: {fqdn}\n", vm.spec.hostname))),
    };
    volumes.push(serde_json::json!({"name": "cloudinit", "cloudInitNoCloud": cloudinit}));
    let interfaces: Vec<_> = nics.iter().enumerate().map(|(i, n)| serde_json::json!({"name": format!("nic{i}"), "bridge": {}, "macAddress": n.mac})).collect();
    let networks: Vec<_> = nics
        .iter()
        .enumerate()
        .map(|(i, n)| serde_json::json!({"name": format!("nic{i}"), "multus": {"networkName": zone_object_name(&n.zone)}}))
        .collect();
    let mut pod_labels = serde_json::Map::new();
    pod_labels.insert(VM_LABEL.into(), serde_json::json!(name));
    for n in nics {
        pod_labels.insert(member_label(&n.zone), serde_json::json!("true"));
    }
    // KubeVirt copies the template's metadata onto each instance it starts: the
    // instance then says which size and which restart request it was started with.
    let mut annotations = serde_json::Map::new();
    annotations.insert(l::VM_SIZE.into(), serde_json::json!(vm.spec.size));
    if let Some(tok) = &vm.spec.restart_request {
        annotations.insert(l::VM_RESTART_REQUEST.into(), serde_json::json!(tok));
    }
    let mut o = DynamicObject::new(&name, &vm_resource()).within(&ns);
    o.metadata = meta(vm, name.clone());
    o.data = serde_json::json!({
        "spec": {
            "runStrategy": if halted { "Halted" } else { run_strategy(vm.spec.run_strategy) },
            "template": {
                "metadata": {"labels": pod_labels, "annotations": annotations},
                "spec": {
                    "hostname": vm.spec.hostname,
                    "subdomain": subdomain.split('.').next().unwrap_or_default(),
                    "domain": {
                        "cpu": {"cores": vcpu},
                        "memory": {"guest": memory},
                        "resources": {"requests": {"memory": memory}},
                        "devices": {"disks": disks, "interfaces": interfaces}
                    },
                    "networks": networks,
                    "volumes": volumes
                }
            }
        }
    });
    o
}

/// A and AAAA for the VM's FQDN, from the first NIC's addresses.
pub fn dns_records(vm: &TenantVM, ipv4: Option<&str>, ipv6: Option<&str>) -> Vec<DnsRecord> {
    let mut out = Vec::new();
    for (suffix, t, v) in [("a", DnsRecordType::A, ipv4), ("aaaa", DnsRecordType::AAAA, ipv6)] {
        let Some(v) = v else { continue };
        out.push(DnsRecord {
            metadata: meta(vm, format!("{}-{suffix}", vm.name_any())),
            spec: DnsRecordSpec { name: vm.spec.hostname.clone(), rtype: t, ttl: None, values: vec![v.to_string()] },
            status: None,
        });
    }
    out
}
