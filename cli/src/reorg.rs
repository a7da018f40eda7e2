//! `pdcctl reorg`: the province's reorganization acts. `plan` shows every change an
//! act comes down to (the planner the operator uses), against the cluster or, with
//! `--estate`, offline from manifests (`kubectl get departments,tenantvms,
//! tenantvolumes,addressclaims,dnsrecords,provinces -A -o yaml`).

use std::process::ExitCode;

use clap::Subcommand;
use kube::Api;
use kube::api::ListParams;
use pdc_api::estate::{self, Objects};
use pdc_api::{AddressClaim, Department, DnsRecord, Province, Reorganization, TenantVM, TenantVolume};
use pdc_core::reorg::{self, Fate, Plan};

use crate::output::{Listing, Row, out, print_data, table};
use crate::{Cli, CliError, client, exit};

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Every change an act would make, and what it refuses (exit 1 when refused).
    Plan {
        /// The act: a Reorganization manifest.
        #[arg(long, short = 'f')]
        file: String,
        /// Plan offline against these manifests instead of the cluster (multi-document
        /// YAML or a List; repeat for several files).
        #[arg(long)]
        estate: Vec<String>,
        /// The province domain when the estate files hold no Province.
        #[arg(long)]
        domain: Option<String>,
    },
    /// An act in the cluster: its plan summary, phase and steps.
    Show { name: String },
    /// Carry an act out (after a confirmation), following its steps as they run
    /// until it is done or waits for a date (the end of the transition or of the
    /// retention period). Exit 1 when the act is refused.
    Apply {
        name: String,
        /// The token of this request (any new value applies again; default: the time).
        #[arg(long)]
        token: Option<String>,
        /// Go ahead without asking.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Ask and return without following the steps.
        #[arg(long)]
        no_wait: bool,
        /// How long to follow the steps (`0`: as long as it takes).
        #[arg(long, default_value = "30m", value_parser = crate::wait::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Every act in the cluster, a line each: phase, current step, steps done.
    Status,
}

