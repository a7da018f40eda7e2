//! Taking over a VM that already runs (`spec.adopt`), without restarting it.
//!
//! A KubeVirt VirtualMachine in the namespace, named as the TenantVM, is checked
//! before anything is written: no other controller owns it, every disk it uses is
//! one the TenantVM charges (on its tier's StorageClass, no larger than charged),
//! the addresses the NICs keep are exactly those its instance has in the zones
//! ([`pdc_core::vmadopt`]), and no one else holds them. Then, as for any TenantVM,
//! the quota is charged and the claims bound (asking for those addresses); the
//! disks get pdc's labels and an owner reference; the VirtualMachine is applied with
//! only the fields pdc manages (labels, owner, run strategy, the template's size and
//! annotations), so the rest of its template stays as its author wrote it and the
//! running instance is never touched. A size that differs from what it runs with
//! waits for a restart the user asks for (`RestartRequired`).
//!
//! An external VM (`adopt.external`, still on the old hypervisor) gets its claims,
//! its quota charge and its names, and no VirtualMachine.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DynamicObject, Patch};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use pdc_api::conditions::{Cond, READY};
use pdc_api::labels as l;
use pdc_api::{AddressAllocation, Department, DiskDeletionPolicy, DnsRecord, NetworkZone, NicStatus, SizeClass, TenantVM};
use pdc_core::ipam::{Addr, Prefix};
use pdc_core::vmadopt::{self, KeptNic};

use super::build::{self, NicPlan, VM_LABEL};
use super::disk::{self, DiskState};
use super::plan::{self, ADDRESSES, Admitted, Applied, DNS, Placement, Planned, Refusal};
use super::vm::{VmContext, apply_unless_cached, missing_integration, not_programmed, restart_if_asked, unchanged, write};
use crate::apply;
use crate::error::{Error, Result};

/// What is taken over.
pub enum Adoption {
    External,
    Vm(Box<Taken>),
}

/// What was read of the VirtualMachine to adopt.
pub struct Seen {
    pub vm: DynamicObject,
    pub vmi: Option<DynamicObject>,
    /// The claims its volumes name, by name.
    pub claims: BTreeMap<String, PersistentVolumeClaim>,
}

/// One disk of the adopted VM: the TenantVM's disk, its claim, and whether a
/// DataVolume of that name stands over the claim.
#[derive(Debug, Clone, PartialEq)]
pub struct TakenDisk {
    pub disk: String,
    pub claim: String,
    pub data_volume: bool,
    pub size: String,
}

/// A VirtualMachine that may be adopted, its disks, and whether it already is.
pub struct Taken {
    pub seen: Seen,
    pub disks: Vec<TakenDisk>,
    pub adopted: bool,
}

fn text<'a>(v: &'a serde_json::Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(|x| x.as_str())
}

fn hotpluggable(v: &serde_json::Value) -> bool {
    ["/dataVolume/hotpluggable", "/persistentVolumeClaim/hotpluggable"].iter().any(|p| v.pointer(p).and_then(serde_json::Value::as_bool) == Some(true))
}

/// The template's volumes that are disks on claims: (volume, claim, via a DataVolume).
pub fn claimed_volumes(vm: &DynamicObject) -> Vec<(String, String, bool)> {
    let vols = vm.data.pointer("/spec/template/spec/volumes").and_then(|v| v.as_array()).cloned().unwrap_or_default();
    vols.iter()
        .filter(|v| !hotpluggable(v))
        .filter_map(|v| {
            let name = text(v, "/name")?.to_string();
            text(v, "/dataVolume/name").map(|c| (name.clone(), c.to_string(), true)).or_else(|| text(v, "/persistentVolumeClaim/claimName").map(|c| (name, c.to_string(), false)))
        })
        .collect()
}

