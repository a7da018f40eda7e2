//! The TenantVM controller. For a valid, admitted VM it makes, in order: one
//! AddressClaim per NIC (waits until bound), the DataVolumes, the KubeVirt
//! VirtualMachine with the addresses in cloud-init network data, and the A/AAAA
//! DnsRecords of its FQDN; then it mirrors KubeVirt's printable status. Every step is
//! server-side apply of a value, so a reconcile repeated after a crash changes
//! nothing. Deleting a TenantVM deletes what it made (disks per its policy) and
//! releases its quota before the finalizer goes.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, Patch};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use pdc_api::conditions::{self, Cond, READY};
use pdc_api::labels as l;
use pdc_api::{AddressClaim, Department, DiskDeletionPolicy, DnsRecord, NetworkZone, NicStatus, Province, SizeClass, TenantVM, TenantVMStatus, TenantVolume};
use pdc_core::quota::Charge;
use tracing::info;

use super::build::{self, NicPlan, VM_LABEL};
use super::disk::DiskState;
use super::ledger;
use crate::apply;
use crate::context::Context;
use crate::department::spec_or_lifecycle;
use crate::dr::{DrView, VmRole};
use crate::error::{Error, Result, is_not_found};

const CONTROLLER: &str = "tenantvm";
pub const FINALIZER: &str = "pdc.io/tenantvm-cleanup";
pub const QUOTA_ACCEPTED: &str = "QuotaAccepted";
pub const ADDRESSES: &str = "AddressesAllocated";
pub const DNS: &str = "DnsProgrammed";
pub const RESTART: &str = "RestartRequired";
/// Every disk has the size its spec asks (a grown disk's claim is expanded in place).
pub const DISKS_GROWN: &str = "DisksResized";

pub struct VmContext {
    pub base: Arc<Context>,
    pub departments: Store<Department>,
    pub provinces: Store<Province>,
    pub sizes: Store<SizeClass>,
    pub zones: Store<NetworkZone>,
    /// TenantVolumes, for the hotplug disks of the VMs they name.
    pub volumes: Store<TenantVolume>,
    /// DR plans: whether a protected VM runs here or stands by.
    pub dr: DrView,
}

fn key(vm: &TenantVM) -> String {
    format!("vm/{}", vm.name_any())
}

