//! Benchmark: `pdcctl dns adopt --apply --yes` of a zone that already holds N record
//! sets (default 20,000) inside department subdomains, on a real DNSSEC-signing Knot
//! DNS and a fresh real control plane with the operator running, against raw creates
//! of the same DnsRecords by a plain client in the same run.
//!
//! The zone is filled before pdc with 2·N A sets: N under ten departments that the
//! command adopts (`don-vi-*`), N under ten others (`goc-*`) for the baseline. The
//! baseline POSTs N DnsRecords identical to the ones the command proposes (same
//! names, specs, TTL, the adoption marker), `--concurrency` in flight, and waits
//! until all are Programmed; the command transfers the zone (AXFR), proposes, applies
//! (server-side apply, 16 in flight, as the baseline) and waits until all are Programmed, timed from
//! start to exit. Neither may change the zone: the SOA serial and the UPDATE count
//! are checked at the end. API requests are the API server's own counts
//! (`apiserver_request_total`, group pdc.io: pdcctl and operator together) and the
//! operator's (`pdc_kube_api_requests_total`); pdcctl's peak RSS from `/usr/bin/time`.
//!
//!     bash bench/adopt-dns.sh [--count 20000] [--concurrency 16] [--out FILE]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use kube::api::{Api, ListParams};
use pdc_api::DnsRecord;
use pdc_api::conditions::{self, READY};
use pdc_core::dnsplan::{Change, RRset, RecordType};
use pdc_tests::addressing::load_plan;
use pdc_tests::bench::{Args, Timings, create_all, programmed, record_addr, wait_leader, watch_ready, write_result};
use pdc_tests::cluster::{private_env, wait_for};
use pdc_tests::dns::{KnotServer, register_zones};
use pdc_tests::operator::{ApiRequests, OperatorOptions, OperatorProcess};

const ZONE: &str = "daklak.gov.vn";
const DEPARTMENTS: usize = 10;
/// Changes per UPDATE when the zone is filled.
const FILL_BATCH: usize = 200;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-adopt-dns: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn depts(prefix: &str) -> Vec<String> {
    (0..DEPARTMENTS).map(|i| format!("{prefix}-{i:02}")).collect()
}

/// The `i`th set of a side: `host-iiiii` A in `depts[i % len]`.
fn set_of(depts: &[String], i: usize) -> (String, RRset) {
    let d = depts.get(i % depts.len()).cloned().unwrap_or_default();
    let name = format!("host-{i:05}.{d}.{ZONE}.");
    (d, RRset { name, rtype: RecordType::A, ttl: 300, values: [record_addr(i)].into() })
}

/// Fill the zone before pdc: N sets for each side, `FILL_BATCH` per UPDATE.
async fn fill(knot: &KnotServer, sides: &[&[String]], n: usize) -> Result<f64, String> {
    let (server, key) = (knot.server(), knot.key().map_err(|e| e.to_string())?);
    let changes: Vec<Change> = sides.iter().flat_map(|d| (0..n).map(|i| Change::Create(set_of(d, i).1))).collect();
    let start = Instant::now();
    for chunk in changes.chunks(FILL_BATCH) {
        pdc_dns::update(&server, ZONE, &key, chunk).await.map_err(|e| e.to_string())?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// The DnsRecord `pdcctl dns adopt` proposes for the `i`th set of a side.
fn adopted_record(depts: &[String], i: usize) -> Result<(String, DnsRecord), String> {
    let (d, s) = set_of(depts, i);
    let rel = format!("host-{i:05}");
    let obj = serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "DnsRecord",
        "metadata": {"name": pdc_core::dnsadopt::object_name(&rel, s.rtype), "annotations": {pdc_api::labels::ADOPT: "true"}},
        "spec": {"name": rel, "type": "A", "ttl": s.ttl, "values": s.values}
    });
    Ok((d, serde_json::from_value(obj).map_err(|e| e.to_string())?))
}

/// `apiserver_request_total` for group pdc.io, summed by verb.
fn server_requests(kubeconfig: &Path) -> Result<BTreeMap<String, f64>, String> {
    let o = std::process::Command::new("kubectl").args(["get", "--raw", "/metrics"]).env("KUBECONFIG", kubeconfig).output().map_err(|e| format!("kubectl: {e}"))?;
    let mut out = BTreeMap::new();
    for line in String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.starts_with("apiserver_request_total{") && l.contains("group=\"pdc.io\"")) {
        let verb = line.split("verb=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("?").to_string();
        *out.entry(verb).or_insert(0.0) += line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    }
    if out.is_empty() {
        return Err("no apiserver_request_total for pdc.io in the API server's /metrics".into());
    }
    Ok(out)
}

