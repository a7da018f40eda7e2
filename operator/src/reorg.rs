//! The Reorganization controller: plans each act over the estate as the API server
//! has it (the planner `pdcctl reorg plan` runs too) and reports the plan in the
//! act's status: `Planned` true with a summary, or false with every refusal, and the
//! steps the act is carried out in. It plans again when the act changes and every
//! five minutes, since the estate moves under it. Carrying an act out (its steps)
//! is not part of this version: an `Apply` gets `Applied=False` and changes nothing.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, ResourceExt};
use pdc_api::conditions::{self, Cond};
use pdc_api::estate::{self, Objects};
use pdc_api::{AddressClaim, Department, DnsRecord, Province, ReorgAction, ReorgStepStatus, Reorganization, ReorganizationStatus, TenantVM, TenantVolume};
use pdc_core::reorg::{self, Plan};
use tracing::instrument;

use crate::apply;
use crate::context::Context;
use crate::error::{Error, Result};

const CONTROLLER: &str = "reorganization";
pub const PLANNED: &str = "Planned";
pub const APPLIED: &str = "Applied";

/// Every object the planner reads, listed from the API server.
async fn objects(client: &Client) -> Result<(Objects, Option<String>)> {
    let lp = ListParams::default();
    let read = |what: &str| {
        let what = what.to_string();
        move |source| Error::Read { what, source }
    };
    let domain = Api::<Province>::all(client.clone()).list(&lp).await.map_err(read("Provinces"))?.items.into_iter().next().map(|p| p.spec.domain);
    let o = Objects {
        departments: Api::<Department>::all(client.clone()).list(&lp).await.map_err(read("Departments"))?.items,
        vms: Api::<TenantVM>::all(client.clone()).list(&lp).await.map_err(read("TenantVMs"))?.items,
        volumes: Api::<TenantVolume>::all(client.clone()).list(&lp).await.map_err(read("TenantVolumes"))?.items,
        claims: Api::<AddressClaim>::all(client.clone()).list(&lp).await.map_err(read("AddressClaims"))?.items,
        records: Api::<DnsRecord>::all(client.clone()).list(&lp).await.map_err(read("DnsRecords"))?.items,
    };
    Ok((o, domain))
}

/// The status a plan comes down to, keeping the steps already recorded.
pub fn status(act: &Reorganization, plan: &Plan, old: &ReorganizationStatus, now: Timestamp) -> ReorganizationStatus {
    let ok = plan.refusals.is_empty();
    let cond = if ok {
        let s = plan.summary();
        let n = |k: &str| s.get(k).copied().unwrap_or(0);
        Cond::new(PLANNED, true, "PlanHolds", format!("{} units, {} VMs moved, {} halted, {} aliases, {} codes", n("units"), n("vmsMoved"), n("vmsHalted"), n("aliases"), n("codes")))
    } else {
        Cond::new(PLANNED, false, "Refused", plan.refusals.join("; "))
    };
    let state = if act.spec.dry_run { "Planned" } else { "Pending" };
    let steps = reorg::STEPS
        .iter()
        .map(|s| {
            old.steps.iter().find(|o| o.name == s.as_str()).cloned().unwrap_or_else(|| ReorgStepStatus { name: s.as_str().into(), state: state.into(), ..Default::default() })
        })
        .collect();
    // This version plans acts and does not carry them out: an Apply is answered with a
    // condition saying so, and the steps stay Pending (nothing is half-applied).
    let mut conds = vec![cond];
    if act.spec.action == ReorgAction::Apply && !act.spec.dry_run {
        conds.push(Cond::new(APPLIED, false, "NotAvailable", "this pdc version plans acts but does not carry them out yet: nothing was changed; carry out the plan by hand or wait for a version that applies acts"));
    }
    let phase = if ok { "Planned" } else { "Refused" };
    ReorganizationStatus {
        observed_generation: act.metadata.generation,
        conditions: conditions::merge(&old.conditions, &conds, act.metadata.generation, now),
        phase: Some(phase.into()),
        current_step: old.current_step.clone(),
        token: old.token.clone(),
        steps,
        summary: plan.summary().into_iter().map(|(k, v)| (k.to_string(), i64::try_from(v).unwrap_or(i64::MAX))).collect(),
        refusals: plan.refusals.clone(),
    }
}

#[instrument(skip_all, fields(reorganization = %act.name_any()))]
async fn reconcile(act: Arc<Reorganization>, ctx: Arc<Context>) -> Result<Action> {
    let timer = ctx.metrics.reconcile_started(CONTROLLER);
    let res = reconcile_inner(&act, &ctx).await;
    timer.finish(res.is_ok());
    res
}

async fn reconcile_inner(act: &Reorganization, ctx: &Context) -> Result<Action> {
    let (objects, domain) = objects(&ctx.client).await?;
    let plan = reorg::plan(&estate::act(&act.spec), &estate::estate(&objects, domain.as_deref().unwrap_or_default()));
    let old = act.status.clone().unwrap_or_default();
    let new = status(act, &plan, &old, Timestamp::now());
    if new != old {
        apply::patch_status(&Api::<Reorganization>::all(ctx.client.clone()), &act.name_any(), &new).await?;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn error_policy(act: Arc<Reorganization>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.failed(CONTROLLER, act.as_ref(), err, Duration::from_secs(10))
}

/// Run the Reorganization controller.
pub async fn run(ctx: Arc<Context>) {
    Controller::new(Api::<Reorganization>::all(ctx.client.clone()), watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}
