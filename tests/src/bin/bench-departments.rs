//! Benchmark: N Departments created → all Ready, against a fresh real control plane.
//!
//! Baseline, same run, same API server, same client concurrency: a plain client
//! server-side-applies exactly the objects the operator builds for each Department
//! (namespace, quota, limit range, two role bindings, two network policies). pdc can
//! not be faster than that floor; the ratio says how close it gets.
//!
//!     cargo build --release --bins && target/release/bench-departments --count 1000
//!
//! Prints a Markdown table and writes JSON to --out (default bench/results/departments.json).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use pdc_api::conditions::{self, READY};
use pdc_api::{Department, DepartmentSpec, GuestQuota, Province, Subjects};
use pdc_tests::cluster::{OPERATOR_USER, base_dir, client_for, install_chart};
use pdc_tests::controlplane::ControlPlane;
use pdc_tests::bench::{Args, Timings, percentile, wait_leader, write_result};
use pdc_tests::operator::{OperatorOptions, OperatorProcess};

fn spec(i: usize) -> DepartmentSpec {
    let storage = BTreeMap::from([("ssd".into(), "200Gi".into()), ("hdd".into(), "500Gi".into())]);
    let quota = GuestQuota { vcpu: 16, memory: "32Gi".into(), storage, vms: 8, public_addresses: 1 };
    DepartmentSpec {
        kind: pdc_api::DepartmentKind::Commune,
        admins: Subjects { users: vec![format!("admin{i}@daklak.gov.vn")], groups: vec!["commune-admins".into()] },
        ..DepartmentSpec::new(format!("Xã Thử Nghiệm {i}"), format!("H15.{}.{}", 1 + i / 1000, i % 1000), quota)
    }
}

/// The baseline: the operator's own build step, applied by a plain client.
async fn baseline(client: &Client, province: &Province, n: usize, conc: usize) -> Result<Duration, String> {
    let pp = PatchParams::apply("bench-baseline").force();
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            let pp = pp.clone();
            async move {
                let mut d = Department::new(&format!("base-{i}"), spec(i));
                d.metadata.uid = Some(format!("00000000-0000-0000-0000-{i:012}"));
                let bound = pdc_operator::department::build::Bound { namespace: "pdc-system".into(), operator: "pdc-operator".into(), dr_peer: Some("pdc-dr-peer".into()) };
                let c = pdc_operator::department::build::children(&d, province, &bound, &[]);
                let ns = d.name_any();
                let e = |e: kube::Error| e.to_string();
                Api::<Namespace>::all(client.clone()).patch(&ns, &pp, &Patch::Apply(&c.namespace)).await.map_err(e)?;
                Api::<ResourceQuota>::namespaced(client.clone(), &ns).patch(&c.quota.name_any(), &pp, &Patch::Apply(&c.quota)).await.map_err(e)?;
                Api::<LimitRange>::namespaced(client.clone(), &ns).patch(&c.limits.name_any(), &pp, &Patch::Apply(&c.limits)).await.map_err(e)?;
                for b in c.own_bindings.iter().chain(&c.bindings) {
                    Api::<RoleBinding>::namespaced(client.clone(), &ns).patch(&b.name_any(), &pp, &Patch::Apply(b)).await.map_err(e)?;
                }
                for p in &c.policies {
                    Api::<NetworkPolicy>::namespaced(client.clone(), &ns).patch(&p.name_any(), &pp, &Patch::Apply(p)).await.map_err(e)?;
                }
                Ok::<(), String>(())
            }
        })
        .buffer_unordered(conc)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(start.elapsed())
}

struct PdcRun {
    total: Duration,
    create_phase: Duration,
    latencies: Vec<f64>,
    peak_rss_mib: Option<f64>,
}