fn delta(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0))).filter(|(_, v)| *v > 0.0).collect()
}

fn op_delta(after: &ApiRequests, before: &ApiRequests) -> ApiRequests {
    ApiRequests { by_verb: delta(&after.by_verb, &before.by_verb) }
}

fn per_object(by_verb: &BTreeMap<String, f64>, n: usize) -> serde_json::Value {
    let total: f64 = by_verb.values().sum();
    // The API server names verbs in capitals (POST, PATCH, APPLY, PUT, DELETE).
    let writes: f64 = by_verb.iter().filter(|(v, _)| ["POST", "PUT", "PATCH", "APPLY", "DELETE"].contains(&v.to_ascii_uppercase().as_str())).map(|(_, n)| n).sum();
    serde_json::json!({"by_verb": by_verb, "total": total, "writes": writes, "per_object": total / n.max(1) as f64, "writes_per_object": writes / n.max(1) as f64})
}

/// Run `pdcctl dns adopt --zone ZONE --apply --yes` under /usr/bin/time: (seconds,
/// peak RSS MiB, output).
fn adopt(kubeconfig: &Path) -> Result<(f64, f64, String), String> {
    let bin = pdc_tests::operator::workspace_binary("pdcctl").map_err(|e| e.to_string())?;
    let start = Instant::now();
    let o = std::process::Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(bin)
        .args(["dns", "adopt", "--zone", ZONE, "--apply", "--yes", "--timeout", "30m"])
        .env("KUBECONFIG", kubeconfig)
        .output()
        .map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    let (out, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned());
    if !o.status.success() {
        return Err(format!("pdcctl dns adopt failed: {out}{err}"));
    }
    let kib: f64 = err.lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or(0.0);
    Ok((secs, kib / 1024.0, format!("{out}{err}")))
}

fn updates_sent(op: &OperatorProcess) -> f64 {
    op.metric(&format!("pdc_dns_update_duration_seconds_count{{zone=\"{ZONE}\"}}")).unwrap_or(0.0)
}

/// The baseline: the same DnsRecords POSTed by this process, then all Programmed.
async fn baseline(env: &pdc_tests::cluster::TestEnv, op: &OperatorProcess, side: &[String], n: usize, conc: usize) -> Result<(f64, serde_json::Value, ApiRequests), String> {
    let client = env.client().await.map_err(|e| e.to_string())?;
    let (before, op_before) = (server_requests(&env.kubeconfig)?, op.api_requests().map_err(|e| e.to_string())?);
    let t: Timings<(String, String)> = Timings::default();
    let watch = watch_ready::<DnsRecord>(client.clone(), t.clone(), programmed);
    let start = Instant::now();
    create_all(&client, n, conc, &t, |i| adopted_record(side, i)).await?;
    t.wait_ready(n, Duration::from_secs(3600)).await?;
    let secs = start.elapsed().as_secs_f64();
    watch.abort();
    let reqs = per_object(&delta(&server_requests(&env.kubeconfig)?, &before), n);
    Ok((secs, reqs, op_delta(&op.api_requests().map_err(|e| e.to_string())?, &op_before)))
}

