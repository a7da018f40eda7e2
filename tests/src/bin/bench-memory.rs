//! Benchmark: the operator's memory over a province-sized estate. With the operator
//! stopped, a plain client makes 10,000 TenantVMs, 20,000 dual-stack AddressClaims
//! and 100,000 DnsRecords over 100 departments; the operator is then started, takes
//! the estate over (claims bound, records programmed on a real Knot DNS with DNSSEC,
//! VMs admitted or refused at quota), and its resident memory is sampled once a
//! second until its API requests have quietened: the steady RSS is the median of the
//! last 30 samples. Each department's quota admits 10 VMs (1,000 in all, made and
//! started by the tests' CDI and KubeVirt players); the other VMs stop at
//! `QuotaAccepted=False`, so the run ends in minutes instead of hours.
//!
//! Baseline, same run: the same operator's RSS with only the 100 departments, so the
//! difference divided by the objects is what an object costs.
//!
//!     bash bench/memory.sh [--count 10000] [--claims 20000] [--records 100000] [--admitted 10]

use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{Patch, PatchParams};
use pdc_api::{AddressClaim, Department, DnsRecord, TenantVM, conditions};
use pdc_tests::addressing::{bound, claim, load_plan};
use pdc_tests::bench::{Args, Timings, create_all, percentile, programmed, record, tenant_vm, vm_ready, wait_leader, watch_ready, write_result};
use pdc_tests::cluster::{apply_yaml, private_env};
use pdc_tests::dns::{KnotServer, register_zones};
use pdc_tests::operator::{OperatorOptions, OperatorProcess};

const DEPARTMENTS: usize = 100;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-memory: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A VM the operator has finished with for now: Ready, or refused at the quota.
fn settled(v: &TenantVM) -> bool {
    vm_ready(v) || v.status.as_ref().and_then(|s| conditions::find(&s.conditions, "QuotaAccepted")).is_some_and(|c| c.status == "False")
}

/// Median of `n` samples of the operator's RSS, one a second, in MiB.
async fn steady_rss(op: &OperatorProcess, n: usize) -> f64 {
    let mut samples = Vec::new();
    for _ in 0..n {
        samples.extend(op.rss_kib().map(|k| k as f64 / 1024.0));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    samples.sort_by(f64::total_cmp);
    percentile(&samples, 50.0)
}

/// Wait until the operator's API requests in 10 s fall under `quiet`, or `cap` passes.
async fn quieten(op: &OperatorProcess, quiet: f64, cap: Duration) -> Result<f64, String> {
    let start = Instant::now();
    let mut last = op.api_requests().map_err(|e| e.to_string())?.total();
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let now = op.api_requests().map_err(|e| e.to_string())?.total();
        if now - last < quiet || start.elapsed() > cap {
            return Ok(now - last);
        }
        last = now;
    }
}

struct Estate {
    vms: Timings<(String, String)>,
    claims: Timings<(String, String)>,
    records: Timings<(String, String)>,
}

/// The estate, made by a plain client while the operator is stopped.
async fn make_estate(client: &kube::Client, depts: &[String], n: (usize, usize, usize), conc: usize) -> Result<(Estate, Duration), String> {
    let e = Estate { vms: Timings::default(), claims: Timings::default(), records: Timings::default() };
    let start = Instant::now();
    let ns = |i: usize| depts.get(i % DEPARTMENTS).cloned().unwrap_or_default();
    create_all(client, n.0, conc, &e.vms, |i| Ok((ns(i), tenant_vm(&format!("vm-{i:05}"))?))).await?;
    eprintln!("  {} TenantVMs after {:.0} s", n.0, start.elapsed().as_secs_f64());
    create_all(client, n.1, conc, &e.claims, |i| Ok((ns(i), claim(&format!("nic-{i:05}"), "app")))).await?;
    eprintln!("  {} AddressClaims after {:.0} s", n.1, start.elapsed().as_secs_f64());
    create_all(client, n.2, conc, &e.records, |i| record(depts, i, "host", &[])).await?;
    eprintln!("  {} DnsRecords after {:.0} s", n.2, start.elapsed().as_secs_f64());
    Ok((e, start.elapsed()))
}

