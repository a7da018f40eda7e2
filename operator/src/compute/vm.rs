//! The TenantVM controller: a pipeline of named steps around the pure plan in
//! [`super::plan`]. For a valid, admitted VM it charges the quota, applies one
//! AddressClaim per NIC (together; it waits until they are bound), then the
//! DataVolumes (together), then the KubeVirt VirtualMachine with the addresses in
//! cloud-init network data and the A/AAAA DnsRecords of its FQDN (together), and
//! writes the status the plan derives from what the API server returned, once per
//! pass. Every write is server-side apply of a value, so a reconcile repeated after a
//! crash changes nothing. Deleting a TenantVM deletes what it made (disks per its
//! policy) and releases its quota before the finalizer goes.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::{join_all, try_join_all};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, Patch};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use pdc_api::conditions::{self, READY};
use pdc_api::labels as l;
use pdc_api::{AddressClaim, Department, DiskDeletionPolicy, DnsRecord, NetworkZone, NicStatus, Province, SizeClass, TenantVM, TenantVMStatus, TenantVolume};
use tracing::info;

use super::build::{self, NicPlan, VM_LABEL};
use super::disk::DiskState;
use super::ledger;
use super::plan::{self, Admitted, Applied, Children, Placement, Placements, Planned, QUOTA_ACCEPTED, Refusal};
use crate::apply;
use crate::context::Context;
use crate::department::spec_or_lifecycle;
use crate::error::{Error, Result, is_not_found};

const CONTROLLER: &str = "tenantvm";
pub const FINALIZER: &str = "pdc.io/tenantvm-cleanup";

pub struct VmContext {
    pub base: Arc<Context>,
    pub departments: Store<Department>,
    pub provinces: Store<Province>,
    pub sizes: Store<SizeClass>,
    pub zones: Store<NetworkZone>,
    /// TenantVolumes, for the hotplug disks of the VMs they name.
    pub volumes: Store<TenantVolume>,
    /// DR: whether a protected VM runs here or stands by.
    pub dr: Arc<dyn Placements>,
    /// The children as the API server last said: a child that already is as the VM
    /// wants it is not written again.
    pub children: ChildCaches,
}

/// Caches of the VMs' children (those labelled with their TenantVM), filled by the
/// watches that wake the VMs ([`run`]).
#[derive(Clone)]
pub struct ChildCaches {
    pub vms: Store<DynamicObject>,
    pub claims: Store<AddressClaim>,
    pub records: Store<DnsRecord>,
}

/// The writers of [`ChildCaches`], for [`run`].
pub struct ChildWriters {
    vms: kube::runtime::reflector::store::Writer<DynamicObject>,
    claims: kube::runtime::reflector::store::Writer<AddressClaim>,
    records: kube::runtime::reflector::store::Writer<DnsRecord>,
}

pub fn child_caches() -> (ChildCaches, ChildWriters) {
    let vms = kube::runtime::reflector::store::Writer::new(build::vm_resource());
    let (claims_r, claims) = kube::runtime::reflector::store();
    let (records_r, records) = kube::runtime::reflector::store();
    (ChildCaches { vms: vms.as_reader(), claims: claims_r, records: records_r }, ChildWriters { vms, claims, records })
}

/// Whether everything `want` sets is in `have` as it is (arrays whole): applying
/// `want` would change nothing the operator owns.
pub fn contains(have: &serde_json::Value, want: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (want, have) {
        (Value::Null, _) => true,
        (Value::Object(w), Value::Object(h)) => w.iter().all(|(k, v)| v.is_null() || h.get(k).is_some_and(|hv| contains(hv, v))),
        (Value::Array(w), Value::Array(h)) => w.len() == h.len() && w.iter().zip(h).all(|(a, b)| contains(b, a)),
        (w, h) => w == h,
    }
}

/// The cached copy of a child, if it is not being deleted and already holds all of
/// `want`.
pub(super) fn unchanged<K>(have: Option<Arc<K>>, want: &K) -> Option<K>
where
    K: kube::Resource + Clone + serde::Serialize,
{
    let have = have.filter(|h| h.meta().deletion_timestamp.is_none())?;
    let (h, w) = (serde_json::to_value(have.as_ref()).ok()?, serde_json::to_value(want).ok()?);
    contains(&h, &w).then(|| have.as_ref().clone())
}

