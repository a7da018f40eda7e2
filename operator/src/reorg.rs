//! The Reorganization controller: plans each act over the estate as the API server
//! has it (the planner `pdcctl reorg plan` runs too) and reports the plan in the
//! act's status: `Planned` true with a summary, or false with every refusal, and the
//! steps the act is carried out in. It plans again when the act changes and every
//! five minutes, since the estate moves under it.
//!
//! `action: Apply` carries the act out as resumable steps: the first unfinished
//! step (pdc-core's `next_step`, which also holds steps until their dates) runs,
//! and its start and end are written to the status before and after, so an
//! operator that crashes anywhere resumes at that step, which is idempotent. An act
//! is not started while its plan is refused, or while it has work in a step this
//! version does not carry out ([`steps::IMPLEMENTED`]): nothing is half-applied.

mod archive;
mod carry;
mod moves;
mod names;
mod release;
mod steps;
mod watch;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use pdc_api::conditions::{self, Cond};
use pdc_api::estate::{self, Objects};
use pdc_api::{AddressClaim, Department, DnsRecord, Province, ReorgAction, ReorgStepStatus, Reorganization, ReorganizationStatus, TenantVM, TenantVolume};
use pdc_core::reorg::{self, Day, Next, Plan, Step};
use tracing::instrument;

use crate::apply;
use crate::context::Context;
use crate::error::{Error, Result};

const CONTROLLER: &str = "reorganization";
pub const PLANNED: &str = "Planned";
pub const APPLIED: &str = "Applied";

/// The caches the controller plans from: the operator's own (the controllers of
/// these kinds fill them), so a pass reads no list from the API server.
#[derive(Clone)]
pub struct Caches {
    pub provinces: Store<Province>,
    pub departments: Store<Department>,
    pub vms: Store<TenantVM>,
    pub volumes: Store<TenantVolume>,
    pub claims: Store<AddressClaim>,
    pub records: Store<DnsRecord>,
}

/// Every object the planner reads, from the caches; `None` until each holds its
/// first full list (an empty cache is not an empty estate).
fn objects(c: &Caches) -> Option<(Objects, Option<String>)> {
    use crate::cache::synced;
    let all = synced(&c.provinces) && synced(&c.departments) && synced(&c.vms) && synced(&c.volumes) && synced(&c.claims) && synced(&c.records);
    if !all {
        return None;
    }
    use crate::cache::cloned;
    let domain = c.provinces.state().first().map(|p| p.spec.domain.clone());
    let o = Objects { departments: cloned(&c.departments), vms: cloned(&c.vms), volumes: cloned(&c.volumes), claims: cloned(&c.claims), records: cloned(&c.records) };
    Some((o, domain))
}

