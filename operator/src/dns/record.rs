//! The DnsRecord controller: checks a record (a name inside the department's
//! subdomain, values of its type, a DnsZone that holds it) and, while it is valid,
//! holds it with a finalizer so the zone writer can remove its set when it goes.
//! What it refuses gets `Programmed=False` with a message the department can act on.
//! Writing to DNS is the zone writer's job ([`super::writer`]).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::jiff::Timestamp;
use kube::api::Patch;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, predicates, watcher};
use kube::{Api, Client, ResourceExt};
use pdc_api::conditions::{self, Cond};
use pdc_api::labels as l;
use pdc_api::{DnsRecord, DnsRecordStatus, DnsZone, ZoneKind};
use tracing::info;

use super::{has_finalizer, subdomain_of, zone_for};
use crate::context::Context;
use crate::error::{Error, Result};

const CONTROLLER: &str = "dnsrecord";
pub const PROGRAMMED: &str = "Programmed";

pub struct RecordContext {
    pub base: Arc<Context>,
    pub namespaces: Store<Namespace>,
    pub zones: Store<DnsZone>,
}

/// Why a record cannot be written: a condition reason and a message.
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

/// The zone (by object name) that will hold `rec`, or why none will.
pub fn check(rec: &DnsRecord, namespaces: &Store<Namespace>, zones: &Store<DnsZone>) -> std::result::Result<String, Refusal> {
    let ns = rec.namespace().unwrap_or_default();
    let Some(sub) = subdomain_of(namespaces, &ns) else {
        return Err(Refusal { reason: "NotADepartment", message: format!("namespace {ns} is not a department's (it has no {} annotation)", l::SUBDOMAIN) });
    };
    let set = rec.rrset(&sub, 300).map_err(|message| Refusal { reason: "Invalid", message })?;
    match zone_for(&set.name, ZoneKind::Forward, &zones.state()) {
        Some(z) => Ok(z.name_any()),
        None => Err(Refusal {
            reason: "NoZone",
            message: format!("no DnsZone holds {}; the province's DNS administrators must create one for its domain", set.name),
        }),
    }
}

/// The record controller over the one cache of DnsRecords the operator keeps, and
/// the changes of that cache that the zone writers need to see (spec, finalizers,
/// deletion). One watch feeds both: the writers plan from the controller's store.
pub fn controller(client: Client, concurrency: u16) -> (Controller<DnsRecord>, impl futures::Stream<Item = std::result::Result<DnsRecord, watcher::Error>> + Send + 'static) {
    let (reader, changes) = crate::cache::watch::<DnsRecord>(client);
    // The writers only need to know that something changed: when their queue is full,
    // a wake-up already waits there, and it will find this change in the store.
    let (mut tx, rx) = futures::channel::mpsc::channel::<DnsRecord>(WRITER_WAKEUPS);
    let stream = changes.inspect(move |r| {
        if let Ok(r) = r {
            let _ = tx.try_send(r.clone());
        }
    });
    let config = kube::runtime::controller::Config::default().concurrency(concurrency);
    (Controller::for_stream(stream, reader).with_config(config), rx.map(Ok))
}

/// Record changes waiting for the zone writers at most.
const WRITER_WAKEUPS: usize = 1024;

/// Merge-patch `rec`'s status with `cond` (and the other fields as they are) when it differs.
pub async fn set_condition(client: &Client, rec: &DnsRecord, cond: Cond, f: impl FnOnce(&mut DnsRecordStatus)) -> Result<bool> {
    let old = rec.status.clone().unwrap_or_default();
    let mut new = old.clone();
    new.conditions = conditions::merge(&old.conditions, &[cond], rec.metadata.generation, Timestamp::now());
    new.observed_generation = rec.metadata.generation;
    f(&mut new);
    if new == old {
        return Ok(false);
    }
    let api: Api<DnsRecord> = Api::namespaced(client.clone(), &rec.namespace().unwrap_or_default());
    crate::apply::patch_status(&api, &rec.name_any(), &new).await?;
    Ok(true)
}

