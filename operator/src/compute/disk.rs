//! A CDI DataVolume and the claim under it, as the TenantVM and TenantVolume
//! controllers keep them. CDI refuses any change of a DataVolume's spec after it is
//! created (its validating webhook), so the spec is applied once; a disk grows
//! through its PersistentVolumeClaim (same name), as CDI documents, and its progress
//! is read from the claim's `status.capacity`.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DynamicObject, Patch};
use kube::{Client, ResourceExt};

use super::build::dv_resource;
use crate::apply;

/// Where a disk stands.
#[derive(Debug, Clone, PartialEq)]
pub enum DiskState {
    /// Being imported, cloned or restored: CDI's phase.
    Populating(String),
    /// CDI cannot populate it: its message (the importer's error; CDI keeps retrying).
    Failed(String),
    /// Populated; its claim grows from `from` to `to`.
    Growing { from: String, to: String },
    Ready,
}

/// CDI's verdict on a DataVolume: phase `Failed` (a fatal import error), or a
/// `Running=False` condition with reason `Error` or `ImagePullFailed` (the importer
/// failed and is retried with backoff while the phase stays `ImportInProgress`).
pub fn failure(dv: &DynamicObject) -> Option<String> {
    let conds = dv.data.pointer("/status/conditions").and_then(|c| c.as_array()).cloned().unwrap_or_default();
    let message = |c: &serde_json::Value| c.get("message").and_then(|m| m.as_str()).filter(|m| !m.is_empty()).map(str::to_string);
    let running_failed = conds.iter().find(|c| {
        c.get("type").and_then(|t| t.as_str()) == Some("Running")
            && c.get("status").and_then(|s| s.as_str()) == Some("False")
            && matches!(c.get("reason").and_then(|r| r.as_str()), Some("Error" | "ImagePullFailed"))
    });
    if let Some(c) = running_failed {
        return Some(message(c).unwrap_or_else(|| "the importer failed; see the DataVolume's events".into()));
    }
    (dv.data.pointer("/status/phase").and_then(|p| p.as_str()) == Some("Failed"))
        .then(|| conds.iter().find_map(message).unwrap_or_else(|| "see the DataVolume's events".into()))
}

pub(super) fn requested(pvc: &PersistentVolumeClaim) -> Option<String> {
    pvc.spec.as_ref()?.resources.as_ref()?.requests.as_ref()?.get("storage").map(|q| q.0.clone())
}

fn capacity(pvc: &PersistentVolumeClaim) -> Option<String> {
    pvc.status.as_ref()?.capacity.as_ref()?.get("storage").map(|q| q.0.clone())
}

fn bytes(q: &str) -> u128 {
    pdc_core::quantity::parse(q).unwrap_or(0)
}

/// Make `dv` exist (applied once: its spec never changes after), keep its labels and
/// owner references as `dv` has them, and grow its claim to `size`.
pub async fn ensure(client: &Client, dv: &DynamicObject, size: &str) -> std::result::Result<DiskState, kube::Error> {
    let ns = dv.namespace().unwrap_or_default();
    let name = dv.name_any();
    let dvs: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &dv_resource());
    let current = match dvs.get_opt(&name).await? {
        None => dvs.patch(&name, &apply::params(), &Patch::Apply(dv)).await?,
        Some(old) => {
            let labels_differ = dv.metadata.labels.as_ref().is_some_and(|want| want.iter().any(|(k, v)| old.labels().get(k) != Some(v)));
            let owners_differ = dv.metadata.owner_references.clone().unwrap_or_default() != old.metadata.owner_references.clone().unwrap_or_default();
            if labels_differ || owners_differ {
                // Metadata only: the spec stays as CDI accepted it.
                let body = serde_json::json!({"metadata": {"labels": dv.metadata.labels, "ownerReferences": dv.metadata.owner_references.clone().unwrap_or_default()}});
                dvs.patch(&name, &apply::strict(), &Patch::Merge(&body)).await?
            } else {
                old
            }
        }
    };
    if let Some(why) = failure(&current) {
        return Ok(DiskState::Failed(why));
    }
    let phase = current.data.pointer("/status/phase").and_then(|p| p.as_str()).unwrap_or("Pending");
    if phase != "Succeeded" {
        return Ok(DiskState::Populating(phase.to_string()));
    }
    grow(client, &ns, &name, size).await
}

/// Grow the claim `name` (a populated disk's) to `size`: its request is raised, and
/// its capacity says when the CSI driver is done.
pub async fn grow(client: &Client, ns: &str, name: &str, size: &str) -> std::result::Result<DiskState, kube::Error> {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let Some(pvc) = pvcs.get_opt(name).await? else { return Ok(DiskState::Populating("Succeeded, its claim not yet seen".into())) };
    let asked = requested(&pvc).unwrap_or_default();
    if bytes(size) > bytes(&asked) {
        let body = serde_json::json!({"spec": {"resources": {"requests": {"storage": size}}}});
        pvcs.patch(name, &apply::strict(), &Patch::Merge(&body)).await?;
        return Ok(DiskState::Growing { from: capacity(&pvc).unwrap_or(asked), to: size.to_string() });
    }
    match capacity(&pvc) {
        Some(c) if bytes(&c) < bytes(size) => Ok(DiskState::Growing { from: c, to: size.to_string() }),
        _ => Ok(DiskState::Ready),
    }
}
