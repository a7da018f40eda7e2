//! Benchmark: N TenantVMs across 100 departments created → all Ready (quota charged,
//! addresses bound, DataVolumes and VirtualMachine made, A/AAAA programmed on a real
//! Knot DNS, KubeVirt's stand-in reporting them Running), against a fresh real
//! control plane with the operator under the chart's RBAC.
//!
//! Baseline, same run, same API server, same client concurrency: raw creates of the
//! same child objects (per VM an AddressClaim, two DataVolumes and the
//! VirtualMachine, as the operator builds them), with no operator running.
//!
//!     bash bench/vms.sh [--count 1000] [--concurrency 16]

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use pdc_api::{AddressClaim, Department, TenantVM};
use pdc_operator::compute::build::{self, NicPlan, dv_resource, vm_resource};
use pdc_tests::addressing::load_plan;
use pdc_tests::bench::{Args, Timings, create_all, percentile, progress, tenant_vm, vm_ready, wait_leader, watch_ready, write_result};
use pdc_tests::cluster::{apply_yaml, private_env};
use pdc_tests::dns::{KnotServer, register_zones};
use pdc_tests::operator::{OperatorOptions, OperatorProcess};

const DEPARTMENTS: usize = 100;
/// VMs made one at a time before the burst, in a department of their own.
const IDLE_VMS: usize = 5;
const IDLE_DEPARTMENT: &str = "don-vi-idle";

struct Idle {
    first_ms: Vec<f64>,
    ready_ms: Vec<f64>,
    first_reason: Vec<String>,
}

