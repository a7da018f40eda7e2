//! VolSync (v0.16) as pdc meets it, rsync-TLS between two clusters: a destination
//! publishes its address and key; a source syncs to it on its schedule (every 2 s in
//! the players' world) or on a manual trigger; each sync leaves a new snapshot at the
//! destination and removes the one before.

use std::sync::atomic::Ordering;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use pdc_operator::dr::{rd_resource, rs_resource};

use super::{Cluster, Players, snapshot_resource, text};

/// The label that keeps a snapshot VolSync would otherwise delete
/// (`volsync.backube/do-not-delete`, any value; VolSync v0.16
/// `internal/controller/utils/labels.go`, `cleanup.go` `IsMarkedDoNotDelete`).
pub const DO_NOT_DELETE: &str = "volsync.backube/do-not-delete";

/// The mover's key Secret and service address for a destination (VolSync names them
/// `volsync-rsync-tls-<rd>` and `volsync-rsync-tls-dst-<rd>`).
fn address(rd: &DynamicObject) -> String {
    format!("volsync-rsync-tls-dst-{}.{}.svc", rd.name_any(), rd.namespace().unwrap_or_default())
}

/// A ReplicationDestination (rsyncTLS) starts its mover: a PVC to receive into
/// (`volsync-<rd>-dst`, capacity and class from the spec), a key Secret, and the
/// service address in `status.rsyncTLS` (VolSync v0.16 `internal/controller/mover/rsynctls`).
async fn publish(c: &Cluster, rd: &DynamicObject) {
    if rd.data.pointer("/spec/rsyncTLS").is_none() || rd.data.pointer("/status/rsyncTLS/address").is_some() {
        return;
    }
    let ns = rd.namespace().unwrap_or_default();
    let key = format!("volsync-rsync-tls-{}", rd.name_any());
    let s = Secret {
        metadata: kube::api::ObjectMeta { name: Some(key.clone()), namespace: Some(ns.clone()), ..Default::default() },
        string_data: Some([("psk.txt".to_string(), format!("volsync:{}", rd.name_any()))].into()),
        ..Default::default()
    };
    if Api::<Secret>::namespaced(c.client.clone(), &ns).patch(&key, &PatchParams::apply("volsync").force(), &Patch::Apply(&s)).await.is_err() {
        return;
    }
    let m = rd.data.pointer("/spec/rsyncTLS").cloned().unwrap_or_default();
    let dst = format!("volsync-{}-dst", rd.name_any());
    let pvc: Result<PersistentVolumeClaim, _> = serde_json::from_value(serde_json::json!({
        "metadata": {"name": dst, "namespace": ns, "labels": {"app.kubernetes.io/created-by": "volsync"},
                     "ownerReferences": [{"apiVersion": "volsync.backube/v1alpha1", "kind": "ReplicationDestination", "name": rd.name_any(), "uid": rd.uid(), "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"accessModes": m.get("accessModes").cloned().unwrap_or(serde_json::json!(["ReadWriteOnce"])),
                 "storageClassName": m.get("storageClassName"), "resources": {"requests": {"storage": m.get("capacity").cloned().unwrap_or(serde_json::json!("1Gi"))}}}
    }));
    if let Ok(p) = pvc
        && c.pvcs.get(&kube::runtime::reflector::ObjectRef::new(&dst).within(&ns)).is_none()
    {
        let _ = Api::<PersistentVolumeClaim>::namespaced(c.client.clone(), &ns).create(&PostParams::default(), &p).await;
    }
    let st = serde_json::json!({"status": {"rsyncTLS": {"address": address(rd), "keySecret": key}}});
    let _ = Api::<DynamicObject>::namespaced_with(c.client.clone(), &ns, &rd_resource()).patch_status(&rd.name_any(), &PatchParams::default(), &Patch::Merge(&st)).await;
}

/// Every destination reconcile gives up its snapshots that carry [`DO_NOT_DELETE`]:
/// their owner reference to the ReplicationDestination goes, so neither the cleanup
/// nor the garbage collector (when the destination is deleted) removes them (VolSync
/// v0.16 `RelinquishOwnedSnapshotsWithDoNotDeleteLabel`).
async fn relinquish(c: &Cluster) {
    for s in c.snapshots.state() {
        let owned = s.owner_references().iter().any(|o| o.kind == "ReplicationDestination");
        if owned && s.labels().contains_key(DO_NOT_DELETE) {
            let keep: Vec<_> = s.owner_references().iter().filter(|o| o.kind != "ReplicationDestination").cloned().collect();
            let api: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), &s.namespace().unwrap_or_default(), &snapshot_resource());
            let body = serde_json::json!({"metadata": {"ownerReferences": keep, "resourceVersion": s.resource_version()}});
            let _ = api.patch(&s.name_any(), &PatchParams::default(), &Patch::Merge(&body)).await;
        }
    }
}

