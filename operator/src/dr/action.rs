//! Failover, relocate and drill, carried out by the operator of the site that takes
//! over. Each step is recorded in the plan's status when it starts and when it is
//! done (the timeline); its effects are idempotent, so an operator that stops at any
//! point resumes at the first step not done and carries it out again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use pdc_api::conditions;
use pdc_api::labels as l;
use pdc_api::{DnsRecord, DnsRecordSpec, DnsRecordType, DrAction, DrActionStatus, DrPlan, DrStepStatus, TenantVM};
use pdc_core::dr::{self as engine, Applied, Decision, Outcome, Step, StepRecord, StepState, Timeline};
use tracing::info;

use super::replicate::{Volume, covered, sync_state, volumes};
use super::{DrContext, rd_resource, rs_resource};
use crate::compute::build::{dv_resource, vm_resource};
use pdc_api::conditions::DNS_PROGRAMMED as DNS;
use crate::error::{Error, Result, is_not_found};

/// How long a drill waits for its copies to run and answer.
const DRILL_TIMEOUT: Duration = Duration::from_secs(600);

fn engine_action(a: DrAction) -> Option<engine::Action> {
    match a {
        DrAction::Failover => Some(engine::Action::Failover),
        DrAction::Relocate => Some(engine::Action::Relocate),
        DrAction::Drill => Some(engine::Action::Drill),
        DrAction::None => None,
    }
}

fn now() -> Time {
    Time(Timestamp::now())
}

/// Write this site's record of the action (and other action-owned fields),
/// guarded by the resourceVersion read: a concurrent change means read again.
async fn record(plan: &DrPlan, ctx: &DrContext, a: &DrActionStatus, extra: serde_json::Value) -> Result<()> {
    let mut status = serde_json::json!({ "lastAction": a, "currentStep": a.steps.iter().find(|s| s.state == "Running").map(|s| s.name.clone()) });
    if let (Some(s), Some(e)) = (status.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    let body = serde_json::json!({ "metadata": {"resourceVersion": plan.resource_version()}, "status": status });
    let api: Api<DrPlan> = Api::namespaced(ctx.base.client.clone(), &plan.namespace().unwrap_or_default());
    api.patch_status(&plan.name_any(), &crate::apply::strict(), &Patch::Merge(&body))
        .await
        .map(|_| ())
        .map_err(|source| Error::PatchStatus { what: format!("DrPlan {}", plan.name_any()), source })
}

/// Fence site `peer`'s copy: record there that `me` is active (epoch `epoch`) and
/// halt the plan's VMs there. The number of VMs halted, or why the site did not answer.
pub async fn fence(plan: &DrPlan, peer: &Client, me: &str, epoch: i64) -> std::result::Result<usize, String> {
    let ns = plan.namespace().unwrap_or_default();
    let body = serde_json::json!({"status": {"activeSite": me, "dnsSite": me, "epoch": epoch}});
    match Api::<DrPlan>::namespaced(peer.clone(), &ns).patch_status(&plan.name_any(), &crate::apply::strict(), &Patch::Merge(&body)).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(format!("it does not answer: {e}")),
    }
    let vms: Api<DynamicObject> = Api::namespaced_with(peer.clone(), &ns, &vm_resource());
    let halt = serde_json::json!({"spec": {"runStrategy": "Halted"}});
    let names = plan.status.as_ref().map(|s| s.vms.clone()).unwrap_or_default();
    let halted = super::each(names, move |name| {
        let (vms, halt) = (vms.clone(), halt.clone());
        async move {
            match vms.patch(&name, &crate::apply::strict(), &Patch::Merge(&halt)).await {
                Ok(_) => Ok(1),
                Err(e) if is_not_found(&e) => Ok(0),
                Err(e) => Err(format!("halting VM {name} failed: {e}")),
            }
        }
    })
    .await;
    halted.into_iter().sum::<std::result::Result<usize, String>>()
}