/// Create VMs one at a time on an otherwise idle operator, polling each every 10 ms:
/// how long until it shows its first condition, and until it is Ready.
async fn one_at_a_time(client: &Client) -> Result<Idle, String> {
    let api: Api<TenantVM> = Api::namespaced(client.clone(), IDLE_DEPARTMENT);
    let mut idle = Idle { first_ms: Vec::new(), ready_ms: Vec::new(), first_reason: Vec::new() };
    for i in 0..IDLE_VMS {
        let start = Instant::now();
        api.create(&PostParams::default(), &tenant_vm(&format!("idle-{i}"))?).await.map_err(|e| e.to_string())?;
        let mut first = None;
        loop {
            let v = api.get(&format!("idle-{i}")).await.map_err(|e| e.to_string())?;
            let conds = v.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
            if first.is_none() && let Some(c) = conds.first() {
                first = Some(start.elapsed());
                idle.first_reason.push(format!("{}={} {}", c.type_, c.status, c.reason));
            }
            if vm_ready(&v) {
                break;
            }
            if start.elapsed() > Duration::from_secs(120) {
                return Err(format!("idle-{i} not Ready within 120 s"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        idle.first_ms.push(first.unwrap_or_default().as_secs_f64() * 1000.0);
        idle.ready_ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(idle)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-vms: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The floor: the same child objects created raw, then removed.
async fn baseline(client: &Client, n: usize, conc: usize) -> Result<Duration, String> {
    let ns = "bench-baseline";
    let nso = Namespace { metadata: ObjectMeta { name: Some(ns.into()), ..Default::default() }, ..Default::default() };
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &nso).await.map_err(|e| e.to_string())?;
    let claims: Api<AddressClaim> = Api::namespaced(client.clone(), ns);
    let dvs: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &dv_resource());
    let vms: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &vm_resource());
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let (claims, dvs, vms) = (claims.clone(), dvs.clone(), vms.clone());
            async move {
                let mut vm = tenant_vm(&format!("vm-{i:04}"))?;
                vm.metadata.namespace = Some(ns.into());
                vm.metadata.uid = Some(format!("00000000-0000-0000-0000-{i:012}"));
                let pp = PostParams::default();
                for c in build::claims(&vm, None) {
                    claims.create(&pp, &c).await.map_err(|e| e.to_string())?;
                }
                dvs.create(&pp, &build::data_volume(&vm, &vm.spec.root_disk, true, "pdc-ssd", None)).await.map_err(|e| e.to_string())?;
                for d in &vm.spec.disks {
                    dvs.create(&pp, &build::data_volume(&vm, d, false, "pdc-hdd", None)).await.map_err(|e| e.to_string())?;
                }
                let nic = NicPlan {
                    zone: "app".into(),
                    mac: pdc_core::netdata::mac_for(&i.to_string()),
                    ipv4: Some((format!("10.99.{}.{}/24", i / 250, i % 250 + 1), "10.99.0.1".into())),
                    ipv6: Some((format!("2001:db8:99::{i:x}/64"), "2001:db8:99::1".into())),
                };
                vms.create(&pp, &build::virtual_machine(&vm, 2, "4Gi", &[nic], &["10.15.255.53".into()], "bench.daklak.gov.vn", &[], false)).await.map_err(|e| e.to_string())?;
                Ok::<(), String>(())
            }
        })
        .buffer_unordered(conc)
        .try_collect::<Vec<_>>()
        .await?;
    let took = start.elapsed();
    let dp = DeleteParams::default();
    let lp = ListParams::default();
    claims.delete_collection(&dp, &lp).await.map_err(|e| e.to_string())?;
    dvs.delete_collection(&dp, &lp).await.map_err(|e| e.to_string())?;
    vms.delete_collection(&dp, &lp).await.map_err(|e| e.to_string())?;
    Ok(took)
}

async fn run() -> Result<(), String> {
    let a = Args::parse(1000, "bench/results/vms.json");
    eprintln!("starting a fresh control plane and Knot DNS");
    let (env, _plane) = private_env("bench-vms").await.map_err(|e| e.to_string())?;
    let client = env.client().await.map_err(|e| e.to_string())?;
    let knot = KnotServer::start(&env.dir, &["daklak.gov.vn", "15.10.in-addr.arpa"]).map_err(|e| e.to_string())?;

    eprintln!("baseline: raw creates of the child objects of {} VMs (4 each), concurrency {}", a.count, a.concurrency);
    let base = baseline(&client, a.count, a.concurrency).await?;
    eprintln!("baseline took {:.2} s", base.as_secs_f64());

    let mut op = OperatorProcess::start(&env.operator_kubeconfig, &OperatorOptions::new("bench-operator"), &env.dir).map_err(|e| e.to_string())?;
    wait_leader(&op).await?;
    let depts: Vec<String> = (0..DEPARTMENTS).map(|i| format!("don-vi-{i:03}")).collect();
    eprintln!("{DEPARTMENTS} departments with subnets in zone app, and one for VMs made one at a time at idle");
    let all: Vec<String> = depts.iter().cloned().chain([IDLE_DEPARTMENT.to_string()]).collect();
    load_plan(&client, "app", 24, &all).await.map_err(|e| e.to_string())?;
    let per = a.count.div_ceil(DEPARTMENTS);
    let quota = serde_json::json!({"spec": {"quota": {"vcpu": 2 * per, "memory": format!("{}Gi", 4 * per), "storage": {"ssd": format!("{}Gi", 20 * per), "hdd": format!("{}Gi", 50 * per)}, "vms": per}}});
    let dapi: Api<Department> = Api::all(client.clone());
    for d in &depts {
        dapi.patch(d, &PatchParams::default(), &Patch::Merge(&quota)).await.map_err(|e| e.to_string())?;
    }
    let idle_quota = serde_json::json!({"spec": {"quota": {"vcpu": 2 * IDLE_VMS, "memory": format!("{}Gi", 4 * IDLE_VMS), "storage": {"ssd": format!("{}Gi", 20 * IDLE_VMS), "hdd": format!("{}Gi", 50 * IDLE_VMS)}, "vms": IDLE_VMS}}});
    dapi.patch(IDLE_DEPARTMENT, &PatchParams::default(), &Patch::Merge(&idle_quota)).await.map_err(|e| e.to_string())?;
    apply_yaml(&client, "apiVersion: pdc.io/v1alpha1\nkind: SizeClass\nmetadata: {name: m1.small}\nspec: {vcpu: 2, memory: 4Gi}\n", None).await.map_err(|e| e.to_string())?;
    register_zones(&client, &knot, "knot-tsig").await.map_err(|e| e.to_string())?;
    // KubeVirt, CDI and the CSI driver, with the upstream rules they enforce.
    let players = pdc_tests::players::Players::start(vec![("bench".into(), env.kubeconfig.clone())]).map_err(|e| e.to_string())?;

    eprintln!("{IDLE_VMS} VMs one at a time on the idle operator: create → first condition, → Ready");
    let idle = one_at_a_time(&client).await?;
    let sorted = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v
    };
    let (first50, ready50) = (percentile(&sorted(&idle.first_ms), 50.0), percentile(&sorted(&idle.ready_ms), 50.0));
    eprintln!("idle: first condition p50 {first50:.0} ms ({:?}), Ready p50 {ready50:.0} ms", idle.first_ms);

    eprintln!("pdc: {} TenantVMs over {DEPARTMENTS} departments, concurrency {}", a.count, a.concurrency);
    let t: Timings<(String, String)> = Timings::default();
    let watch = watch_ready::<TenantVM>(client.clone(), t.clone(), vm_ready);
    let start = Instant::now();
    let progress = progress(t.clone(), a.count, "Ready", start);
    create_all(&client, a.count, a.concurrency, &t, |i| {
        let ns = depts.get(i % DEPARTMENTS).cloned().unwrap_or_default();
        Ok((ns, tenant_vm(&format!("vm-{i:04}"))?))
    })
    .await?;
    let create_phase = start.elapsed();
    t.wait_ready(a.count, Duration::from_secs(1800)).await?;
    let total = start.elapsed();
    watch.abort();
    progress.abort();
    players.stop();
    let rss = op.peak_rss_kib().map(|k| k as f64 / 1024.0);
    let requests = op.api_requests().map_err(|e| e.to_string())?;
    op.stop();

    eprintln!("checking every VM's A record in a transfer of the zone");
    let (server, key) = (knot.server(), knot.key().map_err(|e| e.to_string())?);
    let zone = pdc_dns::transfer(&server, "daklak.gov.vn", &key).await.map_err(|e| e.to_string())?;
    let missing = (0..a.count)
        .filter(|i| {
            let d = depts.get(i % DEPARTMENTS).cloned().unwrap_or_default();
            !zone.sets.contains_key(&(format!("vm-{i:04}.{d}.daklak.gov.vn."), pdc_core::dnsplan::RecordType::A))
        })
        .count();

    let lat = t.latencies_ms();
    let (p50, p99) = (percentile(&lat, 50.0), percentile(&lat, 99.0));
    let rate = a.count as f64 / total.as_secs_f64();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| baseline: raw creates of {} VMs' child objects (claim, 2 DataVolumes, VirtualMachine) | {:.2} s |", a.count, base.as_secs_f64());
    println!("| pdc: {} TenantVMs created → all Ready | {:.2} s ({rate:.1} VMs/s) |", a.count, total.as_secs_f64());
    println!("| pdc / baseline (time) | {:.2} |", total.as_secs_f64() / base.as_secs_f64());
    println!("| create phase alone | {:.2} s |", create_phase.as_secs_f64());
    println!("| per VM create → Ready, p50 / p99 | {p50:.0} ms / {p99:.0} ms |");
    println!("| operator peak RSS | {} |", rss.map_or("n/a".into(), |m| format!("{m:.0} MiB")));
    println!("| operator API requests | {} (baseline: 4 writes per VM, plus the TenantVM's own create) |", requests.per(a.count));
    println!("| VMs whose A record is missing from the zone | {missing} |");
    println!("| idle: {IDLE_VMS} VMs one at a time, create → first condition p50 (each) | {first50:.0} ms ({}) |", idle.first_ms.iter().map(|m| format!("{m:.0}")).collect::<Vec<_>>().join(", "));
    println!("| idle: create → Ready p50 | {ready50:.0} ms |");
    println!("| idle: first condition seen | {} |", idle.first_reason.join(", "));
    write_result(
        &a.out,
        &serde_json::json!({
            "count": a.count, "concurrency": a.concurrency, "departments": DEPARTMENTS,
            "baseline_seconds": base.as_secs_f64(), "pdc_seconds": total.as_secs_f64(),
            "ratio": total.as_secs_f64() / base.as_secs_f64(), "vms_per_second": rate,
            "create_phase_seconds": create_phase.as_secs_f64(),
            "latency_ms_p50": p50, "latency_ms_p99": p99, "operator_peak_rss_mib": rss, "missing_a_records": missing,
            "operator_api_requests": requests.json(a.count),
            "idle_first_condition_ms": idle.first_ms, "idle_ready_ms": idle.ready_ms, "idle_first_condition": idle.first_reason,
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        }),
    )?;
    if missing == 0 { Ok(()) } else { Err(format!("{missing} VMs have no A record")) }
}
