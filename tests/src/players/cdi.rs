//! CDI (containerized-data-importer v1.66) and the CSI driver under it, as pdc meets
//! them: DataVolumes become bound PersistentVolumeClaims once their source can be
//! read; a claim grows when its request grows; snapshots are restored from.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use pdc_operator::compute::build::dv_resource;

use super::netpol::{Destination, egress_allowed};
use super::{Cluster, snapshot_resource, text};
use crate::HarnessError;

/// The StorageClasses of the province's tiers. A CSI driver that can grow volumes
/// (`allowVolumeExpansion`), as the kube-apiserver's PersistentVolumeClaimResize
/// admission requires before it lets a claim's request grow.
pub const STORAGE_CLASSES: &str = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: pdc-ssd}\nprovisioner: csi.pdc-tests.invalid\nallowVolumeExpansion: true\nvolumeBindingMode: Immediate\n---\n\
apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: pdc-hdd}\nprovisioner: csi.pdc-tests.invalid\nallowVolumeExpansion: true\nvolumeBindingMode: Immediate\n";

/// Where every image URL's host resolves to, in the players' world: a documentation
/// address outside the cluster.
pub const IMAGE_SERVER: &str = "203.0.113.10";
/// The cluster DNS the importer resolves the image host with (kube-system, `k8s-app: kube-dns`).
const DNS_NAMESPACE: &str = "kube-system";

/// CDI's DataVolume validating webhook (`pkg/apiserver/webhooks/datavolume-validate.go`,
/// v1.66) refuses any UPDATE whose `spec` differs from the stored one ("Cannot update
/// DataVolume Spec"); a disk is grown through its PersistentVolumeClaim instead. It also
/// authorizes a clone from another namespace (a `pvc` or `snapshot` source, or a
/// DataSource `sourceRef`): the user creating the DataVolume must be allowed to create
/// `datavolumes/source` (or pods) in the source namespace, or the create is refused
/// ("insufficient permissions in clone source namespace"). Played by
/// ValidatingAdmissionPolicies, so the API server itself refuses the write.
pub fn webhook_rules() -> String {
    let clone_auth = "apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: cdi-datavolume-clone-authorization}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: [cdi.kubevirt.io]
        apiVersions: ['*']
        operations: [CREATE]
        resources: [datavolumes]
  variables:
    - name: source
      expression: >-
        has(object.spec.source) && has(object.spec.source.pvc) && has(object.spec.source.pvc.__namespace__) ? object.spec.source.pvc.__namespace__ :
        has(object.spec.source) && has(object.spec.source.snapshot) && has(object.spec.source.snapshot.__namespace__) ? object.spec.source.snapshot.__namespace__ :
        has(object.spec.sourceRef) && has(object.spec.sourceRef.__namespace__) ? object.spec.sourceRef.__namespace__ : request.namespace
  validations:
    - expression: >-
        variables.source == request.namespace ||
        authorizer.group('cdi.kubevirt.io').resource('datavolumes').subresource('source').namespace(variables.source).check('create').allowed() ||
        authorizer.group('').resource('pods').namespace(variables.source).check('create').allowed()
      messageExpression: >-
        'admission webhook \"datavolume-validate.cdi.kubevirt.io\" denied the request: User ' + request.userInfo.username +
        ' has insufficient permissions in clone source namespace ' + variables.source
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: cdi-datavolume-clone-authorization}
spec:
  policyName: cdi-datavolume-clone-authorization
  validationActions: [Deny]
---
";
    format!("{clone_auth}{}", spec_immutable())
}

fn spec_immutable() -> String {
    "apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: cdi-datavolume-spec-immutable}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: [cdi.kubevirt.io]
        apiVersions: ['*']
        operations: [UPDATE]
        resources: [datavolumes]
  validations:
    - expression: object.spec == oldObject.spec
      message: 'admission webhook \"datavolume-validate.cdi.kubevirt.io\" denied the request: Cannot update DataVolume Spec'
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: cdi-datavolume-spec-immutable}
spec:
  policyName: cdi-datavolume-spec-immutable
  validationActions: [Deny]