/// The addresses the instance reports on its interfaces.
pub fn reported(vmi: Option<&DynamicObject>) -> Vec<String> {
    let ifaces = vmi.and_then(|i| i.data.pointer("/status/interfaces")).and_then(|v| v.as_array()).cloned().unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for i in &ifaces {
        let many = i.get("ipAddresses").and_then(|v| v.as_array()).cloned().unwrap_or_default();
        let one = i.get("ipAddress").cloned().into_iter();
        for a in many.into_iter().chain(one).filter_map(|a| a.as_str().map(|s| s.split('/').next().unwrap_or(s).to_string())) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

/// Prefixes by zone.
pub type ZonePrefixes = Vec<(String, Prefix)>;

/// The department's subnets and every zone's prefixes, for [`vmadopt::check`].
pub fn prefixes(dept: Option<&Department>, zones: &[std::sync::Arc<NetworkZone>]) -> (ZonePrefixes, ZonePrefixes) {
    let parse = |zone: &str, p: Option<&String>| p.and_then(|p| Prefix::parse(p).ok()).map(|p| (zone.to_string(), p));
    let subnets = dept.and_then(|d| d.status.as_ref()).map(|s| s.subnets.iter().flat_map(|n| [parse(&n.zone, n.ipv4.as_ref()), parse(&n.zone, n.ipv6.as_ref())]).flatten().collect()).unwrap_or_default();
    let all = zones.iter().flat_map(|z| z.spec.sites.iter().flat_map(|s| [parse(&z.name_any(), s.ipv4.as_ref()), parse(&z.name_any(), s.ipv6.as_ref())]).flatten().collect::<Vec<_>>()).collect();
    (subnets, all)
}

fn controller_of(vm: &DynamicObject) -> Option<&OwnerReference> {
    vm.metadata.owner_references.as_ref()?.iter().find(|o| o.controller == Some(true))
}

/// Whether `seen` may be adopted by `vm` as its spec says, and its disks. Pure: the
/// table tests below are its cases.
pub fn plan_vm(vm: &TenantVM, seen: Seen, admitted: &Admitted, subnets: &[(String, Prefix)], zones: &[(String, Prefix)]) -> std::result::Result<Taken, Refusal> {
    let uid = vm.uid().unwrap_or_default();
    let name = seen.vm.name_any();
    if let Some(o) = controller_of(&seen.vm).filter(|o| o.uid != uid) {
        return Err(Refusal("ControlledElsewhere", format!("VirtualMachine {name} is controlled by {} {}; pdc adopts only a VM no other controller owns", o.kind, o.name)));
    }
    let adopted = controller_of(&seen.vm).is_some();
    let volumes = claimed_volumes(&seen.vm);
    let mut disks = Vec::new();
    for ((_, d), (_, class)) in plan::disks(vm).zip(&admitted.classes) {
        let Some((_, claim, dv)) = volumes.iter().find(|(v, _, _)| *v == d.name) else {
            let names: Vec<&str> = volumes.iter().map(|v| v.0.as_str()).collect();
            return Err(Refusal("UnknownDisk", format!("disk {}: VirtualMachine {name} has no disk volume of that name (its disk volumes: {})", d.name, names.join(", "))));
        };
        let Some(pvc) = seen.claims.get(claim) else {
            return Err(Refusal("DiskNotFound", format!("disk {}: its PersistentVolumeClaim {claim} does not exist", d.name)));
        };
        let on = pvc.spec.as_ref().and_then(|s| s.storage_class_name.clone()).unwrap_or_default();
        if on != *class {
            return Err(Refusal("TierMismatch", format!("disk {} is on StorageClass {on:?}, but tier {} is StorageClass {class}: give the disk the tier of its StorageClass", d.name, d.tier)));
        }
        let holds = disk::requested(pvc).unwrap_or_default();
        let bytes = |q: &str| pdc_core::quantity::parse(q).unwrap_or(0);
        if bytes(&holds) > bytes(&d.size) {
            return Err(Refusal("DiskUndercharged", format!("disk {}: its claim {claim} holds {holds}, more than the {} charged: charge at least what it holds", d.name, d.size)));
        }
        disks.push(TakenDisk { disk: d.name.clone(), claim: claim.clone(), data_volume: *dv, size: d.size.clone() });
    }
    if let Some((v, c, _)) = volumes.iter().find(|(v, _, _)| !disks.iter().any(|d| d.disk == *v)) {
        return Err(Refusal("UnchargedDisk", format!("VirtualMachine {name}'s volume {v} (claim {c}) is not among spec.rootDisk and spec.disks: add it, so its storage is charged")));
    }
    if !adopted {
        let kept: Vec<KeptNic> = vm.spec.nics.iter().map(|n| KeptNic { zone: n.zone.clone(), ipv4: n.ipv4.clone(), ipv6: n.ipv6.clone() }).collect();
        vmadopt::check(&kept, &reported(seen.vmi.as_ref()), subnets, zones).map_err(|m| Refusal("AddressMismatch", m.to_string()))?;
    }
    Ok(Taken { seen, disks, adopted })
}

/// vCPUs (sockets × cores × threads) and memory of a domain, as KubeVirt reads them.
fn domain_size(domain: Option<&serde_json::Value>) -> (u64, u128) {
    let n = |p: &str| domain.and_then(|d| d.pointer(p)).and_then(serde_json::Value::as_u64).unwrap_or(1);
    let vcpu = n("/cpu/sockets") * n("/cpu/cores") * n("/cpu/threads");
    let mem = domain.and_then(|d| text(d, "/memory/guest").or_else(|| text(d, "/resources/requests/memory"))).and_then(|m| pdc_core::quantity::parse(m).ok()).unwrap_or(0);
    (vcpu, mem)
}

fn fits(domain: Option<&serde_json::Value>, size: &SizeClass) -> bool {
    let (vcpu, mem) = domain_size(domain);
    u64::try_from(size.spec.vcpu).is_ok_and(|v| v == vcpu) && pdc_core::quantity::parse(&size.spec.memory).is_ok_and(|m| m == mem)
}

/// What a running instance started outside pdc runs as: the TenantVM's size when its
/// CPUs and memory are that size's, else those figures.
pub fn running_as(vm: &TenantVM, size: &SizeClass, vmi: &DynamicObject) -> String {
    let domain = vmi.data.pointer("/spec/domain");
    if fits(domain, size) {
        return vm.spec.size.clone();
    }
    let (vcpu, mem) = domain_size(domain);
    format!("{vcpu} vCPU and {} memory, as adopted", pdc_core::quantity::format_bytes(mem))
}

/// The template's volumes and disks with the hot-plugged ones those of `hotplug`
/// (the DataVolumes of the TenantVolumes attached): the VM's own stay as they are.
/// KubeVirt's lists are atomic, so pdc applies them whole, every time (leaving them
/// out once applied would remove them).
fn with_hotplug(current: &DynamicObject, hotplug: &[String]) -> (serde_json::Value, serde_json::Value) {
    let list = |p: &str| current.data.pointer(p).and_then(|v| v.as_array()).cloned().unwrap_or_default();
    let volumes = list("/spec/template/spec/volumes");
    let was_hot: Vec<String> = volumes.iter().filter(|v| hotpluggable(v)).filter_map(|v| text(v, "/name").map(str::to_string)).collect();
    let mut vols: Vec<serde_json::Value> = volumes.into_iter().filter(|v| !hotpluggable(v)).collect();
    let mut disks: Vec<serde_json::Value> = list("/spec/template/spec/domain/devices/disks").into_iter().filter(|d| !text(d, "/name").is_some_and(|n| was_hot.iter().any(|h| h == n))).collect();
    for dv in hotplug {
        vols.push(serde_json::json!({"name": dv, "dataVolume": {"name": dv, "hotpluggable": true}}));
        disks.push(serde_json::json!({"name": dv, "disk": {"bus": "scsi"}}));
    }
    (serde_json::Value::Array(vols), serde_json::Value::Array(disks))
}

/// The VirtualMachine as pdc applies it to an adopted one: only the fields pdc
/// manages. The template keeps the CPU and memory it has when they are the size's
/// (the same values, so applying them changes nothing); otherwise it gets the
/// size's, which the instance takes at its next start. Attached TenantVolumes are
/// hot-plugged (KubeVirt attaches them to the running instance).
pub fn managed_part(vm: &TenantVM, current: &DynamicObject, size: &SizeClass, nics: &[NicPlan], hotplug: &[String]) -> DynamicObject {
    let domain = current.data.pointer("/spec/template/spec/domain");
    let mut dom = serde_json::Map::new();
    if fits(domain, size) {
        for (k, p) in [("cpu", "/cpu"), ("memory", "/memory")] {
            if let Some(v) = domain.and_then(|d| d.pointer(p)) {
                dom.insert(k.into(), v.clone());
            }
        }
        if let Some(m) = domain.and_then(|d| d.pointer("/resources/requests/memory")) {
            dom.insert("resources".into(), serde_json::json!({"requests": {"memory": m}}));
        }
    } else {
        dom.insert("cpu".into(), serde_json::json!({"sockets": 1, "cores": size.spec.vcpu, "threads": 1}));
        dom.insert("memory".into(), serde_json::json!({"guest": size.spec.memory}));
        dom.insert("resources".into(), serde_json::json!({"requests": {"memory": size.spec.memory}}));
    }
    let mut labels = serde_json::Map::new();
    labels.insert(VM_LABEL.into(), serde_json::json!(vm.name_any()));
    for n in nics {
        labels.insert(crate::ipam::attach::member_label(&n.zone), serde_json::json!("true"));
    }
    let mut annotations = serde_json::Map::new();
    annotations.insert(l::VM_SIZE.into(), serde_json::json!(vm.spec.size));
    if let Some(tok) = &vm.spec.restart_request {
        annotations.insert(l::VM_RESTART_REQUEST.into(), serde_json::json!(tok));
    }
    // An empty list where the template has none would be a change of the template.
    let (volumes, disks) = with_hotplug(current, hotplug);
    let keep = |list: &serde_json::Value, p: &str| list.as_array().is_some_and(|l| !l.is_empty()) || current.data.pointer(p).is_some();
    if keep(&disks, "/spec/template/spec/domain/devices/disks") {
        dom.insert("devices".into(), serde_json::json!({"disks": disks}));
    }
    let mut tspec = serde_json::Map::new();
    tspec.insert("domain".into(), serde_json::Value::Object(dom));
    if keep(&volumes, "/spec/template/spec/volumes") {
        tspec.insert("volumes".into(), volumes);
    }
    let mut spec = serde_json::Map::new();
    spec.insert("template".into(), serde_json::json!({"metadata": {"labels": labels, "annotations": annotations}, "spec": tspec}));
    // KubeVirt refuses `runStrategy` beside the older `running`: a VM that still says
    // `running` keeps it.
    if current.data.pointer("/spec/running").is_none() {
        spec.insert("runStrategy".into(), serde_json::json!(vm.spec.run_strategy));
    }
    let mut o = DynamicObject::new(&vm.name_any(), &build::vm_resource()).within(&vm.namespace().unwrap_or_default());
    o.metadata = build::meta(vm, vm.name_any());
    o.data = serde_json::json!({ "spec": spec });
    o
}

/// Read what the adoption needs and decide whether it may go ahead. `Ok(None)`: the
/// TenantVM adopts nothing.
pub async fn prepare(vm: &TenantVM, ctx: &VmContext, admitted: &Admitted, dept: Option<&Department>) -> Result<std::result::Result<Option<Adoption>, Refusal>> {
    let Some(adopt) = &vm.spec.adopt else { return Ok(Ok(None)) };
    if let Some(r) = held_elsewhere(vm, ctx).await? {
        return Ok(Err(r));
    }
    if adopt.external {
        return Ok(Ok(Some(Adoption::External)));
    }
    let Some(seen) = observe(vm, ctx).await? else {
        let msg = format!("VirtualMachine {} does not exist in namespace {}", vm.name_any(), vm.namespace().unwrap_or_default());
        return Ok(Err(Refusal("VirtualMachineNotFound", msg)));
    };
    let (subnets, zones) = prefixes(dept, &ctx.zones.state());
    Ok(plan_vm(vm, seen, admitted, &subnets, &zones).map(|t| Some(Adoption::Vm(Box::new(t)))))
}

/// The VirtualMachine, its instance and the claims of its volumes; `None`: no VM.
async fn observe(vm: &TenantVM, ctx: &VmContext) -> Result<Option<Seen>> {
    let (client, ns, name) = (&ctx.base.client, vm.namespace().unwrap_or_default(), vm.name_any());
    let read = |what: &str| {
        let what = format!("{what} {name}");
        move |source| Error::Read { what, source }
    };
    let vms: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &build::vm_resource());
    let Some(kv) = vms.get_opt(&name).await.map_err(read("VirtualMachine"))? else { return Ok(None) };
    let vmis: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &build::vmi_resource());
    let vmi = vmis.get_opt(&name).await.map_err(read("VirtualMachineInstance"))?;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let mut claims = BTreeMap::new();
    for (_, c, _) in claimed_volumes(&kv) {
        if let Some(p) = pvcs.get_opt(&c).await.map_err(read("PersistentVolumeClaims of VirtualMachine"))? {
            claims.insert(c, p);
        }
    }
    Ok(Some(Seen { vm: kv, vmi, claims }))
}

