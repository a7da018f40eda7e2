//! Old names keep answering: the Redeclare step declares a merged (or renamed to a
//! new slug) unit's own records again under its successor's subdomain and makes an
//! alias DnsRecord (a CNAME, labelled [`labels::ALIAS`]) for every old name, and a
//! DNAME for a subdomain whose every name moves; the zone writer puts the alias in
//! place of the old records in one update once its target answers (the DNAME in
//! place of the CNAMEs below it once they all answer and every set below is pdc's). The RemoveAliases step marks them expired after the transition:
//! the names are reclaimed and no longer answer.

use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use pdc_api::estate::Objects;
use pdc_api::labels;
use pdc_api::{DnsRecord, Reorganization};
use pdc_core::reorg::{Alias, Plan};
use serde_json::json;

use super::steps::Outcome;
use crate::error::{Error, Result};

/// The field manager of the records an act declares.
const NAMES: &str = "pdc-reorganization-names";

/// Server-side apply a DnsRecord `name` in `ns` as the act's names manager.
async fn apply_record(client: &Client, ns: &str, name: &str, obj: &serde_json::Value) -> Result<()> {
    Api::<DnsRecord>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::apply(NAMES).force().validation_strict(), &Patch::Apply(obj))
        .await
        .map(|_| ())
        .map_err(|source| Error::Apply { what: format!("DnsRecord {ns}/{name}"), source })
}

/// The Department (namespace) whose subdomain holds `fqdn`: the longest match.
fn owner_of<'a>(fqdn: &str, objects: &'a Objects) -> Option<&'a str> {
    objects
        .departments
        .iter()
        .filter_map(|d| Some((d.metadata.name.as_deref()?, d.status.as_ref()?.subdomain.as_deref()?)))
        .filter(|(_, sub)| fqdn == *sub || fqdn.ends_with(&format!(".{sub}")))
        .max_by_key(|(_, sub)| sub.len())
        .map(|(n, _)| n)
}

/// A Kubernetes object name for `fqdn` (a DNS name is one, up to 253 characters).
pub fn object_name(prefix: &str, fqdn: &str) -> String {
    let mut n = format!("{prefix}.{fqdn}");
    n.truncate(253);
    n.trim_end_matches(['.', '-']).to_string()
}

/// The object name of the alias DnsRecord for `a` (a CNAME and a DNAME may share
/// an old name, the apex).
fn alias_name(a: &Alias) -> String {
    object_name(if a.kind == "DNAME" { "dname" } else { "alias" }, &a.from)
}

/// The alias DnsRecord for `a` (RemoveAliases marks it expired later).
fn alias_record(act: &str, a: &Alias) -> serde_json::Value {
    let annotations = json!({labels::ALIAS_UNTIL: a.until.format()});
    json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "DnsRecord",
        "metadata": {"name": alias_name(a), "labels": {labels::ALIAS: act, labels::REORGANIZATION: act}, "annotations": annotations},
        "spec": {"name": format!("{}.", a.from), "type": a.kind, "values": [format!("{}.", a.to)]},
    })
}

/// Declare the alias `a` in `ns` (the namespace whose subdomain holds its old name).
pub async fn declare_alias(client: &Client, act: &str, ns: &str, a: &Alias) -> Result<()> {
    apply_record(client, ns, &alias_name(a), &alias_record(act, a)).await
}