"
    .to_string()
}

/// Wait until the API server enforces [`webhook_rules`] (a policy takes effect a
/// moment after it is stored): probe with a dry-run update of a probe DataVolume.
pub async fn wait_webhook_rules(client: &Client) -> Result<(), HarnessError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &dv_resource());
    let mut dv = DynamicObject::new("cdi-webhook-probe", &dv_resource()).within("default");
    dv.data = serde_json::json!({"spec": {"source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "1Mi"}}}}});
    let pp = PatchParams::apply("pdc-tests").force();
    api.patch("cdi-webhook-probe", &pp, &Patch::Apply(&dv)).await?;
    let mut grown = dv.clone();
    grown.data = serde_json::json!({"spec": {"source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "2Mi"}}}}});
    let dry = PatchParams { dry_run: true, ..pp };
    let start = std::time::Instant::now();
    while api.patch("cdi-webhook-probe", &dry, &Patch::Apply(&grown)).await.is_ok() {
        if start.elapsed() > Duration::from_secs(60) {
            return Err(HarnessError::Other("the DataVolume spec rule was not enforced within 60 s".into()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    api.delete("cdi-webhook-probe", &Default::default()).await?;
    Ok(())
}

/// The labels of CDI's importer pod (`pkg/controller/import-controller.go`, v1.66:
/// `app: containerized-data-importer`, `cdi.kubevirt.io: importer`): what a
/// department's NetworkPolicies select it by.
pub fn importer_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".to_string(), "containerized-data-importer".to_string()),
        ("cdi.kubevirt.io".to_string(), "importer".to_string()),
        ("app.kubernetes.io/component".to_string(), "storage".to_string()),
        ("app.kubernetes.io/managed-by".to_string(), "cdi-controller".to_string()),
    ])
}

/// An import from a URL or registry runs CDI's importer pod in the DataVolume's own
/// namespace (v1.66: the pod `importer-prime-<uid>` beside the prime PVC), which must
/// resolve the image host through the cluster DNS and connect to it (80/443). The
/// namespace's NetworkPolicies govern that pod like any other: when they forbid either
/// connection the importer fails and restarts with backoff, and the DataVolume stays
/// `ImportInProgress` with `Running=False` and the error (`status.restartCount` counts
/// the attempts); it never reaches `Succeeded`. `None`: the import can run.
pub fn importer_blocked(c: &Cluster, ns: &str, url: &str) -> Option<String> {
    let policies = c.policies.state();
    let ns_labels = c
        .namespaces
        .get(&kube::runtime::reflector::ObjectRef::new(ns))
        .and_then(|n| n.metadata.labels.clone())
        .unwrap_or_default();
    let dns_ns_labels = BTreeMap::from([("kubernetes.io/metadata.name".to_string(), DNS_NAMESPACE.to_string())]);
    let dns_pod = BTreeMap::from([("k8s-app".to_string(), "kube-dns".to_string())]);
    let pod = importer_labels();
    let host = url.split("://").nth(1).and_then(|r| r.split(['/', ':']).next()).unwrap_or(url);
    let dns = Destination::Pod { namespace_labels: &dns_ns_labels, labels: &dns_pod };
    if !egress_allowed(&policies, ns, &ns_labels, &pod, &dns, "UDP", 53) {
        return Some(format!("Unable to connect to http data source: Get \"{url}\": dial tcp: lookup {host}: i/o timeout"));
    }
    let port = if url.starts_with("http://") { 80 } else { 443 };
    if !egress_allowed(&policies, ns, &ns_labels, &pod, &Destination::External(IMAGE_SERVER), "TCP", port) {
        return Some(format!("Unable to connect to http data source: Get \"{url}\": dial tcp {IMAGE_SERVER}:{port}: i/o timeout"));
    }
    // The players' image server has what pdc's tests ask for, except under /missing/.
    if url.contains("/missing/") {
        return Some("Unable to connect to http data source: expected status code 200, got 404. Status: 404 Not Found".into());
    }
    None
}

/// A restore from a VolumeSnapshot (`source.snapshot`) needs the snapshot to exist and
/// be `readyToUse`; until then CDI keeps the DataVolume waiting
/// (`SnapshotForSmartCloneInProgress`/`Pending`, v1.66 `snapshot-clone-datasource`),
/// and a deleted snapshot is never restored from.
pub fn snapshot_missing(c: &Cluster, ns: &str, name: &str) -> Option<String> {
    match Cluster::find(&c.snapshots, &snapshot_resource(), ns, name) {
        None => Some(format!("VolumeSnapshot {ns}/{name} not found")),
        Some(s) if s.data.pointer("/status/readyToUse").and_then(|r| r.as_bool()) != Some(true) => Some(format!("VolumeSnapshot {ns}/{name} is not ready to use")),
        Some(_) => None,
    }
}

/// How long a restore from a snapshot takes here: the CSI driver provisions a volume
/// from the snapshot, which is not instant (CDI v1.66 shows the DataVolume
/// `CloneFromSnapshotSourceInProgress` meanwhile), and the snapshot must exist until
/// the volume is there. Twice the players' VolSync sync interval, so a replica that
/// nobody holds is rotated away in the middle of a restore, as it would be by a
/// schedule that fires during a slow one.
const RESTORE_SECONDS: i64 = 4;

/// Seconds a restore of `dv` still needs, if any.
fn restoring(dv: &DynamicObject) -> Option<i64> {
    let created = dv.metadata.creation_timestamp.as_ref()?.0;
    let left = RESTORE_SECONDS - Timestamp::now().duration_since(created).as_secs();
    (left > 0).then_some(left)
}

/// The claim CDI makes for a DataVolume: same name, owned by the DataVolume (so the
/// garbage collector deletes it with the DataVolume), the DataVolume's storage spec.
fn claim_for(dv: &DynamicObject) -> PersistentVolumeClaim {
    let storage = dv.data.pointer("/spec/storage").or_else(|| dv.data.pointer("/spec/pvc")).cloned().unwrap_or_default();
    let mut spec = serde_json::json!({
        "accessModes": storage.get("accessModes").cloned().unwrap_or(serde_json::json!(["ReadWriteOnce"])),
        "resources": {"requests": {"storage": storage.pointer("/resources/requests/storage").cloned().unwrap_or(serde_json::json!("1Gi"))}},
        "volumeMode": storage.get("volumeMode").cloned().unwrap_or(serde_json::json!("Filesystem")),
    });
    if let (Some(sc), Some(m)) = (storage.get("storageClassName"), spec.as_object_mut()) {
        m.insert("storageClassName".into(), sc.clone());
    }
    let owner = serde_json::json!([{"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "name": dv.name_any(), "uid": dv.uid(), "controller": true, "blockOwnerDeletion": true}]);
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": dv.name_any(), "namespace": dv.namespace(), "labels": {"app": "containerized-data-importer", "app.kubernetes.io/managed-by": "cdi-controller"}, "ownerReferences": owner},
        "spec": spec,
    }))
    .unwrap_or_default()
}

fn cond(t: &str, status: bool, reason: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"type": t, "status": if status { "True" } else { "False" }, "reason": reason, "message": message,
                       "lastTransitionTime": Timestamp::now().to_string(), "lastHeartbeatTime": Timestamp::now().to_string()})
}

async fn set_dv_status(c: &Cluster, dv: &DynamicObject, status: serde_json::Value) {
    let api: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), &dv.namespace().unwrap_or_default(), &dv_resource());
    let _ = api.patch_status(&dv.name_any(), &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "status": status }))).await;
}