/// `obj` applied, unless the cached copy already holds all of it.
pub(super) async fn apply_unless_cached<K>(api: &Api<K>, cache: &Store<K>, obj: &K) -> Result<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let key = ObjectRef::<K>::new(&obj.name_any()).within(&obj.namespace().unwrap_or_default());
    match unchanged(cache.get(&key), obj) {
        Some(have) => Ok(have),
        None => apply::apply(api, obj).await,
    }
}

fn key(vm: &TenantVM) -> String {
    format!("vm/{}", vm.name_any())
}

/// Write the planned status, with `more` (addresses, the restart carried out), if it
/// changed: one status write per pass at most.
pub(super) async fn write(vm: &TenantVM, ctx: &VmContext, p: &Planned, more: impl FnOnce(&mut TenantVMStatus)) -> Result<()> {
    let old = vm.status.clone().unwrap_or_default();
    let mut new = old.clone();
    new.conditions = conditions::merge(&old.conditions, &p.conditions, vm.metadata.generation, Timestamp::now());
    new.observed_generation = vm.metadata.generation;
    new.phase = Some(p.phase.clone());
    if let Some(rs) = &p.running_size {
        new.running_size = rs.clone();
    }
    if p.fqdn.is_some() {
        new.fqdn = p.fqdn.clone();
    }
    more(&mut new);
    if new == old {
        return Ok(());
    }
    apply::patch_status(&Api::<TenantVM>::namespaced(ctx.base.client.clone(), &vm.namespace().unwrap_or_default()), &vm.name_any(), &new).await
}

pub(super) async fn refuse(vm: &TenantVM, ctx: &VmContext, r: Refusal) -> Result<Action> {
    if vm.status.as_ref().and_then(|s| conditions::find(&s.conditions, READY)).is_none_or(|c| c.reason != r.0) {
        ctx.base.event(vm, true, r.0, &r.1).await;
    }
    let planned = r.planned();
    write(vm, ctx, &planned, |_| {}).await?;
    Ok(Action::requeue(planned.requeue))
}

/// The VM's SizeClass, or the names of those that exist. The cache may not have a
/// SizeClass created a moment ago: the API server is asked then.
async fn size_of(vm: &TenantVM, ctx: &VmContext) -> Result<std::result::Result<SizeClass, Vec<String>>> {
    if let Some(s) = ctx.sizes.get(&ObjectRef::new(&vm.spec.size)) {
        return Ok(Ok(s.as_ref().clone()));
    }
    let read = |source| Error::Read { what: "SizeClasses".into(), source };
    let sapi = Api::<SizeClass>::all(ctx.base.client.clone());
    if let Some(s) = sapi.get_opt(&vm.spec.size).await.map_err(read)? {
        return Ok(Ok(s));
    }
    let mut known: Vec<String> = sapi.list(&kube::api::ListParams::default()).await.map_err(read)?.items.iter().map(|s| s.name_any()).collect();
    known.sort();
    Ok(Err(known))
}

/// Charge the quota; over it, the VM waits with a status that says by how much.
async fn charge(vm: &TenantVM, ctx: &VmContext, admitted: &Admitted) -> Result<ControlFlow<Action>> {
    let ns = vm.namespace().unwrap_or_default();
    let cached = ctx.departments.get(&ObjectRef::new(&ns));
    let Err(over) = ledger::charge(&ctx.base.client, cached.as_deref(), &ns, &key(vm), &vm.uid().unwrap_or_default(), Some(&admitted.charge)).await? else {
        return Ok(ControlFlow::Continue(()));
    };
    let planned = plan::over_quota(&over);
    let msg = planned.conditions.first().map(|c| c.message.clone()).unwrap_or_default();
    if vm.status.as_ref().and_then(|s| conditions::find(&s.conditions, QUOTA_ACCEPTED)).is_none_or(|c| c.status != "False" || c.message != msg) {
        ctx.base.event(vm, true, "QuotaExceeded", &msg).await;
    }
    write(vm, ctx, &planned, |_| {}).await?;
    Ok(ControlFlow::Break(Action::requeue(planned.requeue)))
}