/// Whether an address a NIC keeps is already held, by another claim or as an
/// external address of the declared plan: a refusal that says by whom.
async fn held_elsewhere(vm: &TenantVM, ctx: &VmContext) -> Result<Option<Refusal>> {
    let api: Api<AddressAllocation> = Api::all(ctx.base.client.clone());
    let ns = vm.namespace().unwrap_or_default();
    for (i, n) in vm.spec.nics.iter().enumerate() {
        for text in [&n.ipv4, &n.ipv6].into_iter().flatten() {
            let Ok(a) = Addr::parse(text) else { continue };
            let got = api.get_opt(&a.object_name()).await.map_err(|source| Error::Read { what: format!("AddressAllocation of {text}"), source })?;
            if let Some(r) = got.and_then(|g| holder_refusal(&g, &ns, &build::claim_name(vm, i), text)) {
                return Ok(Some(r));
            }
        }
    }
    Ok(None)
}

/// The refusal when `alloc` (of `address`) is not held by the claim `ns/claim`.
pub fn holder_refusal(alloc: &AddressAllocation, ns: &str, claim: &str, address: &str) -> Option<Refusal> {
    let c = &alloc.spec.claim;
    let external = alloc.spec.external.is_some() || alloc.labels().contains_key(l::EXTERNAL);
    if !external && c.namespace == ns && c.name == claim {
        return None;
    }
    let msg = if external {
        format!("{address} is held outside pdc as an external address of the declared plan; if it is this VM's, `pdcctl ip release-external {address}` lets the VM's claim take it")
    } else {
        format!("{address} is already allocated to AddressClaim {}/{}: pdc never gives one address to two holders", c.namespace, c.name)
    };
    Some(Refusal("AddressTaken", msg))
}