/// A new action asked for by `spec.action` + `spec.actionToken`.
pub async fn start(plan: &DrPlan, ctx: &DrContext, me: &str, peer_site: &str, peer: std::result::Result<Client, String>, peer_plan: Option<DrPlan>) -> Result<Action> {
    let token = plan.spec.action_token.clone().unwrap_or_default();
    let Some(which) = engine_action(plan.spec.action) else { return Ok(Action::await_change()) };
    let mut a = DrActionStatus {
        action: plan.spec.action,
        token: token.clone(),
        target_site: me.to_string(),
        dry_run: plan.spec.dry_run,
        result: "Running".into(),
        started: Some(now()),
        finished: None,
        steps: Vec::new(),
        message: String::new(),
    };
    // A relocate loses nothing only if the active site replicates here: its copy
    // must report Protected.
    let refusal = if plan.spec.action == DrAction::Relocate && plan.active_site() != me {
        match (&peer, &peer_plan) {
            (Err(e), _) => Some(format!("a relocate needs site {peer_site}, which does not answer ({e}); if it is lost, use Failover")),
            (Ok(_), None) => Some(format!("site {peer_site} has no copy of the plan; if it is lost, use Failover")),
            (Ok(_), Some(p)) if p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Protected") => Some(format!(
                "site {peer_site} does not replicate here yet (its phase is {}): a relocate now could lose data; wait until `pdcctl dr status` there shows Protected, or use Failover",
                p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_else(|| "unknown".into())
            )),
            _ => None,
        }
    } else {
        None
    };
    if let Some(msg) = refusal {
        a.result = "Failed".into();
        a.finished = Some(now());
        a.message = msg;
        ctx.base.event(plan, true, "ActionRefused", &a.message).await;
        record(plan, ctx, &a, serde_json::json!({})).await?;
        return Ok(Action::requeue(Duration::from_secs(30)));
    }
    if plan.active_site() == me {
        a.result = "Failed".into();
        a.finished = Some(now());
        a.message = format!(
            "site {me} already runs this plan's VMs; a {} is asked of the copy at the site that is to take over (site {peer_site}): pdcctl dr {} {} with that site's kubeconfig",
            plan.spec.action.as_str(),
            plan.spec.action.as_str().to_lowercase(),
            plan.name_any()
        );
        ctx.base.event(plan, true, "ActionRefused", &a.message).await;
        record(plan, ctx, &a, serde_json::json!({})).await?;
        return Ok(Action::requeue(Duration::from_secs(30)));
    }
    let planned = plan.spec.dry_run;
    let descriptions = describe(plan, ctx, me, peer_site, which);
    a.steps = engine::steps(which)
        .iter()
        .zip(descriptions)
        .map(|(s, d)| DrStepStatus { name: s.as_str().into(), state: if planned { "Planned" } else { StepState::Pending.as_str() }.into(), message: d, ..Default::default() })
        .collect();
    if planned {
        a.result = "Planned".into();
        a.finished = Some(now());
    }
    info!(plan = %plan.name_any(), action = plan.spec.action.as_str(), token = %token, dry_run = planned, "DR action accepted");
    ctx.base.event(plan, false, if planned { "ActionPlanned" } else { "ActionStarted" }, &format!("{} to site {me}", plan.spec.action.as_str())).await;
    let phase = match (planned, which) {
        (true, _) => None,
        (false, engine::Action::Failover) => Some("FailingOver"),
        (false, engine::Action::Relocate) => Some("Relocating"),
        (false, engine::Action::Drill) => Some("Drilling"),
    };
    record(plan, ctx, &a, phase.map(|p| serde_json::json!({"phase": p})).unwrap_or_default()).await?;
    Ok(Action::requeue(Duration::from_millis(50)))
}

/// What each step of `which` would do, for the timeline and dry runs.
fn describe(plan: &DrPlan, ctx: &DrContext, me: &str, peer: &str, which: engine::Action) -> Vec<String> {
    let vms = covered(plan, ctx);
    let vols = volumes(&vms, ctx);
    let st = plan.status.clone().unwrap_or_default();
    let images: BTreeMap<String, String> = st.volumes.iter().filter_map(|v| Some((v.pvc.clone(), format!("{} (synced {})", v.latest_image.clone()?, v.last_sync_time.as_ref().map(|t| t.0.to_string()).unwrap_or_default())))).collect();
    let addrs: Vec<String> = vms
        .iter()
        .map(|v| {
            let nic = v.status.as_ref().and_then(|s| s.nics.first());
            format!("{} {}", v.status.as_ref().and_then(|s| s.fqdn.clone()).unwrap_or_else(|| v.spec.hostname.clone()), nic.map(|n| format!("{} {}", n.ipv4.clone().unwrap_or_default(), n.ipv6.clone().unwrap_or_default())).unwrap_or_default())
        })
        .collect();
    let restore: Vec<String> = vols.iter().map(|v| format!("{} ← {}", v.pvc, images.get(&v.pvc).cloned().unwrap_or_else(|| "no replica yet".into()))).collect();
    engine::steps(which)
        .iter()
        .map(|s| match s {
            Step::Fence => format!("record site {peer} as fenced (epoch {}); halt its {} VM(s) if it answers", plan.epoch() + 1, vms.len()),
            Step::StopSource => format!("wait until the {} VM(s) at site {peer} have stopped", vms.len()),
            Step::FinalSync => format!("sync the {} disk(s) once more from site {peer} and wait for the replicas here", vols.len()),
            Step::Promote => format!("restore {} disk(s) from the newest replicas at site {me}: {}", vols.len(), restore.join(", ")),
            Step::StartVms => format!("start {} VM(s) at site {me} with its addresses", vms.len()),
            Step::SwitchDns => format!("point the names (A, AAAA, PTR) at site {me}: {}", addrs.join("; ")),
            Step::StartCopies => format!("start copies of {} VM(s) from the newest replicas, as <host>.drill under the department's subdomain", vms.len()),
            Step::Check => "wait until the copies run and their drill names are programmed".into(),
            Step::Teardown => "remove the copies, their disks and their drill names".into(),
        })
        .collect()
}