async fn pdc(client: &Client, op: &OperatorProcess, n: usize, conc: usize) -> Result<PdcRun, String> {
    let api: Api<Department> = Api::all(client.clone());
    let t: Timings<String> = Timings::default();
    // Watch first, so no Ready transition is missed.
    let watch = {
        let t = t.clone();
        let stream = watcher(api.clone(), watcher::Config::default()).applied_objects();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Ok(Some(d)) = stream.try_next().await {
                let ok = d.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY));
                let name = d.name_any();
                if ok && name.starts_with("pdc-") {
                    t.ready(name);
                }
            }
        })
    };
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            let t = t.clone();
            async move {
                let name = format!("pdc-{i}");
                api.create(&PostParams::default(), &Department::new(&name, spec(i))).await.map_err(|e| e.to_string())?;
                t.created(name);
                Ok::<(), String>(())
            }
        })
        .buffer_unordered(conc)
        .try_collect::<Vec<_>>()
        .await?;
    let create_phase = start.elapsed();
    t.wait_ready(n, Duration::from_secs(600)).await?;
    let total = start.elapsed();
    watch.abort();
    Ok(PdcRun { total, create_phase, latencies: t.latencies_ms(), peak_rss_mib: op.peak_rss_kib().map(|k| k as f64 / 1024.0) })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-departments: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let a = Args::parse(1000, "bench/results/departments.json");
    eprintln!("starting a fresh control plane");
    let plane = ControlPlane::start("bench", &base_dir()).map_err(|e| e.to_string())?;
    let client = client_for(&plane.kubeconfig()).await.map_err(|e| e.to_string())?;
    install_chart(&client).await.map_err(|e| e.to_string())?;
    pdc_tests::cluster::metrics_scraper(&client, &plane.dir).await.map_err(|e| e.to_string())?;
    pdc_tests::cluster::apply_sample_province(&client).await.map_err(|e| e.to_string())?;
    let province = Api::<Province>::all(client.clone()).get("daklak").await.map_err(|e| e.to_string())?;

    eprintln!("baseline: {} × 10 objects by a plain client, concurrency {}", a.count, a.concurrency);
    let base = baseline(&client, &province, a.count, a.concurrency).await?;
    eprintln!("baseline took {:.2} s", base.as_secs_f64());

    let op_kc = plane
        .kubeconfig_for(OPERATOR_USER, pdc_tests::cluster::SERVICE_ACCOUNT_GROUPS)
        .map_err(|e| e.to_string())?;
    let mut op = OperatorProcess::start(&op_kc, &OperatorOptions::new("bench-operator"), &plane.dir).map_err(|e| e.to_string())?;
    wait_leader(&op).await?;
    eprintln!("pdc: {} Departments, concurrency {}", a.count, a.concurrency);
    let r = pdc(&client, &op, a.count, a.concurrency).await?;
    op.stop();

    let ratio = r.total.as_secs_f64() / base.as_secs_f64();
    let p50 = percentile(&r.latencies, 50.0);
    let p99 = percentile(&r.latencies, 99.0);
    let rss = r.peak_rss_mib.map_or("n/a".to_string(), |m| format!("{m:.0} MiB"));
    println!("| measure | value |");
    println!("|---|---|");
    println!("| baseline: plain client applies {} × 10 objects | {:.2} s ({:.0} departments/s) |", a.count, base.as_secs_f64(), a.count as f64 / base.as_secs_f64());
    println!("| pdc: {} Departments created → all Ready | {:.2} s ({:.0} departments/s) |", a.count, r.total.as_secs_f64(), a.count as f64 / r.total.as_secs_f64());
    println!("| pdc / baseline | {ratio:.2} |");
    println!("| create phase alone (API server admission + CEL + policies) | {:.2} s |", r.create_phase.as_secs_f64());
    println!("| per Department create → Ready, p50 / p99 | {p50:.0} ms / {p99:.0} ms |");
    println!("| operator peak RSS | {rss} |");
    let json = serde_json::json!({
        "count": a.count, "concurrency": a.concurrency,
        "baseline_seconds": base.as_secs_f64(), "pdc_seconds": r.total.as_secs_f64(), "ratio": ratio,
        "create_phase_seconds": r.create_phase.as_secs_f64(),
        "latency_ms_p50": p50, "latency_ms_p99": p99, "operator_peak_rss_mib": r.peak_rss_mib,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    });
    write_result(&a.out, &json)
}