/// Carry out an adoption once the quota is charged and the claims are bound.
pub async fn finish(vm: &TenantVM, ctx: &VmContext, adoption: Adoption, i: &plan::Inputs<'_>) -> Result<Action> {
    let (admitted, nics, subdomain) = (i.admitted, i.nics, i.subdomain);
    let rapi: Api<DnsRecord> = Api::namespaced(ctx.base.client.clone(), &vm.namespace().unwrap_or_default());
    let first = nics.first();
    let want = build::dns_records(vm, first.and_then(NicPlan::ipv4_address).as_deref(), first.and_then(NicPlan::ipv6_address).as_deref());
    let records = futures::future::try_join_all(want.iter().map(|r| apply_unless_cached(&rapi, &ctx.children.records, r))).await?;
    let dns_pending = not_programmed(&records);
    let (planned, restarted_for) = match adoption {
        Adoption::External => (external_status(vm, admitted, nics.len(), subdomain, &dns_pending), None),
        Adoption::Vm(t) => match take_over(vm, ctx, *t, admitted, nics, i.hotplug).await? {
            std::ops::ControlFlow::Continue((mut applied, restarted_for)) => {
                applied.dns_pending = dns_pending;
                (plan::status(vm, &Placement::Unprotected, admitted, nics.len(), subdomain, &applied), restarted_for)
            }
            std::ops::ControlFlow::Break(a) => return Ok(a),
        },
    };
    write(vm, ctx, &planned, |s| {
        s.nics = nics.iter().map(|n| NicStatus { zone: n.zone.clone(), ipv4: n.ipv4_address(), ipv6: n.ipv6_address(), mac: Some(n.mac.clone()) }).collect();
        if restarted_for.is_some() {
            s.restarted_for = restarted_for;
        }
    })
    .await?;
    Ok(Action::requeue(planned.requeue))
}

