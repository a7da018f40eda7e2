//! The MoveVMs step: each VM a merge keeps (and every VM of a unit renamed to a new
//! slug) goes to its successor's namespace, one at a time through the same stages, each idempotent and read back from the API
//! server on the next pass, so a crash anywhere resumes where it was:
//!
//! 1. the old VM is halted (its run strategy before is kept in an annotation);
//! 2. each of its disks, and each TenantVolume attached to it, is snapshotted
//!    (`move.<act>.<disk>`);
//! 3. its volumes, then the VM, are declared at the successor with the same spec,
//!    their disks restored from those snapshots across namespaces (CDI checks the
//!    operator may read the old namespace's disks: `datavolumes/source`), new
//!    addresses claimed in the successor's subnets and its names under the
//!    successor's subdomain;
//! 4. once it runs there, its old names alias the new ones (the zone writer swaps
//!    the old records for the CNAMEs in one update once the new names answer);
//! 5. once its volumes are ready there too, the old addresses are held back for
//!    the cool-down, and the old VM, its old volumes and the move's snapshots are
//!    deleted.
//!
//! The VM restarts once (stage 1 to 4) and is never without its disks: the old
//! disks go only after the VM runs from the copies. The unit's other volumes and
//! its standalone claims move alongside ([`super::carry`]).

use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use pdc_api::estate::Objects;
use pdc_api::{Reorganization, RunStrategy, TenantVM, TenantVolume, labels};
use pdc_core::reorg::{Alias, Plan, UnitPlan, VmMove};
use serde_json::json;

use super::steps::Outcome;
use crate::compute::build::snapshot_resource;
use crate::error::{Error, Result, is_not_found};

const MOVES: &str = "pdc-reorganization-moves";
/// On the old TenantVM: its run strategy before the move halted it.
const RUN_BEFORE: &str = "pdc.io/run-strategy-before-move";

fn ssa() -> PatchParams {
    PatchParams::apply(MOVES).force().validation_strict()
}

