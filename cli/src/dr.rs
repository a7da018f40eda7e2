//! `pdcctl dr`: disaster-recovery plans. `status` shows replication against the
//! RPO; `failover`, `relocate` and `drill` ask the plan's copy in the current
//! cluster (the site that is to take over) for an action and follow its steps live.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use pdc_api::{DrAction, DrPlan, conditions};

use crate::connect::{ListScope, Scope};
use crate::output::{Listing, Row, table};
use crate::wait::{Deadline, parse_duration};
use crate::{Cli, CliError, client, confirm, exit, outln};

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Plans at this site: standby, RPO, lag, last drill, state (one department's, or -A).
    Status {
        #[command(flatten)]
        scope: ListScope,
    },
    /// One plan: conditions, disks, and the last action's timeline.
    Show {
        plan: String,
        #[command(flatten)]
        scope: Scope,
    },
    /// The active site is lost: run the plan's VMs here (run against the standby's
    /// cluster). Asks first on a terminal; elsewhere needs --yes.
    Failover(ActionArgs),
    /// Planned move of the VMs to this site, with a last sync (run against the
    /// target's cluster). Asks first on a terminal; elsewhere needs --yes.
    Relocate(ActionArgs),
    /// Start copies of the VMs here under the drill subdomain, check them, remove them.
    Drill(ActionArgs),
}

#[derive(clap::Args, Debug)]
pub struct ActionArgs {
    plan: String,
    #[command(flatten)]
    scope: Scope,
    /// Print the steps the action would take, with what each would do; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Return once asked instead of following the steps.
    #[arg(long)]
    no_wait: bool,
    /// Stop following after this long (e.g. 900 or 15m; 0 follows without limit) and
    /// exit 4; the action goes on.
    #[arg(long, value_parser = parse_duration, default_value = "15m", value_name = "DURATION")]
    timeout: Duration,
    /// Fail over or relocate without asking (a drill or a dry run never asks).
    #[arg(long)]
    yes: bool,
}

