//! `pdcctl dns adopt`: take over the record sets that already run in a zone. The
//! zone is read by transfer (AXFR, signed with the zone's TSIG key), each set inside
//! a department's subdomain that no DnsRecord owns becomes a proposed DnsRecord
//! holding exactly that set, marked [`l::ADOPT`]; applied, the operator finds the
//! zone already as declared and sends nothing. Sets outside every subdomain stay
//! foreign and are reported.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use pdc_api::conditions;
use pdc_api::labels as l;
use pdc_api::{DnsRecord, DnsZone, ZoneKind};
use pdc_core::dnsadopt::{self, Adoption, Department, Proposal, ZoneContents};
use pdc_core::dnsplan::RecordType;
use serde::Serialize;

use crate::output::{print_data, table};
use crate::wait::Deadline;
use crate::{Cli, CliError, client, exit, outln};

/// Field manager of the applied DnsRecords.
const MANAGER: &str = "pdcctl";
/// Applies in flight at once.
const CONCURRENCY: usize = 16;
/// Reasons a record will not become Programmed without a change.
const STUCK: [&str; 4] = ["Invalid", "Duplicate", "CnameConflict", "Conflict"];

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The zone to take over: its name (`daklak.gov.vn`) or its DnsZone's.
    #[arg(long)]
    zone: String,
    /// Only this department's subdomain (default: every department's).
    #[arg(short = 'd', long)]
    department: Option<String>,
    /// Transfer the zone from this server (`address:port`) instead of the DnsZone's.
    #[arg(long)]
    server: Option<String>,
    /// Create the proposed DnsRecords (server-side apply, field manager `pdcctl`).
    #[arg(long)]
    apply: bool,
    /// With --apply: go ahead without asking.
    #[arg(long, short = 'y')]
    yes: bool,
    /// With --apply: return once applied, without waiting until they are Programmed.
    #[arg(long)]
    no_wait: bool,
    /// With --apply: how long to wait until every record is Programmed (`0`: as long as it takes).
    #[arg(long, default_value = "10m", value_parser = crate::wait::parse_duration)]
    timeout: Duration,
    /// The operator's namespace, where the zone's TSIG Secret is.
    #[arg(long, default_value = "pdc-system")]
    operator_namespace: String,
}

/// What the command found and proposes, for `-o json|yaml`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    zone: String,
    server: String,
    serial: u32,
    departments: Vec<DeptRow>,
    records: Vec<serde_json::Value>,
    foreign: Vec<ForeignRow>,
    skipped: &'a [dnsadopt::Skipped],
    already_owned: usize,
}

#[derive(Serialize)]
struct DeptRow {
    department: String,
    subdomain: String,
    adopt: usize,
}

#[derive(Serialize)]
struct ForeignRow {
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    ttl: u32,
    values: Vec<String>,
}

pub async fn run(cli: &Cli, a: &Args) -> Result<ExitCode, CliError> {
    let c = client(cli).await?;
    let z = find_zone(&c, &a.zone).await?;
    let zone = z.spec.zone.trim_end_matches('.').to_ascii_lowercase();
    let key = read_key(&c, &z, &a.operator_namespace).await?;
    let server = server_addr(&z, a.server.as_deref())?;
    let (all, mine) = departments(&c, &zone, a.department.as_deref()).await?;
    let owned = owned_sets(&c, &all).await?;
    let t = pdc_dns::transfer_everything(&pdc_dns::Server::new(server), &zone, &key)
        .await
        .map_err(|e| CliError::Unavailable(format!("reading {zone} from {server}: {e}")))?;
    let subs: Vec<String> = all.iter().map(|d| d.subdomain.clone()).collect();
    let p = dnsadopt::propose(&ZoneContents { zone: &zone, sets: &t.sets, other: &t.other, split_txt: &t.split_txt }, &mine, &subs, &owned);
    let manifests: Vec<serde_json::Value> = p.adopt.iter().map(manifest).collect();
    let report = Report {
        zone: zone.clone(),
        server: server.to_string(),
        serial: t.serial,
        departments: mine.iter().map(|d| DeptRow { department: d.namespace.clone(), subdomain: d.subdomain.clone(), adopt: p.adopt.iter().filter(|x| x.namespace == d.namespace).count() }).collect(),
        records: manifests.clone(),
        foreign: p.foreign.iter().map(|s| ForeignRow { name: s.name.clone(), rtype: s.rtype.as_str().into(), ttl: s.ttl, values: s.values.iter().cloned().collect() }).collect(),
        skipped: &p.skipped,
        already_owned: p.already_owned,
    };
    if cli.format.for_people() {
        show(&report, &p, !a.apply)?;
    } else {
        print_data(cli.format, &report)?;
    }
    if !a.apply || p.adopt.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    crate::confirm::confirm(&format!("Adopt {} record set(s) of {zone} as DnsRecords (the zone is not changed)", p.adopt.len()), a.yes)?;
    apply(&c, &p.adopt, &manifests).await?;
    eprintln!("applied {} DnsRecord(s)", p.adopt.len());
    if a.no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    wait_programmed(&c, &p.adopt, Deadline::start(a.timeout)).await
}