/// The running action's record as the engine reads it.
fn timeline(a: &DrActionStatus) -> std::result::Result<Timeline, String> {
    let action = engine_action(a.action).ok_or_else(|| "the running action is None".to_string())?;
    let steps = a.steps.iter().map(|s| StepRecord::read(&s.name, &s.state, &s.message)).collect::<std::result::Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
    Ok(Timeline { action, token: a.token.clone(), steps })
}

/// Copy the engine's states and messages onto the recorded steps; the times are
/// the runner's to set.
fn copy_steps(a: &mut DrActionStatus, t: &Timeline) {
    for (s, r) in a.steps.iter_mut().zip(&t.steps) {
        s.state = r.state.as_str().into();
        s.message.clone_from(&r.message);
    }
}

/// Carry out (or wait on) the running action's current step: the engine decides
/// ([`engine::decide`]); this records its decision, carries out the effects and
/// records their outcome.
pub async fn step(plan: &DrPlan, mut a: DrActionStatus, ctx: &DrContext, me: &str, peer_site: &str, peer: std::result::Result<Client, String>) -> Result<Action> {
    let invalid = |e: String| Error::Invalid(format!("DrPlan {}: {e}", plan.name_any()));
    let token = plan.spec.action_token.clone().unwrap_or_default();
    let asked = engine_action(plan.spec.action).map(|x| (x, token.as_str()));
    let mut t = timeline(&a).map_err(invalid)?;
    let decision = engine::decide(&t, asked).map_err(|e| invalid(e.to_string()))?;
    engine::record_decision(&mut t, &decision);
    copy_steps(&mut a, &t);
    match decision {
        // A relocate that cannot finish because the other site is lost gives way to a failover.
        Decision::Supersede { message } => {
            a.result = "Failed".into();
            a.finished = Some(now());
            a.message = message;
            record(plan, ctx, &a, serde_json::json!({})).await?;
            Ok(Action::requeue(Duration::from_millis(50)))
        }
        Decision::Start { index, .. } => {
            if let Some(s) = a.steps.get_mut(index) {
                s.started = Some(now());
            }
            record(plan, ctx, &a, serde_json::json!({})).await?;
            Ok(Action::requeue(Duration::from_millis(20)))
        }
        Decision::Run { index, step } => {
            let started = a.steps.get(index).and_then(|s| s.started.clone()).map(|t| t.0).unwrap_or_else(Timestamp::now);
            let c = StepCtx { plan, ctx, action: &a, started, me, peer_site, peer: &peer, ns: plan.namespace().unwrap_or_default() };
            let outcome = effects(&c, step).await.unwrap_or_else(Outcome::Wait);
            let applied = engine::apply_outcome(&mut t, index, outcome).map_err(|e| invalid(e.to_string()))?;
            copy_steps(&mut a, &t);
            record_outcome(plan, ctx, a, index, step, applied).await
        }
        Decision::Fail { message, .. } => fail(plan, ctx, a, &message).await,
        Decision::Finish { failed } => finish(plan, ctx, a, me, failed).await,
    }
}

/// Record what a step's effects came to (the engine has set its state and message).
async fn record_outcome(plan: &DrPlan, ctx: &DrContext, mut a: DrActionStatus, index: usize, step: Step, applied: Applied) -> Result<Action> {
    match applied {
        Applied::Done => {
            if !ctx.step_pause.is_zero() {
                tokio::time::sleep(ctx.step_pause).await;
            }
            info!(plan = %plan.name_any(), step = step.as_str(), "DR step done");
            if let Some(s) = a.steps.get_mut(index) {
                s.finished = Some(now());
            }
            // Read again: the step's own status writes moved the resourceVersion.
            let fresh = Api::<DrPlan>::namespaced(ctx.base.client.clone(), &plan.namespace().unwrap_or_default())
                .get(&plan.name_any())
                .await
                .map_err(|source| Error::Read { what: format!("DrPlan {}", plan.name_any()), source })?;
            record(&fresh, ctx, &a, serde_json::json!({})).await?;
            Ok(Action::requeue(Duration::from_millis(20)))
        }
        Applied::Waiting { changed } => {
            if changed {
                record(plan, ctx, &a, serde_json::json!({})).await?;
            }
            Ok(Action::requeue(Duration::from_millis(500)))
        }
        Applied::Failed { message } => {
            if let Some(s) = a.steps.get_mut(index) {
                s.finished = Some(now());
            }
            fail(plan, ctx, a, &message).await
        }
    }
}