pub async fn run(cli: &Cli, cmd: &Cmd) -> Result<ExitCode, CliError> {
    let c = client(cli).await?;
    match cmd {
        Cmd::Status { scope } => {
            let api: Api<DrPlan> = scope.api(c)?;
            let plans = api.list(&scope.params()).await?.items;
            let listing = Listing::objects(&["DEPARTMENT", "PLAN", "THIS SITE", "ACTIVE", "STANDBY", "RPO", "LAG", "LAST DRILL", "STATE", "PROTECTED"])
                .wide(&["EPOCH", "DNS AT", "VMS"])
                .rows(plans.iter().map(status_row));
            cli.output().list(&listing, &plans)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Show { plan, scope } => {
            let ns = scope.namespace(&c)?;
            let p = Api::<DrPlan>::namespaced(c, &ns).get(plan).await?;
            if !cli.output().object(&p)? {
                show(&p);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Failover(a) => act(cli, c, DrAction::Failover, a).await,
        Cmd::Relocate(a) => act(cli, c, DrAction::Relocate, a).await,
        Cmd::Drill(a) => act(cli, c, DrAction::Drill, a).await,
    }
}

fn secs(n: i64) -> String {
    match n {
        n if n < 120 => format!("{n}s"),
        n if n < 7200 => format!("{}m", n / 60),
        n if n < 172_800 => format!("{}h", n / 3600),
        n => format!("{}d", n / 86400),
    }
}

/// A plan's row in `dr status`; wide adds the epoch, where DNS points and the VMs.
fn status_row(p: &DrPlan) -> Row {
    let st = p.status.clone().unwrap_or_default();
    let protected = conditions::find(&st.conditions, "Protected").map(|c| c.status.clone()).unwrap_or_else(|| "-".into());
    let state = match st.last_action.as_ref().filter(|a| a.result == "Running") {
        Some(a) => format!("{} ({})", st.phase.clone().unwrap_or_default(), st.current_step.clone().unwrap_or_else(|| a.action.as_str().into())),
        None => st.phase.clone().unwrap_or_else(|| "-".into()),
    };
    let drill = st.last_drill.as_ref().map(|d| format!("{} {}", d.time.0.strftime("%Y-%m-%d"), d.result)).unwrap_or_else(|| "never".into());
    let cells = vec![
        p.namespace().unwrap_or_default(),
        p.name_any(),
        st.site.clone().unwrap_or_else(|| "-".into()),
        p.active_site().to_string(),
        p.peer_of(p.active_site()).to_string(),
        p.spec.rpo.clone(),
        st.lag_seconds.map(secs).unwrap_or_else(|| "-".into()),
        drill,
        state,
        protected,
    ];
    let vms = if st.vms.is_empty() { "-".to_string() } else { st.vms.join(",") };
    Row::object::<DrPlan>(&p.name_any(), cells).wide(vec![p.epoch().to_string(), p.dns_site().to_string(), vms])
}

fn show(p: &DrPlan) {
    let st = p.status.clone().unwrap_or_default();
    outln!("Plan:        {}/{}", p.namespace().unwrap_or_default(), p.name_any());
    outln!("This site:   {}", st.site.clone().unwrap_or_else(|| "-".into()));
    outln!("Active:      {} (epoch {}), DNS at {}", p.active_site(), p.epoch(), p.dns_site());
    outln!("Sites:       primary {}, standby {}", p.spec.primary_site, p.spec.standby_site);
    outln!("RPO:         {} (lag {})", p.spec.rpo, st.lag_seconds.map(secs).unwrap_or_else(|| "-".into()));
    outln!("VMs:         {}", st.vms.join(", "));
    if let Some(f) = &st.fence {
        outln!("Fence:       site {} at {} ({}): {}", f.site, f.time.0, if f.confirmed { "confirmed" } else { "by record" }, f.message);
    }
    outln!("\nConditions:");
    let rows = st.conditions.iter().map(|c| vec![c.type_.clone(), c.status.clone(), c.reason.clone(), c.message.clone()]).collect();
    outln!("{}", table(&["TYPE", "STATUS", "REASON", "MESSAGE"], rows));
    outln!("\nDisks:");
    let rows = st
        .volumes
        .iter()
        .map(|v| {
            vec![
                v.pvc.clone(),
                v.vm.clone(),
                v.last_sync_time.as_ref().map(|t| t.0.to_string()).unwrap_or_else(|| "never".into()),
                v.lag_seconds.map(secs).unwrap_or_default(),
                v.latest_image.clone().unwrap_or_default(),
                v.mover.clone().unwrap_or_default(),
            ]
        })
        .collect();
    outln!("{}", table(&["PVC", "VM", "LAST SYNC", "LAG", "REPLICA HERE", "MOVER"], rows));
    if let Some(a) = &st.last_action {
        outln!("\nLast action: {} to {} (token {}): {}{}", a.action.as_str(), a.target_site, a.token, a.result, if a.message.is_empty() { String::new() } else { format!(" — {}", a.message) });
        print_steps(a);
    }
}

fn print_steps(a: &pdc_api::DrActionStatus) {
    let rows = a
        .steps
        .iter()
        .map(|s| {
            let took = match (&s.started, &s.finished) {
                (Some(b), Some(e)) => format!("{:.1}s", e.0.duration_since(b.0).as_secs_f64()),
                _ => String::new(),
            };
            vec![s.name.clone(), s.state.clone(), s.started.as_ref().map(|t| t.0.strftime("%H:%M:%S").to_string()).unwrap_or_default(), took, s.message.clone()]
        })
        .collect();
    outln!("{}", table(&["STEP", "STATE", "STARTED", "TOOK", "MESSAGE"], rows));
}

async fn act(cli: &Cli, c: kube::Client, action: DrAction, a: &ActionArgs) -> Result<ExitCode, CliError> {
    let ns = a.scope.namespace(&c)?;
    let api: Api<DrPlan> = Api::namespaced(c, &ns);
    let plan = api.get(&a.plan).await?;
    if let Some(running) = plan.status.as_ref().and_then(|s| s.last_action.as_ref()).filter(|x| x.result == "Running") {
        return Err(CliError::Usage(format!("{} is already carrying out {} (token {}); follow it with `pdcctl dr show {} -n {ns}`", a.plan, running.action.as_str(), running.token, a.plan)));
    }
    let here = plan.status.as_ref().and_then(|s| s.site.clone()).unwrap_or_else(|| "this cluster".into());
    if !a.dry_run && action != DrAction::Drill {
        let what = if action == DrAction::Failover { "Fail over" } else { "Relocate" };
        confirm::confirm(&format!("{what} {ns}/{} to site {here} (its VMs run there, DNS follows)", a.plan), a.yes)?;
    }
    let token = Timestamp::now().to_string();
    let body = serde_json::json!({"spec": {"action": action.as_str(), "actionToken": token, "dryRun": a.dry_run}});
    api.patch(&a.plan, &PatchParams::default(), &Patch::Merge(&body)).await?;
    outln!("{} of {ns}/{} asked at site {here} (token {token}){}", action.as_str(), a.plan, if a.dry_run { ", dry run" } else { "" });
    if a.no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    follow(cli, &api, action, a, &token, &ns).await
}

/// Print the steps of the action `token` as they change until it ends or the
/// deadline passes.
async fn follow(cli: &Cli, api: &Api<DrPlan>, action: DrAction, a: &ActionArgs, token: &str, ns: &str) -> Result<ExitCode, CliError> {
    let deadline = Deadline::start(a.timeout);
    let mut seen: Vec<(String, String)> = Vec::new();
    loop {
        let p = api.get(&a.plan).await?;
        if let Some(x) = p.status.as_ref().and_then(|s| s.last_action.clone()).filter(|x| x.token == token) {
            for s in &x.steps {
                let key = (s.name.clone(), format!("{} {}", s.state, s.message));
                if !seen.contains(&key) && !a.dry_run {
                    outln!("  {:>6.1}s  {:<11} {:<8} {}", deadline.elapsed().as_secs_f64(), s.name, s.state, s.message);
                    seen.retain(|(n, _)| *n != s.name);
                    seen.push(key);
                }
            }
            if x.result != "Running" {
                if a.dry_run || cli.format.for_people() {
                    outln!("");
                    print_steps(&x);
                }
                let ok = matches!(x.result.as_str(), "Succeeded" | "Planned");
                outln!("{}: {}{}", action.as_str(), x.result, if x.message.is_empty() { String::new() } else { format!(" — {}", x.message) });
                return Ok(exit::unless(ok, exit::FAILED));
            }
        }
        deadline.check(|| format!("stopped following {} of {ns}/{}; the action goes on: pdcctl dr show {} -n {ns}", action.as_str(), a.plan, a.plan))?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