pub async fn play_destinations(c: &Cluster) {
    for rd in c.destinations.state() {
        if rd.metadata.deletion_timestamp.is_none() {
            publish(c, &rd).await;
        }
    }
    relinquish(c).await;
}

/// Why a source cannot sync.
pub enum Blocked {
    /// Before any mover runs: condition `Synchronizing=False`, reason `Error`.
    Setup(String),
    /// The mover ran and failed: `latestMoverStatus.result: Failed` with its log.
    Mover(String),
}

/// A source's mover runs only with its key: `spec.rsyncTLS.keySecret` must exist in
/// the source's namespace with `psk.txt`, or `Synchronize` stops before the mover Job
/// with `Secret "<name>" not found` (VolSync v0.16 `rsynctls/mover.go` `ensureSecrets`).
/// The mover reaches only the destination serving `spec.rsyncTLS.address`; anything
/// else refuses the connection.
pub fn can_sync<'a>(src: &Cluster, rs: &DynamicObject, peers: &[&'a Cluster]) -> Result<(&'a Cluster, std::sync::Arc<DynamicObject>), Blocked> {
    let ns = rs.namespace().unwrap_or_default();
    if let Some(key) = text(&rs.data, "/spec/rsyncTLS/keySecret") {
        let has_psk = src.secrets.get(&kube::runtime::reflector::ObjectRef::new(key).within(&ns)).map(|s| s.data.as_ref().is_some_and(|d| d.contains_key("psk.txt")));
        match has_psk {
            None => return Err(Blocked::Setup(format!("Secret \"{key}\" not found"))),
            Some(false) => return Err(Blocked::Setup("secret is missing field: psk.txt".into())),
            Some(true) => {}
        }
    }
    let addr = text(&rs.data, "/spec/rsyncTLS/address").ok_or_else(|| Blocked::Setup("spec.rsyncTLS.address is not set".into()))?;
    for p in peers {
        if let Some(rd) = p.destinations.state().into_iter().find(|d| d.namespace().as_deref() == Some(ns.as_str()) && text(&d.data, "/status/rsyncTLS/address") == Some(addr)) {
            return Ok((p, rd));
        }
    }
    Err(Blocked::Mover(format!("rsync: failed to connect to {addr} (port 8000): Connection refused (111)")))
}