/// The status a plan comes down to, keeping the steps already recorded.
pub fn status(act: &Reorganization, plan: &Plan, old: &ReorganizationStatus, now: Timestamp) -> ReorganizationStatus {
    let ok = plan.refusals.is_empty();
    // Once started, the estate changes under the act (its new units exist, its
    // objects have moved), so a plan made now refuses what the act itself did: the
    // plan it was started with stays on record.
    let started = old.token.is_some();
    let kept = conditions::find(&old.conditions, PLANNED).filter(|_| started);
    let cond = if let Some(c) = kept {
        let holds = c.status == "True";
        Cond::new(PLANNED, holds, if holds { "PlanHolds" } else { "Refused" }, c.message.clone())
    } else if ok {
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
    let phase = match &old.phase {
        Some(p) if old.token.is_some() => p.clone(),
        _ if ok => "Planned".into(),
        _ => "Refused".into(),
    };
    ReorganizationStatus {
        observed_generation: act.metadata.generation,
        conditions: conditions::merge(&old.conditions, &[cond], act.metadata.generation, now),
        phase: Some(phase),
        current_step: old.current_step.clone(),
        token: old.token.clone(),
        steps,
        summary: if started { old.summary.clone() } else { plan.summary().into_iter().map(|(k, v)| (k.to_string(), i64::try_from(v).unwrap_or(i64::MAX))).collect() },
        refusals: if started { old.refusals.clone() } else { plan.refusals.clone() },
    }
}

/// Steps with work in `plan` that this version does not carry out.
pub fn unavailable(plan: &Plan) -> Vec<Step> {
    reorg::STEPS.into_iter().filter(|s| plan.has_work(*s) && !steps::IMPLEMENTED.contains(s)).collect()
}

/// Whether an Apply may start; when it may not, `Applied=False` says why.
fn may_start(plan: &Plan, st: &mut ReorganizationStatus, generation: Option<i64>, now: Timestamp) -> bool {
    let why = if !plan.refusals.is_empty() {
        Some(("Refused", "the plan is refused (see Planned and refusals): nothing was changed; the act starts by itself once its plan holds (change the act or the estate), unless spec.action is set back to None".to_string()))
    } else {
        let missing = unavailable(plan);
        (!missing.is_empty()).then(|| {
            let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
            ("NotAvailable", format!("this pdc version does not carry out {} and the act has work there: nothing was changed; carry those parts out by hand first", names.join(", ")))
        })
    };
    match why {
        Some((reason, msg)) => {
            st.conditions = conditions::merge(&st.conditions, &[Cond::new(APPLIED, false, reason, msg)], generation, now);
            false
        }
        None => true,
    }
}

/// Record the start of an Apply: its token, and the steps with nothing to do as done.
fn start(act: &Reorganization, plan: &Plan, st: &mut ReorganizationStatus, now: Timestamp) {
    st.token = Some(act.spec.action_token.clone().unwrap_or_default());
    st.phase = Some("Applying".into());
    for s in &mut st.steps {
        let work = Step::parse(&s.name).is_some_and(|x| plan.has_work(x));
        *s = ReorgStepStatus { name: s.name.clone(), state: if work { "Pending" } else { "Done" }.into(), ..Default::default() };
        if !work {
            s.finished = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
            s.message = "nothing to do".into();
        }
    }
    st.conditions = conditions::merge(&st.conditions, &[Cond::new(APPLIED, false, "Applying", "the act is being carried out")], act.metadata.generation, now);
}

#[instrument(skip_all, fields(reorganization = %act.name_any()))]
async fn reconcile(act: Arc<Reorganization>, ctx: Arc<ReorgContext>) -> Result<Action> {
    let timer = ctx.base.metrics.reconcile_started(CONTROLLER);
    let res = reconcile_inner(&act, &ctx.base, &ctx.caches).await;
    timer.finish(res.is_ok());
    res
}

async fn reconcile_inner(act: &Reorganization, ctx: &Context, caches: &Caches) -> Result<Action> {
    let Some((objects, domain)) = objects(caches) else {
        return Ok(Action::requeue(Duration::from_secs(1)));
    };
    let plan = reorg::plan(&estate::act(&act.spec), &estate::estate(&objects, domain.as_deref().unwrap_or_default()));
    let old = act.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    let mut st = status(act, &plan, &old, now);
    let applying = act.spec.action == ReorgAction::Apply && !act.spec.dry_run;
    if !applying || (old.token.is_none() && !may_start(&plan, &mut st, act.metadata.generation, now)) {
        write(ctx, act, &old, &st).await?;
        // The act is not watched against the estate: a refused plan of an act not yet
        // carried out is looked at again soon (the quota raised or the clash removed, it
        // holds without a nudge), any other every few minutes.
        let again = if plan.refusals.is_empty() || old.token.is_some() { 300 } else { 15 };
        return Ok(Action::requeue(Duration::from_secs(again)));
    }
    if old.token.is_none() {
        start(act, &plan, &mut st, now);
        write(ctx, act, &old, &st).await?;
        ctx.event(act, false, "ApplyStarted", &format!("carrying out {}", act.spec.reference)).await;
    }
    let today = Day(now.as_second().div_euclid(86_400));
    watch::observe(ctx, act, &plan, &st, &objects, today).await?;
    let expired = release::expire_holds(&ctx.client, &act.name_any(), today).await?;
    if expired > 0 {
        ctx.event(act, false, "HoldsExpired", &format!("{expired} addresses held back from reuse are free again")).await;
    }
    run_steps(act, ctx, &plan, &objects, st).await
}

/// Write the status if it changed.
async fn write(ctx: &Context, act: &Reorganization, old: &ReorganizationStatus, new: &ReorganizationStatus) -> Result<()> {
    if new != old {
        apply::patch_status(&Api::<Reorganization>::all(ctx.client.clone()), &act.name_any(), new).await?;
    }
    Ok(())
}

fn step_mut(st: &mut ReorganizationStatus, s: Step) -> Option<&mut ReorgStepStatus> {
    st.steps.iter_mut().find(|x| x.name == s.as_str())
}

/// The phase while a step waits for its date.
fn waiting_phase(s: Step) -> &'static str {
    match s {
        Step::RemoveAliases => "InTransition",
        Step::Release => "Retained",
        _ => "Applying",
    }
}

