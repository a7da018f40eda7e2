//! What moves with a merged unit besides its VMs, in the MoveVMs step: its
//! TenantVolumes and standalone AddressClaims, each through stages read back from
//! the API server on every pass (a crash anywhere resumes where it was), the old
//! object removed only once the new one is ready:
//!
//! - a volume: its DataVolume snapshotted (`move.<act>.vol-<name>`), the volume
//!   declared at the successor with `pdc.io/moved-from` (the TenantVolume controller
//!   restores it from that snapshot across namespaces and charges the successor's
//!   quota), then once it is ready the old volume (its charge released with it) and
//!   the snapshot are deleted. A volume attached to a VM the act moves goes with
//!   the VM ([`super::moves`]), snapshotted while the VM is stopped;
//! - a claim: claimed again at the successor in the same zone (its subnets there),
//!   the old addresses recorded on it (`pdc.io/moved-addresses`) so the Redeclare
//!   step points the names that used them at the new ones; once it is bound the old
//!   addresses are held back for the cool-down and the old claim deleted.

use std::net::IpAddr;

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use pdc_api::estate::Objects;
use pdc_api::{AddressClaim, TenantVolume, labels};
use pdc_core::reorg::UnitPlan;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::compute::build::snapshot_resource;
use crate::compute::volume::dv_name;
use crate::error::{Error, Result, is_not_found};

const MOVES: &str = "pdc-reorganization-moves";

fn find<'a, K: ResourceExt>(items: &'a [K], ns: &str, name: &str) -> Option<&'a K> {
    items.iter().find(|o| o.namespace().as_deref() == Some(ns) && o.name_any() == name)
}

/// Whether a `Ready` condition is among `conds` and true.
fn ready(conds: Option<&[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]>) -> bool {
    conds.and_then(|c| pdc_api::conditions::find(c, "Ready")).is_some_and(|c| c.status == "True")
}

pub fn volume_ready(v: &TenantVolume) -> bool {
    ready(v.status.as_ref().map(|s| s.conditions.as_slice()))
}

fn claim_ready(c: &AddressClaim) -> bool {
    ready(c.status.as_ref().map(|s| s.conditions.as_slice()))
}

/// The name of the act's snapshot of volume `v` for its move.
pub fn volume_snapshot(act: &str, v: &TenantVolume) -> String {
    labels::move_snapshot(act, &dv_name(v))
}

/// Snapshot volume `v` (in its namespace) for the move; whether it is ready.
pub async fn snapshot_volume(client: &Client, act: &str, v: &TenantVolume) -> Result<bool> {
    let ns = v.namespace().unwrap_or_default();
    super::archive::snapshot_named(client, &ns, act, &volume_snapshot(act, v), &dv_name(v), None).await
}

/// Declare volume `v` at `to` with the same spec, restored from the move's snapshot.
pub async fn declare_volume(client: &Client, act: &str, to: &str, v: &TenantVolume) -> Result<()> {
    let from = v.namespace().unwrap_or_default();
    let obj = json!({"apiVersion": "pdc.io/v1alpha1", "kind": "TenantVolume",
        "metadata": {"name": v.name_any(), "labels": {labels::REORGANIZATION: act}, "annotations": {labels::MOVED_FROM: format!("{from}/{act}")}},
        "spec": v.spec});
    Api::<TenantVolume>::namespaced(client.clone(), to)
        .patch(&v.name_any(), &PatchParams::apply(MOVES).force().validation_strict(), &Patch::Apply(&obj))
        .await
        .map(|_| ())
        .map_err(|source| Error::Apply { what: format!("TenantVolume {to}/{}", v.name_any()), source })
}

/// Delete `name` of `K` in `ns` unless it is gone or going.
async fn delete<K>(api: &Api<K>, ns: &str, name: &str, what: &str) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(source) => Err(Error::Apply { what: format!("deleting {what} {ns}/{name}"), source }),
    }
}

