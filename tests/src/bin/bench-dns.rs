//! Benchmark: N DnsRecords created → all `Programmed` on a real DNSSEC-signing Knot
//! DNS, against a fresh real control plane with the operator under the chart's RBAC.
//!
//! Baseline, same run, same server, the writes the task inherently needs: the same N
//! DnsRecord creates with the operator stopped (the user's own writes), plus the same
//! N record additions sent straight to the server with `knsupdate`, in UPDATE
//! messages of the zone's batch size (100), into a zone of their own. pdc's total is
//! compared with their sum.
//!
//! Then a stream: `--stream` more records (default 1,000) created at `--rate` per
//! second (default 100) into the zone that already holds the burst, for the latency of
//! one record at a steady pace (create → Programmed: the UPDATE that carries it was
//! accepted, so the server answers with it).
//!
//!     bash bench/dns.sh [--count 10000] [--concurrency 16] [--stream 1000] [--rate 100]
//!
//! Afterwards the zone is transferred and every record checked.

use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{DeleteParams, ListParams};
use pdc_api::DnsRecord;
use pdc_tests::addressing::load_plan;
use pdc_tests::bench::{Args, Timings, create_all, create_paced, percentile, programmed, progress, record, record_addr, wait_leader, watch_ready, write_result};
use pdc_tests::cluster::private_env;
use pdc_tests::dns::{KnotServer, register_zones};
use pdc_tests::operator::{OperatorOptions, OperatorProcess};

const DEPARTMENTS: usize = 10;
const BATCH: usize = 100;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-dns: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The floor: `n` A records added with knsupdate, `BATCH` per UPDATE message.
fn baseline(knot: &KnotServer, n: usize) -> Result<Duration, String> {
    let mut script = String::new();
    for (b, chunk) in (0..n).collect::<Vec<_>>().chunks(BATCH).enumerate() {
        if b > 0 {
            script.push_str("send\n");
        }
        script.push_str("zone baseline.gov.vn.\n");
        for i in chunk {
            script.push_str(&format!("update add host-{i:05}.baseline.gov.vn. 300 A {}\n", record_addr(*i)));
        }
    }
    let start = Instant::now();
    knot.update(&script).map_err(|e| e.to_string())?;
    Ok(start.elapsed())
}