pub async fn run(cli: &Cli, cmd: &Cmd) -> Result<ExitCode, CliError> {
    match cmd {
        Cmd::Plan { file, estate, domain } => {
            let act = read_act(file)?;
            let (objects, dom) = if estate.is_empty() { from_cluster(cli).await? } else { from_files(estate)? };
            let dom = domain.clone().or(dom).ok_or_else(|| CliError::Usage("no Province in the estate: pass --domain daklak.gov.vn".into()))?;
            let plan = reorg::plan(&estate::act(&act.spec), &estate::estate(&objects, &dom));
            if cli.format.for_people() {
                print_plan(&act, &plan);
            } else {
                print_data(cli.format, &plan)?;
            }
            Ok(exit::unless(plan.refusals.is_empty(), exit::FAILED))
        }
        Cmd::Apply { name, token, yes, no_wait, timeout } => apply(cli, name, token.clone(), *yes, *no_wait, *timeout).await,
        Cmd::Status => status(cli).await,
        Cmd::Show { name } => {
            let r = Api::<Reorganization>::all(client(cli).await?).get(name).await?;
            if cli.output().object(&r)? {
                return Ok(ExitCode::SUCCESS);
            }
            let st = r.status.clone().unwrap_or_default();
            out(format!("{} ({}), effective {}: phase {}", name, r.spec.reference, r.spec.effective_date, st.phase.as_deref().unwrap_or("-")));
            out(table(&["CHANGE", "COUNT"], st.summary.iter().map(|(k, v)| vec![k.clone(), v.to_string()]).collect()));
            out(table(&["STEP", "STATE", "MESSAGE"], st.steps.iter().map(|s| vec![s.name.clone(), s.state.clone(), s.message.clone()]).collect()));
            for reason in &st.refusals {
                out(format!("refused: {reason}"));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read_act(file: &str) -> Result<Reorganization, CliError> {
    let text = std::fs::read_to_string(file).map_err(|e| CliError::Usage(format!("reading {file}: {e}")))?;
    serde_yaml::from_str(&text).map_err(|e| CliError::Usage(format!("{file} is not a Reorganization: {e}")))
}

async fn from_cluster(cli: &Cli) -> Result<(Objects, Option<String>), CliError> {
    let c = client(cli).await?;
    let lp = ListParams::default();
    let domain = Api::<Province>::all(c.clone()).list(&lp).await?.items.into_iter().next().map(|p| p.spec.domain);
    let objects = Objects {
        departments: Api::<Department>::all(c.clone()).list(&lp).await?.items,
        vms: Api::<TenantVM>::all(c.clone()).list(&lp).await?.items,
        volumes: Api::<TenantVolume>::all(c.clone()).list(&lp).await?.items,
        claims: Api::<AddressClaim>::all(c.clone()).list(&lp).await?.items,
        records: Api::<DnsRecord>::all(c).list(&lp).await?.items,
    };
    Ok((objects, domain))
}

/// The objects in manifest files: each document an object or a `List` of them.
fn from_files(files: &[String]) -> Result<(Objects, Option<String>), CliError> {
    use serde::Deserialize;
    let mut o = Objects::default();
    let mut domain = None;
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| CliError::Usage(format!("reading {f}: {e}")))?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = serde_yaml::Value::deserialize(doc).map_err(|e| CliError::Usage(format!("{f}: {e}")))?;
            let items = match v.get("items").and_then(|i| i.as_sequence()) {
                Some(items) => items.clone(),
                None => vec![v],
            };
            for item in items {
                add_object(&mut o, &mut domain, item).map_err(|e| CliError::Usage(format!("{f}: {e}")))?;
            }
        }
    }
    Ok((o, domain))
}

fn add_object(o: &mut Objects, domain: &mut Option<String>, v: serde_yaml::Value) -> Result<(), serde_yaml::Error> {
    match v.get("kind").and_then(|k| k.as_str()).unwrap_or_default() {
        "Department" => o.departments.push(serde_yaml::from_value(v)?),
        "TenantVM" => o.vms.push(serde_yaml::from_value(v)?),
        "TenantVolume" => o.volumes.push(serde_yaml::from_value(v)?),
        "AddressClaim" => o.claims.push(serde_yaml::from_value(v)?),
        "DnsRecord" => o.records.push(serde_yaml::from_value(v)?),
        "Province" => *domain = Some(serde_yaml::from_value::<Province>(v)?.spec.domain),
        _ => {}
    }
    Ok(())
}

fn fate(f: &Fate) -> String {
    match f {
        Fate::Merged { into } => format!("merged into {into}"),
        Fate::Dissolved { lookups_go_to: Some(t) } => format!("dissolved (lookups go to {t})"),
        Fate::Dissolved { lookups_go_to: None } => "dissolved".into(),
        Fate::Renamed { display_name, new_name: Some(n) } => format!("renamed {display_name:?}, moves to {n}"),
        Fate::Renamed { display_name, new_name: None } => format!("renamed {display_name:?}"),
    }
}

fn print_plan(act: &Reorganization, p: &Plan) {
    out(format!(
        "{} — effective {}; old names answer until {}; archives and held addresses kept until {}",
        act.spec.reference,
        p.effective.format(),
        p.transition_ends.format(),
        p.retention_ends.format()
    ));
    let units = p
        .units
        .iter()
        .map(|u| vec![u.unit.clone(), fate(&u.fate), u.vms_moved.len().to_string(), u.vms_halted.len().to_string(), u.volumes_moved.len().to_string(), u.claims_moved.len().to_string(), u.records_redeclared.len().to_string()])
        .collect();
    section("UNITS", table(&["UNIT", "FATE", "VMS MOVED", "VMS HALTED", "VOLUMES MOVED", "CLAIMS MOVED", "NAMES REDECLARED"], units));
    let created = p.new_units.iter().map(|n| vec![n.name.clone(), n.display_name.clone(), n.code.clone(), n.from.join(", ")]).collect::<Vec<_>>();
    if !created.is_empty() {
        section("DEPARTMENTS CREATED", table(&["NAME", "DISPLAY NAME", "CODE", "FROM"], created));
    }
    let moves = p.units.iter().flat_map(|u| u.vms_moved.iter().map(move |m| vec![format!("{}/{}", u.unit, m.vm), m.to.clone(), m.addresses.join(" "), "re-claimed in the successor's subnets; restarts once".into()]));
    section("VMS MOVED", table(&["VM", "TO", "ADDRESSES NOW", "ADDRESSES"], moves.collect()));
    print_moved_data(p);
    let archives = p.units.iter().flat_map(|u| u.archives.iter().map(move |a| vec![format!("{}/{}", u.unit, a.vm), "halted".into(), a.disks.join(" "), a.until.format()]));
    section("VMS HALTED, DISKS ARCHIVED", table(&["VM", "STATE", "DISKS SNAPSHOTTED", "KEPT UNTIL"], archives.collect()));
    let volumes = p.units.iter().flat_map(|u| {
        u.volumes_archived.iter().map(move |a| vec![format!("{}/{}", u.unit, a.volume), a.vm.clone().map_or_else(|| "none".into(), |vm| format!("{vm} (halted first)")), a.until.format()])
    });
    section("VOLUMES ARCHIVED (snapshotted, kept until the retention date)", table(&["VOLUME", "ATTACHED TO", "KEPT UNTIL"], volumes.collect()));
    let aliases = p.aliases.iter().map(|a| vec![a.from.clone(), a.kind.to_string(), a.to.clone(), a.until.format()]).collect();
    section("OLD NAMES ANSWERING (signed, removed after the transition)", table(&["NAME", "TYPE", "TARGET", "UNTIL"], aliases));
    let releases = p.units.iter().flat_map(|u| u.releases.iter().map(move |r| vec![u.unit.clone(), r.addresses.join(" "), r.on.format(), r.reusable_from.format()]));
    section("ADDRESSES RELEASED", table(&["UNIT", "ADDRESSES", "RELEASED", "REUSABLE FROM"], releases.collect()));
    if !p.codes.is_empty() {
        let codes = p.codes.iter().map(|c| vec![c.unit.clone(), c.old.clone(), c.new.clone(), c.deadline.format()]).collect();
        section("CODES REISSUED", table(&["UNIT", "OLD", "NEW", "OLD CODE OUT OF USE BY"], codes));
    }
    if p.refusals.is_empty() {
        let steps: Vec<&str> = reorg::STEPS.iter().map(|s| s.as_str()).collect();
        out(format!("\nThe plan holds. Its steps: {}. (This version carries out every step: VMs, volumes and standalone claims move with a merge and with a rename to a new slug, and each old name answers as a signed CNAME of its new one until the transition ends; a DNAME row takes the place of the CNAMEs below it once they answer and every set below its name is pdc's.)", steps.join(", ")));
    } else {
        out("\nREFUSED — change the act or the estate first:");
        for r in &p.refusals {
            out(format!("  - {r}"));
        }
    }
}

/// The volumes and standalone claims that move with a merge.
fn print_moved_data(p: &Plan) {
    let to = |f: &Fate| match f {
        Fate::Merged { into } => into.clone(),
        Fate::Renamed { new_name: Some(n), .. } => n.clone(),
        _ => String::new(),
    };
    let volumes = p.units.iter().flat_map(|u| u.volumes_moved.iter().map(move |v| vec![format!("{}/{v}", u.unit), to(&u.fate), "restored from a snapshot; charged to the successor's quota".into()]));
    section("VOLUMES MOVED", table(&["VOLUME", "TO", "DATA"], volumes.collect()));
    let claims = p.units.iter().flat_map(|u| u.claims_moved.iter().map(move |c| vec![format!("{}/{c}", u.unit), to(&u.fate), "re-claimed in the successor's subnets, same zone; names follow".into()]));
    section("STANDALONE CLAIMS MOVED", table(&["CLAIM", "TO", "ADDRESSES"], claims.collect()));
}

fn section(title: &str, body: String) {
    out(format!("\n{title}"));
    out(if body.lines().count() <= 1 { "  (none)".to_string() } else { body });
}

/// Steps done out of all, and the current step with its state and message.
fn progress(st: &pdc_api::ReorganizationStatus) -> (usize, usize, String) {
    let done = st.steps.iter().filter(|s| s.state == "Done").count();
    let current = st
        .current_step
        .as_ref()
        .and_then(|c| st.steps.iter().find(|s| &s.name == c))
        .map(|s| if s.message.is_empty() { format!("{} {}", s.name, s.state) } else { format!("{} {}: {}", s.name, s.state, s.message) })
        .unwrap_or_default();
    (done, st.steps.len(), current)
}

async fn status(cli: &Cli) -> Result<ExitCode, CliError> {
    let acts = Api::<Reorganization>::all(client(cli).await?).list(&ListParams::default()).await?.items;
    let rows = acts.iter().map(|a| {
        let st = a.status.clone().unwrap_or_default();
        let (done, all, current) = progress(&st);
        let name = a.metadata.name.clone().unwrap_or_default();
        let cells = vec![name.clone(), a.spec.reference.clone(), a.spec.effective_date.clone(), st.phase.unwrap_or_else(|| "-".into()), format!("{done}/{all}"), current];
        Row::object::<Reorganization>(&name, cells).wide(vec![st.token.unwrap_or_default()])
    });
    let listing = Listing::objects(&["NAME", "REFERENCE", "EFFECTIVE", "PHASE", "STEPS", "CURRENT"]).wide(&["TOKEN"]).rows(rows);
    cli.output().list(&listing, &acts)?;
    Ok(ExitCode::SUCCESS)
}

/// Phases in which an apply has gone as far as it can today.
fn settled(phase: Option<&str>) -> bool {
    matches!(phase, Some("Done" | "InTransition" | "Retained"))
}

async fn apply(cli: &Cli, name: &str, token: Option<String>, yes: bool, no_wait: bool, timeout: std::time::Duration) -> Result<ExitCode, CliError> {
    let api = Api::<Reorganization>::all(client(cli).await?);
    let act = api.get(name).await?;
    let planned = act.status.as_ref().and_then(|s| pdc_api::conditions::find(&s.conditions, "Planned")).map(|c| (c.status.clone(), c.message.clone()));
    if let Some((status, message)) = &planned
        && status == "False"
    {
        eprintln!("{name} is refused: {message}");
        return Ok(ExitCode::from(exit::FAILED));
    }
    crate::confirm::confirm(&format!("Carry out {name} ({}), effective {}", act.spec.reference, act.spec.effective_date), yes)?;
    let token = token.unwrap_or_else(|| k8s_openapi::jiff::Timestamp::now().to_string());
    let patch = serde_json::json!({"spec": {"action": "Apply", "actionToken": token}});
    api.patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await?;
    eprintln!("{name}: apply requested (token {token})");
    if no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    follow(&api, name, crate::wait::Deadline::start(timeout)).await
}

/// Print each step's change as it happens until the act settles or is refused.
async fn follow(api: &Api<Reorganization>, name: &str, deadline: crate::wait::Deadline) -> Result<ExitCode, CliError> {
    let mut last = String::new();
    loop {
        let a = api.get(name).await?;
        let st = a.status.clone().unwrap_or_default();
        let (done, all, current) = progress(&st);
        let line = format!("[{done}/{all}] {} {current}", st.phase.as_deref().unwrap_or("-"));
        if line != last {
            eprintln!("{} {line}", crate::wait::format_duration(std::time::Duration::from_secs(deadline.elapsed().as_secs())));
            last = line;
        }
        if let Some(c) = pdc_api::conditions::find(&st.conditions, "Applied").filter(|c| c.status == "False" && (c.reason == "Refused" || c.reason == "NotAvailable")) {
            eprintln!("{name} was not started: {}", c.message);
            return Ok(ExitCode::from(exit::FAILED));
        }
        if settled(st.phase.as_deref()) && st.token.is_some() {
            out(table(&["STEP", "STATE", "FINISHED", "MESSAGE"], st.steps.iter().map(|s| vec![s.name.clone(), s.state.clone(), s.finished.as_ref().map(|t| t.0.to_string()).unwrap_or_default(), s.message.clone()]).collect()));
            return Ok(ExitCode::SUCCESS);
        }
        deadline.check(|| format!("{name} is still {}; `pdcctl reorg show {name}` follows it", st.phase.as_deref().unwrap_or("pending")))?;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