/// One sync. The destination cuts a VolumeSnapshot of its PVC
/// (`<pvc>-<YYYYMMDDHHMMSS>`, owned by the ReplicationDestination), publishes it as
/// `status.latestImage` and deletes the image before it unless that snapshot carries
/// [`DO_NOT_DELETE`] (VolSync v0.16 `volumehandler.go` `ensureImageSnapshot`,
/// `replicationdestination_controller.go` `MarkOldSnapshotForCleanup`,
/// `utils/cleanup.go`: only the latest image is kept).
async fn sync(dst: &Cluster, rd: &DynamicObject) -> Result<(), kube::Error> {
    let ns = rd.namespace().unwrap_or_default();
    let snaps: Api<DynamicObject> = Api::namespaced_with(dst.client.clone(), &ns, &snapshot_resource());
    let name = format!("volsync-{}-dst-{}", rd.name_any(), Timestamp::now().strftime("%Y%m%d%H%M%S"));
    let mut snap = DynamicObject::new(&name, &snapshot_resource()).within(&ns);
    snap.metadata.labels = Some([("app.kubernetes.io/created-by".to_string(), "volsync".to_string())].into());
    snap.metadata.owner_references = rd.controller_owner_ref(&rd_resource()).map(|o| vec![o]);
    let mut spec = serde_json::json!({"source": {"persistentVolumeClaimName": format!("volsync-{}-dst", rd.name_any())}});
    if let (Some(class), Some(m)) = (text(&rd.data, "/spec/rsyncTLS/volumeSnapshotClassName"), spec.as_object_mut()) {
        m.insert("volumeSnapshotClassName".into(), serde_json::json!(class));
    }
    snap.data = serde_json::json!({ "spec": spec });
    snaps.create(&PostParams::default(), &snap).await?;
    let previous = text(&rd.data, "/status/latestImage/name").map(str::to_string);
    let st = serde_json::json!({"status": {"lastSyncTime": Timestamp::now().to_string(), "latestImage": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": name}}});
    Api::<DynamicObject>::namespaced_with(dst.client.clone(), &ns, &rd_resource()).patch_status(&rd.name_any(), &PatchParams::default(), &Patch::Merge(&st)).await?;
    if let Some(old) = previous
        && let Some(o) = Cluster::find(&dst.snapshots, &snapshot_resource(), &ns, &old)
        && !o.labels().contains_key(DO_NOT_DELETE)
    {
        let _ = snaps.delete(&old, &Default::default()).await;
    }
    Ok(())
}

/// Every ReplicationSource of `src` that is due syncs to its destination among `peers`.
pub async fn play_sources(src: &Cluster, peers: &[&Cluster], p: &Players) {
    let now = Timestamp::now();
    for rs in src.sources.state() {
        if rs.data.pointer("/spec/rsyncTLS").is_none() || rs.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let (ns, name) = (rs.namespace().unwrap_or_default(), rs.name_any());
        let manual = text(&rs.data, "/spec/trigger/manual").map(str::to_string);
        let last_manual = text(&rs.data, "/status/lastManualSync").map(str::to_string);
        let last = pdc_operator::dr::replicate::sync_state(&rs).0;
        let due = match &manual {
            Some(m) => last_manual.as_ref() != Some(m),
            None => last.is_none_or(|t| now.duration_since(t).as_secs() >= 2),
        };
        if !due {
            continue;
        }
        let srcs: Api<DynamicObject> = Api::namespaced_with(src.client.clone(), &ns, &rs_resource());
        let failing = p.failing.lock().map(|f| f.contains(&name)).unwrap_or(false);
        let target = if failing { Err(Blocked::Mover("rsync: [sender] write error: Broken pipe\nrsync error: error in socket IO (code 10)".to_string())) } else { can_sync(src, &rs, peers) };
        let (dst, rd) = match target {
            Ok(t) => t,
            Err(Blocked::Mover(logs)) => {
                if text(&rs.data, "/status/latestMoverStatus/logs") != Some(logs.as_str()) {
                    let st = serde_json::json!({"status": {"latestMoverStatus": {"result": "Failed", "logs": logs}}});
                    let _ = srcs.patch_status(&name, &PatchParams::default(), &Patch::Merge(&st)).await;
                }
                continue;
            }
            Err(Blocked::Setup(why)) => {
                if text(&rs.data, "/status/conditions/0/message") != Some(why.as_str()) {
                    let c = serde_json::json!({"type": "Synchronizing", "status": "False", "reason": "Error", "message": why, "lastTransitionTime": now.to_string()});
                    let _ = srcs.patch_status(&name, &PatchParams::default(), &Patch::Merge(&serde_json::json!({"status": {"conditions": [c]}}))).await;
                }
                continue;
            }
        };
        // Two syncs within one second would name the same snapshot: the second waits.
        if sync(dst, &rd).await.is_err() {
            continue;
        }
        p.syncs.fetch_add(1, Ordering::Relaxed);
        let sync_cond = serde_json::json!({"type": "Synchronizing", "status": "True", "reason": "WaitingForSchedule", "message": "Waiting for next scheduled synchronization", "lastTransitionTime": now.to_string()});
        let mut st = serde_json::json!({"status": {"lastSyncTime": now.to_string(), "conditions": [sync_cond], "latestMoverStatus": {"result": "Successful", "logs": "sent 1.2M bytes  received 35 bytes"}}});
        if let (Some(m), Some(s)) = (manual, st.get_mut("status")) {
            pdc_operator::dr::set(s, "lastManualSync", serde_json::json!(m));
        }
        let _ = srcs.patch_status(&name, &PatchParams::default(), &Patch::Merge(&st)).await;
    }
}