/// The status of an external VM: its addresses, quota and names are held.
pub fn external_status(vm: &TenantVM, admitted: &Admitted, nics: usize, subdomain: &str, dns_pending: &[String]) -> Planned {
    let fqdn = format!("{}.{subdomain}.", vm.spec.hostname);
    let dns_ok = dns_pending.is_empty();
    let ready = if dns_ok {
        Cond::new(READY, true, "External", format!("runs outside the cluster; pdc holds its addresses, its quota and {fqdn}"))
    } else {
        Cond::new(READY, false, "DnsPending", dns_pending.join("; "))
    };
    let conditions = vec![
        admitted.accepted(),
        Cond::new(ADDRESSES, true, "Bound", format!("{nics} NIC(s) keep their addresses")),
        if dns_ok { Cond::new(DNS, true, "Programmed", format!("{fqdn} answers")) } else { Cond::new(DNS, false, "Pending", dns_pending.join("; ")) },
        ready,
    ];
    let requeue = if dns_ok { Duration::from_secs(300) } else { plan::FALLBACK };
    Planned { conditions, phase: "External".into(), ready: dns_ok, running_size: Some(None), fqdn: Some(fqdn), requeue }
}

/// Own the disks, apply the managed part of the VirtualMachine, and say what runs.
async fn take_over(vm: &TenantVM, ctx: &VmContext, t: Taken, admitted: &Admitted, nics: &[NicPlan], hotplug: &[String]) -> Result<std::ops::ControlFlow<Action, (Applied, Option<String>)>> {
    let (client, ns, name) = (&ctx.base.client, vm.namespace().unwrap_or_default(), vm.name_any());
    let mut applied = Applied::default();
    for d in &t.disks {
        match own_disk(vm, ctx, d).await {
            Ok(DiskState::Failed(why)) => applied.disk_failures.push(format!("disk {}: {why}", d.disk)),
            Ok(DiskState::Growing { from, to }) => applied.disk_growth.push(format!("disk {}: {from} → {to}", d.disk)),
            Ok(_) => {}
            Err(source) => return Err(Error::Apply { what: format!("disk {} of TenantVM {name}", d.disk), source }),
        }
    }
    let want = managed_part(vm, &t.seen.vm, &admitted.size, nics, hotplug);
    let vapi: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &build::vm_resource());
    let cached = unchanged(ctx.children.vms.get(&kube::runtime::reflector::ObjectRef::new_with(&name, build::vm_resource()).within(&ns)), &want);
    let kv = match cached {
        Some(have) => have,
        None => match vapi.patch(&name, &apply::params(), &Patch::Apply(&want)).await {
            Ok(o) => o,
            Err(e) => return missing_integration(vm, ctx, e, "KubeVirt (VirtualMachine)").await.map(std::ops::ControlFlow::Break),
        },
    };
    if !t.adopted {
        tracing::info!(vm = %name, namespace = %ns, disks = t.disks.len(), "VirtualMachine adopted as it runs");
        ctx.base.event(vm, false, "Adopted", &format!("VirtualMachine {name} adopted with {} disk(s); its instance keeps running", t.disks.len())).await;
    }
    applied.phase = kv.data.pointer("/status/printableStatus").and_then(|v| v.as_str()).map(str::to_string);
    let (instance, restarted_for) = restart_if_asked(vm, ctx).await?;
    // An instance started before pdc took the VM over carries no size annotation:
    // what it runs as is read from its CPUs and memory.
    applied.instance = match (instance, t.seen.vmi.as_ref()) {
        (Some(None), Some(i)) => Some(Some(running_as(vm, &admitted.size, i))),
        (i, _) => i,
    };
    Ok(std::ops::ControlFlow::Continue((applied, restarted_for)))
}