/// A DataVolume's import, clone or restore. Succeeded: the claim exists and is bound
/// (the CSI driver provisioned it at the requested size).
async fn populate(c: &Cluster, dv: &DynamicObject, tick: u64) {
    let ns = dv.namespace().unwrap_or_default();
    let phase = text(&dv.data, "/status/phase");
    if phase == Some("Succeeded") {
        return;
    }
    let blocked = if let Some(url) = text(&dv.data, "/spec/source/http/url").or_else(|| text(&dv.data, "/spec/source/registry/url")) {
        importer_blocked(c, &ns, url)
    } else if let Some(snap) = dv.data.pointer("/spec/source/snapshot") {
        let sns = snap.get("namespace").and_then(|v| v.as_str()).unwrap_or(&ns).to_string();
        let name = snap.get("name").and_then(|v| v.as_str()).unwrap_or_default();
        if let Some(why) = snapshot_missing(c, &sns, name) {
            if phase != Some("SnapshotForSmartCloneInProgress") {
                set_dv_status(c, dv, serde_json::json!({"phase": "SnapshotForSmartCloneInProgress", "progress": "N/A",
                    "conditions": [cond("Bound", false, "Pending", &why), cond("Ready", false, "Pending", &why), cond("Running", false, "Pending", &why)]})).await;
            }
            return;
        }
        if let Some(wait) = restoring(dv) {
            if phase != Some("CloneFromSnapshotSourceInProgress") {
                let why = format!("provisioning the volume from VolumeSnapshot {sns}/{name} ({wait} s left)");
                set_dv_status(c, dv, serde_json::json!({"phase": "CloneFromSnapshotSourceInProgress", "progress": "N/A",
                    "conditions": [cond("Bound", false, "Pending", &why), cond("Ready", false, "Pending", &why), cond("Running", true, "Pending", &why)]})).await;
            }
            return;
        }
        None
    } else {
        None
    };
    if let Some(why) = blocked {
        // The importer pod fails and restarts with backoff: one attempt every 2 s here.
        if tick.is_multiple_of(10) || phase != Some("ImportInProgress") {
            let restarts = dv.data.pointer("/status/restartCount").and_then(|r| r.as_i64()).unwrap_or(0) + 1;
            set_dv_status(c, dv, serde_json::json!({"phase": "ImportInProgress", "progress": "N/A", "restartCount": restarts, "claimName": dv.name_any(),
                "conditions": [cond("Bound", true, "Bound", "PVC Bound"), cond("Ready", false, "TransferRunning", "Import in progress"), cond("Running", false, "Error", &why)]})).await;
        }
        return;
    }
    // The claim, provisioned and bound at its requested size.
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), &ns);
    let claim = match c.pvcs.get(&kube::runtime::reflector::ObjectRef::new(&dv.name_any()).within(&ns)) {
        Some(p) => p,
        None => match pvcs.create(&PostParams::default(), &claim_for(dv)).await {
            Ok(p) => Arc::new(p),
            Err(_) => return,
        },
    };
    bind(c, &claim).await;
    set_dv_status(c, dv, serde_json::json!({"phase": "Succeeded", "progress": "100.0%", "claimName": dv.name_any(),
        "conditions": [cond("Bound", true, "Bound", "PVC Bound"), cond("Ready", true, "Ready", ""), cond("Running", false, "Completed", "")]})).await;
}