/// The forward DnsZone named `zone` (by zone name or object name).
async fn find_zone(c: &Client, zone: &str) -> Result<DnsZone, CliError> {
    let want = zone.trim_end_matches('.').to_ascii_lowercase();
    let zones = Api::<DnsZone>::all(c.clone()).list(&ListParams::default()).await?.items;
    let z = zones
        .iter()
        .find(|z| z.spec.zone.trim_end_matches('.').eq_ignore_ascii_case(&want) || z.name_any() == want)
        .ok_or_else(|| {
            let known: Vec<String> = zones.iter().map(|z| z.spec.zone.clone()).collect();
            CliError::Usage(format!("no DnsZone for {zone}; the zones pdc writes to are: {} (`pdcctl dns zones`)", if known.is_empty() { "none".into() } else { known.join(", ") }))
        })?;
    if z.spec.kind != ZoneKind::Forward {
        return Err(CliError::Usage(format!("{} is a reverse zone: its PTRs follow the addresses pdc hands out; adopt a forward zone", z.spec.zone)));
    }
    Ok(z.clone())
}

/// The zone's TSIG key, from the Secret its DnsZone names. The secret is never shown.
async fn read_key(c: &Client, z: &DnsZone, ns: &str) -> Result<pdc_dns::Key, CliError> {
    let t = &z.spec.tsig;
    let s = Api::<Secret>::namespaced(c.clone(), ns)
        .get_opt(&t.secret_name)
        .await?
        .ok_or_else(|| CliError::Usage(format!("Secret {ns}/{} with the TSIG key of {} does not exist (give the operator's namespace with --operator-namespace)", t.secret_name, z.spec.zone)))?;
    let text = s
        .data
        .as_ref()
        .and_then(|d| d.get(&t.secret_key))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .ok_or_else(|| CliError::Usage(format!("Secret {ns}/{} has no text key {:?} (the base64 TSIG secret)", t.secret_name, t.secret_key)))?;
    pdc_dns::Key::from_base64(&t.name, &t.algorithm, &text).map_err(|e| CliError::Usage(format!("Secret {ns}/{}: {e}", t.secret_name)))
}

fn server_addr(z: &DnsZone, given: Option<&str>) -> Result<SocketAddr, CliError> {
    if let Some(s) = given {
        return s.parse().map_err(|_| CliError::Flag(format!("--server {s:?} is not address:port, e.g. 10.15.0.53:53")));
    }
    let ip: IpAddr = z.spec.server.parse().map_err(|_| CliError::Usage(format!("DnsZone {} has server {:?}, not an IP address", z.name_any(), z.spec.server)))?;
    let port = u16::try_from(z.spec.port).map_err(|_| CliError::Usage(format!("DnsZone {} has port {}", z.name_any(), z.spec.port)))?;
    Ok(SocketAddr::new(ip, port))
}