/// The action failed with a step (`message` names it): say so and record it.
async fn fail(plan: &DrPlan, ctx: &DrContext, mut a: DrActionStatus, message: &str) -> Result<Action> {
    ctx.base.event(plan, true, "ActionFailed", message).await;
    a.result = "Failed".into();
    a.finished = Some(now());
    a.message = message.to_string();
    record(plan, ctx, &a, serde_json::json!({"phase": "Unprotected"})).await?;
    Ok(Action::requeue(Duration::from_secs(5)))
}

/// Every step is done: record the result (`failed`: the engine's drill rule) and
/// what it proves of the standby site.
async fn finish(plan: &DrPlan, ctx: &DrContext, mut a: DrActionStatus, me: &str, failed: bool) -> Result<Action> {
    let t = now();
    let mut extra = serde_json::Map::new();
    a.result = if failed { "Failed" } else { "Succeeded" }.into();
    a.finished = Some(t.clone());
    match a.action {
        DrAction::Drill => {
            let check = a.steps.iter().find(|s| s.name == Step::Check.as_str()).map(|s| s.message.clone()).unwrap_or_default();
            extra.insert("lastDrill".into(), serde_json::json!({"time": t, "result": if failed { "Failed" } else { "Passed" }, "message": check}));
            if !failed {
                extra.insert("lastStandbyCheck".into(), serde_json::json!(t));
            }
        }
        DrAction::Relocate => {
            extra.insert("lastDrill".into(), serde_json::json!({"time": t, "result": "Passed", "message": format!("relocated to site {me}")}));
            extra.insert("lastStandbyCheck".into(), serde_json::json!(t));
        }
        _ => {
            extra.insert("lastStandbyCheck".into(), serde_json::json!(t));
        }
    }
    if let Some(s) = &a.started {
        let secs = t.0.duration_since(s.0).as_secs_f64();
        ctx.base.metrics.dr_action_duration.with_label_values(&[a.action.as_str()]).observe(secs.max(0.0));
    }
    info!(plan = %plan.name_any(), action = a.action.as_str(), result = %a.result, "DR action finished");
    ctx.base.event(plan, failed, "ActionFinished", &format!("{} to site {me}: {}", a.action.as_str(), a.result)).await;
    record(plan, ctx, &a, serde_json::Value::Object(extra)).await?;
    Ok(Action::requeue(Duration::from_millis(50)))
}

fn phase_of(o: &DynamicObject) -> Option<&str> {
    o.data.pointer("/status/printableStatus").and_then(|p| p.as_str())
}

/// What a step's effects work with: the plan, the running action, when the step
/// started, and the two sites.
struct StepCtx<'a> {
    plan: &'a DrPlan,
    ctx: &'a DrContext,
    action: &'a DrActionStatus,
    started: Timestamp,
    me: &'a str,
    peer_site: &'a str,
    peer: &'a std::result::Result<Client, String>,
    ns: String,
}

impl StepCtx<'_> {
    fn client(&self) -> &Client {
        &self.ctx.base.client
    }

    /// The other site's client, or why it does not answer.
    fn peer_client(&self) -> std::result::Result<&Client, String> {
        self.peer.as_ref().map_err(|e| format!("site {} does not answer: {e}", self.peer_site))
    }
}

/// Carry out `which` once: an error is a step that waits and is tried again.
async fn effects(c: &StepCtx<'_>, which: Step) -> std::result::Result<Outcome, String> {
    let vms = covered(c.plan, c.ctx);
    let vols = volumes(&vms, c.ctx);
    match which {
        Step::Fence => fence_step(c).await,
        Step::StopSource => stop_source(c, &vms).await,
        Step::FinalSync => final_sync(c, &vols).await,
        Step::Promote => promote(c, &vols).await,
        Step::StartVms => start_vms(c, &vms).await,
        Step::SwitchDns => switch_dns(c, &vms).await,
        Step::StartCopies => start_copies(c.plan, c.ctx, &c.ns, c.me).await,
        Step::Check => check(c).await,
        Step::Teardown => teardown(c).await,
    }
}

fn read_err(e: kube::Error) -> String {
    e.to_string()
}