/// The CSI provisioner and the PV controller: a claim of one of the tiers' classes is
/// bound with the capacity it asks.
async fn bind(c: &Cluster, pvc: &PersistentVolumeClaim) {
    if pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound") {
        return;
    }
    let size = pvc.spec.as_ref().and_then(|s| s.resources.as_ref()).and_then(|r| r.requests.as_ref()).and_then(|r| r.get("storage")).cloned();
    let status = serde_json::json!({"status": {"phase": "Bound", "accessModes": pvc.spec.as_ref().and_then(|s| s.access_modes.clone()), "capacity": {"storage": size}}});
    let api: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), &pvc.namespace().unwrap_or_default());
    let _ = api.patch_status(&pvc.name_any(), &PatchParams::default(), &Patch::Merge(&status)).await;
}

fn bytes(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> u128 {
    q.and_then(|q| pdc_core::quantity::parse(&q.0).ok()).unwrap_or(0)
}

/// Volume expansion (Kubernetes `ExpandPersistentVolumes`, the CSI external-resizer
/// and kubelet's online file-system resize): a bound claim whose request grew (the API
/// server admits that only for a class with `allowVolumeExpansion`) first reports
/// `Resizing`, then the new `status.capacity`.
async fn expand(c: &Cluster, pvc: &PersistentVolumeClaim) {
    let Some(status) = pvc.status.as_ref() else { return };
    if status.phase.as_deref() != Some("Bound") {
        return;
    }
    let want = pvc.spec.as_ref().and_then(|s| s.resources.as_ref()).and_then(|r| r.requests.as_ref()).and_then(|r| r.get("storage")).cloned();
    let have = status.capacity.as_ref().and_then(|c| c.get("storage"));
    if bytes(want.as_ref()) <= bytes(have) {
        return;
    }
    let api: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), &pvc.namespace().unwrap_or_default());
    let resizing = status.conditions.as_ref().is_some_and(|cs| cs.iter().any(|c| c.type_ == "Resizing"));
    let body = if resizing {
        serde_json::json!({"status": {"capacity": {"storage": want}, "conditions": null, "allocatedResources": {"storage": want}}})
    } else {
        serde_json::json!({"status": {"conditions": [{"type": "Resizing", "status": "True", "lastTransitionTime": Timestamp::now().to_string()}], "allocatedResources": {"storage": want}}})
    };
    let _ = api.patch_status(&pvc.name_any(), &PatchParams::default(), &Patch::Merge(&body)).await;
}

