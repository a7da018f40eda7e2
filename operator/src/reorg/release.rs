//! The Release step, after the retention period: what a retired unit still holds
//! is given back. Its addresses are first held back from reuse for the act's
//! cool-down (each AddressAllocation labelled [`labels::HOLD_UNTIL`]; the claim
//! controller then leaves it when its claim goes, and no claim can be given it
//! while it exists), then its VMs (whose disks were archived), address claims,
//! volumes (archived too) and DNS records are deleted. The archive snapshots stay.
//! [`expire_holds`] deletes a hold once its day has passed, and the address can be
//! handed out again.

use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use pdc_api::{AddressAllocation, AddressClaim, Department, DnsRecord, Lifecycle, Reorganization, TenantVM, TenantVolume, labels};
use pdc_core::reorg::{Day, Plan};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::steps::Outcome;
use crate::error::{Error, Result, is_not_found};

/// The units this act retired.
async fn retired_by(client: &Client, act: &str) -> Result<Vec<String>> {
    let all = Api::<Department>::all(client.clone()).list(&ListParams::default()).await.map_err(|source| Error::Read { what: "Departments".into(), source })?;
    Ok(all
        .items
        .into_iter()
        .filter(|d| d.spec.lifecycle == Lifecycle::Retired && d.annotations().get(labels::REORGANIZATION).map(String::as_str) == Some(act))
        .map(|d| d.name_any())
        .collect())
}

/// Delete every `K` in `ns` (but the act's aliases); how many were still there.
async fn delete_all<K>(client: &Client, ns: &str, keep: impl Fn(&K) -> bool) -> Result<usize>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let items = api.list(&ListParams::default()).await.map_err(|source| Error::Read { what: format!("{kind}s in {ns}"), source })?.items;
    let mut left = 0;
    for o in items.iter().filter(|o| !keep(o)) {
        left += 1;
        if o.meta().deletion_timestamp.is_none() {
            match api.delete(&o.name_any(), &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(source) => return Err(Error::Apply { what: format!("deleting {kind} {ns}/{}", o.name_any()), source }),
            }
        }
    }
    Ok(left)
}

/// Hold every address of `ns`'s claims until `until`.
async fn hold(client: &Client, act: &str, ns: &str, until: &str) -> Result<usize> {
    hold_where(client, act, until, |a| a.spec.claim.namespace == ns).await
}

/// Label the allocations `which` picks (not held yet) as held by `act` until `until`;
/// how many were labelled.
async fn hold_where(client: &Client, act: &str, until: &str, which: impl Fn(&AddressAllocation) -> bool) -> Result<usize> {
    let api: Api<AddressAllocation> = Api::all(client.clone());
    let all = api.list(&ListParams::default()).await.map_err(|source| Error::Read { what: "AddressAllocations".into(), source })?;
    let mut n = 0;
    for a in all.items.iter().filter(|a| which(a) && !a.labels().contains_key(labels::HOLD_UNTIL)) {
        let patch = json!({"metadata": {"labels": {labels::HOLD_UNTIL: until, labels::REORGANIZATION: act}}});
        api.patch(&a.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| Error::Apply { what: format!("AddressAllocation {}", a.name_any()), source })?;
        n += 1;
    }
    Ok(n)
}

/// Hold the addresses of VM `vm` in `ns` (its NICs' claims) until `until`.
pub async fn hold_vm(client: &Client, act: &str, ns: &str, vm: &str, until: &str) -> Result<usize> {
    hold_where(client, act, until, |a| a.spec.claim.namespace == ns && crate::compute::build::vm_of_claim(&a.spec.claim.name) == Some(vm)).await
}

/// Hold the addresses of standalone claim `claim` in `ns` until `until`.
pub async fn hold_claim(client: &Client, act: &str, ns: &str, claim: &str, until: &str) -> Result<usize> {
    hold_where(client, act, until, |a| a.spec.claim.namespace == ns && a.spec.claim.name == claim).await
}

/// Give back what the retired units hold, their addresses held for the cool-down.
pub async fn run(client: &Client, act: &Reorganization, plan: &Plan) -> Result<Outcome> {
    let name = act.name_any();
    let until = plan.retention_ends.plus(u32::try_from(act.spec.cool_down_days).unwrap_or(0)).format();
    let (mut held, mut left) = (0, 0);
    for ns in retired_by(client, &name).await? {
        held += hold(client, &name, &ns, &until).await?;
        left += delete_all::<TenantVM>(client, &ns, |_| false).await?;
        left += delete_all::<AddressClaim>(client, &ns, |_| false).await?;
        left += delete_all::<TenantVolume>(client, &ns, |_| false).await?;
        left += delete_all::<DnsRecord>(client, &ns, |_| false).await?;
    }
    if left > 0 {
        return Ok(Outcome::Waiting(format!("{left} VMs, claims, volumes and records still going; {held} more addresses held until {until}")));
    }
    Ok(Outcome::Done(format!("released; addresses held back from reuse until {until}")))
}

/// Delete the act's holds whose day has come; how many went.
pub async fn expire_holds(client: &Client, act: &str, today: Day) -> Result<usize> {
    let api: Api<AddressAllocation> = Api::all(client.clone());
    let lp = ListParams::default().labels(&format!("{}={act},{}", labels::REORGANIZATION, labels::HOLD_UNTIL));
    let held = api.list(&lp).await.map_err(|source| Error::Read { what: format!("the addresses {act} holds"), source })?;
    let mut n = 0;
    for a in held.items {
        let due = a.labels().get(labels::HOLD_UNTIL).and_then(|d| Day::parse(d)).is_some_and(|d| d <= today);
        if due {
            match api.delete(&a.name_any(), &DeleteParams::default()).await {
                Ok(_) => n += 1,
                Err(e) if is_not_found(&e) => n += 1,
                Err(source) => return Err(Error::Apply { what: format!("deleting AddressAllocation {}", a.name_any()), source }),
            }
        }
    }
    Ok(n)
}
