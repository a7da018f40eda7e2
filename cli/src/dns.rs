//! `pdcctl dns`: the records departments declare, what a manifest would change
//! (the operator's own pdc-core plan, offline), what the server answers, and taking
//! over the sets that already run in a zone ([`adopt`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use clap::Subcommand;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use pdc_api::conditions;
use pdc_api::labels as l;
use pdc_api::{DnsRecord, DnsRecordType, DnsZone, ZoneKind};
use pdc_core::dnsplan::{self, Change, RRset, RecordType, Zone};
use serde::Serialize;

use crate::connect::{ListScope, Scope};

mod adopt;
use crate::output::{Listing, Row, age, print_data};
use crate::{Cli, CliError, client, exit, outln};

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// DnsRecords and whether each is programmed (one department's: -d/-n, else the
    /// context's namespace; every department's: -A).
    Records {
        #[command(flatten)]
        scope: ListScope,
    },
    /// The DNS zones pdc writes to: server, serial, sets, pending changes, sync state.
    Zones,
    /// What applying DnsRecord manifests would change in DNS, without changing anything.
    Plan {
        /// A YAML file of DnsRecords (several documents allowed); `-` reads stdin.
        #[arg(short = 'f', long = "filename")]
        file: String,
        /// The department the records are for (-d or -n; default: the manifests'
        /// namespace, else the context's).
        #[command(flatten)]
        scope: Scope,
        /// Plan without a cluster, against nothing declared yet, for this subdomain.
        #[arg(long)]
        subdomain: Option<String>,
    },
    /// Ask the zone's server for a name: the answer, its DNSSEC signatures, and
    /// whether it matches the DnsRecords.
    Check {
        /// A full name, e.g. `www.so-y-te.daklak.gov.vn`.
        name: String,
        /// Record type to ask for (default: the declared types, else A and AAAA).
        #[arg(long = "type")]
        rtype: Option<String>,
        /// Ask this server (`address:port`) instead of the zone's.
        #[arg(long)]
        server: Option<String>,
    },
    /// Take over the record sets that already run in a zone: read it (AXFR), propose
    /// a DnsRecord for each set inside a department's subdomain, report the others;
    /// with --apply, create them. The zone is not changed.
    Adopt(adopt::Args),
}

pub async fn run(cli: &Cli, cmd: &Cmd) -> Result<ExitCode, CliError> {
    match cmd {
        Cmd::Records { scope } => records(cli, scope).await,
        Cmd::Zones => zones(cli).await,
        Cmd::Plan { file, scope, subdomain } => plan(cli, file, scope, subdomain.as_deref()).await,
        Cmd::Check { name, rtype, server } => check(cli, name, rtype.as_deref(), server.as_deref()).await,
        Cmd::Adopt(a) => adopt::run(cli, a).await,
    }
}

fn rtype(t: DnsRecordType) -> RecordType {
    t.core()
}

#[derive(Serialize)]
struct RecordRow {
    department: String,
    name: String,
    fqdn: String,
    #[serde(rename = "type")]
    rtype: String,
    values: Vec<String>,
    programmed: String,
    reason: String,
    message: String,
}

