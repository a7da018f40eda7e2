//! The TenantVolume controller: a blank CDI DataVolume on the tier's StorageClass,
//! charged to the department's storage quota (`volume/<name>`). It may grow (the
//! schema refuses a shrink); attaching it to a TenantVM makes it a hotplug disk of
//! the VM (the TenantVM controller adds it). Deleting the volume deletes the
//! DataVolume and releases the charge.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use pdc_api::conditions::{self, Cond, READY};
use pdc_api::labels as l;
use pdc_api::{AccessMode, Department, Province, TenantVolume, TenantVolumeStatus};
use pdc_core::quota::Charge;

use super::build::dv_resource;
use super::disk::DiskState;
use super::ledger;
use super::plan::QUOTA_ACCEPTED;
use crate::apply;
use crate::context::Context;
use crate::department::spec_or_lifecycle;
use crate::error::{Error, Result, is_not_found};

const CONTROLLER: &str = "tenantvolume";
pub const FINALIZER: &str = "pdc.io/tenantvolume-cleanup";
/// Label on a volume's DataVolume.
pub const VOLUME_LABEL: &str = "pdc.io/tenantvolume";
/// Whether the volume is a disk of the TenantVM it names.
pub const ATTACHED: &str = "Attached";

pub struct VolumeContext {
    pub base: Arc<Context>,
    pub provinces: Store<Province>,
    pub departments: Store<Department>,
}

/// The DataVolume (and PVC) name of a volume.
pub fn dv_name(v: &TenantVolume) -> String {
    format!("vol-{}", v.name_any())
}

fn data_volume(v: &TenantVolume, storage_class: &str) -> DynamicObject {
    let ns = v.namespace().unwrap_or_default();
    let mode = match v.spec.access_mode {
        AccessMode::ReadWriteOnce => "ReadWriteOnce",
        AccessMode::ReadWriteMany => "ReadWriteMany",
    };
    let mut o = DynamicObject::new(&dv_name(v), &dv_resource()).within(&ns);
    o.metadata.labels = Some(
        [(l::MANAGED_BY.to_string(), l::MANAGED_BY_VALUE.to_string()), (VOLUME_LABEL.to_string(), v.name_any())].into_iter().collect(),
    );
    o.metadata.owner_references = v.controller_owner_ref(&()).map(|r| vec![r]);
    // A volume a reorganization moved here (`<old namespace>/<act>`): restored from
    // the act's snapshot of the old volume, across namespaces.
    let source = match v.annotations().get(l::MOVED_FROM).and_then(|m| m.split_once('/')) {
        Some((from, act)) => serde_json::json!({"snapshot": {"namespace": from, "name": l::move_snapshot(act, &dv_name(v))}}),
        None => serde_json::json!({"blank": {}}),
    };
    o.data = serde_json::json!({"spec": {
        "source": source,
        "storage": {"resources": {"requests": {"storage": v.spec.size}}, "storageClassName": storage_class, "accessModes": [mode]}
    }});
    o
}

async fn set_status(v: &TenantVolume, ctx: &VolumeContext, conds: Vec<Cond>) -> Result<()> {
    let old = v.status.clone().unwrap_or_default();
    let new = TenantVolumeStatus {
        observed_generation: v.metadata.generation,
        conditions: conditions::merge(&old.conditions, &conds, v.metadata.generation, Timestamp::now()),
    };
    if new == old {
        return Ok(());
    }
    apply::patch_status(&Api::<TenantVolume>::namespaced(ctx.base.client.clone(), &v.namespace().unwrap_or_default()), &v.name_any(), &new).await
}