/// Label a disk as the TenantVM's (an owner reference too, unless its disks are
/// kept), and grow its claim to the size charged.
async fn own_disk(vm: &TenantVM, ctx: &VmContext, d: &TakenDisk) -> std::result::Result<DiskState, kube::Error> {
    let (client, ns) = (&ctx.base.client, vm.namespace().unwrap_or_default());
    let mut meta = build::meta(vm, d.claim.clone());
    // Not the controller: a DataVolume of the VM's `dataVolumeTemplates` already has
    // KubeVirt's VM as its controller.
    meta.owner_references = match vm.spec.disk_deletion_policy {
        DiskDeletionPolicy::Delete => vm.controller_owner_ref(&()).map(|mut o| {
            o.controller = Some(false);
            vec![o]
        }),
        DiskDeletionPolicy::Retain => None,
    };
    if d.data_volume {
        let dvs: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &build::dv_resource());
        let mut o = DynamicObject::new(&d.claim, &build::dv_resource()).within(&ns);
        o.metadata = meta;
        o.data = serde_json::json!({});
        match dvs.get_opt(&d.claim).await? {
            Some(have) if contains_meta(&have.metadata, &o.metadata) => {}
            Some(_) => {
                dvs.patch(&d.claim, &apply::params(), &Patch::Apply(&o)).await?;
            }
            None => {}
        }
        if let Some(have) = dvs.get_opt(&d.claim).await?
            && let Some(why) = disk::failure(&have)
        {
            return Ok(DiskState::Failed(why));
        }
    } else {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
        let o = PersistentVolumeClaim { metadata: meta, ..Default::default() };
        if !pvcs.get_opt(&d.claim).await?.is_some_and(|have| contains_meta(&have.metadata, &o.metadata)) {
            pvcs.patch(&d.claim, &apply::params(), &Patch::Apply(&o)).await?;
        }
    }
    disk::grow(client, &ns, &d.claim, &d.size).await
}