async fn records(cli: &Cli, scope: &ListScope) -> Result<ExitCode, CliError> {
    let api: Api<DnsRecord> = scope.api(client(cli).await?)?;
    let mut items = api.list(&scope.params()).await?.items;
    items.sort_by_key(|r| (r.namespace(), r.name_any()));
    let rows: Vec<(RecordRow, String)> = items
        .iter()
        .map(|r| {
            let st = r.status.clone().unwrap_or_default();
            let cond = conditions::find(&st.conditions, "Programmed");
            (
                RecordRow {
                    department: r.namespace().unwrap_or_default(),
                    name: r.name_any(),
                    fqdn: st.fqdn.clone().unwrap_or_else(|| r.spec.name.clone()),
                    rtype: rtype(r.spec.rtype).as_str().into(),
                    values: r.spec.values.clone(),
                    programmed: cond.map(|c| c.status.clone()).unwrap_or_else(|| "Unknown".into()),
                    reason: cond.map(|c| c.reason.clone()).unwrap_or_default(),
                    message: cond.map(|c| c.message.clone()).unwrap_or_default(),
                },
                age(r.metadata.creation_timestamp.as_ref()),
            )
        })
        .collect();
    if rows.is_empty() && cli.format.for_people() && !cli.no_headers {
        outln!("No DnsRecords.");
        return Ok(ExitCode::SUCCESS);
    }
    let table_rows = rows.iter().map(|(r, a)| {
        let programmed = format!("{} {}", r.programmed, r.reason).trim().to_string();
        Row::object::<DnsRecord>(&r.name, vec![r.department.clone(), r.name.clone(), r.fqdn.clone(), r.rtype.clone(), r.values.join(", "), programmed, a.clone()])
            .wide(vec![if r.message.is_empty() { "-".into() } else { r.message.clone() }])
    });
    let listing = Listing::objects(&["DEPARTMENT", "NAME", "FQDN", "TYPE", "VALUES", "PROGRAMMED", "AGE"]).wide(&["MESSAGE"]).rows(table_rows);
    cli.output().list(&listing, &rows.iter().map(|(r, _)| r).collect::<Vec<_>>())?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct ZoneRow {
    name: String,
    zone: String,
    kind: String,
    server: String,
    serial: Option<i64>,
    record_sets: i32,
    pending: i32,
    conflicts: i32,
    ready: String,
    reason: String,
    dnssec: String,
    last_sync: String,
}

async fn zones(cli: &Cli) -> Result<ExitCode, CliError> {
    let c = client(cli).await?;
    let mut items = Api::<DnsZone>::all(c).list(&ListParams::default()).await?.items;
    items.sort_by_key(|z| (z.spec.kind == ZoneKind::Reverse, z.spec.zone.clone()));
    let rows: Vec<ZoneRow> = items
        .iter()
        .map(|z| {
            let st = z.status.clone().unwrap_or_default();
            let ready = conditions::find(&st.conditions, "Ready");
            let dnssec = conditions::find(&st.conditions, "DnssecValid");
            ZoneRow {
                name: z.name_any(),
                zone: z.spec.zone.clone(),
                kind: format!("{:?}", z.spec.kind),
                server: format!("{}:{}", z.spec.server, z.spec.port),
                serial: st.serial,
                record_sets: st.record_sets,
                pending: st.pending,
                conflicts: st.conflicts,
                ready: ready.map(|c| c.status.clone()).unwrap_or_else(|| "Unknown".into()),
                reason: ready.map(|c| c.reason.clone()).unwrap_or_default(),
                dnssec: match (z.spec.dnssec, dnssec) {
                    (false, _) => "not required".into(),
                    (true, Some(c)) if c.status == "True" => "signed".into(),
                    (true, Some(_)) => "UNSIGNED".into(),
                    (true, None) => "unknown".into(),
                },
                last_sync: st.last_sync_time.as_ref().map(|t| format!("{} ago", age(Some(t)))).unwrap_or_else(|| "never".into()),
            }
        })
        .collect();
    let table_rows = rows.iter().map(|r| {
        Row::object::<DnsZone>(
            &r.name,
            vec![
                r.zone.clone(),
                r.kind.clone(),
                r.server.clone(),
                r.serial.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                r.record_sets.to_string(),
                r.pending.to_string(),
                r.conflicts.to_string(),
                format!("{} {}", r.ready, r.reason).trim().to_string(),
                r.dnssec.clone(),
                r.last_sync.clone(),
            ],
        )
        .wide(vec![r.name.clone()])
    });
    let listing = Listing::objects(&["ZONE", "KIND", "SERVER", "SERIAL", "SETS", "PENDING", "CONFLICTS", "READY", "DNSSEC", "LAST SYNC"]).wide(&["NAME"]).rows(table_rows);
    cli.output().list(&listing, &rows)?;
    Ok(ExitCode::SUCCESS)
}

/// The sets a department's records declare (the operator's own `DnsRecord::rrset`),
/// by object name; refusals as messages.
fn sets_of<'a>(records: impl Iterator<Item = &'a DnsRecord>, subdomain: &str) -> (BTreeMap<String, RRset>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for r in records {
        match r.rrset(subdomain, 0) {
            Ok(set) => {
                out.insert(r.name_any(), set);
            }
            Err(e) => errors.push(format!("{}: {e}", r.name_any())),
        }
    }
    (out, errors)
}