async fn fence_step(c: &StepCtx<'_>) -> std::result::Result<Outcome, String> {
    let (plan, a, me, peer_site, ns) = (c.plan, c.action, c.me, c.peer_site, c.ns.as_str());
    let already = plan.status.as_ref().and_then(|s| s.fence.as_ref()).is_some_and(|f| a.started.as_ref().is_some_and(|s| f.time.0 >= s.0));
    let epoch = match c.peer {
        Ok(pc) => {
            let read = Api::<DrPlan>::namespaced(pc.clone(), ns).get_opt(&plan.name_any()).await;
            fence_epoch(plan.epoch(), read.as_ref().map(|p| p.as_ref().map(|p| p.epoch())), already)?
        }
        Err(_) => fence_epoch(plan.epoch(), Ok(None), already)?,
    };
    let result = match c.peer {
        Ok(pc) => fence(plan, pc, me, epoch).await,
        Err(e) => Err(e.clone()),
    };
    let (confirmed, msg) = match &result {
        Ok(n) => (true, format!("site {peer_site} answered: {n} VM(s) halted there; epoch {epoch}")),
        Err(e) if a.action == DrAction::Relocate => return Ok(Outcome::Fail(format!("a relocate needs site {peer_site}, which does not answer: {e}; use Failover if it is lost"))),
        Err(e) => (false, format!("site {peer_site} does not answer ({e}); fenced by record (epoch {epoch}): its VMs are halted as soon as it answers")),
    };
    let fence = serde_json::json!({"site": peer_site, "time": now(), "confirmed": confirmed, "message": msg});
    super::patch_status(c.client(), plan, serde_json::json!({"epoch": epoch, "fence": fence})).await.map_err(|e| e.to_string())?;
    Ok(Outcome::Done(msg))
}

async fn stop_source(c: &StepCtx<'_>, vms: &[Arc<TenantVM>]) -> std::result::Result<Outcome, String> {
    let peer_site = c.peer_site;
    let pc = c.peer_client()?;
    let api: Api<DynamicObject> = Api::namespaced_with(pc.clone(), &c.ns, &vm_resource());
    let mut running = Vec::new();
    for v in vms {
        if let Some(o) = api.get_opt(&v.name_any()).await.map_err(read_err)?
            && phase_of(&o).is_some_and(|p| p != "Stopped")
        {
            running.push(v.name_any());
        }
    }
    if running.is_empty() {
        Ok(Outcome::Done(format!("the {} VM(s) at site {peer_site} have stopped", vms.len())))
    } else {
        Ok(Outcome::Wait(format!("waiting for {} VM(s) at site {peer_site} to stop: {}", running.len(), running.join(", "))))
    }
}

async fn final_sync(c: &StepCtx<'_>, vols: &[Volume]) -> std::result::Result<Outcome, String> {
    let (peer_site, ns, started) = (c.peer_site, c.ns.as_str(), c.started);
    let pc = c.peer_client()?;
    let trigger = format!("pdc-{}", c.action.token);
    let sources: Api<DynamicObject> = Api::namespaced_with(pc.clone(), ns, &rs_resource());
    let dests: Api<DynamicObject> = Api::namespaced_with(c.client().clone(), ns, &rd_resource());
    let body = serde_json::json!({"spec": {"trigger": {"schedule": null, "manual": trigger}}});
    let mut waiting = Vec::new();
    for v in vols {
        let src = match sources.patch(&v.pvc, &crate::apply::strict(), &Patch::Merge(&body)).await {
            Ok(s) => s,
            Err(e) if is_not_found(&e) => {
                return Ok(Outcome::Fail(format!("disk {} has no ReplicationSource at site {peer_site}: it does not replicate here, so a final sync is impossible; use Failover to accept the loss", v.pvc)));
            }
            Err(e) => return Err(format!("asking site {peer_site} to sync disk {}: {e}", v.pvc)),
        };
        let sent = src.data.pointer("/status/lastManualSync").and_then(|x| x.as_str()) == Some(trigger.as_str());
        let rd = dests.get_opt(&v.pvc).await.map_err(read_err)?;
        let arrived = rd.as_ref().and_then(|o| sync_state(o).0).is_some_and(|t| t >= started);
        if !(sent && arrived) {
            waiting.push(v.pvc.clone());
        }
    }
    if waiting.is_empty() {
        Ok(Outcome::Done(format!("{} disk(s) synced after the VMs stopped", vols.len())))
    } else {
        Ok(Outcome::Wait(format!("waiting for the last sync of {} of {} disk(s): {}", waiting.len(), vols.len(), waiting.join(", "))))
    }
}