/// Why a VM cannot be made as asked: a reason and a message.
struct Refusal(&'static str, String);

/// An admissible request: its size, its quota charge, and per disk (root first)
/// whether it is the root and its StorageClass.
type Checked = (Arc<SizeClass>, Charge, Vec<(bool, String)>);

/// Check the request against the province, the department and the sizes.
/// `size`: the SizeClass, or the names of those that exist.
fn check(vm: &TenantVM, ctx: &VmContext, size: std::result::Result<Arc<SizeClass>, Vec<String>>) -> std::result::Result<Checked, Refusal> {
    let ns = vm.namespace().unwrap_or_default();
    let dept = ctx.departments.get(&ObjectRef::new(&ns)).ok_or_else(|| Refusal("NotADepartment", format!("namespace {ns} is not a Department's")))?;
    let province = ctx.provinces.state().first().cloned().ok_or_else(|| Refusal("NoProvince", "no Province is defined".into()))?;
    let size = size.map_err(|known| Refusal("UnknownSize", format!("size {:?} is not a SizeClass; sizes: {}", vm.spec.size, known.join(", "))))?;
    let mut storage = std::collections::BTreeMap::<String, u128>::new();
    let mut classes = Vec::new();
    for (root, d) in std::iter::once((true, &vm.spec.root_disk)).chain(vm.spec.disks.iter().map(|d| (false, d))) {
        let sc = province.storage_class(&d.tier).ok_or_else(|| {
            let tiers: Vec<&str> = province.spec.storage_tiers.iter().map(|t| t.name.as_str()).collect();
            Refusal("UnknownTier", format!("disk {} asks tier {:?}; the province's tiers: {}", d.name, d.tier, tiers.join(", ")))
        })?;
        let bytes = pdc_core::quantity::parse(&d.size).map_err(|e| Refusal("InvalidSize", format!("disk {}: {e}", d.name)))?;
        *storage.entry(d.tier.clone()).or_default() += bytes;
        classes.push((root, sc.to_string()));
    }
    for n in &vm.spec.nics {
        if !dept.spec.zones.contains(&n.zone) {
            return Err(Refusal("ZoneNotAllowed", format!("NIC zone {:?} is not one of the department's zones ({})", n.zone, dept.spec.zones.join(", "))));
        }
    }
    let memory = pdc_core::quantity::parse(&size.spec.memory).map_err(|e| Refusal("InvalidSize", format!("SizeClass {}: {e}", size.name_any())))?;
    let charge = Charge { vcpu: u64::try_from(size.spec.vcpu).unwrap_or(0), memory, storage, vms: 1 };
    Ok((size, charge, classes))
}

async fn set_status(vm: &TenantVM, ctx: &VmContext, conds: Vec<Cond>, f: impl FnOnce(&mut TenantVMStatus)) -> Result<()> {
    let old = vm.status.clone().unwrap_or_default();
    let mut new = old.clone();
    new.conditions = conditions::merge(&old.conditions, &conds, vm.metadata.generation, Timestamp::now());
    new.observed_generation = vm.metadata.generation;
    f(&mut new);
    if new == old {
        return Ok(());
    }
    apply::patch_status(&Api::<TenantVM>::namespaced(ctx.base.client.clone(), &vm.namespace().unwrap_or_default()), &vm.name_any(), &new).await
}

async fn refuse(vm: &TenantVM, ctx: &VmContext, r: Refusal) -> Result<Action> {
    if vm.status.as_ref().and_then(|s| conditions::find(&s.conditions, READY)).is_none_or(|c| c.reason != r.0) {
        ctx.base.event(vm, true, r.0, &r.1).await;
    }
    set_status(vm, ctx, vec![Cond::new(READY, false, r.0, r.1)], |s| s.phase = Some("Failed".into())).await?;
    // Sizes, tiers and zones may be added later.
    Ok(Action::requeue(Duration::from_secs(60)))
}

async fn provision(vm: &TenantVM, ctx: &VmContext) -> Result<Action> {
    let client = &ctx.base.client;
    let ns = vm.namespace().unwrap_or_default();
    // Until the caches hold their first full lists, an empty one would read as an
    // unknown size, detached volumes or a missing subdomain.
    use crate::cache::synced;
    if !(synced(&ctx.departments) && synced(&ctx.provinces) && synced(&ctx.sizes) && synced(&ctx.zones) && synced(&ctx.volumes)) {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let role = ctx.dr.vm_role(vm);
    if role == VmRole::Unconfirmed {
        // The DR controller has not yet checked the plan against the other site.
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    // A protected VM at a site other than the plan's primary takes that site's addresses.
    let claim_site = match (&role, ctx.dr.site.as_deref()) {
        (VmRole::Active { primary, .. } | VmRole::Standby { primary, .. }, Some(me)) if me != primary => Some(me.to_string()),
        _ => None,
    };
    let (standby, carries_dns, promoted) = match &role {
        VmRole::Standby { .. } => (true, false, Default::default()),
        VmRole::Active { dns, promoted, .. } => (false, *dns, promoted.clone()),
        _ => (false, true, Default::default()),
    };
    // The cache may not have a SizeClass created a moment ago: ask the API server then.
    let size = match ctx.sizes.get(&ObjectRef::new(&vm.spec.size)) {
        Some(s) => Ok(s),
        None => {
            let read = |source| Error::Read { what: "SizeClasses".into(), source };
            let sapi = Api::<SizeClass>::all(client.clone());
            match sapi.get_opt(&vm.spec.size).await.map_err(read)? {
                Some(s) => Ok(Arc::new(s)),
                None => {
                    let mut known: Vec<String> = sapi.list(&kube::api::ListParams::default()).await.map_err(read)?.items.iter().map(|s| s.name_any()).collect();
                    known.sort();
                    Err(known)
                }
            }
        }
    };
    let (size, charge, classes) = match check(vm, ctx, size) {
        Ok(x) => x,
        Err(r) => return refuse(vm, ctx, r).await,
    };
    let cached = ctx.departments.get(&ObjectRef::new(&ns));
    if let Err(over) = ledger::charge(client, cached.as_deref(), &ns, &key(vm), &vm.uid().unwrap_or_default(), Some(&charge)).await? {
        let msg = format!("over the department's quota: {}", over.join("; "));
        if vm.status.as_ref().and_then(|s| conditions::find(&s.conditions, QUOTA_ACCEPTED)).is_none_or(|c| c.status != "False" || c.message != msg) {
            ctx.base.event(vm, true, "QuotaExceeded", &msg).await;
        }
        set_status(vm, ctx, vec![Cond::new(QUOTA_ACCEPTED, false, "QuotaExceeded", msg.clone()), Cond::new(READY, false, "QuotaExceeded", msg)], |s| {
            s.phase = Some("Pending".into())
        })
        .await?;
        // A released VM elsewhere in the department wakes this one (Department watch).
        return Ok(Action::requeue(Duration::from_secs(120)));
    }
    let accepted = Cond::new(QUOTA_ACCEPTED, true, "Admitted", format!("{} vCPU, {} memory, {} disk(s) charged", size.spec.vcpu, size.spec.memory, classes.len()));

    // Addresses.
    let capi: Api<AddressClaim> = Api::namespaced(client.clone(), &ns);
    let mut bound = Vec::new();
    for c in build::claims(vm, claim_site.as_deref()) {
        let got = apply::apply(&capi, &c).await?;
        let st = got.status.clone().unwrap_or_default();
        let ok = conditions::is_true(&st.conditions, READY);
        bound.push((ok, st, c.spec.zone.clone(), conditions::find(&got.status.unwrap_or_default().conditions, READY).map(|c| c.message.clone())));
    }
    if let Some((_, _, zone, msg)) = bound.iter().find(|b| !b.0) {
        let m = format!("waiting for addresses in zone {zone}: {}", msg.clone().unwrap_or_else(|| "not bound yet".into()));
        set_status(vm, ctx, vec![accepted, Cond::new(ADDRESSES, false, "Pending", m.clone()), Cond::new(READY, false, "AddressesPending", m)], |s| {
            s.phase = Some("Pending".into())
        })
        .await?;
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    let uid = vm.uid().unwrap_or_default();
    let nics: Vec<NicPlan> = bound
        .iter()
        .enumerate()
        .map(|(i, (_, st, zone, _))| NicPlan {
            zone: zone.clone(),
            mac: pdc_core::netdata::mac_for(&format!("{uid}/{i}")),
            ipv4: st.ipv4.as_ref().map(|a| (format!("{}/{}", a.address, a.prefix_length), a.gateway.clone())),
            ipv6: st.ipv6.as_ref().map(|a| (format!("{}/{}", a.address, a.prefix_length), a.gateway.clone())),
        })
        .collect();

    // Disks, then the VM.
    let dapi: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &build::dv_resource());
    let disks = std::iter::once(&vm.spec.root_disk).chain(vm.spec.disks.iter());
    let mut disk_failures = Vec::new();
    let mut disk_growth = Vec::new();
    for (d, (root, sc)) in disks.zip(classes.iter()) {
        if standby {
            // The standby copy's disks come from replicas when it takes over.
            continue;
        }
        let restore = promoted.get(&build::disk_name(vm, d)).map(String::as_str);
        if let Some(snap) = restore {
            // A disk restored by a failover or relocate here: a DataVolume from before
            // (older data) makes way for one from the promoted replica.
            let name = build::disk_name(vm, d);
            match dapi.get_opt(&name).await {
                Ok(Some(old)) if old.annotations().get(pdc_api::labels::DR_RESTORED_FROM).map(String::as_str) != Some(snap) => {
                    if old.metadata.deletion_timestamp.is_none() {
                        dapi.delete(&name, &DeleteParams::background()).await.map_err(|source| Error::Delete { what: format!("DataVolume {name}"), source })?;
                    }
                    return Ok(Action::requeue(Duration::from_millis(500)));
                }
                Ok(_) => {}
                Err(e) => return missing_integration(vm, ctx, e, "CDI (DataVolume)").await,
            }
        }
        let dv = build::data_volume(vm, d, *root, sc, restore);
        match super::disk::ensure(client, &dv, &d.size).await {
            Ok(DiskState::Failed(why)) => disk_failures.push(format!("disk {}: {why}", d.name)),
            Ok(DiskState::Growing { from, to }) => disk_growth.push(format!("disk {}: {from} → {to}", d.name)),
            Ok(_) => {}
            Err(e) => return missing_integration(vm, ctx, e, "CDI (DataVolume)").await,
        }
    }
    let dept = ctx.departments.get(&ObjectRef::new(&ns));
    let subdomain = dept.as_ref().and_then(|d| d.status.as_ref().and_then(|s| s.subdomain.clone())).unwrap_or_default();
    let resolvers = bound
        .first()
        .and_then(|(_, _, zone, _)| ctx.zones.get(&ObjectRef::new(zone)))
        .map(|z| z.spec.resolvers.clone())
        .unwrap_or_default();
    // TenantVolumes attached to this VM become hotplug disks; not on a DR-protected VM,
    // whose copy at the other site would start without them (DR replicates a VM's root
    // and data disks only; the volume says so).
    let mut hotplug: Vec<String> = ctx
        .volumes
        .state()
        .iter()
        .filter(|_| !vm.spec.dr_protected)
        .filter(|v| v.namespace() == vm.namespace() && v.spec.vm.as_deref() == Some(vm.name_any().as_str()) && v.metadata.deletion_timestamp.is_none())
        .map(|v| v.as_ref())
        .map(super::volume::dv_name)
        .collect();
    hotplug.sort();
    let vmobj = build::virtual_machine(vm, size.spec.vcpu, &size.spec.memory, &nics, &resolvers, &subdomain, &hotplug, standby);
    let vapi: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &build::vm_resource());
    let kv = match vapi.patch(&vm.name_any(), &apply::params(), &Patch::Apply(&vmobj)).await {
        Ok(o) => o,
        Err(e) => return missing_integration(vm, ctx, e, "KubeVirt (VirtualMachine)").await,
    };

    // The instance, read from the API server: the size it runs as and the restart
    // request it was started after are on it (KubeVirt copies the template's
    // annotations), so neither a stale cache nor a crash between the delete and the
    // status write restarts it twice.
    let vmis: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &build::vmi_resource());
    let mut live = match vmis.get_opt(&vm.name_any()).await {
        Ok(i) => i.filter(|i| i.metadata.deletion_timestamp.is_none()),
        Err(source) => return Err(Error::Read { what: format!("VirtualMachineInstance {}", vm.name_any()), source }),
    };
    let started_with = |i: &DynamicObject, key: &str| i.annotations().get(key).cloned();
    let mut restarted_for = vm.status.as_ref().and_then(|s| s.restarted_for.clone());
    if let Some(tok) = vm.spec.restart_request.clone()
        && let Some(i) = &live
    {
        if started_with(i, l::VM_RESTART_REQUEST).as_ref() == Some(&tok) {
            restarted_for = Some(tok);
        } else if restarted_for.as_ref() != Some(&tok) {
            // Not yet carried out: delete the running instance; KubeVirt starts a new
            // one from the current template (run strategy Always).
            match vmis.delete(&vm.name_any(), &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(source) => return Err(Error::Delete { what: format!("VirtualMachineInstance {}", vm.name_any()), source }),
            }
            ctx.base.event(vm, false, "Restarted", &format!("restarted as {}", vm.spec.size)).await;
            restarted_for = Some(tok);
            live = None;
        }
    }

    // DNS.
    let first = nics.first();
    let strip = |x: &Option<(String, String)>| x.as_ref().and_then(|(a, _)| a.split('/').next().map(str::to_string));
    let (v4, v6) = (first.and_then(|n| strip(&n.ipv4)), first.and_then(|n| strip(&n.ipv6)));
    let rapi: Api<DnsRecord> = Api::namespaced(client.clone(), &ns);
    let mut dns_ok = true;
    let mut dns_msg = Vec::new();
    let records = if carries_dns { build::dns_records(vm, v4.as_deref(), v6.as_deref()) } else { Vec::new() };
    if !carries_dns {
        dns_ok = false;
        dns_msg.push(match &role {
            VmRole::Standby { active, .. } => format!("the name carries site {active}'s addresses"),
            _ => "the name moves to this site's addresses at the DR plan's SwitchDNS step".into(),
        });
    }
    for r in records {
        let got = apply::apply(&rapi, &r).await?;
        let c = got.status.as_ref().and_then(|s| conditions::find(&s.conditions, "Programmed")).cloned();
        if !c.as_ref().is_some_and(|c| c.status == "True" && c.observed_generation == got.metadata.generation) {
            dns_ok = false;
            dns_msg.push(format!("{}: {}", r.name_any(), c.map(|c| c.message).unwrap_or_else(|| "waiting for the zone writer".into())));
        }
    }

    // Status.
    let phase = kv.data.pointer("/status/printableStatus").and_then(|v| v.as_str()).unwrap_or("Provisioning").to_string();
    let running = phase == "Running";
    let fqdn = format!("{}.{subdomain}.", vm.spec.hostname);
    // An instance started before pdc put its size on it: the size last recorded.
    let running_size = match &live {
        Some(i) if running => Some(
            started_with(i, l::VM_SIZE)
                .or_else(|| vm.status.as_ref().and_then(|s| s.running_size.clone()))
                .unwrap_or_else(|| vm.spec.size.clone()),
        ),
        _ => None,
    };
    let restart = running_size.as_ref().is_some_and(|s| *s != vm.spec.size);
    let ready = running && dns_ok && disk_failures.is_empty();
    let ready_cond = if let VmRole::Standby { plan, active, .. } = &role {
        Cond::new(READY, false, "Standby", format!("protected by DrPlan {plan}: it runs at site {active}; here it is defined and halted, its addresses reserved"))
    } else if !disk_failures.is_empty() {
        Cond::new(READY, false, "DiskFailed", disk_failures.join("; "))
    } else if ready {
        Cond::new(READY, true, "Running", format!("running as {fqdn}"))
    } else if !running {
        Cond::new(READY, false, "NotRunning", format!("the VirtualMachine is {phase}"))
    } else {
        Cond::new(READY, false, "DnsPending", dns_msg.join("; "))
    };
    let conds = vec![
        accepted,
        Cond::new(ADDRESSES, true, "Bound", format!("{} NIC(s) with static IPv4 and IPv6", nics.len())),
        if dns_ok {
            Cond::new(DNS, true, "Programmed", format!("{fqdn} A/AAAA answer"))
        } else if !carries_dns {
            Cond::new(DNS, false, "Standby", dns_msg.join("; "))
        } else {
            Cond::new(DNS, false, "Pending", dns_msg.join("; "))
        },
        if restart {
            Cond::new(RESTART, true, "Resized", format!("restart the VM to run as {} (it runs as {})", vm.spec.size, running_size.clone().unwrap_or_default()))
        } else {
            Cond::new(RESTART, false, "UpToDate", "the guest runs with its size")
        },
        if disk_growth.is_empty() {
            Cond::new(DISKS_GROWN, true, "UpToDate", "every disk has the size asked")
        } else {
            Cond::new(DISKS_GROWN, false, "Expanding", format!("the claims are being expanded: {}", disk_growth.join("; ")))
        },
        ready_cond,
    ];
    let was_ready = vm.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY));
    if ready && !was_ready
        && let Some(t) = &vm.metadata.creation_timestamp
    {
        let secs = Timestamp::now().duration_since(t.0).as_secs_f64();
        ctx.base.metrics.tenantvm_provision.observe(secs.max(0.0));
    }
    set_status(vm, ctx, conds, |s| {
        s.phase = Some(phase.clone());
        s.fqdn = Some(fqdn.clone());
        s.nics = nics.iter().map(|n| NicStatus { zone: n.zone.clone(), ipv4: strip(&n.ipv4), ipv6: strip(&n.ipv6), mac: Some(n.mac.clone()) }).collect();
        s.running_size = running_size.clone();
        s.restarted_for = restarted_for.clone();
    })
    .await?;
    if !ready {
        return Ok(Action::requeue(Duration::from_secs(10)));
    }
    if !disk_growth.is_empty() {
        return Ok(Action::requeue(Duration::from_secs(3)));
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

async fn missing_integration(vm: &TenantVM, ctx: &VmContext, e: kube::Error, what: &str) -> Result<Action> {
    if is_not_found(&e) {
        let msg = format!("{what} is not installed in this cluster: its CRD is missing");
        set_status(vm, ctx, vec![Cond::new(READY, false, "IntegrationMissing", msg)], |s| s.phase = Some("Pending".into())).await?;
        return Ok(Action::requeue(Duration::from_secs(60)));
    }
    Err(Error::Apply { what: format!("{what} for TenantVM {}", vm.name_any()), source: e })
}

async fn delete_all<K>(api: &Api<K>, vm: &TenantVM) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let lp = kube::api::ListParams::default().labels(&format!("{VM_LABEL}={}", vm.name_any()));
    let items = match api.list(&lp).await {
        Ok(l) => l.items,
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(source) => return Err(Error::Read { what: format!("children of TenantVM {}", vm.name_any()), source }),
    };
    for o in items {
        let name = o.meta().name.clone().unwrap_or_default();
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(source) => return Err(Error::Delete { what: name, source }),
        }
    }
    Ok(())
}

