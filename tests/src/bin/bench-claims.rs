//! Benchmark: N dual-stack AddressClaims → all bound, against a fresh real control
//! plane with the operator running under the chart's RBAC.
//!
//! Baseline, same run, same API server, same client concurrency: the writes binding
//! a dual-stack claim inherently needs, by a plain client with no operator — the
//! claim's create, an AddressAllocation per family (the objects whose names are the
//! lock against double allocation) and the claim's status. pdc adds a finalizer
//! (release on delete) and its reads. The raw create rate of N ConfigMaps is printed
//! too, as the floor of one create per claim.
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

/// The inherent writes of binding `n` claims: claim, two allocations, status.
async fn inherent(client: &Client, n: usize, conc: usize) -> Result<Duration, String> {
    use pdc_api::{AddressAllocation, AddressAllocationSpec, AddressClaimStatus, ClaimRef, ClaimedAddress};
    use pdc_core::ipam::Addr;
    let ns = "bench-inherent";
    let nso = Namespace { metadata: ObjectMeta { name: Some(ns.into()), ..Default::default() }, ..Default::default() };
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &nso).await.map_err(|e| e.to_string())?;
    let claims: Api<AddressClaim> = Api::namespaced(client.clone(), ns);
    let allocs: Api<AddressAllocation> = Api::all(client.clone());
    let e = |e: kube::Error| e.to_string();
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let (claims, allocs) = (claims.clone(), allocs.clone());
            async move {
                let name = format!("nic-{i:05}");
                let made = claims.create(&PostParams::default(), &claim(&name, "app")).await.map_err(e)?;
                let uid = made.metadata.uid.clone().unwrap_or_default();
                let (v4, v6) = (format!("10.99.{}.{}", i / 250, i % 250 + 2), format!("2001:db8:99::{:x}", i + 2));
                for (addr, subnet) in [(&v4, "10.99.0.0/16"), (&v6, "2001:db8:99::/64")] {
                    let a = Addr::parse(addr).map_err(|e| e.to_string())?;
                    let mut obj = AddressAllocation::new(
                        &a.object_name(),
                        AddressAllocationSpec {
                            address: addr.clone(),
                            subnet: subnet.into(),
                            zone: "app".into(),
                            site: "daklak".into(),
                            department: ns.into(),
                            claim: ClaimRef { namespace: ns.into(), name: name.clone(), uid: uid.clone() },
                            hostname: None,
                            external: None,
                        },
                    );
                    obj.metadata.labels = Some([("bench".to_string(), "inherent".to_string())].into());
                    allocs.create(&PostParams::default(), &obj).await.map_err(e)?;
                }
                let bound = |address: &str, len: i32, gateway: &str, subnet: &str| ClaimedAddress {
                    address: address.into(),
                    prefix_length: len,
                    gateway: gateway.into(),
                    subnet: subnet.into(),
                };
                let status = AddressClaimStatus {
                    observed_generation: made.metadata.generation,
                    conditions: vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        reason: "Bound".into(),
                        message: format!("{v4} and {v6}"),
                        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
                        observed_generation: made.metadata.generation,
                    }],
                    site: Some("daklak".into()),
                    ipv4: Some(bound(&v4, 16, "10.99.0.1", "10.99.0.0/16")),
                    ipv6: Some(bound(&v6, 64, "2001:db8:99::1", "2001:db8:99::/64")),
                };
                claims
                    .patch_status(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(serde_json::json!({"status": status})))
                    .await
                    .map_err(e)?;
                Ok::<(), String>(())
            }
        })
        .buffer_unordered(conc)
        .try_collect::<Vec<_>>()
        .await?;
    let took = start.elapsed();
    // Gone before the operator starts: nothing of it may count as allocated.
    let dp = kube::api::DeleteParams::default();
    allocs.delete_collection(&dp, &kube::api::ListParams::default().labels("bench=inherent")).await.map_err(e)?;
    claims.delete_collection(&dp, &kube::api::ListParams::default()).await.map_err(e)?;
    Ok(took)
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
    eprintln!("baseline: the inherent writes of binding {} claims (claim, 2 allocations, status), concurrency {}", a.count, a.concurrency);
    let inh = inherent(&client, a.count, a.concurrency).await?;
    eprintln!("inherent writes took {:.2} s", inh.as_secs_f64());

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
    println!("| baseline: the inherent writes of {} bindings by a plain client (claim, 2 allocations, status) | {:.2} s |", a.count, inh.as_secs_f64());
    println!("| floor: {} plain creates (ConfigMaps) | {:.2} s ({base_rate:.0}/s) |", a.count, base.as_secs_f64());
    println!("| pdc: {} dual-stack claims created → all bound | {:.2} s ({rate:.0} claims/s) |", a.count, total.as_secs_f64());
    println!("| pdc / baseline (time) | {:.2} (against the floor {:.2}) |", total.as_secs_f64() / inh.as_secs_f64(), total.as_secs_f64() / base.as_secs_f64());
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
            "baseline_seconds": inh.as_secs_f64(), "floor_seconds": base.as_secs_f64(), "pdc_seconds": total.as_secs_f64(),
            "ratio": total.as_secs_f64() / inh.as_secs_f64(), "ratio_to_floor": total.as_secs_f64() / base.as_secs_f64(), "claims_per_second": rate,
            "create_phase_seconds": create_phase.as_secs_f64(),
            "latency_ms_p50": p50, "latency_ms_p99": p99, "operator_peak_rss_mib": rss, "operator_api_requests": requests.json(a.count),
            "audit_problems": problems.len(),
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        }),
    )?;
    if problems.is_empty() { Ok(()) } else { Err(format!("{} problems found", problems.len())) }
}