async fn promote(c: &StepCtx<'_>, vols: &[Volume]) -> std::result::Result<Outcome, String> {
    let (plan, client, ns, me) = (c.plan, c.client(), c.ns.as_str(), c.me);
    let dests: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &rd_resource());
    let pvcs: Vec<String> = vols.iter().map(|v| v.pvc.clone()).collect();
    let images = super::each(pvcs, move |pvc| {
        let dests = dests.clone();
        async move { dests.get_opt(&pvc).await.map(|o| (pvc, o.and_then(|o| sync_state(&o).1))) }
    })
    .await;
    let mut promoted = BTreeMap::new();
    for read in images {
        match read.map_err(read_err)? {
            (pvc, Some(i)) => {
                promoted.insert(pvc, i);
            }
            (pvc, None) => return Ok(Outcome::Fail(format!("disk {pvc} has no replica at site {me} yet: it cannot be restored here"))),
        }
    }
    // VolSync deletes a destination's previous snapshot at each sync: hold the
    // ones the disks are restored from until the restores are done.
    super::hold::hold(client, ns, &plan.name_any(), promoted.values()).await?;
    super::patch_status(client, plan, serde_json::json!({"promoted": promoted})).await.map_err(|e| e.to_string())?;
    Ok(Outcome::Done(format!("{} disk(s) restored from: {}", promoted.len(), promoted.iter().map(|(p, i)| format!("{p} ← {i}")).collect::<Vec<_>>().join(", "))))
}

async fn start_vms(c: &StepCtx<'_>, vms: &[Arc<TenantVM>]) -> std::result::Result<Outcome, String> {
    let (plan, me) = (c.plan, c.me);
    if plan.active_site() != me {
        super::patch_status(c.client(), plan, serde_json::json!({"activeSite": me})).await.map_err(|e| e.to_string())?;
    }
    let running: Vec<&str> = vms.iter().filter(|v| v.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")).map(|v| v.metadata.name.as_deref().unwrap_or_default()).collect();
    if running.len() == vms.len() {
        Ok(Outcome::Done(format!("{} VM(s) running at site {me}", vms.len())))
    } else {
        Ok(Outcome::Wait(format!("{} of {} VM(s) running at site {me}", running.len(), vms.len())))
    }
}

async fn switch_dns(c: &StepCtx<'_>, vms: &[Arc<TenantVM>]) -> std::result::Result<Outcome, String> {
    let (plan, me) = (c.plan, c.me);
    if plan.dns_site() != me {
        super::patch_status(c.client(), plan, serde_json::json!({"dnsSite": me})).await.map_err(|e| e.to_string())?;
    }
    let done: Vec<String> = vms
        .iter()
        .filter(|v| v.status.as_ref().is_some_and(|s| conditions::find(&s.conditions, DNS).is_some_and(|c| c.status == "True" && c.observed_generation == v.metadata.generation)))
        .filter_map(|v| v.status.as_ref().and_then(|s| s.fqdn.clone()))
        .collect();
    if done.len() == vms.len() {
        Ok(Outcome::Done(format!("{} name(s) answer with site {me}'s addresses: {}", done.len(), done.join(", "))))
    } else {
        Ok(Outcome::Wait(format!("{} of {} name(s) programmed with site {me}'s addresses", done.len(), vms.len())))
    }
}

/// The drill's check: done when every copy runs and every drill name is programmed,
/// and done as failed (a message starting [`engine::CHECK_FAILED`]) after
/// [`DRILL_TIMEOUT`], so the copies are still torn down.
async fn check(c: &StepCtx<'_>) -> std::result::Result<Outcome, String> {
    let (plan, client, ns) = (c.plan, c.client(), c.ns.as_str());
    let label = format!("{}={}", l::DR_DRILL, plan.name_any());
    let lp = ListParams::default().labels(&label);
    let kv: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &vm_resource());
    let copies = kv.list(&lp).await.map_err(read_err)?.items;
    let records = Api::<DnsRecord>::namespaced(client.clone(), ns).list(&lp).await.map_err(read_err)?.items;
    let running = copies.iter().filter(|o| phase_of(o) == Some("Running")).count();
    let programmed: Vec<String> = records
        .iter()
        .filter(|r| r.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, "Programmed")))
        .filter_map(|r| r.status.as_ref().and_then(|s| s.fqdn.clone()))
        .collect();
    let ok = running == copies.len() && !copies.is_empty() && programmed.len() == records.len();
    let summary = format!("{running} of {} copies running; {} of {} drill names programmed ({})", copies.len(), programmed.len(), records.len(), programmed.join(", "));
    if ok {
        Ok(Outcome::Done(format!("Passed: {summary}")))
    } else if Timestamp::now().duration_since(c.started).as_secs() > DRILL_TIMEOUT.as_secs() as i64 {
        Ok(Outcome::Done(format!("{} after {}s: {summary}", engine::CHECK_FAILED, DRILL_TIMEOUT.as_secs())))
    } else {
        Ok(Outcome::Wait(summary))
    }
}