/// Apply the NICs' claims together; the NICs once every claim is bound.
async fn bind_addresses(vm: &TenantVM, ctx: &VmContext, placement: &Placement, admitted: &Admitted) -> Result<ControlFlow<Action, Vec<NicPlan>>> {
    let capi: Api<AddressClaim> = Api::namespaced(ctx.base.client.clone(), &vm.namespace().unwrap_or_default());
    let claims = build::claims(vm, placement.claim_site(ctx.dr.site()).as_deref());
    let bound = try_join_all(claims.iter().map(|c| apply_unless_cached(&capi, &ctx.children.claims, c))).await?;
    let pending = bound.iter().find_map(|c| {
        let ready = c.status.as_ref().and_then(|s| conditions::find(&s.conditions, READY));
        ready.is_none_or(|r| r.status != "True").then(|| (c.spec.zone.clone(), ready.map(|r| r.message.clone())))
    });
    if let Some((zone, why)) = pending {
        let planned = plan::addresses_pending(admitted, &zone, why.as_deref());
        write(vm, ctx, &planned, |_| {}).await?;
        return Ok(ControlFlow::Break(Action::requeue(planned.requeue)));
    }
    let uid = vm.uid().unwrap_or_default();
    let nics = bound
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let st = c.status.clone().unwrap_or_default();
            NicPlan {
                zone: c.spec.zone.clone(),
                mac: vm.spec.nics.get(i).and_then(|n| n.mac.clone()).unwrap_or_else(|| pdc_core::netdata::mac_for(&format!("{uid}/{i}"))),
                ipv4: st.ipv4.as_ref().map(|a| (format!("{}/{}", a.address, a.prefix_length), a.gateway.clone())),
                ipv6: st.ipv6.as_ref().map(|a| (format!("{}/{}", a.address, a.prefix_length), a.gateway.clone())),
            }
        })
        .collect();
    Ok(ControlFlow::Continue(nics))
}

/// One disk: a DataVolume from before a restore (older data) makes way for the one
/// from the promoted replica (`Break`: look again shortly); otherwise it is made or
/// grown.
async fn ensure_disk(dapi: &Api<DynamicObject>, client: &Client, d: &plan::Disk) -> std::result::Result<ControlFlow<(), DiskState>, kube::Error> {
    if let Some(snap) = &d.restore
        && let Some(old) = dapi.get_opt(&d.name).await?
        && old.annotations().get(l::DR_RESTORED_FROM) != Some(snap)
    {
        if old.metadata.deletion_timestamp.is_none() {
            dapi.delete(&d.name, &DeleteParams::background()).await?;
        }
        return Ok(ControlFlow::Break(()));
    }
    super::disk::ensure(client, &d.dv, &d.size).await.map(ControlFlow::Continue)
}

/// Delete the running instance if a restart request was not carried out yet; the
/// instance's own annotations say (KubeVirt copies the template's), read from the API
/// server, so neither a stale cache nor a crash between the delete and the status
/// write restarts it twice. Returns the live instance's size annotation (`None`: no
/// live instance) and the request carried out.
pub(super) async fn restart_if_asked(vm: &TenantVM, ctx: &VmContext) -> Result<(Option<Option<String>>, Option<String>)> {
    let vmis: Api<DynamicObject> = Api::namespaced_with(ctx.base.client.clone(), &vm.namespace().unwrap_or_default(), &build::vmi_resource());
    let name = vm.name_any();
    let live = vmis.get_opt(&name).await.map_err(|source| Error::Read { what: format!("VirtualMachineInstance {name}"), source })?;
    let live = live.filter(|i| i.metadata.deletion_timestamp.is_none());
    let started_with = |i: &DynamicObject, key: &str| i.annotations().get(key).cloned();
    let mut restarted_for = vm.status.as_ref().and_then(|s| s.restarted_for.clone());
    let Some(i) = live else { return Ok((None, restarted_for)) };
    let running = Some(started_with(&i, l::VM_SIZE));
    let Some(tok) = vm.spec.restart_request.clone() else { return Ok((running, restarted_for)) };
    if started_with(&i, l::VM_RESTART_REQUEST).as_ref() == Some(&tok) {
        return Ok((running, Some(tok)));
    }
    if restarted_for.as_ref() == Some(&tok) {
        return Ok((running, restarted_for));
    }
    // KubeVirt starts a new instance from the current template (run strategy Always).
    match vmis.delete(&name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(source) => return Err(Error::Delete { what: format!("VirtualMachineInstance {name}"), source }),
    }
    ctx.base.event(vm, false, "Restarted", &format!("restarted as {}", vm.spec.size)).await;
    restarted_for = Some(tok);
    Ok((None, restarted_for))
}

