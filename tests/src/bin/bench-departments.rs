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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
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
use pdc_tests::cluster::{OPERATOR_USER, apply_yaml, base_dir, client_for, install_chart};
use pdc_tests::controlplane::ControlPlane;
use pdc_tests::operator::{OperatorOptions, OperatorProcess};

struct Args {
    count: usize,
    concurrency: usize,
    out: String,
}

fn args() -> Args {
    let mut a = Args { count: 1000, concurrency: 16, out: "bench/results/departments.json".into() };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--count" => a.count = v.parse().unwrap_or(a.count),
            "--concurrency" => a.concurrency = v.parse().unwrap_or(a.concurrency),
            "--out" => a.out = v,
            _ => eprintln!("ignoring unknown argument {k}"),
        }
    }
    a
}

fn spec(i: usize) -> DepartmentSpec {
    DepartmentSpec {
        display_name: format!("Xã Thử Nghiệm {i}"),
        code: format!("H15.{}.{}", 1 + i / 1000, i % 1000),
        kind: pdc_api::DepartmentKind::Commune,
        subdomain: None,
        admins: Subjects { users: vec![format!("admin{i}@daklak.gov.vn")], groups: vec!["commune-admins".into()] },
        viewers: Subjects::default(),
        quota: GuestQuota {
            vcpu: 16,
            memory: "32Gi".into(),
            storage: BTreeMap::from([("ssd".into(), "200Gi".into()), ("hdd".into(), "500Gi".into())]),
            vms: 8,
            public_addresses: 1,
        },
        zones: Vec::new(),
        lifecycle: Default::default(),
        deletion_protection: false,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted.get(idx.min(sorted.len() - 1)).copied().unwrap_or(f64::NAN)
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
                let c = pdc_operator::department::build::children(&d, province);
                let ns = d.name_any();
                let e = |e: kube::Error| e.to_string();
                Api::<Namespace>::all(client.clone()).patch(&ns, &pp, &Patch::Apply(&c.namespace)).await.map_err(e)?;
                Api::<ResourceQuota>::namespaced(client.clone(), &ns).patch(&c.quota.name_any(), &pp, &Patch::Apply(&c.quota)).await.map_err(e)?;
                Api::<LimitRange>::namespaced(client.clone(), &ns).patch(&c.limits.name_any(), &pp, &Patch::Apply(&c.limits)).await.map_err(e)?;
                for b in &c.bindings {
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
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let ready: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    // Watch first, so no Ready transition is missed.
    let watch = {
        let ready = ready.clone();
        let stream = watcher(api.clone(), watcher::Config::default()).applied_objects();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Ok(Some(d)) = stream.try_next().await {
                let ok = d.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY));
                let name = d.name_any();
                if ok
                    && name.starts_with("pdc-")
                    && let Ok(mut r) = ready.lock()
                {
                    r.entry(name).or_insert_with(Instant::now);
                }
            }
        })
    };
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            let created = created.clone();
            async move {
                let name = format!("pdc-{i}");
                api.create(&PostParams::default(), &Department::new(&name, spec(i))).await.map_err(|e| e.to_string())?;
                if let Ok(mut c) = created.lock() {
                    c.insert(name, Instant::now());
                }
                Ok::<(), String>(())
            }
        })
        .buffer_unordered(conc)
        .try_collect::<Vec<_>>()
        .await?;
    let create_phase = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = ready.lock().map(|r| r.len()).unwrap_or(0);
        if done >= n {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("only {done}/{n} Ready after 600 s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = start.elapsed();
    watch.abort();
    let c = created.lock().map_err(|e| e.to_string())?;
    let r = ready.lock().map_err(|e| e.to_string())?;
    let mut latencies: Vec<f64> =
        r.iter().filter_map(|(k, t)| c.get(k).map(|c0| t.saturating_duration_since(*c0).as_secs_f64() * 1000.0)).collect();
    latencies.sort_by(f64::total_cmp);
    Ok(PdcRun { total, create_phase, latencies, peak_rss_mib: op.peak_rss_kib().map(|k| k as f64 / 1024.0) })
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
    let a = args();
    eprintln!("starting a fresh control plane");
    let plane = ControlPlane::start("bench", &base_dir()).map_err(|e| e.to_string())?;
    let client = client_for(&plane.kubeconfig()).await.map_err(|e| e.to_string())?;
    install_chart(&client).await.map_err(|e| e.to_string())?;
    let province_yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/samples/province.yaml")).map_err(|e| e.to_string())?;
    apply_yaml(&client, &province_yaml, None).await.map_err(|e| e.to_string())?;
    let province = Api::<Province>::all(client.clone()).get("daklak").await.map_err(|e| e.to_string())?;

    eprintln!("baseline: {} × 7 objects by a plain client, concurrency {}", a.count, a.concurrency);
    let base = baseline(&client, &province, a.count, a.concurrency).await?;
    eprintln!("baseline took {:.2} s", base.as_secs_f64());

    let op_kc = plane
        .kubeconfig_for(OPERATOR_USER, &["system:serviceaccounts", "system:serviceaccounts:pdc-system"])
        .map_err(|e| e.to_string())?;
    let mut op = OperatorProcess::start(&op_kc, &OperatorOptions::new("bench-operator"), &plane.dir).map_err(|e| e.to_string())?;
    // Wait until the operator leads (it reports pdc_leader 1).
    let t = Instant::now();
    while op.metric("pdc_leader").unwrap_or(0.0) < 1.0 {
        if t.elapsed() > Duration::from_secs(30) {
            return Err("operator did not take the lease".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("pdc: {} Departments, concurrency {}", a.count, a.concurrency);
    let r = pdc(&client, &op, a.count, a.concurrency).await?;
    op.stop();

    let ratio = r.total.as_secs_f64() / base.as_secs_f64();
    let p50 = percentile(&r.latencies, 50.0);
    let p99 = percentile(&r.latencies, 99.0);
    let rss = r.peak_rss_mib.map_or("n/a".to_string(), |m| format!("{m:.0} MiB"));
    println!("| measure | value |");
    println!("|---|---|");
    println!("| baseline: plain client applies {} × 7 objects | {:.2} s ({:.0} departments/s) |", a.count, base.as_secs_f64(), a.count as f64 / base.as_secs_f64());
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
    if let Some(dir) = std::path::Path::new(&a.out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&a.out, serde_json::to_string_pretty(&json).unwrap_or_default()).map_err(|e| format!("writing {}: {e}", a.out))?;
    eprintln!("wrote {}", a.out);
    Ok(())
}