async fn teardown(c: &StepCtx<'_>) -> std::result::Result<Outcome, String> {
    let (plan, client, ns) = (c.plan, c.client(), c.ns.as_str());
    let label = format!("{}={}", l::DR_DRILL, plan.name_any());
    let lp = ListParams::default().labels(&label);
    // Done only when every copy, disk and drill name is gone; a delete that
    // fails is said, and the step is tried again.
    let mut left = Vec::new();
    let mut failed = Vec::new();
    for ar in [vm_resource(), dv_resource()] {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        for o in api.list(&lp).await.map_err(read_err)?.items {
            left.push(format!("{} {}", ar.kind, o.name_any()));
            if o.metadata.deletion_timestamp.is_none()
                && let Err(e) = api.delete(&o.name_any(), &DeleteParams::background()).await
                && !crate::error::is_not_found(&e)
            {
                failed.push(format!("deleting {} {}: {e}", ar.kind, o.name_any()));
            }
        }
    }
    let rapi: Api<DnsRecord> = Api::namespaced(client.clone(), ns);
    for r in rapi.list(&lp).await.map_err(read_err)?.items {
        left.push(format!("drill name {}", r.name_any()));
        if r.metadata.deletion_timestamp.is_none()
            && let Err(e) = rapi.delete(&r.name_any(), &DeleteParams::background()).await
            && !crate::error::is_not_found(&e)
        {
            failed.push(format!("deleting DnsRecord {}: {e}", r.name_any()));
        }
    }
    if !failed.is_empty() {
        Err(failed.join("; "))
    } else if left.is_empty() {
        Ok(Outcome::Done("the copies, their disks and drill names are removed".into()))
    } else {
        Ok(Outcome::Wait(format!("waiting for {} to go: {}", left.len(), left.join(", "))))
    }
}

/// The epoch a fence writes: higher than both copies'. The other site's copy must be
/// read when that site answers; a site that does not answer at all is fenced by record
/// (its copy cannot have moved past this one without this site seeing it first).
pub fn fence_epoch(own: i64, peer: std::result::Result<Option<i64>, &kube::Error>, already: bool) -> std::result::Result<i64, String> {
    let peer = match peer {
        Ok(e) => e.unwrap_or(0),
        // The server answered with an error (overloaded, forbidden, …): its epoch is
        // unknown, and a guess could be lower than the one it holds.
        Err(kube::Error::Api(s)) => return Err(format!("reading the other site's copy of the plan failed ({} {}); its epoch is needed to fence, trying again", s.code, s.message)),
        Err(_) => 0,
    };
    let top = own.max(peer);
    Ok(if already { top } else { top + 1 })
}

/// Drill copies: for every VM, its halted definition here started as `<vm>-drill`
/// on disks restored from the newest replicas, named `<host>.drill` in DNS.
async fn start_copies(plan: &DrPlan, ctx: &DrContext, ns: &str, me: &str) -> std::result::Result<Outcome, String> {
    let client = &ctx.base.client;
    let vms = covered(plan, ctx);
    let kv: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &vm_resource());
    let dvs: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &dv_resource());
    let dests: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &rd_resource());
    let records: Api<DnsRecord> = Api::namespaced(client.clone(), ns);
    let labels = serde_json::json!({ l::MANAGED_BY: l::MANAGED_BY_VALUE, l::DR_PLAN: plan.name_any(), l::DR_DRILL: plan.name_any() });
    let params = crate::apply::params();
    for vm in &vms {
        let Some(def) = kv.get_opt(&vm.name_any()).await.map_err(|e| e.to_string())? else {
            return Ok(Outcome::Fail(format!("VM {} is not defined at site {me} yet", vm.name_any())));
        };
        let mut spec = def.data.get("spec").cloned().unwrap_or_default();
        super::set(&mut spec, "runStrategy", serde_json::json!("Always"));
        for (_, d) in crate::compute::plan::disks(vm) {
            let pvc = crate::compute::build::disk_name(vm, d);
            let image = dests.get_opt(&pvc).await.map_err(|e| e.to_string())?.and_then(|o| sync_state(&o).1);
            let Some(image) = image else { return Ok(Outcome::Fail(format!("disk {pvc} has no replica at site {me}: nothing to drill on"))) };
            super::hold::hold(client, ns, &plan.name_any(), [&image]).await?;
            let copy = format!("{pvc}-drill");
            let dv = serde_json::json!({
                "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
                "metadata": {"name": copy, "namespace": ns, "labels": labels},
                "spec": {"source": {"snapshot": {"namespace": ns, "name": image}}, "storage": {"resources": {"requests": {"storage": d.size}}}},
            });
            dvs.patch(&copy, &params, &Patch::Apply(&dv)).await.map_err(|e| format!("creating drill disk {copy}: {e}"))?;
            if let Some(vols) = spec.pointer_mut("/template/spec/volumes").and_then(|v| v.as_array_mut()) {
                for v in vols.iter_mut() {
                    if v.pointer("/dataVolume/name").and_then(|n| n.as_str()) == Some(pvc.as_str())
                        && let Some(d) = v.get_mut("dataVolume")
                    {
                        super::set(d, "name", serde_json::json!(copy));
                    }
                }
            }
        }
        let name = format!("{}-drill", vm.name_any());
        let obj = serde_json::json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": name, "namespace": ns, "labels": labels}, "spec": spec});
        kv.patch(&name, &params, &Patch::Apply(&obj)).await.map_err(|e| format!("creating drill VM {name}: {e}"))?;
        let nic = vm.status.as_ref().and_then(|s| s.nics.first());
        for (suffix, t, v) in [("a", DnsRecordType::A, nic.and_then(|n| n.ipv4.clone())), ("aaaa", DnsRecordType::AAAA, nic.and_then(|n| n.ipv6.clone()))] {
            let Some(v) = v else { continue };
            let rec = DnsRecord {
                metadata: kube::api::ObjectMeta {
                    name: Some(format!("{name}-{suffix}")),
                    namespace: Some(ns.to_string()),
                    labels: serde_json::from_value(labels.clone()).ok(),
                    ..Default::default()
                },
                spec: DnsRecordSpec { name: format!("{}.drill", vm.spec.hostname), rtype: t, ttl: Some(60), values: vec![v] },
                status: None,
            };
            records.patch(&format!("{name}-{suffix}"), &params, &Patch::Apply(&rec)).await.map_err(|e| format!("creating drill name for {name}: {e}"))?;
        }
    }
    Ok(Outcome::Done(format!("{} copies started at site {me} from the newest replicas", vms.len())))
}