/// Apply the children: the disks together, then the VirtualMachine and the records
/// together (a restored disk must be in place before the VM may start from it).
async fn apply_children(vm: &TenantVM, ctx: &VmContext, ch: Children) -> Result<ControlFlow<Action, (Applied, Option<String>)>> {
    let client = &ctx.base.client;
    let ns = vm.namespace().unwrap_or_default();
    let dapi: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &build::dv_resource());
    let mut applied = Applied::default();
    for (d, r) in ch.disks.iter().zip(join_all(ch.disks.iter().map(|d| ensure_disk(&dapi, client, d))).await) {
        match r {
            Ok(ControlFlow::Break(())) => return Ok(ControlFlow::Break(Action::requeue(Duration::from_millis(500)))),
            Ok(ControlFlow::Continue(DiskState::Failed(why))) => applied.disk_failures.push(format!("disk {}: {why}", d.disk)),
            Ok(ControlFlow::Continue(DiskState::Growing { from, to })) => applied.disk_growth.push(format!("disk {}: {from} → {to}", d.disk)),
            Ok(ControlFlow::Continue(_)) => {}
            Err(e) => return missing_integration(vm, ctx, e, "CDI (DataVolume)").await.map(ControlFlow::Break),
        }
    }
    let vapi: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &build::vm_resource());
    let rapi: Api<DnsRecord> = Api::namespaced(client.clone(), &ns);
    let (name, params, patch) = (vm.name_any(), apply::params(), Patch::Apply(&ch.vm));
    // A VirtualMachine is a DynamicObject, whose ObjectRef needs its resource.
    let cached_vm = unchanged(ctx.children.vms.get(&ObjectRef::new_with(&name, build::vm_resource()).within(&ns)), &ch.vm);
    let kv = async {
        match cached_vm {
            Some(have) => Ok(have),
            None => vapi.patch(&name, &params, &patch).await,
        }
    };
    let (kv, records) = futures::join!(kv, try_join_all(ch.records.iter().map(|r| apply_unless_cached(&rapi, &ctx.children.records, r))));
    let kv = match kv {
        Ok(o) => o,
        Err(e) => return missing_integration(vm, ctx, e, "KubeVirt (VirtualMachine)").await.map(ControlFlow::Break),
    };
    applied.dns_pending = not_programmed(&records?);
    applied.phase = kv.data.pointer("/status/printableStatus").and_then(|v| v.as_str()).map(str::to_string);
    let (instance, restarted_for) = restart_if_asked(vm, ctx).await?;
    applied.instance = instance;
    Ok(ControlFlow::Continue((applied, restarted_for)))
}

/// The records the zone writer has not programmed yet, each with why.
pub(super) fn not_programmed(records: &[DnsRecord]) -> Vec<String> {
    let mut pending = Vec::new();
    for got in records {
        let c = got.status.as_ref().and_then(|s| conditions::find(&s.conditions, crate::dns::record::PROGRAMMED));
        if !c.is_some_and(|c| c.status == "True" && c.observed_generation == got.metadata.generation) {
            pending.push(format!("{}: {}", got.name_any(), c.map(|c| c.message.clone()).unwrap_or_else(|| "waiting for the zone writer".into())));
        }
    }
    pending
}

/// The DataVolumes of the TenantVolumes attached to `vm`, sorted.
fn attached(vm: &TenantVM, ctx: &VmContext) -> Vec<String> {
    let mut hotplug: Vec<String> = ctx
        .volumes
        .state()
        .iter()
        .filter(|v| v.namespace() == vm.namespace() && v.spec.vm.as_deref() == Some(vm.name_any().as_str()) && v.metadata.deletion_timestamp.is_none())
        .map(|v| super::volume::dv_name(v.as_ref()))
        .collect();
    hotplug.sort();
    hotplug
}