fn phase(vm: &TenantVM) -> Option<&str> {
    vm.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn strategy(r: RunStrategy) -> serde_json::Value {
    serde_json::to_value(r).unwrap_or(json!("Always"))
}

/// Stage 1: halt the old VM, keeping its run strategy.
async fn halt(client: &Client, ns: &str, vm: &TenantVM) -> Result<()> {
    if vm.annotations().contains_key(RUN_BEFORE) {
        return Ok(());
    }
    let obj = json!({"apiVersion": "pdc.io/v1alpha1", "kind": "TenantVM",
        "metadata": {"name": vm.name_any(), "annotations": {RUN_BEFORE: strategy(vm.spec.run_strategy)}},
        "spec": {"runStrategy": "Halted"}});
    Api::<TenantVM>::namespaced(client.clone(), ns)
        .patch(&vm.name_any(), &ssa(), &Patch::Apply(&obj))
        .await
        .map(|_| ())
        .map_err(|source| Error::Apply { what: format!("TenantVM {ns}/{}", vm.name_any()), source })
}

/// The old VM's disks (DataVolume names).
fn disks(vm: &TenantVM) -> Vec<String> {
    std::iter::once(&vm.spec.root_disk).chain(vm.spec.disks.iter()).map(|d| crate::compute::build::disk_name(vm, d)).collect()
}

/// Stage 2: a snapshot of each disk and attached volume; whether all are ready to use.
async fn snapshots(client: &Client, act: &str, ns: &str, vm: &TenantVM, volumes: &[&TenantVolume]) -> Result<bool> {
    let mut ready = true;
    for dv in disks(vm) {
        let name = labels::move_snapshot(act, &dv);
        ready &= super::archive::snapshot_named(client, ns, act, &name, &dv, None).await?;
    }
    for v in volumes {
        ready &= super::carry::snapshot_volume(client, act, v).await?;
    }
    Ok(ready)
}

/// Stage 3: the VM at the successor, its disks from the snapshots.
async fn declare(client: &Client, act: &str, from: &str, to: &str, vm: &TenantVM) -> Result<()> {
    let mut spec = serde_json::to_value(&vm.spec).map_err(|e| Error::Invalid(format!("TenantVM {from}/{}: {e}", vm.name_any())))?;
    let before = vm.annotations().get(RUN_BEFORE).cloned().unwrap_or_else(|| "Always".into());
    if let Some(m) = spec.as_object_mut() {
        m.insert("runStrategy".into(), json!(before));
        m.remove("restartRequest");
    }
    let obj = json!({"apiVersion": "pdc.io/v1alpha1", "kind": "TenantVM",
        "metadata": {"name": vm.name_any(), "labels": {labels::REORGANIZATION: act}, "annotations": {labels::MOVED_FROM: format!("{from}/{act}")}},
        "spec": spec});
    Api::<TenantVM>::namespaced(client.clone(), to)
        .patch(&vm.name_any(), &ssa(), &Patch::Apply(&obj))
        .await
        .map(|_| ())
        .map_err(|source| Error::Apply { what: format!("TenantVM {to}/{}", vm.name_any()), source })
}

/// Stage 5: hold the old addresses, delete the move's snapshots, the old volumes
/// and the old VM.
async fn retire_old(client: &Client, act: &str, ns: &str, vm: &TenantVM, volumes: &[&TenantVolume], reusable_from: &str) -> Result<()> {
    super::release::hold_vm(client, act, ns, &vm.name_any(), reusable_from).await?;
    for v in volumes {
        super::carry::retire_volume(client, act, v).await?;
    }
    let snaps: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &snapshot_resource());
    for dv in disks(vm) {
        match snaps.delete(&labels::move_snapshot(act, &dv), &DeleteParams::background()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(source) => return Err(Error::Apply { what: format!("deleting the move snapshot of {ns}/{dv}"), source }),
        }
    }
    if vm.metadata.deletion_timestamp.is_none() {
        match Api::<TenantVM>::namespaced(client.clone(), ns).delete(&vm.name_any(), &DeleteParams::background()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(source) => return Err(Error::Apply { what: format!("deleting TenantVM {ns}/{}", vm.name_any()), source }),
        }
    }
    Ok(())
}

/// Whether the alias of the old name answers (its record is programmed).
fn alias_answers(objects: &Objects, ns: &str, from: &str) -> bool {
    let name = super::names::object_name("alias", from);
    objects.records.iter().any(|r| {
        r.namespace().as_deref() == Some(ns)
            && r.name_any() == name
            && r.status.as_ref().and_then(|s| pdc_api::conditions::find(&s.conditions, "Programmed")).is_some_and(|c| c.status == "True")
    })
}