async fn teardown(vm: &TenantVM, ctx: &VmContext) -> Result<Action> {
    let client = &ctx.base.client;
    let ns = vm.namespace().unwrap_or_default();
    delete_all(&Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &build::vm_resource()), vm).await?;
    delete_all(&Api::<DnsRecord>::namespaced(client.clone(), &ns), vm).await?;
    delete_all(&Api::<AddressClaim>::namespaced(client.clone(), &ns), vm).await?;
    if vm.spec.disk_deletion_policy == DiskDeletionPolicy::Delete {
        delete_all(&Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &build::dv_resource()), vm).await?;
    }
    match ledger::charge(client, None, &ns, &key(vm), &vm.uid().unwrap_or_default(), None).await {
        Ok(_) => {}
        Err(Error::Read { source, .. }) if is_not_found(&source) => {}
        Err(e) => return Err(e),
    }
    info!(vm = %vm.name_any(), namespace = %ns, "TenantVM removed; quota released");
    Ok(Action::await_change())
}

async fn reconcile(vm: Arc<TenantVM>, ctx: Arc<VmContext>) -> Result<Action> {
    let api: Api<TenantVM> = Api::namespaced(ctx.base.client.clone(), &vm.namespace().unwrap_or_default());
    let c = ctx.as_ref();
    ctx.base.finalized(CONTROLLER, &api, FINALIZER, vm, |v| async move { provision(&v, c).await }, |v| async move { teardown(&v, c).await }).await
}