/// check → admit → charge → addresses → plan the children → apply → status.
async fn provision(vm: &TenantVM, ctx: &VmContext) -> Result<Action> {
    use crate::cache::synced;
    // Until the caches hold their first full lists, an empty one would read as an
    // unknown size, detached volumes or a missing subdomain.
    if !(synced(&ctx.departments) && synced(&ctx.provinces) && synced(&ctx.sizes) && synced(&ctx.zones) && synced(&ctx.volumes)) {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let placement = ctx.dr.placement(vm);
    if placement == Placement::Unconfirmed {
        // The DR side has not yet checked the plan against the other site.
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let ns = vm.namespace().unwrap_or_default();
    let dept = ctx.departments.get(&ObjectRef::new(&ns));
    let province = ctx.provinces.state().first().cloned();
    let size = size_of(vm, ctx).await?;
    let admitted = match plan::admit(vm, dept.as_ref().map(|d| d.spec.zones.as_slice()), province.as_deref(), size) {
        Ok(a) => a,
        Err(r) => return refuse(vm, ctx, r).await,
    };
    // A VM taken over is checked before anything is charged or written.
    let adoption = match super::adopt::prepare(vm, ctx, &admitted, dept.as_deref()).await? {
        Ok(a) => a,
        Err(r) => return refuse(vm, ctx, r).await,
    };
    if let ControlFlow::Break(a) = charge(vm, ctx, &admitted).await? {
        return Ok(a);
    }
    let nics = match bind_addresses(vm, ctx, &placement, &admitted).await? {
        ControlFlow::Continue(n) => n,
        ControlFlow::Break(a) => return Ok(a),
    };
    let subdomain = dept.as_ref().and_then(|d| d.status.as_ref().and_then(|s| s.subdomain.clone())).unwrap_or_default();
    let resolvers = nics.first().and_then(|n| ctx.zones.get(&ObjectRef::new(&n.zone))).map(|z| z.spec.resolvers.clone()).unwrap_or_default();
    let hotplug = attached(vm, ctx);
    let inputs = plan::Inputs { placement: &placement, admitted: &admitted, nics: &nics, subdomain: &subdomain, resolvers: &resolvers, hotplug: &hotplug };
    if let Some(a) = adoption {
        return super::adopt::finish(vm, ctx, a, &inputs).await;
    }
    let (applied, restarted_for) = match apply_children(vm, ctx, plan::children(vm, &inputs)).await? {
        ControlFlow::Continue(a) => a,
        ControlFlow::Break(a) => return Ok(a),
    };
    let planned = plan::status(vm, &placement, &admitted, nics.len(), &subdomain, &applied);
    let was_ready = vm.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY));
    if planned.ready
        && !was_ready
        && let Some(t) = &vm.metadata.creation_timestamp
    {
        let secs = Timestamp::now().duration_since(t.0).as_secs_f64();
        ctx.base.metrics.tenantvm_provision.observe(secs.max(0.0));
    }
    write(vm, ctx, &planned, |s| {
        s.nics = nics.iter().map(|n| NicStatus { zone: n.zone.clone(), ipv4: n.ipv4_address(), ipv6: n.ipv6_address(), mac: Some(n.mac.clone()) }).collect();
        s.restarted_for = restarted_for;
    })
    .await?;
    Ok(Action::requeue(planned.requeue))
}

