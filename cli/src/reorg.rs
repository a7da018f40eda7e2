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

use crate::output::{out, print_data, table};
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
    let archives = p.units.iter().flat_map(|u| u.archives.iter().map(move |a| vec![format!("{}/{}", u.unit, a.vm), "halted".into(), a.disks.join(" "), a.until.format()]));
    section("VMS HALTED, DISKS ARCHIVED", table(&["VM", "STATE", "DISKS SNAPSHOTTED", "KEPT UNTIL"], archives.collect()));
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
        out(format!("\nThe plan holds. Its steps: {}. (This version carries out Freeze, CreateUnits, ReissueCodes and Retire; an act with work in another step is planned but not started.)", steps.join(", ")));
    } else {
        out("\nREFUSED — change the act or the estate first:");
        for r in &p.refusals {
            out(format!("  - {r}"));
        }
    }
}

fn section(title: &str, body: String) {
    out(format!("\n{title}"));
    out(if body.lines().count() <= 1 { "  (none)".to_string() } else { body });
}