fn error_policy(vm: Arc<TenantVM>, err: &Error, ctx: Arc<VmContext>) -> Action {
    ctx.base.failed(CONTROLLER, vm.as_ref(), err, Duration::from_secs(2))
}

pub fn controller(client: Client, concurrency: u16) -> Controller<TenantVM> {
    let (reader, writer) = kube::runtime::reflector::store();
    let stream = watcher(Api::<TenantVM>::all(client), watcher::Config::default())
        .default_backoff()
        .modify(|v| v.metadata.managed_fields = None)
        .reflect(writer)
        .applied_objects()
        .predicate_filter(spec_or_lifecycle, Default::default());
    Controller::for_stream(stream, reader).with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
}

/// Children carry the VM's name in a label; their changes wake it.
fn by_label<K: kube::Resource>(o: &K) -> Option<ObjectRef<TenantVM>> {
    let name = o.meta().labels.as_ref()?.get(VM_LABEL)?;
    Some(ObjectRef::new(name).within(o.meta().namespace.as_deref()?))
}

/// Every 10 s: VMs by phase, and each department's quota use against its limits.
async fn report(ctx: Arc<VmContext>, vms: Store<TenantVM>) {
    let m = &ctx.base.metrics;
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let mut phases = std::collections::BTreeMap::<String, f64>::new();
        for v in vms.state() {
            *phases.entry(v.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_else(|| "Pending".into())).or_default() += 1.0;
        }
        m.tenantvms.reset();
        for (p, n) in phases {
            m.tenantvms.with_label_values(&[&p]).set(n);
        }
        m.quota_used.reset();
        m.quota_limit.reset();
        for d in ctx.departments.state() {
            let name = d.name_any();
            for (which, c) in [(&m.quota_used, ledger::used(&d)), (&m.quota_limit, ledger::limits(&d.spec.quota))] {
                which.with_label_values(&[&name, "vcpu"]).set(c.vcpu as f64);
                which.with_label_values(&[&name, "memory_bytes"]).set(c.memory as f64);
                which.with_label_values(&[&name, "vms"]).set(c.vms as f64);
                for (tier, b) in &c.storage {
                    which.with_label_values(&[&name, &format!("storage_{tier}_bytes")]).set(*b as f64);
                }
            }
        }
    }
}

