//! Benchmark: N dual-stack AddressClaims → all bound, against a fresh real control
//! plane with the operator running under the chart's RBAC.
//!
//! Baseline, same run, same API server, same client concurrency: the raw create
//! rate of N plain objects (ConfigMaps). Every claim needs at least one create, so
//! that is the floor; binding a claim takes five writes (the claim, its finalizer,
//! two AddressAllocations, its status).
//!
//!     bash bench/claims.sh [--count 10000] [--concurrency 16]
//!
//! After the run every allocation and claim is audited for duplicates.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{ObjectMeta, PostParams};

use kube::{Api, Client};
use pdc_api::AddressClaim;
use pdc_tests::addressing::{audit, bound, claim, load_plan};
use pdc_tests::bench::{Args, Timings, create_all, percentile, progress, wait_leader, watch_ready, write_result};
use pdc_tests::cluster::private_env;
use pdc_tests::operator::{OperatorOptions, OperatorProcess};

/// Departments the claims are spread over (each gets a /22: 1,019 usable addresses).
const DEPARTMENTS: usize = 20;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-claims: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn baseline(client: &Client, n: usize, conc: usize) -> Result<Duration, String> {
    let ns = Namespace { metadata: ObjectMeta { name: Some("bench-baseline".into()), ..Default::default() }, ..Default::default() };
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.map_err(|e| e.to_string())?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "bench-baseline");
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let cm = ConfigMap { metadata: ObjectMeta { name: Some(format!("plain-{i:05}")), ..Default::default() }, ..Default::default() };
                api.create(&PostParams::default(), &cm).await.map(|_| ()).map_err(|e| e.to_string())
            }
        })
        .buffer_unordered(conc)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(start.elapsed())
}

async fn run() -> Result<(), String> {
    let a = Args::parse(10_000, "bench/results/claims.json");
    let per = a.count.div_ceil(DEPARTMENTS);
    if per > 1019 {
        return Err(format!("{} claims over {DEPARTMENTS} departments exceed their /22 subnets", a.count));
    }
    eprintln!("starting a fresh control plane");
    let (env, _plane) = private_env("bench-claims").await.map_err(|e| e.to_string())?;
    let client = env.client().await.map_err(|e| e.to_string())?;

    eprintln!("baseline: {} plain creates, concurrency {}", a.count, a.concurrency);
    let base = baseline(&client, a.count, a.concurrency).await?;
    eprintln!("baseline took {:.2} s", base.as_secs_f64());

    let mut op = OperatorProcess::start(&env.operator_kubeconfig, &OperatorOptions::new("bench-operator"), &env.dir).map_err(|e| e.to_string())?;
    wait_leader(&op).await?;
    let depts: Vec<String> = (0..DEPARTMENTS).map(|i| format!("don-vi-{i:02}")).collect();
    load_plan(&client, "app", 22, &depts).await.map_err(|e| e.to_string())?;

    eprintln!("pdc: {} dual-stack claims over {DEPARTMENTS} departments, concurrency {}", a.count, a.concurrency);
    let t: Timings<(String, String)> = Timings::default();
    let watch = watch_ready::<AddressClaim>(client.clone(), t.clone(), bound);
    let start = Instant::now();
    let progress = progress(t.clone(), a.count, "bound", start);
    create_all(&client, a.count, a.concurrency, &t, |i| {
        let ns = depts.get(i % DEPARTMENTS).cloned().unwrap_or_default();
        Ok((ns, claim(&format!("nic-{i:05}"), "app")))
    })
    .await?;
    let create_phase = start.elapsed();
    t.wait_ready(a.count, Duration::from_secs(1800)).await?;
    let total = start.elapsed();
    watch.abort();
    progress.abort();
    let rss = op.peak_rss_kib().map(|k| k as f64 / 1024.0);
    let requests = op.api_requests().map_err(|e| e.to_string())?;
    op.stop();

    eprintln!("auditing every allocation and claim");
    let problems = audit(&client).await.map_err(|e| e.to_string())?;
    let lat = t.latencies_ms();
    let (p50, p99) = (percentile(&lat, 50.0), percentile(&lat, 99.0));
    let rate = a.count as f64 / total.as_secs_f64();
    let base_rate = a.count as f64 / base.as_secs_f64();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| baseline: {} plain creates (ConfigMaps) | {:.2} s ({base_rate:.0}/s) |", a.count, base.as_secs_f64());
    println!("| pdc: {} dual-stack claims created → all bound | {:.2} s ({rate:.0} claims/s) |", a.count, total.as_secs_f64());
    println!("| pdc / baseline (time) | {:.2} |", total.as_secs_f64() / base.as_secs_f64());
    println!("| create phase alone | {:.2} s |", create_phase.as_secs_f64());
    println!("| per claim create → bound, p50 / p99 | {p50:.0} ms / {p99:.0} ms |");
    println!("| operator peak RSS | {} |", rss.map_or("n/a".into(), |m| format!("{m:.0} MiB")));
    println!("| operator API requests per claim | {} |", requests.per(a.count));
    println!("| duplicates or inconsistencies found by the audit | {} |", problems.len());
    for p in problems.iter().take(10) {
        eprintln!("problem: {p}");
    }
    write_result(
        &a.out,
        &serde_json::json!({
            "count": a.count, "concurrency": a.concurrency, "departments": DEPARTMENTS,
            "baseline_seconds": base.as_secs_f64(), "pdc_seconds": total.as_secs_f64(),
            "ratio": total.as_secs_f64() / base.as_secs_f64(), "claims_per_second": rate,
            "create_phase_seconds": create_phase.as_secs_f64(),
            "latency_ms_p50": p50, "latency_ms_p99": p99, "operator_peak_rss_mib": rss, "operator_api_requests": requests.json(a.count),
            "audit_problems": problems.len(),
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        }),
    )?;
    if problems.is_empty() { Ok(()) } else { Err(format!("{} problems found", problems.len())) }
}