async fn run() -> Result<(), String> {
    let a = Args::parse(20_000, "bench/results/adopt-dns.json");
    let n = a.count;
    eprintln!("starting a fresh control plane, Knot DNS and the operator");
    let (env, _plane) = private_env("bench-adopt-dns").await.map_err(|e| e.to_string())?;
    let client = env.client().await.map_err(|e| e.to_string())?;
    let knot = KnotServer::start(&env.dir, &[ZONE]).map_err(|e| e.to_string())?;
    let op = OperatorProcess::start(&env.operator_kubeconfig, &OperatorOptions::new("bench-operator"), &env.dir).map_err(|e| e.to_string())?;
    wait_leader(&op).await?;
    let (adopt_side, base_side) = (depts("don-vi"), depts("goc"));
    load_plan(&client, "app", 24, &[adopt_side.clone(), base_side.clone()].concat()).await.map_err(|e| e.to_string())?;

    eprintln!("filling the zone with {} A sets ({FILL_BATCH} per UPDATE)", 2 * n);
    let fill_s = fill(&knot, &[&adopt_side, &base_side], n).await?;
    register_zones(&client, &knot, "knot-tsig").await.map_err(|e| e.to_string())?;
    wait_for(&Api::<pdc_api::DnsZone>::all(client.clone()), "daklak-gov-vn", Duration::from_secs(120), "Ready", |z| {
        z.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY))
    })
    .await
    .map_err(|e| e.to_string())?;
    let (serial0, updates0) = (knot.serial(ZONE).map_err(|e| e.to_string())?, updates_sent(&op));

    eprintln!("baseline: {n} DnsRecords POSTed (concurrency {}) → all Programmed", a.concurrency);
    let (base_s, base_req, base_op) = baseline(&env, &op, &base_side, n, a.concurrency).await?;
    eprintln!("baseline took {base_s:.1} s");

    eprintln!("pdcctl dns adopt --apply --yes of {n} sets");
    let (before, op_before) = (server_requests(&env.kubeconfig)?, op.api_requests().map_err(|e| e.to_string())?);
    let (adopt_s, cli_rss, out) = adopt(&env.kubeconfig)?;
    let adopt_req = per_object(&delta(&server_requests(&env.kubeconfig)?, &before), n);
    let adopt_op = op_delta(&op.api_requests().map_err(|e| e.to_string())?, &op_before);
    eprintln!("adopt took {adopt_s:.1} s: {}", out.lines().next().unwrap_or_default());

    let before = server_requests(&env.kubeconfig)?;
    let (again_s, again_rss, again_out) = adopt(&env.kubeconfig)?;
    let again_req = delta(&server_requests(&env.kubeconfig)?, &before);
    if !again_out.contains("Nothing to adopt") {
        return Err(format!("a second adopt proposed something: {again_out}"));
    }

    // Neither side changed the zone; every adopted record is Programmed.
    let (serial1, updates1) = (knot.serial(ZONE).map_err(|e| e.to_string())?, updates_sent(&op));
    let mut programmed_n = 0;
    for d in &adopt_side {
        let items = Api::<DnsRecord>::namespaced(client.clone(), d).list(&ListParams::default()).await.map_err(|e| e.to_string())?.items;
        programmed_n += items.iter().filter(|r| programmed(r)).count();
    }
    let rss = op.peak_rss_kib().map(|k| k as f64 / 1024.0);
    println!("| measure | value |");
    println!("|---|---|");
    println!("| zone filled before pdc: {} A sets, {FILL_BATCH} per UPDATE | {fill_s:.1} s |", 2 * n);
    println!("| baseline: {n} DnsRecords POSTed → all Programmed | {base_s:.1} s ({:.0}/s) |", n as f64 / base_s);
    println!("| pdcctl dns adopt --apply: AXFR, proposal, apply → all Programmed | {adopt_s:.1} s ({:.0}/s) |", n as f64 / adopt_s);
    println!("| adopt / baseline | {:.2} |", adopt_s / base_s);
    println!("| API requests per object (API server, pdc.io): adopt / baseline | {:.2} / {:.2} |", adopt_req.get("per_object").and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN), base_req.get("per_object").and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN));
    println!("| operator API requests, adopt / baseline | {} / {} |", adopt_op.per(n), base_op.per(n));
    println!("| pdcctl peak RSS | {cli_rss:.0} MiB |");
    println!("| operator peak RSS | {} |", rss.map_or("n/a".into(), |m| format!("{m:.0} MiB")));
    println!("| second adopt (nothing to propose) | {again_s:.1} s, {:.0} requests |", again_req.values().sum::<f64>());
    println!("| serial before / after; UPDATEs sent | {serial0} / {serial1}; {} |", updates1 - updates0);
    println!("| adopted records Programmed | {programmed_n} / {n} |");
    write_result(
        &a.out,
        &serde_json::json!({
            "count": n, "concurrency": a.concurrency, "departments_per_side": DEPARTMENTS, "zone_sets": 2 * n, "fill_seconds": fill_s,
            "baseline": "the same DnsRecords (same names and specs, with the adoption marker) POSTed by a plain client into ten other departments whose subdomains hold the same number of sets, operator running, until all Programmed",
            "baseline_seconds": base_s, "baseline_api_requests": base_req, "baseline_operator_api_requests": base_op.json(n),
            "adopt_seconds": adopt_s, "adopt_api_requests": adopt_req, "adopt_operator_api_requests": adopt_op.json(n),
            "ratio": adopt_s / base_s, "pdcctl_peak_rss_mib": cli_rss, "operator_peak_rss_mib": rss,
            "second_adopt_seconds": again_s, "second_adopt_peak_rss_mib": again_rss, "second_adopt_api_requests": again_req,
            "serial_before": serial0, "serial_after": serial1, "updates_sent": updates1 - updates0, "programmed": programmed_n,
            "cores": std::thread::available_parallelism().map(|c| c.get()).unwrap_or(0),
        }),
    )?;
    if serial1 != serial0 || updates1 != updates0 || programmed_n != n {
        return Err(format!("the zone changed (serial {serial0} → {serial1}, {} UPDATEs) or only {programmed_n}/{n} adopted records are Programmed", updates1 - updates0));
    }
    Ok(())
}