fn contains_meta(have: &kube::api::ObjectMeta, want: &kube::api::ObjectMeta) -> bool {
    let labels = want.labels.iter().flatten().all(|(k, v)| have.labels.as_ref().and_then(|h| h.get(k)) == Some(v));
    let owners = want.owner_references.iter().flatten().all(|o| have.owner_references.iter().flatten().any(|h| h.uid == o.uid));
    labels && owners
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use serde_json::json;

    fn tvm(nics: serde_json::Value) -> TenantVM {
        serde_json::from_value(json!({
            "apiVersion": "pdc.io/v1alpha1", "kind": "TenantVM",
            "metadata": {"name": "legacy", "namespace": "so-noi-vu", "uid": "t-1", "generation": 1},
            "spec": {"size": "m1.small", "adopt": {"virtualMachine": "legacy"}, "rootDisk": {"name": "os", "size": "30Gi", "tier": "ssd"},
                     "disks": [{"name": "data", "size": "100Gi", "tier": "hdd"}], "nics": nics, "hostname": "legacy"}
        }))
        .unwrap()
    }

    fn size(vcpu: i32, memory: &str) -> SizeClass {
        serde_json::from_value(json!({"apiVersion": "pdc.io/v1alpha1", "kind": "SizeClass", "metadata": {"name": "m1.small"}, "spec": {"vcpu": vcpu, "memory": memory}})).unwrap()
    }

    fn admitted() -> Admitted {
        Admitted { size: size(2, "4Gi"), charge: pdc_core::quota::Charge::default(), classes: vec![(true, "pdc-ssd".into()), (false, "pdc-hdd".into())] }
    }

    fn kv(owner: Option<(&str, bool)>) -> DynamicObject {
        let mut o: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "legacy", "namespace": "so-noi-vu"},
            "spec": {"runStrategy": "Always", "template": {"spec": {
                "domain": {"cpu": {"sockets": 2}, "memory": {"guest": "4Gi"}, "devices": {}},
                "volumes": [{"name": "os", "dataVolume": {"name": "legacy-os"}}, {"name": "data", "persistentVolumeClaim": {"claimName": "legacy-data"}},
                            {"name": "ci", "cloudInitNoCloud": {"userData": "#cloud-config"}}, {"name": "scratch", "dataVolume": {"name": "x", "hotpluggable": true}}]
            }}}
        }))
        .unwrap();
        if let Some((uid, controller)) = owner {
            o.metadata.owner_references = Some(vec![OwnerReference { uid: uid.into(), controller: Some(controller), kind: "VirtualMachinePool".into(), name: "pool".into(), ..Default::default() }]);
        }
        o
    }

    fn pvc(name: &str, class: &str, size: &str) -> (String, PersistentVolumeClaim) {
        let p = serde_json::from_value(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"storageClassName": class, "resources": {"requests": {"storage": size}}}}))
        .unwrap();
        (name.to_string(), p)
    }

    fn vmi(addrs: &[&str]) -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance", "metadata": {"name": "legacy"},
            "spec": {"domain": {"cpu": {"sockets": 2}, "memory": {"guest": "4Gi"}}},
            "status": {"interfaces": [{"name": "default", "ipAddress": "10.244.0.3"}, {"name": "lan", "ipAddresses": addrs}]}}))
        .unwrap()
    }

    fn seen(vm: DynamicObject, claims: Vec<(String, PersistentVolumeClaim)>, addrs: &[&str]) -> Seen {
        Seen { vm, vmi: Some(vmi(addrs)), claims: claims.into_iter().collect() }
    }

    fn pfx() -> (ZonePrefixes, ZonePrefixes) {
        let p = |s: &str| Prefix::parse(s).unwrap();
        (vec![("app".into(), p("10.15.1.0/24"))], vec![("app".into(), p("10.15.0.0/16"))])
    }

    #[test]
    fn an_adoption_is_refused_before_anything_is_written_when_it_does_not_fit() {
        let good = || vec![pvc("legacy-os", "pdc-ssd", "30Gi"), pvc("legacy-data", "pdc-hdd", "80Gi")];
        let nic = json!([{"zone": "app", "ipv4": "10.15.1.50"}]);
        let (subnets, zones) = pfx();
        let ok = plan_vm(&tvm(nic.clone()), seen(kv(None), good(), &["10.15.1.50"]), &admitted(), &subnets, &zones).unwrap();
        assert!(!ok.adopted);
        assert_eq!(ok.disks.iter().map(|d| (d.disk.as_str(), d.claim.as_str(), d.data_volume)).collect::<Vec<_>>(), vec![("os", "legacy-os", true), ("data", "legacy-data", false)]);
        // Once pdc owns it, the addresses are its claims' and are not checked again.
        let mine = plan_vm(&tvm(nic.clone()), seen(kv(Some(("t-1", true))), good(), &["10.15.1.77"]), &admitted(), &subnets, &zones).unwrap();
        assert!(mine.adopted);
        let mut no_data = tvm(nic.clone());
        no_data.spec.disks.clear();
        let mut wrong_name = tvm(nic.clone());
        wrong_name.spec.root_disk.name = "root".into();
        let cases: Vec<(TenantVM, Seen, &str, &str)> = vec![
            (tvm(nic.clone()), seen(kv(Some(("pool-1", true))), good(), &["10.15.1.50"]), "ControlledElsewhere", "controlled by VirtualMachinePool pool"),
            (wrong_name, seen(kv(None), good(), &["10.15.1.50"]), "UnknownDisk", "disk root: VirtualMachine legacy has no disk volume of that name (its disk volumes: os, data)"),
            (tvm(nic.clone()), seen(kv(None), vec![pvc("legacy-os", "pdc-ssd", "30Gi")], &["10.15.1.50"]), "DiskNotFound", "PersistentVolumeClaim legacy-data does not exist"),
            (tvm(nic.clone()), seen(kv(None), vec![pvc("legacy-os", "local-path", "30Gi"), pvc("legacy-data", "pdc-hdd", "80Gi")], &["10.15.1.50"]), "TierMismatch", "StorageClass \"local-path\""),
            (tvm(nic.clone()), seen(kv(None), vec![pvc("legacy-os", "pdc-ssd", "40Gi"), pvc("legacy-data", "pdc-hdd", "80Gi")], &["10.15.1.50"]), "DiskUndercharged", "holds 40Gi, more than the 30Gi charged"),
            (no_data, seen(kv(None), good(), &["10.15.1.50"]), "UnchargedDisk", "volume data (claim legacy-data) is not among"),
            (tvm(nic.clone()), seen(kv(None), good(), &["10.15.1.50", "10.15.1.51"]), "AddressMismatch", "uses 10.15.1.51 in zone app but no NIC keeps it"),
        ];
        for (v, s, reason, says) in cases {
            let admitted = if v.spec.disks.is_empty() { Admitted { classes: vec![(true, "pdc-ssd".into())], ..admitted() } } else { admitted() };
            let Err(r) = plan_vm(&v, s, &admitted, &subnets, &zones) else { panic!("{reason} not refused") };
            assert_eq!(r.0, reason, "{r:?}");
            assert!(r.1.contains(says), "{r:?}");
        }
    }

    #[test]
    fn pdc_applies_only_what_it_manages_and_nothing_that_restarts_a_vm_of_its_size() {
        let nics = vec![NicPlan { zone: "app".into(), mac: "02:aa:00:00:00:01".into(), ipv4: None, ipv6: None }];
        let v = tvm(json!([{"zone": "app", "ipv4": "10.15.1.50"}]));
        let same = managed_part(&v, &kv(None), &size(2, "4Gi"), &nics, &[]);
        let spec = &same.data["spec"];
        // The template's own CPU, memory, disks and volumes, as they are: applying
        // them changes nothing. (The old hot-plugged one is gone: no TenantVolume
        // names it.)
        let own_volumes = kv(None).data["spec"]["template"]["spec"]["volumes"].as_array().unwrap()[..3].to_vec();
        assert_eq!(spec["template"]["spec"], json!({"domain": {"cpu": {"sockets": 2}, "memory": {"guest": "4Gi"}}, "volumes": own_volumes}));
        let hot = managed_part(&v, &kv(None), &size(2, "4Gi"), &nics, &["vol-scans".to_string()]);
        let vols = hot.data["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
        assert_eq!((vols.len(), &vols[3]), (4, &json!({"name": "vol-scans", "dataVolume": {"name": "vol-scans", "hotpluggable": true}})));
        assert_eq!(hot.data["spec"]["template"]["spec"]["domain"]["devices"]["disks"], json!([{"name": "vol-scans", "disk": {"bus": "scsi"}}]));
        assert_eq!(spec["runStrategy"], "Always");
        assert_eq!(spec["template"]["metadata"]["annotations"][l::VM_SIZE], "m1.small");
        assert_eq!(same.metadata.owner_references.as_ref().unwrap()[0].uid, "t-1");
        // Another size: the size's figures, which the instance takes at its next start.
        let bigger = managed_part(&v, &kv(None), &size(4, "8Gi"), &nics, &[]);
        assert_eq!(bigger.data["spec"]["template"]["spec"]["domain"], json!({"cpu": {"sockets": 1, "cores": 4, "threads": 1}, "memory": {"guest": "8Gi"}, "resources": {"requests": {"memory": "8Gi"}}}));
        // A VM that says `running` gets no run strategy beside it.
        let mut old = kv(None);
        old.data["spec"] = json!({"running": true, "template": old.data["spec"]["template"].clone()});
        assert!(managed_part(&v, &old, &size(2, "4Gi"), &nics, &[]).data["spec"].get("runStrategy").is_none());
        assert_eq!(running_as(&v, &size(2, "4Gi"), &vmi(&[])), "m1.small");
        assert_eq!(running_as(&v, &size(4, "8Gi"), &vmi(&[])), "2 vCPU and 4Gi memory, as adopted");
    }

    #[test]
    fn an_address_held_by_anyone_but_the_nics_own_claim_is_refused() {
        let alloc = |ns: &str, claim: &str, external: bool| -> AddressAllocation {
            serde_json::from_value(json!({"apiVersion": "pdc.io/v1alpha1", "kind": "AddressAllocation", "metadata": {"name": "10.15.1.50"},
                "spec": {"address": "10.15.1.50", "subnet": "10.15.1.0/24", "zone": "app", "site": "daklak", "department": ns,
                         "claim": {"namespace": ns, "name": claim, "uid": "c"}, "external": if external { json!({"role": "server", "plan": "p.yaml"}) } else { json!(null) }}}))
            .unwrap()
        };
        assert_eq!(holder_refusal(&alloc("so-noi-vu", "legacy-nic0", false), "so-noi-vu", "legacy-nic0", "10.15.1.50"), None);
        let r = holder_refusal(&alloc("so-y-te", "legacy-nic0", false), "so-noi-vu", "legacy-nic0", "10.15.1.50").unwrap();
        assert!(r.1.contains("allocated to AddressClaim so-y-te/legacy-nic0"), "{r:?}");
        let r = holder_refusal(&alloc("", "", true), "so-noi-vu", "legacy-nic0", "10.15.1.50").unwrap();
        assert!(r.1.contains("pdcctl ip release-external 10.15.1.50"), "{r:?}");
    }
}