/// Snapshots are cut by the CSI snapshotter: a VolumeSnapshot of an existing claim
/// becomes `readyToUse` with the claim's size.
async fn cut_snapshot(c: &Cluster, snap: &DynamicObject) {
    if snap.data.pointer("/status/readyToUse").is_some() {
        return;
    }
    let ns = snap.namespace().unwrap_or_default();
    let Some(claim) = text(&snap.data, "/spec/source/persistentVolumeClaimName") else { return };
    let Some(pvc) = c.pvcs.get(&kube::runtime::reflector::ObjectRef::new(claim).within(&ns)) else { return };
    let size = pvc.status.as_ref().and_then(|s| s.capacity.as_ref()).and_then(|c| c.get("storage")).cloned();
    let body = serde_json::json!({"status": {"readyToUse": true, "restoreSize": size, "creationTime": Timestamp::now().to_string(),
                                             "boundVolumeSnapshotContentName": format!("snapcontent-{}", snap.uid().unwrap_or_default())}});
    let api: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), &ns, &snapshot_resource());
    let _ = api.patch_status(&snap.name_any(), &PatchParams::default(), &Patch::Merge(&body)).await;
}

/// One pass of CDI and the CSI driver over a cluster.
pub async fn play(c: &Cluster, tick: u64) {
    let live = |o: &&std::sync::Arc<DynamicObject>| o.metadata.deletion_timestamp.is_none();
    super::each(c.dvs.state().iter().filter(live).cloned().collect(), |dv| async move { populate(c, &dv, tick).await }).await;
    let pvcs: Vec<_> = c.pvcs.state().into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    super::each(pvcs, |pvc| async move {
        bind(c, &pvc).await;
        expand(c, &pvc).await;
    })
    .await;
    super::each(c.snapshots.state(), |s| async move { cut_snapshot(c, &s).await }).await;
}