async fn run() -> Result<(), String> {
    let a = Args::parse(10_000, "bench/results/memory.json");
    let (n_vms, n_claims, n_records) = (a.count, a.get("claims", 2 * a.count), a.get("records", 10 * a.count));
    let admitted: usize = a.get("admitted", 10);
    eprintln!("starting a fresh control plane and Knot DNS");
    let (env, _plane) = private_env("bench-memory").await.map_err(|e| e.to_string())?;
    let client = env.client().await.map_err(|e| e.to_string())?;
    let knot = KnotServer::start(&env.dir, &["daklak.gov.vn", "15.10.in-addr.arpa"]).map_err(|e| e.to_string())?;
    let mut op = OperatorProcess::start(&env.operator_kubeconfig, &OperatorOptions::new("bench-operator"), &env.dir).map_err(|e| e.to_string())?;
    wait_leader(&op).await?;
    let depts: Vec<String> = (0..DEPARTMENTS).map(|i| format!("don-vi-{i:03}")).collect();
    eprintln!("{DEPARTMENTS} departments with /23 and /64 subnets in zone app, quota for {admitted} VMs each");
    load_plan(&client, "app", 23, &depts).await.map_err(|e| e.to_string())?;
    let quota = serde_json::json!({"spec": {"quota": {"vcpu": 2 * admitted, "memory": format!("{}Gi", 4 * admitted), "storage": {"ssd": format!("{}Gi", 20 * admitted), "hdd": format!("{}Gi", 50 * admitted)}, "vms": admitted}}});
    let dapi: Api<Department> = Api::all(client.clone());
    for d in &depts {
        dapi.patch(d, &PatchParams::default(), &Patch::Merge(&quota)).await.map_err(|e| e.to_string())?;
    }
    apply_yaml(&client, "apiVersion: pdc.io/v1alpha1\nkind: SizeClass\nmetadata: {name: m1.small}\nspec: {vcpu: 2, memory: 4Gi}\n", None).await.map_err(|e| e.to_string())?;
    register_zones(&client, &knot, "knot-tsig").await.map_err(|e| e.to_string())?;
    quieten(&op, 5.0, Duration::from_secs(60)).await?;
    let empty = steady_rss(&op, 10).await;
    eprintln!("operator with {DEPARTMENTS} departments only: {empty:.1} MiB");
    op.stop();

    eprintln!("the estate, operator stopped: {n_vms} TenantVMs, {n_claims} claims, {n_records} DnsRecords, concurrency {}", a.concurrency);
    let (estate, made) = make_estate(&client, &depts, (n_vms, n_claims, n_records), a.concurrency).await?;
    let watches = [
        watch_ready::<TenantVM>(client.clone(), estate.vms.clone(), settled),
        watch_ready::<AddressClaim>(client.clone(), estate.claims.clone(), bound),
        watch_ready::<DnsRecord>(client.clone(), estate.records.clone(), programmed),
    ];
    let players = pdc_tests::players::Players::start(vec![("bench".into(), env.kubeconfig.clone())]).map_err(|e| e.to_string())?;

    eprintln!("operator started over the estate");
    let mut op = OperatorProcess::start(&env.operator_kubeconfig, &OperatorOptions::new("bench-operator"), &env.dir).map_err(|e| e.to_string())?;
    let start = Instant::now();
    wait_leader(&op).await?;
    let deadline = start + Duration::from_secs(a.get("timeout", 3600));
    let mut samples: Vec<(f64, f64)> = Vec::new();
    loop {
        let done = (estate.vms.ready_count(), estate.claims.ready_count(), estate.records.ready_count());
        let rss = op.rss_kib().map_or(0.0, |k| k as f64 / 1024.0);
        samples.push((start.elapsed().as_secs_f64(), rss));
        if done == (n_vms, n_claims, n_records) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("after {:.0} s: {}/{n_vms} VMs settled, {}/{n_claims} claims bound, {}/{n_records} records programmed", start.elapsed().as_secs_f64(), done.0, done.1, done.2));
        }
        if samples.len().is_multiple_of(10) {
            eprintln!("  {:.0} s: VMs {}/{n_vms}, claims {}/{n_claims}, records {}/{n_records}; RSS {rss:.0} MiB", start.elapsed().as_secs_f64(), done.0, done.1, done.2);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let taken_over = start.elapsed();
    let objects = n_vms + n_claims + n_records;
    eprintln!("all settled after {:.0} s; waiting for the operator's requests to quieten", taken_over.as_secs_f64());
    let last_10s = quieten(&op, (objects as f64 / 1000.0).max(20.0), Duration::from_secs(300)).await?;
    let steady = steady_rss(&op, 30).await;
    let peak = op.peak_rss_kib().map_or(0.0, |k| k as f64 / 1024.0);
    let requests = op.api_requests().map_err(|e| e.to_string())?;
    for w in watches {
        w.abort();
    }
    let ready_vms = Api::<TenantVM>::all(client.clone()).list(&Default::default()).await.map_err(|e| e.to_string())?.items.iter().filter(|v| vm_ready(v)).count();
    players.stop();
    op.stop();

    let per_object_kib = (steady - empty) * 1024.0 / objects as f64;
    println!("| measure | value |");
    println!("|---|---|");
    println!("| estate made by a plain client, operator stopped | {n_vms} TenantVMs, {n_claims} claims, {n_records} DnsRecords in {:.1} s |", made.as_secs_f64());
    println!("| operator started → all taken over (VMs Ready or refused at quota, claims bound, records programmed) | {:.1} s ({ready_vms} VMs Ready) |", taken_over.as_secs_f64());
    println!("| operator steady RSS (median of 30 s, requests in the last 10 s before it: {last_10s:.0}) | **{steady:.0} MiB** |");
    println!("| operator peak RSS | {peak:.0} MiB |");
    println!("| baseline: the same operator with the {DEPARTMENTS} departments only | {empty:.1} MiB |");
    println!("| memory per object ((steady − baseline) / {objects}) | {per_object_kib:.2} KiB |");
    println!("| operator API requests | {} |", requests.per(objects));
    write_result(
        &a.out,
        &serde_json::json!({
            "vms": n_vms, "claims": n_claims, "records": n_records, "admitted_per_department": admitted, "departments": DEPARTMENTS,
            "estate_seconds": made.as_secs_f64(), "take_over_seconds": taken_over.as_secs_f64(), "vms_ready": ready_vms,
            "steady_rss_mib": steady, "peak_rss_mib": peak, "empty_rss_mib": empty, "per_object_kib": per_object_kib,
            "requests_last_10s": last_10s, "operator_api_requests": requests.json(objects), "rss_samples": samples,
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        }),
    )
}