/// Declare the merged units' own records under the successors' subdomains (same
/// type and TTL; the same values, but for the addresses of a standalone claim the
/// act claimed again at the successor, which become the new claim's), and the
/// aliases of every old name.
pub async fn redeclare(client: &Client, act: &Reorganization, plan: &Plan, objects: &Objects) -> Result<Outcome> {
    let name = act.name_any();
    let mut copies = 0;
    for u in &plan.units {
        let Some(succ) = successor_ns(&u.fate) else { continue };
        let moved = super::carry::moved_addresses(&name, succ, &objects.claims);
        let follow = |v: &String| moved.iter().find(|(o, _)| o == v).map_or_else(|| v.clone(), |(_, n)| n.clone());
        for (old, new) in &u.records_redeclared {
            let sources = objects.records.iter().filter(|r| {
                r.namespace().as_deref() == Some(u.unit.as_str())
                    && !r.labels().contains_key(labels::ALIAS)
                    && r.owner_references().is_empty()
                    && r.status.as_ref().and_then(|s| s.fqdn.as_deref()).is_some_and(|f| f.trim_end_matches('.') == old)
            });
            for r in sources {
                let spec = pdc_api::DnsRecordSpec { name: format!("{new}."), values: r.spec.values.iter().map(follow).collect(), ..r.spec.clone() };
                let obj = json!({
                    "apiVersion": "pdc.io/v1alpha1", "kind": "DnsRecord",
                    "metadata": {"name": object_name(&u.unit, &r.name_any()), "labels": {labels::REORGANIZATION: &name}},
                    "spec": spec,
                });
                apply_record(client, succ, &object_name(&u.unit, &r.name_any()), &obj).await?;
                copies += 1;
            }
        }
    }
    let mut made = 0;
    for a in &plan.aliases {
        let Some(ns) = owner_of(&a.from, objects) else {
            return Err(Error::Invalid(format!("no Department's subdomain holds {}: the alias has nowhere to live", a.from)));
        };
        apply_record(client, ns, &alias_name(a), &alias_record(&name, a)).await?;
        made += 1;
    }
    Ok(Outcome::Done(format!("{copies} records declared under the successors; {made} aliases")))
}

/// Where a merged or moved unit's records, VMs, volumes and claims go: its
/// successor's namespace, or its new slug's.
pub fn successor_ns(f: &pdc_core::reorg::Fate) -> Option<&str> {
    match f {
        pdc_core::reorg::Fate::Merged { into } => Some(into),
        pdc_core::reorg::Fate::Renamed { new_name: Some(n), .. } => Some(n),
        _ => None,
    }
}

/// The act's aliases, from the API server (not the plan: by now the units are
/// Retired and the plan leaves them out).
async fn aliases_of(client: &Client, act: &str) -> Result<Vec<DnsRecord>> {
    Api::<DnsRecord>::all(client.clone())
        .list(&ListParams::default().labels(&format!("{}={act}", labels::ALIAS)))
        .await
        .map(|l| l.items)
        .map_err(|source| Error::Read { what: format!("the aliases of {act}"), source })
}

/// Mark every alias of the act expired: the zone writer removes them and the records
/// they replaced, and the names no longer answer.
pub async fn remove_aliases(client: &Client, act: &Reorganization) -> Result<Outcome> {
    let name = act.name_any();
    let mut n = 0;
    for r in aliases_of(client, &name).await? {
        if r.annotations().get(labels::ALIAS_EXPIRED).is_some_and(|v| v == "true") {
            continue;
        }
        let ns = r.namespace().unwrap_or_default();
        let patch = json!({"metadata": {"annotations": {labels::ALIAS_EXPIRED: "true"}}});
        Api::<DnsRecord>::namespaced(client.clone(), &ns)
            .patch(&r.name_any(), &PatchParams::apply(NAMES).force().validation_strict(), &Patch::Apply(&with_identity(&r, patch)))
            .await
            .map_err(|source| Error::Apply { what: format!("DnsRecord {ns}/{}", r.name_any()), source })?;
        n += 1;
    }
    Ok(Outcome::Done(format!("{n} aliases expired; their names are reclaimed")))
}

/// `patch` with the record's whole declaration (server-side apply drops what the
/// manager applied before and leaves out now).
fn with_identity(r: &DnsRecord, patch: serde_json::Value) -> serde_json::Value {
    let mut annotations = r.annotations().clone();
    if let Some(a) = patch.pointer("/metadata/annotations").and_then(|a| a.as_object()) {
        for (k, v) in a {
            annotations.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
        }
    }
    json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "DnsRecord",
        "metadata": {"name": r.name_any(), "labels": r.labels(), "annotations": annotations},
        "spec": r.spec,
    })
}