/// Every department's namespace and subdomain (from the annotation the Department
/// controller writes), and the ones that adopt: all, or the one asked for.
async fn departments(c: &Client, zone: &str, only: Option<&str>) -> Result<(Vec<Department>, Vec<Department>), CliError> {
    let nss = Api::<Namespace>::all(c.clone()).list(&ListParams::default()).await?.items;
    let all: Vec<Department> = nss
        .iter()
        .filter_map(|n| Some(Department { namespace: n.name_any(), subdomain: n.annotations().get(l::SUBDOMAIN)?.trim_end_matches('.').to_ascii_lowercase() }))
        .collect();
    let in_zone = |d: &&Department| d.subdomain == zone || d.subdomain.ends_with(&format!(".{zone}"));
    let mine: Vec<Department> = match only {
        None => all.iter().filter(in_zone).cloned().collect(),
        Some(name) => {
            let d = all.iter().find(|d| d.namespace == name).ok_or_else(|| CliError::Usage(format!("{name} is not a department: no namespace {name} with a {} annotation (`pdcctl department list`)", l::SUBDOMAIN)))?;
            if !in_zone(&d) {
                return Err(CliError::Usage(format!("department {name}'s subdomain {} is not in zone {zone}", d.subdomain)));
            }
            vec![d.clone()]
        }
    };
    Ok((all, mine))
}

/// The sets DnsRecords own already: what each declares and what it was programmed with.
async fn owned_sets(c: &Client, depts: &[Department]) -> Result<BTreeSet<(String, RecordType)>, CliError> {
    let sub: BTreeMap<&str, &str> = depts.iter().map(|d| (d.namespace.as_str(), d.subdomain.as_str())).collect();
    let keys = crate::pages::paged(&Api::<DnsRecord>::all(c.clone()), |r| {
        let ns = r.namespace().unwrap_or_default();
        let declared = sub.get(ns.as_str()).and_then(|s| r.rrset(s, 0).ok()).map(|set| (set.name, set.rtype));
        Some(r.programmed_key().into_iter().chain(declared).collect::<Vec<_>>())
    })
    .await?;
    Ok(keys.into_iter().flatten().collect())
}

/// The DnsRecord that adopts `a`: exactly the zone's set, TTL included.
fn manifest(a: &Adoption) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "DnsRecord",
        "metadata": {"name": a.object, "namespace": a.namespace, "annotations": {l::ADOPT: "true"}},
        "spec": {"name": a.name, "type": a.set.rtype.as_str(), "ttl": a.set.ttl, "values": a.set.values.iter().collect::<Vec<_>>()}
    })
}

fn show(r: &Report<'_>, p: &Proposal, manifests: bool) -> Result<(), CliError> {
    outln!("Zone {} from {} (serial {}): {} set(s) to adopt, {} already pdc's, {} foreign, {} skipped", r.zone, r.server, r.serial, p.adopt.len(), p.already_owned, p.foreign.len(), p.skipped.len());
    outln!("");
    let rows = r.departments.iter().map(|d| vec![d.department.clone(), d.subdomain.clone(), d.adopt.to_string()]).collect();
    outln!("{}", table(&["DEPARTMENT", "SUBDOMAIN", "TO ADOPT"], rows));
    if !r.foreign.is_empty() {
        outln!("\nForeign (outside every department's subdomain; pdc leaves them alone):");
        let rows = r.foreign.iter().map(|f| vec![f.name.clone(), f.rtype.clone(), f.ttl.to_string(), f.values.join(", ")]).collect();
        outln!("{}", table(&["NAME", "TYPE", "TTL", "VALUES"], rows));
    }
    if !r.skipped.is_empty() {
        outln!("\nSkipped (inside a subdomain, not taken over):");
        let rows = r.skipped.iter().map(|s| vec![s.name.clone(), s.rtype.clone(), s.reason.clone()]).collect();
        outln!("{}", table(&["NAME", "TYPE", "REASON"], rows));
    }
    if manifests && !r.records.is_empty() {
        outln!("\nProposed DnsRecords (apply with --apply, or save with -o yaml):");
        for m in &r.records {
            outln!("---\n{}", serde_yaml::to_string(m).map_err(|e| CliError::Format(e.to_string()))?.trim_end());
        }
    } else if p.adopt.is_empty() {
        outln!("\nNothing to adopt.");
    }
    Ok(())
}