/// The old volume and the move's snapshot of it, once the new one is ready.
pub async fn retire_volume(client: &Client, act: &str, v: &TenantVolume) -> Result<()> {
    let ns = v.namespace().unwrap_or_default();
    let snaps: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &snapshot_resource());
    delete(&snaps, &ns, &volume_snapshot(act, v), "VolumeSnapshot").await?;
    if v.metadata.deletion_timestamp.is_none() {
        delete(&Api::<TenantVolume>::namespaced(client.clone(), &ns), &ns, &v.name_any(), "TenantVolume").await?;
    }
    Ok(())
}

/// One volume's move as far as it goes now: `None` when done, else what it waits for.
async fn one_volume(client: &Client, act: &str, u: &UnitPlan, to: &str, vol: &str, objects: &Objects) -> Result<Option<String>> {
    let Some(old) = find(&objects.volumes, &u.unit, vol) else { return Ok(None) };
    // Attached to a VM that is moving: it goes with that VM.
    let with_vm = old.spec.vm.as_deref().is_some_and(|vm| u.vms_moved.iter().any(|m| m.vm == vm) && find(&objects.vms, &u.unit, vm).is_some());
    if with_vm {
        return Ok(None);
    }
    let Some(new) = find(&objects.volumes, to, vol) else {
        if !snapshot_volume(client, act, old).await? {
            return Ok(Some("snapshotting it".into()));
        }
        declare_volume(client, act, to, old).await?;
        return Ok(Some("declared at the successor".into()));
    };
    if !volume_ready(new) {
        return Ok(Some("restoring it at the successor".into()));
    }
    retire_volume(client, act, old).await?;
    Ok(Some("removing the old volume".into()))
}

/// The old claim's addresses, `<ipv4>,<ipv6>` (either may be empty).
fn addresses(c: &AddressClaim) -> String {
    let st = c.status.as_ref();
    let a = |x: Option<&pdc_api::ClaimedAddress>| x.map(|x| x.address.clone()).unwrap_or_default();
    format!("{},{}", a(st.and_then(|s| s.ipv4.as_ref())), a(st.and_then(|s| s.ipv6.as_ref())))
}

/// Claim `c` again at `to`: same zone, site, families and host name; addresses from
/// the successor's subnets (a fixed address of the old unit's subnet cannot be kept).
async fn declare_claim(client: &Client, act: &str, to: &str, c: &AddressClaim) -> Result<()> {
    let from = c.namespace().unwrap_or_default();
    let spec = pdc_api::AddressClaimSpec { ipv4_address: None, ipv6_address: None, ..c.spec.clone() };
    let obj = json!({"apiVersion": "pdc.io/v1alpha1", "kind": "AddressClaim",
        "metadata": {"name": c.name_any(), "labels": {labels::REORGANIZATION: act},
                     "annotations": {labels::MOVED_FROM: format!("{from}/{act}"), labels::MOVED_ADDRESSES: addresses(c)}},
        "spec": spec});
    Api::<AddressClaim>::namespaced(client.clone(), to)
        .patch(&c.name_any(), &PatchParams::apply(MOVES).force().validation_strict(), &Patch::Apply(&obj))
        .await
        .map(|_| ())
        .map_err(|source| Error::Apply { what: format!("AddressClaim {to}/{}", c.name_any()), source })
}

/// One claim's move as far as it goes now: `None` when done, else what it waits for.
async fn one_claim(client: &Client, act: &str, u: &UnitPlan, to: &str, claim: &str, objects: &Objects, reusable_from: &str) -> Result<Option<String>> {
    let Some(old) = find(&objects.claims, &u.unit, claim) else { return Ok(None) };
    let Some(new) = find(&objects.claims, to, claim) else {
        declare_claim(client, act, to, old).await?;
        return Ok(Some("claimed at the successor".into()));
    };
    if !claim_ready(new) {
        return Ok(Some("waiting for its addresses at the successor".into()));
    }
    super::release::hold_claim(client, act, &u.unit, claim, reusable_from).await?;
    if old.metadata.deletion_timestamp.is_none() {
        delete(&Api::<AddressClaim>::namespaced(client.clone(), &u.unit), &u.unit, claim, "AddressClaim").await?;
    }
    Ok(Some("removing the old claim".into()))
}

