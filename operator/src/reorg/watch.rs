//! What monitoring sees of an act, set on every pass: when its current step should
//! be done, when its aliases go, the names it keeps answering that the zone does
//! not answer (the zone writer's Programmed condition says what the server holds),
//! archives kept past their retention date, and units still on reissued codes.
//! An act's gauges go when the act is deleted ([`forget_deleted`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::runtime::WatchStreamExt;

use kube::api::{DynamicObject, ListParams};
use kube::{Api, Client, ResourceExt};
use pdc_api::conditions;
use pdc_api::estate::Objects;
use pdc_api::{Reorganization, ReorganizationStatus, labels};
use pdc_core::reorg::{Day, Next, Plan, Step};

use crate::compute::build::snapshot_resource;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::metrics::Metrics;

const DAY: f64 = 86_400.0;

fn seconds(d: Day) -> f64 {
    // Days since 1970 are far below 2^53.
    #[allow(clippy::cast_precision_loss)]
    let s = d.0 as f64 * DAY;
    s
}

/// The records the act keeps answering (its aliases while not expired, and the
/// records it declared again) that are not programmed.
fn not_answering(act: &str, objects: &Objects) -> usize {
    objects
        .records
        .iter()
        .filter(|r| r.labels().get(labels::REORGANIZATION).map(String::as_str) == Some(act))
        .filter(|r| r.annotations().get(labels::ALIAS_EXPIRED).is_none_or(|v| v != "true"))
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        // A DNAME that answers name by name (its CNAMEs) for now is no name lost.
        .filter(|r| r.status.as_ref().and_then(|s| conditions::find(&s.conditions, "Programmed")).is_none_or(|c| c.status != "True" && c.reason != "NameByName"))
        .count()
}

/// Archive snapshots of the act past their retention date, in the units it froze
/// or retired (the plan leaves Retired units out, so they are found by the act's
/// annotation).
async fn archives_past(client: &Client, act: &str, objects: &Objects, today: Day) -> Result<usize> {
    let mut n = 0;
    let units = objects.departments.iter().filter(|d| d.annotations().get(labels::REORGANIZATION).map(String::as_str) == Some(act));
    for u in units {
        let ns = u.name_any();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &snapshot_resource());
        let lp = ListParams::default().labels(&format!("{}={act}", labels::REORGANIZATION));
        let snaps = api.list(&lp).await.map_err(|source| Error::Read { what: format!("the archives of {act} in {ns}"), source })?;
        n += snaps.items.iter().filter(|s| s.labels().get(labels::RETAIN_UNTIL).and_then(|d| Day::parse(d)).is_some_and(|d| d < today)).count();
    }
    Ok(n)
}

/// When the current step should be done: a dated step a day after its date, any
/// other an hour after it started (or now, when it has not).
fn step_deadline(st: &ReorganizationStatus, plan: &Plan, today: Day, now: f64) -> Option<(Step, f64)> {
    let done = st.steps.iter().filter(|s| s.state == "Done").filter_map(|s| Step::parse(&s.name)).collect();
    match pdc_core::reorg::next_step(&done, today, plan) {
        Next::Done => None,
        Next::WaitUntil(s, d) => Some((s, seconds(d) + DAY)),
        Next::Run(s) => {
            let started = st.steps.iter().find(|x| x.name == s.as_str()).and_then(|x| x.started.as_ref()).map(|t| t.0.as_second());
            #[allow(clippy::cast_precision_loss)]
            let from = started.map_or(now, |t| t as f64);
            let dated = matches!(s, Step::Retire | Step::RemoveAliases | Step::Release);
            Some((s, if dated { from.max(now) + DAY } else { from + 3600.0 }))
        }
    }
}

/// Set the act's gauges.
pub async fn observe(ctx: &Context, act: &Reorganization, plan: &Plan, st: &ReorganizationStatus, objects: &Objects, today: Day) -> Result<()> {
    let m = &ctx.metrics;
    let name = act.name_any();
    let applying = st.token.is_some();
    #[allow(clippy::cast_precision_loss)]
    let now = k8s_openapi::jiff::Timestamp::now().as_second() as f64;
    for s in pdc_core::reorg::STEPS {
        let _ = m.reorg_step_deadline.remove_label_values(&[&name, s.as_str()]);
    }
    if applying && let Some((s, t)) = step_deadline(st, plan, today, now) {
        m.reorg_step_deadline.with_label_values(&[&name, s.as_str()]).set(t);
    }
    let aliases_left = st.steps.iter().any(|s| s.name == Step::RemoveAliases.as_str() && s.state != "Done");
    // Its aliases from the API (the plan leaves Retired units, and their names, out).
    let has_aliases = objects.records.iter().any(|r| r.labels().get(labels::ALIAS).map(String::as_str) == Some(name.as_str()));
    if applying && aliases_left && has_aliases {
        m.reorg_alias_expiry.with_label_values(&[&name]).set(seconds(plan.transition_ends));
    } else {
        let _ = m.reorg_alias_expiry.remove_label_values(&[&name]);
    }
    #[allow(clippy::cast_precision_loss)]
    m.reorg_not_answering.with_label_values(&[&name]).set(not_answering(&name, objects) as f64);
    #[allow(clippy::cast_precision_loss)]
    m.reorg_archives_past_retention.with_label_values(&[&name]).set(archives_past(&ctx.client, &name, objects, today).await? as f64);
    #[allow(clippy::cast_precision_loss)]
    m.reorg_absorbed_codes.with_label_values(&[&name]).set(if applying { plan.codes.len() as f64 } else { 0.0 });
    match plan.codes.iter().map(|c| c.deadline).min() {
        Some(d) => m.reorg_code_deadline.with_label_values(&[&name]).set(seconds(d)),
        None => {
            let _ = m.reorg_code_deadline.remove_label_values(&[&name]);
        }
    }
    Ok(())
}

/// Remove every gauge of act `name`.
fn forget(m: &Metrics, name: &str) {
    for s in pdc_core::reorg::STEPS {
        let _ = m.reorg_step_deadline.remove_label_values(&[name, s.as_str()]);
    }
    for g in [&m.reorg_alias_expiry, &m.reorg_not_answering, &m.reorg_archives_past_retention, &m.reorg_absorbed_codes, &m.reorg_code_deadline] {
        let _ = g.remove_label_values(&[name]);
    }
}

/// Follow the acts and remove the gauges of each one deleted, also of those
/// deleted while the watch was broken (found at the re-list).
pub async fn forget_deleted(ctx: Arc<Context>) {
    let (mut known, mut relisted) = (BTreeSet::new(), BTreeSet::new());
    let metrics = ctx.metrics.clone();
    watcher(Api::<Reorganization>::all(ctx.client.clone()), watcher::Config::default().any_semantic())
        .default_backoff()
        .for_each(move |ev| {
            match ev {
                Ok(Event::Apply(a)) => {
                    known.insert(a.name_any());
                }
                Ok(Event::InitApply(a)) => {
                    relisted.insert(a.name_any());
                }
                Ok(Event::Delete(a)) => {
                    known.remove(&a.name_any());
                    forget(&metrics, &a.name_any());
                }
                Ok(Event::Init) => relisted.clear(),
                Ok(Event::InitDone) => {
                    let now = std::mem::take(&mut relisted);
                    for gone in known.difference(&now) {
                        forget(&metrics, gone);
                    }
                    known = now;
                }
                Err(e) => tracing::warn!(error = %e, "watching Reorganizations for deletions failed; retrying"),
            }
            futures::future::ready(())
        })
        .await;
}