/// Run steps until the act is done, a step waits for its date, or one fails. Each
/// step's start and end are written before and after it runs.
async fn run_steps(act: &Reorganization, ctx: &Context, plan: &Plan, objects: &Objects, mut st: ReorganizationStatus) -> Result<Action> {
    let time = |t: Timestamp| Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t));
    loop {
        let now = Timestamp::now();
        let today = Day(now.as_second().div_euclid(86_400));
        let done: BTreeSet<Step> = st.steps.iter().filter(|s| s.state == "Done").filter_map(|s| Step::parse(&s.name)).collect();
        let before = st.clone();
        match reorg::next_step(&done, today, plan) {
            Next::Done => {
                st.phase = Some("Done".into());
                st.current_step = None;
                st.conditions = conditions::merge(&st.conditions, &[Cond::new(APPLIED, true, "Applied", "every step is done")], act.metadata.generation, now);
                write(ctx, act, &before, &st).await?;
                if before.phase.as_deref() != Some("Done") {
                    ctx.event(act, false, "Applied", "every step is done").await;
                }
                return Ok(Action::requeue(Duration::from_secs(3600)));
            }
            Next::WaitUntil(s, day) => {
                st.phase = Some(waiting_phase(s).into());
                st.current_step = Some(s.as_str().into());
                if let Some(x) = step_mut(&mut st, s) {
                    x.state = "Waiting".into();
                    x.message = format!("until {}", day.format());
                }
                write(ctx, act, &before, &st).await?;
                let secs = (day.0 - today.0).max(0).saturating_mul(86_400);
                return Ok(Action::requeue(Duration::from_secs(u64::try_from(secs).unwrap_or(0).clamp(60, 3600))));
            }
            Next::Run(s) => {
                st.current_step = Some(s.as_str().into());
                if let Some(x) = step_mut(&mut st, s) {
                    // A step resumed (after a wait or a crash) keeps its start.
                    if x.state != "Running" || x.started.is_none() {
                        (x.state, x.started, x.finished, x.message) = ("Running".into(), time(now), None, String::new());
                    }
                }
                write(ctx, act, &before, &st).await?;
                let result = steps::run(&ctx.client, act, plan, objects, s).await;
                if let Some(p) = STEP_PAUSE.get().filter(|p| !p.is_zero()) {
                    tokio::time::sleep(*p).await;
                }
                let before = st.clone();
                if let Ok(steps::Outcome::Waiting(why)) = &result {
                    // Started and waiting for the cluster: the step stays Running.
                    if let Some(x) = step_mut(&mut st, s) {
                        x.message = why.clone();
                    }
                    write(ctx, act, &before, &st).await?;
                    return Ok(Action::requeue(Duration::from_secs(2)));
                }
                let (state, message) = match &result {
                    Ok(steps::Outcome::Done(m) | steps::Outcome::Waiting(m)) => ("Done", m.clone()),
                    Err(e) => ("Failed", e.to_string()),
                };
                if let Some(x) = step_mut(&mut st, s) {
                    (x.state, x.finished, x.message) = (state.into(), time(Timestamp::now()), message.clone());
                }
                write(ctx, act, &before, &st).await?;
                ctx.metrics.reorg_step(s.as_str(), state);
                ctx.event(act, result.is_err(), if result.is_ok() { "StepDone" } else { "StepFailed" }, &format!("{}: {message}", s.as_str())).await;
                result?;
            }
        }
    }
}

fn error_policy(act: Arc<Reorganization>, err: &Error, ctx: Arc<ReorgContext>) -> Action {
    ctx.base.failed(CONTROLLER, act.as_ref(), err, Duration::from_secs(10))
}

pub struct ReorgContext {
    base: Arc<Context>,
    caches: Caches,
}

/// A pause after each step's effects, before it is recorded done (`PDC_REORG_STEP_PAUSE`;
/// for crash tests and demonstrations, 0 otherwise).
static STEP_PAUSE: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

/// Run the Reorganization controller.
pub async fn run(ctx: Arc<Context>, step_pause: Duration, caches: Caches) {
    let _ = STEP_PAUSE.set(step_pause);
    let forget = watch::forget_deleted(ctx.clone());
    let controller = Controller::new(Api::<Reorganization>::all(ctx.client.clone()), watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(ReorgContext { base: ctx, caches }))
        .for_each(|_| futures::future::ready(()));
    futures::future::join(controller, forget).await;
}