async fn run() -> Result<(), String> {
    let a = Args::parse(10_000, "bench/results/dns.json");
    eprintln!("starting a fresh control plane and Knot DNS");
    let (env, _plane) = private_env("bench-dns").await.map_err(|e| e.to_string())?;
    let client = env.client().await.map_err(|e| e.to_string())?;
    let knot = KnotServer::start(&env.dir, &["daklak.gov.vn", "baseline.gov.vn"]).map_err(|e| e.to_string())?;

    eprintln!("baseline: {} record additions with knsupdate, {BATCH} per message", a.count);
    let base = baseline(&knot, a.count)?;
    let check = knot.dig(&format!("host-{:05}.baseline.gov.vn", a.count - 1), "A", false).map_err(|e| e.to_string())?;
    if !check.contains(&record_addr(a.count - 1)) {
        return Err(format!("the baseline's last record does not answer: {check}"));
    }
    eprintln!("baseline took {:.2} s", base.as_secs_f64());

    let mut op = OperatorProcess::start(&env.operator_kubeconfig, &OperatorOptions::new("bench-operator"), &env.dir).map_err(|e| e.to_string())?;
    wait_leader(&op).await?;
    let depts: Vec<String> = (0..DEPARTMENTS).map(|i| format!("don-vi-{i:02}")).collect();
    load_plan(&client, "app", 24, &depts).await.map_err(|e| e.to_string())?;
    register_zones(&client, &knot, "knot-tsig").await.map_err(|e| e.to_string())?;

    // The user's own writes: the same creates with the operator stopped, then removed
    // (no finalizer holds them).
    op.stop();
    eprintln!("baseline: {} DnsRecord creates with the operator stopped, concurrency {}", a.count, a.concurrency);
    let api_base = {
        let t0 = Instant::now();
        create_all(&client, a.count, a.concurrency, &Timings::default(), |i| record(&depts, i, "base", &[("pdc-bench", "baseline")]))
            .await?;
        let d = t0.elapsed();
        for ns in &depts {
            let api: Api<DnsRecord> = Api::namespaced(client.clone(), ns);
            api.delete_collection(&DeleteParams::default(), &ListParams::default().labels("pdc-bench=baseline")).await.map_err(|e| e.to_string())?;
        }
        d
    };
    eprintln!("baseline creates took {:.2} s", api_base.as_secs_f64());
    let mut op = OperatorProcess::start(&env.operator_kubeconfig, &OperatorOptions::new("bench-operator"), &env.dir).map_err(|e| e.to_string())?;
    wait_leader(&op).await?;

    eprintln!("pdc: {} DnsRecords over {DEPARTMENTS} departments, concurrency {}", a.count, a.concurrency);
    let t: Timings<(String, String)> = Timings::default();
    let watch = watch_ready::<DnsRecord>(client.clone(), t.clone(), programmed);
    let start = Instant::now();
    let progress = progress(t.clone(), a.count, "programmed", start);
    create_all(&client, a.count, a.concurrency, &t, |i| record(&depts, i, "host", &[])).await?;
    let create_phase = start.elapsed();
    t.wait_ready(a.count, Duration::from_secs(1800)).await?;
    let total = start.elapsed();
    watch.abort();
    progress.abort();
    let requests = op.api_requests().map_err(|e| e.to_string())?;
    let burst_updates = op.metric("pdc_dns_update_duration_seconds_count{zone=\"daklak.gov.vn\"}").unwrap_or(f64::NAN);

    let (stream, rate) = (a.get("stream", 1000usize), a.get("rate", 100.0f64));
    eprintln!("stream: {stream} more DnsRecords at {rate}/s");
    let ts: Timings<(String, String)> = Timings::default();
    let watch = watch_ready::<DnsRecord>(client.clone(), ts.clone(), programmed);
    create_paced(&client, stream, a.concurrency, Some(rate), &ts, |i| record(&depts, a.count + i, "host", &[])).await?;
    ts.wait_ready(stream, Duration::from_secs(600)).await?;
    watch.abort();
    let rss = op.peak_rss_kib().map(|k| k as f64 / 1024.0);
    let transfers = |kind: &str| op.metric(&format!("pdc_dns_transfers_total{{kind=\"{kind}\",zone=\"daklak.gov.vn\"}}")).unwrap_or(0.0);
    let (full, incremental) = (transfers("full"), transfers("incremental"));
    op.stop();
    let all = a.count + stream;

    eprintln!("checking every record in a transfer of the zone");
    let (server, key) = (knot.server(), knot.key().map_err(|e| e.to_string())?);
    let zone = pdc_dns::transfer(&server, "daklak.gov.vn", &key).await.map_err(|e| e.to_string())?;
    let missing: Vec<usize> = (0..all)
        .filter(|i| {
            let d = depts.get(i % DEPARTMENTS).cloned().unwrap_or_default();
            let key = (format!("host-{i:05}.{d}.daklak.gov.vn."), pdc_core::dnsplan::RecordType::A);
            zone.sets.get(&key).is_none_or(|s| !s.values.contains(&record_addr(*i)))
        })
        .collect();
    for i in missing.iter().take(5) {
        let d = depts.get(i % DEPARTMENTS).cloned().unwrap_or_default();
        let r = Api::<DnsRecord>::namespaced(client.clone(), &d).get_opt(&format!("host-{i:05}")).await.map_err(|e| e.to_string())?;
        let st = r.and_then(|r| r.status).map(|s| format!("{:?} {:?}", s.fqdn, s.conditions.iter().map(|c| (&c.type_, &c.status, &c.reason, &c.message)).collect::<Vec<_>>()));
        let dig = knot.dig(&format!("host-{i:05}.{d}.daklak.gov.vn"), "A", false).unwrap_or_default();
        eprintln!("missing: host-{i:05}.{d}: status {st:?}; dig answers {:?}", dig.lines().filter(|l| l.contains("\tA\t") || l.contains(" A ")).collect::<Vec<_>>());
    }
    let missing = missing.len();

    let lat = t.latencies_ms();
    let (p50, p99) = (percentile(&lat, 50.0), percentile(&lat, 99.0));
    let slat = ts.latencies_ms();
    let (s50, s99) = (percentile(&slat, 50.0), percentile(&slat, 99.0));
    let rate_done = a.count as f64 / total.as_secs_f64();
    let base_rate = a.count as f64 / base.as_secs_f64();
    let floor = base + api_base;
    let ratio = total.as_secs_f64() / floor.as_secs_f64();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| baseline: {} A records by knsupdate, {BATCH} per UPDATE | {:.2} s ({base_rate:.0}/s) |", a.count, base.as_secs_f64());
    println!("| baseline: {} DnsRecord creates, operator stopped | {:.2} s |", a.count, api_base.as_secs_f64());
    println!("| pdc: {} DnsRecords created → all Programmed | {:.2} s ({rate_done:.0} records/s) |", a.count, total.as_secs_f64());
    println!("| pdc / (knsupdate + creates) | {ratio:.2} |");
    println!("| create phase alone (API) | {:.2} s |", create_phase.as_secs_f64());
    println!("| per record create → Programmed, p50 / p99 | {p50:.0} ms / {p99:.0} ms |");
    println!("| stream of {stream} at {rate}/s: create → Programmed p50 / p99 | {s50:.0} ms / {s99:.0} ms |");
    println!("| UPDATE messages sent by pdc (burst) | {burst_updates} |");
    println!("| zone transfers read: full / incremental | {full} / {incremental} |");
    println!("| operator peak RSS | {} |", rss.map_or("n/a".into(), |m| format!("{m:.0} MiB")));
    println!("| operator API requests per record (burst) | {} |", requests.per(a.count));
    println!("| records missing or wrong in the zone afterwards | {missing} |");
    write_result(
        &a.out,
        &serde_json::json!({
            "count": a.count, "concurrency": a.concurrency, "departments": DEPARTMENTS, "batch": BATCH,
            "baseline_seconds": base.as_secs_f64(), "baseline_creates_seconds": api_base.as_secs_f64(), "pdc_seconds": total.as_secs_f64(),
            "ratio": ratio, "records_per_second": rate_done,
            "create_phase_seconds": create_phase.as_secs_f64(),
            "latency_ms_p50": p50, "latency_ms_p99": p99,
            "stream": stream, "stream_rate": rate, "stream_latency_ms_p50": s50, "stream_latency_ms_p99": s99,
            "operator_peak_rss_mib": rss, "operator_api_requests": requests.json(a.count),
            "update_messages": burst_updates, "transfers_full": full, "transfers_incremental": incremental,
            "zone_records": zone.records, "missing": missing,
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        }),
    )?;
    if missing == 0 { Ok(()) } else { Err(format!("{missing} records missing from the zone")) }
}