#[cfg(test)]
mod fence_tests {
    #![allow(clippy::unwrap_used)]
    use super::fence_epoch;

    #[test]
    fn a_fence_is_higher_than_both_copies_or_waits() {
        assert_eq!(fence_epoch(3, Ok(Some(5)), false), Ok(6));
        assert_eq!(fence_epoch(7, Ok(Some(5)), false), Ok(8));
        assert_eq!(fence_epoch(7, Ok(None), false), Ok(8));
        assert_eq!(fence_epoch(7, Ok(Some(5)), true), Ok(7));
        // The other site answered with an error: its epoch is unknown, so no epoch is
        // made up (the old code took 0 and could write one not above the other site's).
        let busy = kube::Error::Api(kube::core::Status { code: 429, message: "too many requests".into(), ..kube::core::Status::failure("too many requests", "TooManyRequests") }.boxed());
        assert!(fence_epoch(3, Err(&busy), false).unwrap_err().contains("429"));
    }
}

#[cfg(test)]
mod timeline_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn status(action: DrAction, steps: &[(&str, &str, &str)]) -> DrActionStatus {
        DrActionStatus {
            action,
            token: "t1".into(),
            result: "Running".into(),
            steps: steps.iter().map(|(n, s, m)| DrStepStatus { name: (*n).into(), state: (*s).into(), message: (*m).into(), started: Some(now()), ..Default::default() }).collect(),
            ..Default::default()
        }
    }

    /// The engine reads the recorded steps as written, and writing its timeline back
    /// leaves the status as it was (times included).
    #[test]
    fn a_recorded_timeline_reads_and_writes_back_unchanged() {
        let a = status(DrAction::Drill, &[("StartCopies", "Done", "2 copies started"), ("Check", "Running", "1 of 2 copies running"), ("Teardown", "Pending", "remove the copies")]);
        let t = timeline(&a).unwrap();
        assert_eq!(t.action, engine::Action::Drill);
        assert_eq!(t.token, "t1");
        assert_eq!(engine::decide(&t, None), Ok(Decision::Run { index: 1, step: Step::Check }));
        let mut back = a.clone();
        copy_steps(&mut back, &t);
        assert_eq!(back, a);
    }

    /// A record the runner cannot act on is an error, not a guess.
    #[test]
    fn a_running_action_of_unknown_steps_is_refused() {
        assert!(timeline(&status(DrAction::Failover, &[("Reboot", "Pending", "")])).unwrap_err().contains("Reboot"));
        assert!(timeline(&status(DrAction::Failover, &[("Fence", "Sleeping", "")])).unwrap_err().contains("Sleeping"));
        assert!(timeline(&status(DrAction::None, &[])).is_err());
        let foreign = timeline(&status(DrAction::Failover, &[("StartCopies", "Pending", "")])).unwrap();
        assert!(engine::decide(&foreign, None).is_err());
    }
}