async fn provision(v: &TenantVolume, ctx: &VolumeContext) -> Result<Action> {
    // Unfilled caches would read as "not a department".
    if !(crate::cache::synced(&ctx.departments) && crate::cache::synced(&ctx.provinces)) {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let ns = v.namespace().unwrap_or_default();
    if ctx.departments.get(&ObjectRef::new(&ns)).is_none() {
        set_status(v, ctx, vec![Cond::new(READY, false, "NotADepartment", format!("namespace {ns} is not a Department's"))]).await?;
        return Ok(Action::requeue(Duration::from_secs(60)));
    }
    let province = ctx.provinces.state().first().cloned();
    let Some(sc) = province.as_ref().and_then(|p| p.storage_class(&v.spec.tier).map(str::to_string)) else {
        let tiers: Vec<String> = province.map(|p| p.spec.storage_tiers.iter().map(|t| t.name.clone()).collect()).unwrap_or_default();
        let msg = format!("tier {:?} is not one of the province's: {}", v.spec.tier, tiers.join(", "));
        set_status(v, ctx, vec![Cond::new(READY, false, "UnknownTier", msg)]).await?;
        return Ok(Action::requeue(Duration::from_secs(60)));
    };
    let bytes = pdc_core::quantity::parse(&v.spec.size).map_err(|e| Error::Invalid(e.to_string()))?;
    let charge = Charge { storage: [(v.spec.tier.clone(), bytes)].into_iter().collect(), ..Default::default() };
    let cached = ctx.departments.get(&ObjectRef::new(&ns));
    if let Err(over) = ledger::charge(&ctx.base.client, cached.as_deref(), &ns, &format!("volume/{}", v.name_any()), &v.uid().unwrap_or_default(), Some(&charge)).await? {
        let msg = format!("over the department's quota: {}", over.join("; "));
        set_status(v, ctx, vec![Cond::new(QUOTA_ACCEPTED, false, "QuotaExceeded", msg.clone()), Cond::new(READY, false, "QuotaExceeded", msg)]).await?;
        return Ok(Action::requeue(Duration::from_secs(120)));
    }
    let state = match super::disk::ensure(&ctx.base.client, &data_volume(v, &sc), &v.spec.size).await {
        Ok(s) => s,
        Err(e) if is_not_found(&e) => {
            set_status(v, ctx, vec![Cond::new(READY, false, "IntegrationMissing", "CDI (DataVolume) is not installed in this cluster")]).await?;
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
        Err(source) => return Err(Error::Apply { what: format!("DataVolume {}", dv_name(v)), source }),
    };
    let accepted = Cond::new(QUOTA_ACCEPTED, true, "Admitted", format!("{} of {} charged", v.spec.size, v.spec.tier));
    let (ready, again) = match &state {
        DiskState::Ready => (Cond::new(READY, true, "Provisioned", format!("{} on {sc}", v.spec.size)), Duration::from_secs(300)),
        DiskState::Growing { from, to } => (Cond::new(READY, true, "Expanding", format!("the claim is being expanded from {from} to {to}")), Duration::from_secs(3)),
        DiskState::Failed(why) => (Cond::new(READY, false, "DiskFailed", why.clone()), Duration::from_secs(30)),
        DiskState::Populating(phase) => (Cond::new(READY, false, "Provisioning", format!("the DataVolume is {phase}")), Duration::from_secs(10)),
    };
    let mut conds = vec![accepted, ready];
    if let Some(name) = &v.spec.vm {
        let vm = Api::<pdc_api::TenantVM>::namespaced(ctx.base.client.clone(), &ns).get_opt(name).await.map_err(|source| Error::Read { what: format!("TenantVM {name}"), source })?;
        conds.push(match vm {
            None => Cond::new(ATTACHED, false, "NoSuchVM", format!("TenantVM {name} does not exist in {ns}")),
            Some(vm) if vm.spec.dr_protected => Cond::new(
                ATTACHED,
                false,
                "DrProtected",
                format!("TenantVM {name} is protected by DR, which replicates a VM's root and data disks only: after a failover this volume would not be there. Make it a data disk of the VM (spec.disks), or attach it to a VM that is not drProtected"),
            ),
            Some(vm) if vm.spec.adopt.as_ref().is_some_and(|a| a.external) => Cond::new(
                ATTACHED,
                false,
                "ExternalVM",
                format!("TenantVM {name} is a record of a VM outside the cluster: the volume is hot-plugged once the VM is moved onto KubeVirt (pdcctl vm import --from-image)"),
            ),
            Some(_) => Cond::new(ATTACHED, true, "HotPlugged", format!("a hot-plugged disk of TenantVM {name}")),
        });
    } else {
        conds.push(Cond::new(ATTACHED, false, "Detached", "spec.vm names no TenantVM"));
    }
    set_status(v, ctx, conds).await?;
    Ok(Action::requeue(again))
}

async fn teardown(v: &TenantVolume, ctx: &VolumeContext) -> Result<Action> {
    let ns = v.namespace().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.base.client.clone(), &ns, &dv_resource());
    match api.delete(&dv_name(v), &DeleteParams::background()).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(source) => return Err(Error::Delete { what: format!("DataVolume {}", dv_name(v)), source }),
    }
    match ledger::charge(&ctx.base.client, None, &ns, &format!("volume/{}", v.name_any()), &v.uid().unwrap_or_default(), None).await {
        Ok(_) => {}
        Err(Error::Read { source, .. }) if is_not_found(&source) => {}
        Err(e) => return Err(e),
    }
    Ok(Action::await_change())
}

async fn reconcile(v: Arc<TenantVolume>, ctx: Arc<VolumeContext>) -> Result<Action> {
    let api: Api<TenantVolume> = Api::namespaced(ctx.base.client.clone(), &v.namespace().unwrap_or_default());
    let c = ctx.as_ref();
    ctx.base.finalized(CONTROLLER, &api, FINALIZER, v, |v| async move { provision(&v, c).await }, |v| async move { teardown(&v, c).await }).await
}

fn error_policy(v: Arc<TenantVolume>, err: &Error, ctx: Arc<VolumeContext>) -> Action {
    ctx.base.failed(CONTROLLER, v.as_ref(), err, Duration::from_secs(2))
}

pub fn controller(client: Client) -> Controller<TenantVolume> {
    crate::cache::controller::<TenantVolume>(client, spec_or_lifecycle)
}

pub async fn run(ctx: Arc<VolumeContext>, controller: Controller<TenantVolume>) {
    let client = ctx.base.client.clone();
    // The DataVolume's phase (CDI's status) wakes its volume.
    let dvs = watcher(Api::<DynamicObject>::all_with(client, &dv_resource()), watcher::Config::default().labels(VOLUME_LABEL))
        .default_backoff()
        .touched_objects();
    controller
        .watches_stream_with(
            dvs,
            |o: DynamicObject| {
                let name = o.metadata.labels.as_ref().and_then(|l| l.get(VOLUME_LABEL)).cloned();
                name.zip(o.metadata.namespace.clone()).map(|(n, ns)| ObjectRef::new(&n).within(&ns))
            },
            dv_resource(),
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}