/// Server-side apply of the proposed DnsRecords, several at once.
async fn apply(c: &Client, adopt: &[Adoption], manifests: &[serde_json::Value]) -> Result<(), CliError> {
    let pp = PatchParams::apply(MANAGER);
    futures::stream::iter(adopt.iter().zip(manifests))
        .map(|(a, m)| {
            let api: Api<DnsRecord> = Api::namespaced(c.clone(), &a.namespace);
            let pp = pp.clone();
            async move { api.patch(&a.object, &pp, &Patch::Apply(m)).await.map(|_| ()).map_err(|e| (format!("{}/{}", a.namespace, a.object), e)) }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .map_err(|(obj, e)| CliError::Refused(format!("applying DnsRecord {obj}: {}; records applied before it stay (run the command again to apply the rest)", crate::connect::describe(&e))))?;
    Ok(())
}

/// Where one adopted record stands.
enum Standing {
    Waiting,
    Programmed,
    /// Refused for a reason that needs a change: the message.
    Stuck(String),
}

fn standing(r: &DnsRecord) -> Standing {
    let Some(c) = r.status.as_ref().and_then(|s| conditions::find(&s.conditions, "Programmed")) else { return Standing::Waiting };
    if c.observed_generation != r.metadata.generation {
        Standing::Waiting
    } else if c.status == "True" {
        Standing::Programmed
    } else if STUCK.contains(&c.reason.as_str()) {
        Standing::Stuck(format!("{}/{}: {} ({})", r.namespace().unwrap_or_default(), r.name_any(), c.message, c.reason))
    } else {
        Standing::Waiting
    }
}

/// Wait until every adopted record is Programmed, following a watch (one list, then
/// the changes: no polling of thousands of records), with progress on stderr at most
/// once a second; exit 1 when one is refused, 4 when the deadline passes first.
async fn wait_programmed(c: &Client, adopt: &[Adoption], deadline: Deadline) -> Result<ExitCode, CliError> {
    use kube::runtime::{WatchStreamExt, watcher};
    let namespaces: BTreeSet<&str> = adopt.iter().map(|a| a.namespace.as_str()).collect();
    let api: Api<DnsRecord> = match namespaces.first() {
        Some(ns) if namespaces.len() == 1 => Api::namespaced(c.clone(), ns),
        _ => Api::all(c.clone()),
    };
    let mut state: BTreeMap<(String, String), bool> = adopt.iter().map(|a| ((a.namespace.clone(), a.object.clone()), false)).collect();
    let total = state.len();
    let (mut done, mut stuck) = (0usize, BTreeMap::<(String, String), String>::new());
    let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff().applied_objects());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let (mut shown, mut shown_at) = (usize::MAX, None);
    loop {
        tokio::select! {
            ev = stream.try_next() => match ev {
                Ok(Some(r)) => {
                    let key = (r.namespace().unwrap_or_default(), r.name_any());
                    let Some(was) = state.get_mut(&key) else { continue };
                    let now = standing(&r);
                    let is = matches!(now, Standing::Programmed);
                    done = done + usize::from(is) - usize::from(*was);
                    *was = is;
                    match now {
                        Standing::Stuck(m) => stuck.insert(key, m),
                        _ => stuck.remove(&key),
                    };
                }
                Ok(None) => return Err(CliError::Unavailable("the watch of DnsRecords ended".into())),
                Err(e) => eprintln!("warning: watching DnsRecords: {e}; retrying"),
            },
            _ = tick.tick() => deadline.check(|| format!("{} of {total} adopted DnsRecords not Programmed (`pdcctl dns records -A` tells why)", total - done))?,
        }
        let second = deadline.elapsed().as_secs();
        if done != shown && (done == total || shown_at != Some(second)) {
            eprintln!("{done}/{total} programmed ({:.1} s)", deadline.elapsed().as_secs_f64());
            (shown, shown_at) = (done, Some(second));
        }
        if done == total {
            return Ok(ExitCode::SUCCESS);
        }
        if !stuck.is_empty() {
            for m in stuck.values() {
                eprintln!("error: {m}");
            }
            return Ok(ExitCode::from(exit::FAILED));
        }
    }
}