/// Add or remove pdc's finalizer with a JSON patch guarded by a test, so a
/// concurrent change to the list fails the patch instead of being overwritten.
pub async fn set_finalizer(client: &Client, rec: &DnsRecord, present: bool) -> Result<()> {
    let api: Api<DnsRecord> = Api::namespaced(client.clone(), &rec.namespace().unwrap_or_default());
    let fins = rec.finalizers();
    let ops = match (present, fins.iter().position(|f| f == l::DNS_RECORD_FINALIZER)) {
        (true, Some(_)) | (false, None) => return Ok(()),
        (true, None) if fins.is_empty() => serde_json::json!([
            { "op": "test", "path": "/metadata/resourceVersion", "value": rec.resource_version() },
            { "op": "add", "path": "/metadata/finalizers", "value": [l::DNS_RECORD_FINALIZER] },
        ]),
        (true, None) => serde_json::json!([{ "op": "add", "path": "/metadata/finalizers/-", "value": l::DNS_RECORD_FINALIZER }]),
        (false, Some(i)) => serde_json::json!([
            { "op": "test", "path": format!("/metadata/finalizers/{i}"), "value": l::DNS_RECORD_FINALIZER },
            { "op": "remove", "path": format!("/metadata/finalizers/{i}") },
        ]),
    };
    let patch: json_patch::Patch = serde_json::from_value(ops).map_err(|e| Error::Invalid(format!("finalizer patch: {e}")))?;
    match api.patch(&rec.name_any(), &crate::apply::strict(), &Patch::Json::<()>(patch)).await {
        Ok(_) => Ok(()),
        Err(e) if crate::error::is_not_found(&e) => Ok(()),
        Err(source) => Err(Error::Apply { what: format!("the finalizer of DnsRecord {}", rec.name_any()), source }),
    }
}

async fn reconcile(rec: Arc<DnsRecord>, ctx: Arc<RecordContext>) -> Result<Action> {
    let timer = ctx.base.metrics.reconcile_started(CONTROLLER);
    let res = reconcile_inner(&rec, &ctx).await;
    timer.finish(res.is_ok());
    res
}

async fn reconcile_inner(rec: &DnsRecord, ctx: &RecordContext) -> Result<Action> {
    // Unfilled caches would read as "not a department" or "in no zone pdc holds"
    // (and a deleted record would then lose its finalizer with its set still served).
    if !(crate::cache::synced(&ctx.namespaces) && crate::cache::synced(&ctx.zones)) {
        return Ok(Action::requeue(std::time::Duration::from_secs(1)));
    }
    let verdict = check(rec, &ctx.namespaces, &ctx.zones);
    if rec.metadata.deletion_timestamp.is_some() {
        // A record that was never programmed and that no zone will hold has no set
        // to remove; nor has one whose programmed set is in no zone pdc still
        // writes to (its DnsZone was deleted). Every other one is the zone writer's
        // to release once its set is gone.
        let orphaned = match rec.programmed_key() {
            None => verdict.is_err(),
            Some((fqdn, _)) => zone_for(&fqdn, ZoneKind::Forward, &ctx.zones.state()).is_none(),
        };
        if has_finalizer(rec) && orphaned {
            set_finalizer(&ctx.base.client, rec, false).await?;
        }
        return Ok(Action::await_change());
    }
    match verdict {
        Err(r) => {
            let changed = set_condition(&ctx.base.client, rec, Cond::new(PROGRAMMED, false, r.reason, r.message.clone()), |_| {}).await?;
            if changed {
                info!(record = %rec.name_any(), namespace = %rec.namespace().unwrap_or_default(), reason = r.reason, "DnsRecord refused");
                ctx.base.event(rec, true, r.reason, &r.message).await;
            }
            // A namespace or zone may appear later.
            Ok(Action::requeue(Duration::from_secs(60)))
        }
        Ok(_) => {
            set_finalizer(&ctx.base.client, rec, true).await?;
            Ok(Action::await_change())
        }
    }
}

fn error_policy(rec: Arc<DnsRecord>, err: &Error, ctx: Arc<RecordContext>) -> Action {
    ctx.base.failed(CONTROLLER, rec.as_ref(), err, Duration::from_secs(5))
}

/// Run the controller; a new or changed DnsZone looks again at the records no zone held.
pub async fn run(ctx: Arc<RecordContext>, controller: Controller<DnsRecord>) {
    let client = ctx.base.client.clone();
    let records = controller.store();
    let zone_changes = watcher(Api::<DnsZone>::all(client), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    controller
        .watches_stream(zone_changes, move |_z: DnsZone| {
            records
                .state()
                .iter()
                .filter(|r| r.status.as_ref().and_then(|s| conditions::find(&s.conditions, PROGRAMMED)).is_some_and(|c| c.reason == "NoZone"))
                .map(|r| ObjectRef::from_obj(r.as_ref()))
                .collect::<Vec<_>>()
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}