/// `volume_changes`: the changes of `ctx.volumes` (see [`crate::cache::watch`]);
/// `plans`: the changes of the DrPlans in `ctx.dr` (see [`crate::dr::watch_plans`]):
/// a site became active or DNS moved, and the VMs of the plan's namespace look again.
pub async fn run<V, P>(ctx: Arc<VmContext>, controller: Controller<TenantVM>, volume_changes: V, plans: P)
where
    V: futures::Stream<Item = std::result::Result<TenantVolume, watcher::Error>> + Send + 'static,
    P: futures::Stream<Item = std::result::Result<pdc_api::DrPlan, watcher::Error>> + Send + 'static,
{
    let client = ctx.base.client.clone();
    let vms = controller.store();
    tokio::spawn(report(ctx.clone(), vms.clone()));
    let labelled = watcher::Config::default().labels(VM_LABEL);
    let kv = watcher(Api::<DynamicObject>::all_with(client.clone(), &build::vm_resource()), labelled.clone()).default_backoff().touched_objects();
    let dvs = watcher(Api::<DynamicObject>::all_with(client.clone(), &build::dv_resource()), labelled.clone()).default_backoff().touched_objects();
    let claims = watcher(Api::<AddressClaim>::all(client.clone()), labelled.clone()).default_backoff().touched_objects();
    let records = watcher(Api::<DnsRecord>::all(client.clone()), labelled).default_backoff().touched_objects();
    // A new SizeClass: VMs refused for an unknown size look again.
    let sizes = watcher(Api::<SizeClass>::all(client.clone()), watcher::Config::default()).default_backoff().applied_objects();
    let vms3 = vms.clone();
    // A TenantVolume attached or detached: the VMs of its namespace look again.
    let vms2 = vms.clone();
    // A Department's ledger or quota changed: VMs of its namespace waiting for quota look again.
    let depts = watcher(Api::<Department>::all(client.clone()), watcher::Config::default()).default_backoff().touched_objects();
    let vms4 = vms.clone();
    controller
        .watches_stream_with(kv, |o: DynamicObject| by_label(&o), build::vm_resource())
        .watches_stream_with(dvs, |o: DynamicObject| by_label(&o), build::dv_resource())
        .watches_stream(claims, |o: AddressClaim| by_label(&o))
        .watches_stream(records, |o: DnsRecord| by_label(&o))
        .watches_stream(sizes, move |_s: SizeClass| {
            vms3.state()
                .iter()
                .filter(|v| v.status.as_ref().and_then(|s| conditions::find(&s.conditions, READY)).is_some_and(|c| c.reason == "UnknownSize"))
                .map(|v| ObjectRef::from_obj(v.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_stream(volume_changes, move |v: TenantVolume| {
            let ns = v.namespace();
            vms2.state().iter().filter(|x| x.namespace() == ns).map(|x| ObjectRef::from_obj(x.as_ref())).collect::<Vec<_>>()
        })
        .watches_stream(plans, move |p: pdc_api::DrPlan| {
            let ns = p.namespace();
            vms4.state().iter().filter(|x| x.namespace() == ns).map(|x| ObjectRef::from_obj(x.as_ref())).collect::<Vec<_>>()
        })
        .watches_stream(depts, move |d: Department| {
            let ns = d.name_any();
            vms.state()
                .iter()
                .filter(|v| v.namespace().as_deref() == Some(ns.as_str()))
                .filter(|v| v.status.as_ref().and_then(|s| conditions::find(&s.conditions, QUOTA_ACCEPTED)).is_some_and(|c| c.status == "False"))
                .map(|v| ObjectRef::from_obj(v.as_ref()))
                .collect::<Vec<_>>()
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}