/// One VM's move, as far as it can go now: `None` when it is done, else what it
/// waits for.
async fn one(client: &Client, act: &str, u: &UnitPlan, m: &VmMove, plan: &Plan, objects: &Objects, reusable_from: &str) -> Result<Option<String>> {
    let unit = u.unit.as_str();
    let find = |ns: &str| objects.vms.iter().find(|v| v.namespace().as_deref() == Some(ns) && v.name_any() == m.vm);
    let Some(old) = find(unit) else { return Ok(None) };
    // The TenantVolumes attached to it that the plan moves.
    let volumes: Vec<&TenantVolume> = objects
        .volumes
        .iter()
        .filter(|v| v.namespace().as_deref() == Some(unit) && v.spec.vm.as_deref() == Some(m.vm.as_str()) && u.volumes_moved.contains(&v.name_any()))
        .collect();
    let Some(new) = find(&m.to) else {
        halt(client, unit, old).await?;
        if phase(old) != Some("Stopped") {
            return Ok(Some("stopping the old VM".into()));
        }
        if !snapshots(client, act, unit, old, &volumes).await? {
            return Ok(Some("snapshotting its disks".into()));
        }
        for v in &volumes {
            super::carry::declare_volume(client, act, &m.to, v).await?;
        }
        declare(client, act, unit, &m.to, old).await?;
        return Ok(Some("declared at the successor".into()));
    };
    let halted = new.spec.run_strategy == RunStrategy::Halted;
    let up = if halted { phase(new) == Some("Stopped") } else { phase(new) == Some("Running") };
    let names = |v: &TenantVM| v.status.as_ref().and_then(|s| s.fqdn.clone()).map(|f| f.trim_end_matches('.').to_string());
    let (Some(from), Some(to)) = (names(old), names(new)) else { return Ok(Some("waiting for the VM's names".into())) };
    if !up {
        return Ok(Some(format!("starting at the successor (phase {})", phase(new).unwrap_or("Pending"))));
    }
    let alias = Alias { from: from.clone(), to, kind: "CNAME", until: plan.transition_ends };
    super::names::declare_alias(client, act, unit, &alias).await?;
    if !alias_answers(objects, unit, &from) {
        return Ok(Some(format!("waiting for {from} to alias the new name")));
    }
    let restored = |v: &&TenantVolume| objects.volumes.iter().any(|n| n.namespace().as_deref() == Some(m.to.as_str()) && n.name_any() == v.name_any() && super::carry::volume_ready(n));
    if let Some(v) = volumes.iter().find(|v| !restored(v)) {
        return Ok(Some(format!("restoring volume {} at the successor", v.name_any())));
    }
    retire_old(client, act, unit, old, &volumes, reusable_from).await?;
    Ok(Some("removing the old VM".into()))
}

/// Move the VMs the merges keep.
pub async fn run(client: &Client, act: &Reorganization, plan: &Plan, objects: &Objects) -> Result<Outcome> {
    let name = act.name_any();
    let reusable_from = plan.effective.plus(u32::try_from(act.spec.cool_down_days).unwrap_or(0)).format();
    let (mut moved, mut waiting) = (Vec::new(), Vec::new());
    // The plan over the estate as it is now lists the VMs still in their old unit;
    // those already moved are counted from the successors.
    for u in &plan.units {
        for m in &u.vms_moved {
            if let Some(why) = one(client, &name, u, m, plan, objects, &reusable_from).await? {
                waiting.push(format!("{}/{}: {why}", u.unit, m.vm));
            }
        }
        if let Some(to) = super::names::successor_ns(&u.fate) {
            waiting.extend(super::carry::run(client, &name, u, to, objects, &reusable_from).await?);
        }
    }
    let lp = ListParams::default().labels(&format!("{}={name}", labels::REORGANIZATION));
    let here = Api::<TenantVM>::all(client.clone()).list(&lp).await.map_err(|source| Error::Read { what: format!("the VMs {name} moved"), source })?;
    moved.extend(here.items.iter().filter(|v| v.annotations().contains_key(labels::MOVED_FROM)).map(|v| format!("{}/{}", v.namespace().unwrap_or_default(), v.name_any())));
    if waiting.is_empty() {
        let vols = Api::<TenantVolume>::all(client.clone()).list(&lp).await.map_err(|source| Error::Read { what: format!("the volumes {name} moved"), source })?;
        let claims = Api::<pdc_api::AddressClaim>::all(client.clone()).list(&lp).await.map_err(|source| Error::Read { what: format!("the claims {name} moved"), source })?;
        let vols = vols.items.iter().filter(|v| v.annotations().contains_key(labels::MOVED_FROM)).count();
        let claims = claims.items.iter().filter(|c| c.annotations().contains_key(labels::MOVED_ADDRESSES)).count();
        let vms = if moved.is_empty() { "none".into() } else { moved.join(", ") };
        return Ok(Outcome::Done(format!("{} VMs moved: {vms}; {vols} volumes and {claims} standalone claims moved", moved.len())));
    }
    Ok(Outcome::Waiting(waiting.join("; ")))
}
