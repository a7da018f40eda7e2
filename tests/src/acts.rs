//! What the reorganization tests share: the SizeClass, a one-disk VM and the quota
//! that fits a number of them, and an act as an object.

use kube::Api;
use kube::api::{Patch, PatchParams};
use pdc_api::{Department, Reorganization, TenantVM};

use crate::HarnessError;

/// The SizeClass the tests' VMs use.
pub const SIZES: &str = "apiVersion: pdc.io/v1alpha1\nkind: SizeClass\nmetadata: {name: m1.small}\nspec: {vcpu: 2, memory: 4Gi}\n";

/// A small VM: m1.small, one 20Gi ssd disk from a URL, one NIC in zone app.
pub fn small_vm(name: &str) -> Result<TenantVM, HarnessError> {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "TenantVM", "metadata": {"name": name},
        "spec": {"size": "m1.small", "image": {"url": "https://images.daklak.gov.vn/ubuntu-24.04.qcow2"},
                 "rootDisk": {"size": "20Gi", "tier": "ssd"}, "nics": [{"zone": "app"}], "hostname": name}
    }))
    .map_err(|e| HarnessError::Other(e.to_string()))
}

/// Give `dept` the quota of `vms` small VMs.
pub async fn set_quota(client: &kube::Client, dept: &str, vms: i32) -> Result<(), HarnessError> {
    let q = serde_json::json!({"spec": {"quota": {"vcpu": 2 * vms, "memory": format!("{}Gi", 4 * vms), "storage": {"ssd": format!("{}Gi", 20 * vms)}, "vms": vms}}});
    Api::<Department>::all(client.clone()).patch(dept, &PatchParams::default(), &Patch::Merge(&q)).await?;
    Ok(())
}

/// A Reorganization named `name` with `spec`.
pub fn act(name: &str, spec: serde_json::Value) -> Result<Reorganization, HarnessError> {
    serde_json::from_value(serde_json::json!({"apiVersion": "pdc.io/v1alpha1", "kind": "Reorganization", "metadata": {"name": name}, "spec": spec}))
        .map_err(|e| HarnessError::Other(e.to_string()))
}