/// Move unit `u`'s volumes and standalone claims to `to`; what each still waits for.
pub async fn run(client: &Client, act: &str, u: &UnitPlan, to: &str, objects: &Objects, reusable_from: &str) -> Result<Vec<String>> {
    let mut waiting = Vec::new();
    for vol in &u.volumes_moved {
        if let Some(why) = one_volume(client, act, u, to, vol, objects).await? {
            waiting.push(format!("{}/{vol} (volume): {why}", u.unit));
        }
    }
    for claim in &u.claims_moved {
        if let Some(why) = one_claim(client, act, u, to, claim, objects, reusable_from).await? {
            waiting.push(format!("{}/{claim} (claim): {why}", u.unit));
        }
    }
    Ok(waiting)
}

/// Old address → new, from the claims the act made at `ns` (each with the old
/// claim's addresses), family by family.
pub fn moved_addresses(act: &str, ns: &str, claims: &[AddressClaim]) -> Vec<(String, String)> {
    let mut map = Vec::new();
    let ours = claims.iter().filter(|c| c.namespace().as_deref() == Some(ns) && c.labels().get(labels::REORGANIZATION).map(String::as_str) == Some(act));
    for c in ours {
        let (Some(old), Some(st)) = (c.annotations().get(labels::MOVED_ADDRESSES), c.status.as_ref()) else { continue };
        for o in old.split(',').filter_map(|a| a.parse::<IpAddr>().ok()) {
            let new = if o.is_ipv4() { st.ipv4.as_ref() } else { st.ipv6.as_ref() };
            if let Some(n) = new {
                map.push((o.to_string(), n.address.clone()));
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn claim(ns: &str, act: Option<&str>, old: Option<&str>, v4: &str, v6: &str) -> AddressClaim {
        serde_json::from_value(json!({
            "apiVersion": "pdc.io/v1alpha1", "kind": "AddressClaim",
            "metadata": {"name": "camera", "namespace": ns, "labels": act.map(|a| json!({labels::REORGANIZATION: a})).unwrap_or(json!({})),
                         "annotations": old.map(|o| json!({labels::MOVED_ADDRESSES: o})).unwrap_or(json!({}))},
            "spec": {"zone": "app"},
            "status": {"ipv4": {"address": v4, "prefixLength": 24, "gateway": "10.15.2.1", "subnet": "10.15.2.0/24"},
                       "ipv6": {"address": v6, "prefixLength": 64, "gateway": "2001:db8:1500:2::1", "subnet": "2001:db8:1500:2::/64"}}
        }))
        .unwrap()
    }

    #[test]
    fn moved_addresses_map_old_to_new_family_by_family_for_the_acts_claims_only() {
        let claims = [
            claim("xa-moi", Some("nq"), Some("10.15.1.9,2001:db8:1500:1::9"), "10.15.2.5", "2001:db8:1500:2::5"),
            // Another act's, another namespace's, and a claim no act moved.
            claim("xa-moi", Some("khac"), Some("10.15.1.7,"), "10.15.2.6", "2001:db8:1500:2::6"),
            claim("xa-khac", Some("nq"), Some("10.15.1.8,"), "10.15.3.5", "2001:db8:1500:3::5"),
            claim("xa-moi", None, None, "10.15.2.7", "2001:db8:1500:2::7"),
        ];
        assert_eq!(
            moved_addresses("nq", "xa-moi", &claims),
            [("10.15.1.9".to_string(), "10.15.2.5".to_string()), ("2001:db8:1500:1::9".to_string(), "2001:db8:1500:2::5".to_string())]
        );
        // An old claim that had no address yet maps nothing.
        assert!(moved_addresses("nq", "xa-moi", &[claim("xa-moi", Some("nq"), Some(","), "10.15.2.5", "2001:db8:1500:2::5")]).is_empty());
    }
}
