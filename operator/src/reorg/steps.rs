//! The steps of an act that change Departments: each is idempotent (it writes what
//! the act says with server-side apply under its own field manager, so running it
//! again after a crash changes nothing already done) and reads what it needs from
//! the plan over the estate as it is now.

use std::collections::BTreeSet;

use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use pdc_api::estate::Objects;
use pdc_api::{Department, Reorganization};
use pdc_core::reorg::{Fate, Plan, Step};
use serde_json::json;

use crate::error::{Error, Result};

/// The field managers of what an act writes on Departments, one per kind of change:
/// a later `kubectl apply` of a Department's manifest does not take the lifecycle or
/// the codes back, and one step's apply does not drop the fields another step set
/// (server-side apply removes what a manager applied before and leaves out now).
const LIFECYCLE: &str = "pdc-reorganization-lifecycle";
const UNITS: &str = "pdc-reorganization-units";
const CODES: &str = "pdc-reorganization-codes";

/// The steps this version carries out. An act with work in any other step is not
/// started (see [`super::unavailable`]).
pub const IMPLEMENTED: [Step; 9] =
    [Step::Freeze, Step::CreateUnits, Step::MoveVms, Step::Archive, Step::Redeclare, Step::ReissueCodes, Step::Retire, Step::RemoveAliases, Step::Release];

/// What a step's run came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done, with what it did.
    Done(String),
    /// Started, waiting for the cluster (a VM to stop, a snapshot to be cut): run
    /// again shortly; the message says what it waits for.
    Waiting(String),
}

/// Server-side apply `spec` (and `annotations`) to Department `name` as `manager`.
async fn apply(client: &Client, manager: &str, name: &str, annotations: Option<serde_json::Value>, spec: serde_json::Value) -> Result<()> {
    let metadata = match annotations {
        Some(a) => json!({"name": name, "annotations": a}),
        None => json!({"name": name}),
    };
    let obj = json!({"apiVersion": "pdc.io/v1alpha1", "kind": "Department", "metadata": metadata, "spec": spec});
    Api::<Department>::all(client.clone())
        .patch(name, &PatchParams::apply(manager).force(), &Patch::Apply(&obj))
        .await
        .map(|_| ())
        .map_err(|source| Error::Apply { what: format!("Department {name}"), source })
}

/// Where a retiring unit went: its successor, the unit its lookups go to, or its
/// new slug.
fn successor(f: &Fate) -> Option<&str> {
    match f {
        Fate::Merged { into } => Some(into),
        Fate::Dissolved { lookups_go_to } => lookups_go_to.as_deref(),
        Fate::Renamed { new_name, .. } => new_name.as_deref(),
    }
}

/// Set the lifecycle of every unit the act ends, with its successor and the act's
/// name (the Department controller then freezes its namespace and makes its admins
/// viewers).
async fn set_lifecycle(client: &Client, act: &Reorganization, plan: &Plan, lifecycle: &str) -> Result<String> {
    let mut done = Vec::new();
    for u in plan.units.iter().filter(|u| u.retires()) {
        let mut spec = json!({"lifecycle": lifecycle});
        if let (Some(s), Some(m)) = (successor(&u.fate), spec.as_object_mut()) {
            m.insert("successor".into(), json!(s));
        }
        apply(client, LIFECYCLE, &u.unit, Some(json!({pdc_api::labels::REORGANIZATION: act.name_any()})), spec).await?;
        done.push(u.unit.clone());
    }
    Ok(format!("{lifecycle}: {}", done.join(", ")))
}

/// The Departments the act creates (a merge's new successor, with the merged units'
/// quotas, kind and people) and the display names it changes.
async fn create_units(client: &Client, plan: &Plan, departments: &[Department]) -> Result<String> {
    let mut made = Vec::new();
    for n in &plan.new_units {
        let from: Vec<&Department> = departments.iter().filter(|d| n.from.contains(&d.name_any())).collect();
        let people = |pick: fn(&Department) -> &pdc_api::Subjects| {
            let users: BTreeSet<&String> = from.iter().flat_map(|d| pick(d).users.iter()).collect();
            let groups: BTreeSet<&String> = from.iter().flat_map(|d| pick(d).groups.iter()).collect();
            json!({"users": users, "groups": groups})
        };
        let kind = from.first().map(|d| d.spec.kind);
        // The zones the merged units used, so the VMs that move keep their networks.
        let zones: BTreeSet<&String> = from.iter().flat_map(|d| d.spec.zones.iter()).collect();
        let spec = json!({
            "displayName": n.display_name, "code": n.code, "kind": kind, "zones": zones,
            "quota": quota(&n.quota), "admins": people(|d| &d.spec.admins), "viewers": people(|d| &d.spec.viewers),
        });
        apply(client, UNITS, &n.name, None, spec).await?;
        made.push(n.name.clone());
    }
    let mut renamed = Vec::new();
    for u in &plan.units {
        if let Fate::Renamed { display_name, new_name: None } = &u.fate {
            apply(client, UNITS, &u.unit, None, json!({"displayName": display_name})).await?;
            renamed.push(u.unit.clone());
        }
    }
    Ok(format!("created: {}; renamed: {}", list(&made), list(&renamed)))
}

fn list(v: &[String]) -> String {
    if v.is_empty() { "none".into() } else { v.join(", ") }
}

/// A charge as a Department's quota.
fn quota(c: &pdc_core::quota::Charge) -> serde_json::Value {
    let mebi = |b: u128| format!("{}Mi", b.div_ceil(1 << 20));
    json!({
        "vcpu": c.vcpu, "vms": c.vms, "memory": mebi(c.memory),
        "storage": c.storage.iter().map(|(t, b)| (t.clone(), json!(mebi(*b)))).collect::<serde_json::Map<_, _>>(),
    })
}

/// New codes on the Departments, the old ones kept in `previousCodes`.
async fn reissue_codes(client: &Client, plan: &Plan, departments: &[Department]) -> Result<String> {
    let mut done = Vec::new();
    for c in &plan.codes {
        let Some(d) = departments.iter().find(|d| d.name_any() == c.unit) else { continue };
        let mut previous = d.spec.previous_codes.clone();
        if !previous.contains(&c.old) {
            previous.push(c.old.clone());
        }
        apply(client, CODES, &c.unit, None, json!({"code": c.new, "previousCodes": previous})).await?;
        done.push(format!("{} {} → {}", c.unit, c.old, c.new));
    }
    Ok(list(&done))
}

/// Carry out `step` over the plan made from the estate as listed (`objects`).
pub async fn run(client: &Client, act: &Reorganization, plan: &Plan, objects: &Objects, step: Step) -> Result<Outcome> {
    let done = |r: Result<String>| r.map(Outcome::Done);
    match step {
        Step::Freeze => done(set_lifecycle(client, act, plan, "Retiring").await),
        Step::CreateUnits => done(create_units(client, plan, &objects.departments).await),
        Step::Archive => super::archive::run(client, &act.name_any(), plan, objects).await,
        Step::Redeclare => super::names::redeclare(client, act, plan, objects).await,
        Step::ReissueCodes => done(reissue_codes(client, plan, &objects.departments).await),
        Step::Retire => done(set_lifecycle(client, act, plan, "Retired").await),
        Step::RemoveAliases => super::names::remove_aliases(client, act).await,
        Step::Release => super::release::run(client, act, plan).await,
        Step::MoveVms => super::moves::run(client, act, plan, objects).await,
    }
}