pub(super) async fn missing_integration(vm: &TenantVM, ctx: &VmContext, e: kube::Error, what: &str) -> Result<Action> {
    if is_not_found(&e) {
        let msg = format!("{what} is not installed in this cluster: its CRD is missing");
        write(vm, ctx, &plan::integration_missing(msg), |_| {}).await?;
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
    crate::cache::controller::<TenantVM>(client, spec_or_lifecycle).with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
}

/// What the cache keeps of a KubeVirt VirtualMachine: its spec (compared with what
/// pdc applies) and of its status only the printable phase, which is all a
/// TenantVM reports of it. The rest of the status changes often and is large.
fn slim_vm(o: &mut DynamicObject) {
    crate::cache::slim(o);
    if let Some(status) = o.data.get_mut("status").and_then(|s| s.as_object_mut()) {
        status.retain(|k, _| k == "printableStatus");
    }
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

/// The changes of children that alter one of the fields at `paths` (JSON pointers);
/// the rest wake nothing.
fn changes_of<S>(stream: S, paths: &'static [&'static str]) -> impl futures::Stream<Item = std::result::Result<DynamicObject, watcher::Error>> + Send + 'static
where
    S: futures::Stream<Item = std::result::Result<DynamicObject, watcher::Error>> + Send + 'static,
{
    let mut seen = std::collections::HashMap::<(Option<String>, String), String>::new();
    stream.filter(move |o| {
        let keep = match o {
            Ok(o) => {
                let now: Vec<&serde_json::Value> = paths.iter().map(|p| o.data.pointer(p).unwrap_or(&serde_json::Value::Null)).collect();
                let mut key = serde_json::to_string(&now).unwrap_or_default();
                key.push_str(o.metadata.deletion_timestamp.as_ref().map_or("", |_| "deleting"));
                seen.insert((o.namespace(), o.name_any()), key.clone()).as_ref() != Some(&key)
            }
            Err(_) => true,
        };
        futures::future::ready(keep)
    })
}

/// `volume_changes`: the changes of `ctx.volumes` (see [`crate::cache::watch`]);
/// `plans`: the changes of the DrPlans in `ctx.dr` (see [`crate::dr::watch_plans`]):
/// a site became active or DNS moved, and the VMs of the plan's namespace look again.
pub async fn run<V, P>(ctx: Arc<VmContext>, controller: Controller<TenantVM>, volume_changes: V, plans: P, writers: ChildWriters)
where
    V: futures::Stream<Item = std::result::Result<TenantVolume, watcher::Error>> + Send + 'static,
    P: futures::Stream<Item = std::result::Result<pdc_api::DrPlan, watcher::Error>> + Send + 'static,
{
    let client = ctx.base.client.clone();
    let vms = controller.store();
    tokio::spawn(report(ctx.clone(), vms.clone()));
    let labelled = watcher::Config::default().labels(VM_LABEL);
    let kv = watcher(Api::<DynamicObject>::all_with(client.clone(), &build::vm_resource()), labelled.clone())
        .default_backoff()
        .modify(slim_vm)
        .reflect(writers.vms)
        .touched_objects();
    let kv = changes_of(kv, &["/status/printableStatus"]);
    let dvs = watcher(Api::<DynamicObject>::all_with(client.clone(), &build::dv_resource()), labelled.clone()).default_backoff().touched_objects();
    // Import progress moves a DataVolume's status often; only its phase, its Running
    // condition (an import failing) and its deletion matter to the VM.
    let dvs = changes_of(dvs, &["/status/phase", "/status/conditions"]);
    let claims = watcher(Api::<AddressClaim>::all(client.clone()), labelled.clone())
        .default_backoff()
        .modify(crate::cache::slim)
        .reflect(writers.claims)
        .touched_objects();
    let records = watcher(Api::<DnsRecord>::all(client.clone()), labelled)
        .default_backoff()
        .modify(crate::cache::slim)
        .reflect(writers.records)
        .touched_objects();
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_cached_virtual_machine_keeps_its_spec_and_printable_phase() {
        let mut o: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "vm"},
            "spec": {"runStrategy": "Always"},
            "status": {"printableStatus": "Running", "ready": true, "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        super::slim_vm(&mut o);
        assert_eq!(o.data, serde_json::json!({"spec": {"runStrategy": "Always"}, "status": {"printableStatus": "Running"}}));
    }

    use super::contains;
    use serde_json::json;

    #[test]
    fn a_child_is_written_only_when_the_server_lacks_part_of_it() {
        let have = json!({"metadata": {"name": "his", "labels": {"a": "1", "b": "2"}, "resourceVersion": "7"},
                          "spec": {"values": ["10.0.0.5"], "ttl": 300}, "status": {"ok": true}});
        // (wanted, already there)
        let cases = [
            (json!({"metadata": {"name": "his", "labels": {"a": "1"}}, "spec": {"values": ["10.0.0.5"]}}), true),
            (json!({"metadata": {"name": "his"}, "spec": {"values": ["10.0.0.5"], "ttl": null}, "status": null}), true),
            (json!({"metadata": {"labels": {"a": "2"}}}), false),
            (json!({"spec": {"values": ["10.0.0.5", "10.0.0.6"]}}), false),
            (json!({"spec": {"values": []}}), false),
            (json!({"spec": {"ttl": 300, "class": "IN"}}), false),
        ];
        for (want, there) in cases {
            assert_eq!(contains(&have, &want), there, "{want}");
        }
    }
}