/// The zone `sets` make, by object name in order; a set whose name and type another
/// object already holds, or that breaks CNAME exclusivity, is left out (the operator
/// does the same) and, for the objects in `strict`, reported.
fn zone_of(sets: &BTreeMap<String, RRset>, strict: &BTreeSet<String>, problems: &mut Vec<String>) -> Zone {
    let mut z = Zone::new();
    for (obj, s) in sets {
        let key = (s.name.clone(), s.rtype);
        let mut trial = z.clone();
        let why = match trial.insert(key.clone(), s.clone()) {
            Some(_) => Some(format!("{obj}: {} {} is already declared by another DnsRecord", s.name, s.rtype.as_str())),
            None => dnsplan::check_cname_exclusive(&trial).err().map(|e| format!("{obj}: {e}")),
        };
        match why {
            None => z = trial,
            Some(msg) if strict.contains(obj) => problems.push(msg),
            Some(_) => {}
        }
    }
    z
}

#[derive(Serialize)]
struct PlanRow {
    action: String,
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    from: Vec<String>,
    to: Vec<String>,
}

async fn plan(cli: &Cli, file: &str, scope: &Scope, subdomain: Option<&str>) -> Result<ExitCode, CliError> {
    let text = if file == "-" { std::io::read_to_string(std::io::stdin())? } else { std::fs::read_to_string(file).map_err(|e| CliError::Usage(format!("{file}: {e}")))? };
    let mut manifests: Vec<DnsRecord> = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: serde_json::Value = serde::Deserialize::deserialize(doc).map_err(|e| CliError::Usage(format!("{file}: {e}")))?;
        if v.is_null() || v.get("kind").and_then(|k| k.as_str()) != Some("DnsRecord") {
            continue;
        }
        manifests.push(serde_json::from_value(v).map_err(|e| CliError::Usage(format!("{file}: not a DnsRecord: {e}")))?);
    }
    let ns = scope.explicit()?.or_else(|| manifests.iter().find_map(|m| m.namespace()));
    // What the department has declared now, and its subdomain.
    let (sub, existing) = match subdomain {
        Some(s) => (s.trim_end_matches('.').to_string(), Vec::new()),
        None => {
            let c = client(cli).await?;
            let ns = ns.unwrap_or_else(|| c.default_namespace().to_string());
            let nsobj = Api::<Namespace>::all(c.clone()).get(&ns).await?;
            let sub = nsobj
                .annotations()
                .get(l::SUBDOMAIN)
                .cloned()
                .ok_or_else(|| CliError::Usage(format!("namespace {ns} is not a department's (no {} annotation)", l::SUBDOMAIN)))?;
            (sub, Api::<DnsRecord>::namespaced(c, &ns).list(&ListParams::default()).await?.items)
        }
    };
    let (before, _) = sets_of(existing.iter().filter(|r| r.metadata.deletion_timestamp.is_none()), &sub);
    let (incoming, mut problems) = sets_of(manifests.iter(), &sub);
    let names: BTreeSet<String> = manifests.iter().map(|m| m.name_any()).collect();
    let mut after = before.clone();
    after.extend(incoming);
    let current = zone_of(&before, &BTreeSet::new(), &mut Vec::new());
    let desired = zone_of(&after, &names, &mut problems);
    let changes = dnsplan::plan(&current, &desired, &current.keys().cloned().collect()).changes;
    let rows: Vec<PlanRow> = changes
        .iter()
        .map(|c| {
            let (action, from, to) = match c {
                Change::Create(s) => ("create", None, Some(s)),
                Change::Replace { expect, new } => ("replace", Some(expect), Some(new)),
                Change::Delete(s) => ("delete", Some(s), None),
            };
            let s = to.or(from).map(|s| (s.name.clone(), s.rtype.as_str().to_string())).unwrap_or_default();
            let vals = |x: Option<&RRset>| x.map(|s| s.values.iter().cloned().collect()).unwrap_or_default();
            PlanRow { action: action.into(), name: s.0, rtype: s.1, from: vals(from), to: vals(to) }
        })
        .collect();
    let data = serde_json::json!({ "subdomain": sub, "changes": rows, "problems": problems });
    if rows.is_empty() && cli.format.for_people() && !cli.no_headers {
        outln!("No changes to DNS under {sub}.");
    } else {
        let table_rows = rows.iter().map(|r| Row::new(vec![r.action.clone(), r.name.clone(), r.rtype.clone(), r.from.join(", "), r.to.join(", ")]));
        cli.output().list(&Listing::values(&["ACTION", "NAME", "TYPE", "NOW", "AFTER"]).rows(table_rows), &data)?;
    }
    if cli.format.for_people() {
        for p in &problems {
            outln!("refused: {p}");
        }
    }
    Ok(exit::unless(problems.is_empty(), exit::FAILED))
}

