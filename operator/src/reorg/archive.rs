//! The Archive step: every VM the act does not keep is halted (its TenantVM's
//! `runStrategy: Halted`, written under the act's own field manager), and once it
//! has stopped each of its disks is snapshotted: a VolumeSnapshot labelled with the
//! act and the day until which it is kept ([`labels::RETAIN_UNTIL`]). pdc never
//! deletes those before that day. A unit's TenantVolumes the act does not move (a
//! dissolved unit's, or those attached to a halted VM) are archived the same way
//! (`archive.<act>.vol-<name>`), one attached to a VM once that VM has stopped.
//! The step is done when every snapshot is ready to use; until then it waits, and
//! says for what.

use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use pdc_api::estate::Objects;
use pdc_api::{RunStrategy, TenantVM, labels};
use pdc_core::reorg::{Plan, UnitPlan};
use serde_json::json;

use super::steps::Outcome;
use crate::compute::build::snapshot_resource;
use crate::compute::volume::dv_name;
use crate::error::{Error, Result};

const ARCHIVE: &str = "pdc-reorganization-archive";

/// The VolumeSnapshot name of `disk`'s archive for `act`.
pub fn snapshot_name(act: &str, disk: &str) -> String {
    let mut n = format!("archive.{act}.{disk}");
    n.truncate(253);
    n.trim_end_matches(['.', '-']).to_string()
}

/// Halt `vm` in `ns` unless it already is.
async fn halt(client: &Client, ns: &str, vm: &TenantVM) -> Result<()> {
    if vm.spec.run_strategy == RunStrategy::Halted {
        return Ok(());
    }
    let obj = json!({"apiVersion": "pdc.io/v1alpha1", "kind": "TenantVM", "metadata": {"name": vm.name_any()}, "spec": {"runStrategy": "Halted"}});
    Api::<TenantVM>::namespaced(client.clone(), ns)
        .patch(&vm.name_any(), &PatchParams::apply(ARCHIVE).force().validation_strict(), &Patch::Apply(&obj))
        .await
        .map(|_| ())
        .map_err(|source| Error::Apply { what: format!("TenantVM {ns}/{}", vm.name_any()), source })
}

/// Make snapshot `name` of claim `disk` if it is not there (labelled with the act,
/// and with the day it is kept until when it is an archive); whether it is ready.
pub async fn snapshot_named(client: &Client, ns: &str, act: &str, name: &str, disk: &str, until: Option<&str>) -> Result<bool> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &snapshot_resource());
    let read = |source| Error::Read { what: format!("VolumeSnapshot {ns}/{name}"), source };
    if let Some(s) = api.get_opt(name).await.map_err(read)? {
        return Ok(s.data.pointer("/status/readyToUse").and_then(serde_json::Value::as_bool) == Some(true));
    }
    let mut l = json!({labels::REORGANIZATION: act, labels::DEPARTMENT: ns, labels::MANAGED_BY: labels::MANAGED_BY_VALUE});
    if let (Some(u), Some(m)) = (until, l.as_object_mut()) {
        m.insert(labels::RETAIN_UNTIL.into(), json!(u));
    }
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": name, "namespace": ns, "labels": l},
        "spec": {"source": {"persistentVolumeClaimName": disk}},
    }))
    .map_err(|e| Error::Invalid(format!("VolumeSnapshot {ns}/{name}: {e}")))?;
    api.create(&PostParams { field_manager: Some(ARCHIVE.into()), ..Default::default() }, &obj)
        .await
        .map_err(|source| Error::Apply { what: format!("VolumeSnapshot {ns}/{name}"), source })?;
    Ok(false)
}

/// Snapshot the volumes unit `u` archives (one attached to a VM once that VM has
/// stopped): how many are ready; what is still stopping or being cut goes into
/// `stopping` and `cutting`.
async fn volumes(client: &Client, act: &str, u: &UnitPlan, objects: &Objects, stopping: &mut Vec<String>, cutting: &mut Vec<String>) -> Result<usize> {
    let mut ready = 0;
    for a in &u.volumes_archived {
        let Some(v) = objects.volumes.iter().find(|v| v.namespace().as_deref() == Some(u.unit.as_str()) && v.name_any() == a.volume) else { continue };
        let vm = a.vm.as_deref().and_then(|vm| objects.vms.iter().find(|x| x.namespace().as_deref() == Some(u.unit.as_str()) && x.name_any() == vm));
        if let Some(vm) = vm.filter(|vm| vm.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Stopped")) {
            stopping.push(format!("{}/{} (for volume {})", u.unit, vm.name_any(), a.volume));
            continue;
        }
        let dv = dv_name(v);
        if snapshot_named(client, &u.unit, act, &snapshot_name(act, &dv), &dv, Some(&a.until.format())).await? {
            ready += 1;
        } else {
            cutting.push(format!("{}/{dv}", u.unit));
        }
    }
    Ok(ready)
}

/// Halt the VMs the act does not keep and snapshot their disks, and the volumes it
/// archives.
pub async fn run(client: &Client, act: &str, plan: &Plan, objects: &Objects) -> Result<Outcome> {
    let (mut halted, mut stopping, mut ready, mut cutting) = (0, Vec::new(), 0, Vec::new());
    for u in &plan.units {
        ready += volumes(client, act, u, objects, &mut stopping, &mut cutting).await?;
        for a in &u.archives {
            let Some(vm) = objects.vms.iter().find(|v| v.namespace().as_deref() == Some(u.unit.as_str()) && v.name_any() == a.vm) else { continue };
            halt(client, &u.unit, vm).await?;
            halted += 1;
            if vm.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Stopped") {
                stopping.push(format!("{}/{}", u.unit, a.vm));
                continue;
            }
            for disk in &a.disks {
                if snapshot_named(client, &u.unit, act, &snapshot_name(act, disk), disk, Some(&a.until.format())).await? {
                    ready += 1;
                } else {
                    cutting.push(format!("{}/{disk}", u.unit));
                }
            }
        }
    }
    if stopping.is_empty() && cutting.is_empty() {
        return Ok(Outcome::Done(format!("{halted} VMs halted; {ready} disk snapshots kept until {}", plan.retention_ends.format())));
    }
    let mut waiting = Vec::new();
    if !stopping.is_empty() {
        waiting.push(format!("stopping {}", stopping.join(", ")));
    }
    if !cutting.is_empty() {
        waiting.push(format!("snapshotting {}", cutting.join(", ")));
    }
    Ok(Outcome::Waiting(waiting.join("; ")))
}
