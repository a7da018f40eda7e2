//! Replicas a restore reads from are held. VolSync keeps only a destination's newest
//! snapshot: each sync deletes the one before, unless it is labelled
//! `volsync.backube/do-not-delete`. A failover, relocate or drill restores disks from
//! the snapshots it promoted while replication may go on, so it labels them first
//! ([`hold`]) and releases them once no restore needs them ([`release`]): the label goes,
//! and a snapshot that is no longer the destination's newest (so VolSync will not
//! delete it) is deleted.

use std::collections::BTreeSet;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch};
use kube::{Client, ResourceExt};
use pdc_api::labels as l;

use crate::apply;
use crate::compute::build::{dv_resource, snapshot_resource};
use crate::error::is_not_found;

/// Label the snapshots `names` of namespace `ns` as held by `plan`.
pub async fn hold(client: &Client, ns: &str, plan: &str, names: impl IntoIterator<Item = &String>) -> Result<(), String> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &snapshot_resource());
    let body = serde_json::json!({"metadata": {"labels": {l::DR_HOLD: plan, l::VOLSYNC_DO_NOT_DELETE: "true"}}});
    let names: Vec<String> = names.into_iter().cloned().collect();
    let held = super::each(names, move |n| {
        let (api, body) = (api.clone(), body.clone());
        async move { api.patch(&n, &apply::strict(), &Patch::Merge(&body)).await.map(|_| ()).map_err(|e| format!("holding replica {n} failed: {e}")) }
    })
    .await;
    held.into_iter().collect()
}

/// Release what `plan` holds in `ns` that no DataVolume still restores from (one whose
/// source is the snapshot and that has not `Succeeded`). `newest`: each destination's
/// current `latestImage`, which VolSync itself replaces and deletes.
pub async fn release(client: &Client, ns: &str, plan: &str, newest: &BTreeSet<String>) -> Result<(), String> {
    let snaps: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &snapshot_resource());
    let held = match snaps.list(&ListParams::default().labels(&format!("{}={plan}", l::DR_HOLD))).await {
        Ok(l) => l.items,
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(format!("listing held replicas failed: {e}")),
    };
    if held.is_empty() {
        return Ok(());
    }
    let dvs: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &dv_resource());
    let restoring: BTreeSet<String> = dvs
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing DataVolumes failed: {e}"))?
        .items
        .iter()
        .filter(|d| d.data.pointer("/status/phase").and_then(|p| p.as_str()) != Some("Succeeded"))
        .filter_map(|d| d.data.pointer("/spec/source/snapshot/name").and_then(|n| n.as_str()).map(str::to_string))
        .collect();
    for s in held.iter().filter(|s| !restoring.contains(&s.name_any())) {
        let name = s.name_any();
        let done = if newest.contains(&name) {
            let body = serde_json::json!({"metadata": {"labels": {l::DR_HOLD: null, l::VOLSYNC_DO_NOT_DELETE: null}}});
            snaps.patch(&name, &apply::strict(), &Patch::Merge(&body)).await.map(|_| ())
        } else {
            snaps.delete(&name, &DeleteParams::background()).await.map(|_| ())
        };
        match done {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(format!("releasing replica {name} failed: {e}")),
        }
    }
    Ok(())
}