/// A PTR is declared by the AddressAllocation of a named address.
async fn declared_ptr(c: &kube::Client, fqdn: &str) -> Option<BTreeSet<String>> {
    let a = pdc_core::ipam::Addr::from_reverse_name(fqdn)?;
    let allocs = Api::<pdc_api::AddressAllocation>::all(c.clone()).list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
    allocs
        .iter()
        .find(|x| pdc_core::ipam::Addr::parse(&x.spec.address).ok() == Some(a))
        .and_then(|x| x.spec.hostname.as_ref())
        .and_then(|h| dnsplan::canonical_value(RecordType::PTR, h).ok())
        .map(|h| BTreeSet::from([h]))
}

async fn check(cli: &Cli, name: &str, qtype: Option<&str>, server: Option<&str>) -> Result<ExitCode, CliError> {
    let fqdn = format!("{}.", name.trim_end_matches('.').to_ascii_lowercase());
    let c = client(cli).await.ok();
    // Without a cluster (`--server` given), there is nothing to compare with.
    let declared: Vec<DnsRecord> = match &c {
        Some(c) => match Api::<DnsRecord>::all(c.clone()).list(&ListParams::default()).await {
            Ok(l) => l.items.into_iter().filter(|r| r.status.as_ref().and_then(|s| s.fqdn.as_deref()) == Some(fqdn.as_str())).collect(),
            Err(e) if server.is_none() => return Err(e.into()),
            Err(_) => Vec::new(),
        },
        None => Vec::new(),
    };
    let addr: SocketAddr = match server {
        Some(s) => s.parse().map_err(|_| CliError::Usage(format!("--server {s:?} is not address:port")))?,
        None => {
            let zones = Api::<DnsZone>::all(c.clone().ok_or_else(|| CliError::Usage("no cluster".into()))?).list(&ListParams::default()).await?.items;
            let z = zones
                .iter()
                .filter(|z| z.spec.holds(&fqdn))
                .max_by_key(|z| z.spec.zone.len())
                .ok_or_else(|| CliError::Usage(format!("no DnsZone holds {fqdn}")))?;
            let ip: IpAddr = z.spec.server.parse().map_err(|_| CliError::Usage(format!("zone {} has server {:?}", z.spec.zone, z.spec.server)))?;
            SocketAddr::new(ip, u16::try_from(z.spec.port).unwrap_or(53))
        }
    };
    let types: Vec<String> = match qtype {
        Some(t) => vec![t.to_ascii_uppercase()],
        None if !declared.is_empty() => declared.iter().map(|r| rtype(r.spec.rtype).as_str().to_string()).collect::<BTreeSet<_>>().into_iter().collect(),
        None => vec!["A".into(), "AAAA".into()],
    };
    let srv = pdc_dns::Server::new(addr);
    let now = u32::try_from(k8s_openapi::jiff::Timestamp::now().as_second()).unwrap_or(u32::MAX);
    let mut report = Vec::new();
    let mut all_ok = true;
    for t in &types {
        let ans = pdc_dns::query(&srv, &fqdn, t, true).await.map_err(|e| CliError::Usage(e.to_string()))?;
        let got: BTreeSet<String> = ans.records.iter().filter(|r| &r.rtype == t).map(|r| r.value.clone()).collect();
        let mut want: Option<BTreeSet<String>> = declared.iter().find(|r| rtype(r.spec.rtype).as_str() == t).map(|r| {
            r.spec.values.iter().map(|v| dnsplan::canonical_value(rtype(r.spec.rtype), v).unwrap_or_else(|_| v.clone())).collect()
        });
        if t == "PTR"
            && let Some(c) = &c
        {
            want = declared_ptr(c, &fqdn).await;
        }
        let signed = ans.rrsigs.iter().any(|e| *e > now);
        // A DR-protected VM's name that the other site carries answers with that
        // site's addresses: nothing here to compare it with.
        let elsewhere = declared.iter().filter(|r| rtype(r.spec.rtype).as_str() == t).find_map(|r| {
            let c = conditions::find(&r.status.as_ref()?.conditions, "Programmed")?;
            (c.reason == conditions::AT_OTHER_SITE).then(|| c.message.clone())
        });
        if elsewhere.is_some() {
            want = None;
        }
        let matches = want.as_ref().map(|w| *w == got);
        all_ok &= matches.unwrap_or(true);
        report.push(serde_json::json!({
            "name": fqdn, "type": t, "server": addr.to_string(), "rcode": ans.rcode, "authoritative": ans.authoritative,
            "answer": ans.records.iter().map(|r| format!("{} {} {} {}", r.name, r.ttl, r.rtype, r.value)).collect::<Vec<_>>(),
            "dnssec": if signed { "signed" } else if ans.rrsigs.is_empty() { "unsigned" } else { "signature expired" },
            "rrsigs": ans.rrsigs.len(),
            "declared": want, "matches": matches, "otherSite": elsewhere,
        }));
    }
    print_check(cli, addr, &report)?;
    Ok(exit::unless(all_ok, exit::DNS_DIFFERS))
}

/// `dns check`'s report: data as asked, or a paragraph per name and type.
fn print_check(cli: &Cli, addr: SocketAddr, report: &[serde_json::Value]) -> Result<(), CliError> {
    if !cli.format.for_people() {
        return print_data(cli.format, &report);
    }
    for r in report {
        outln!("{} {} @ {}: {} ({}authoritative)", r["name"].as_str().unwrap_or_default(), r["type"].as_str().unwrap_or_default(), addr, r["rcode"].as_str().unwrap_or_default(), if r["authoritative"] == true { "" } else { "not " });
        for line in r["answer"].as_array().into_iter().flatten() {
            outln!("  {}", line.as_str().unwrap_or_default());
        }
        outln!("  DNSSEC: {} ({} RRSIG)", r["dnssec"].as_str().unwrap_or_default(), r["rrsigs"]);
        match (r["matches"].as_bool(), r["otherSite"].as_str()) {
            (_, Some(why)) => outln!("  not compared: {why}"),
            (Some(true), _) => outln!("  matches what pdc declares"),
            (Some(false), _) => outln!("  DIFFERS from what pdc declares: {}", r["declared"]),
            (None, _) => outln!("  pdc declares nothing here"),
        }
    }
    Ok(())
}
