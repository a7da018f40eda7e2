//! Benchmark: a department with N (50) protected VMs; control-plane failover time from
//! the action request to every VM running at the standby and its names switched
//! (data movement excluded: the VolSync stand-in has the replicas in place), over 5
//! failovers, each followed by a relocate back. Two real control planes, a real
//! Knot DNS server, an operator per site under the chart's RBAC; KubeVirt and VolSync
//! played by `pdc_tests::sites`.
//!
//! Baseline, same run, same servers: the raw writes a failover of N VMs comes down
//! to, made by a plain client with no decisions: halt N VirtualMachines at the
//! primary, create N DataVolumes and N VirtualMachines at the standby, and one
//! RFC 2136 UPDATEs (100 changes each) replacing 2N A/AAAA sets on the DNS server.
//!
//!     bash bench/dr.sh [--count 50] [--runs 5]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use pdc_api::{DrPlan, TenantVM, conditions};
use pdc_core::dnsplan::{Change, RRset, RecordType};
use pdc_operator::compute::build::{dv_resource, vm_resource};
use pdc_tests::bench::{Args, percentile, write_result};
use pdc_tests::sites::{TwoSites, plan, vm};

const DEPT: &str = "so-y-te";
/// Failovers (each followed by a relocate back), unless `--runs N`.
const RUNS: usize = 5;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-dr: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn wait_plan(client: &Client, what: &str, secs: u64, ok: impl Fn(&DrPlan) -> bool) -> Result<DrPlan, String> {
    pdc_tests::cluster::wait_for(&Api::<DrPlan>::namespaced(client.clone(), DEPT), DEPT, Duration::from_secs(secs), what, ok).await.map_err(|e| e.to_string())
}

/// Replicating from this copy's site: its active steady state reports Protected.
fn protected(p: &DrPlan) -> bool {
    p.status.as_ref().is_some_and(|s| s.phase.as_deref() == Some("Protected") && conditions::is_true(&s.conditions, "Protected"))
}

/// Ask `client`'s copy for `action` and wait until it has finished; the seconds it took.
async fn act(client: &Client, action: &str, token: &str) -> Result<f64, String> {
    let api: Api<DrPlan> = Api::namespaced(client.clone(), DEPT);
    let t = Instant::now();
    let body = serde_json::json!({"spec": {"action": action, "actionToken": token, "dryRun": false}});
    api.patch(DEPT, &PatchParams::default(), &Patch::Merge(&body)).await.map_err(|e| e.to_string())?;
    let p = wait_plan(client, &format!("{action} {token} finished"), 600, |p| {
        p.status.as_ref().and_then(|s| s.last_action.as_ref()).is_some_and(|a| a.token == token && a.result != "Running")
    })
    .await?;
    let secs = t.elapsed().as_secs_f64();
    let a = p.status.and_then(|s| s.last_action).ok_or("no action recorded")?;
    if a.result != "Succeeded" {
        return Err(format!("{action} {token}: {} — {}", a.result, a.message));
    }
    let took: Vec<String> = a
        .steps
        .iter()
        .map(|s| match (&s.started, &s.finished) {
            (Some(b), Some(e)) => format!("{} {:.1}s", s.name, e.0.duration_since(b.0).as_secs_f64()),
            _ => s.name.clone(),
        })
        .collect();
    eprintln!("  {action}: {secs:.1}s ({})", took.join(", "));
    Ok(secs)
}

/// The floor: the raw writes of a failover of `n` VMs, in namespace `bench-baseline`.
async fn baseline(s: &TwoSites, pc: &Client, sc: &Client, n: usize) -> Result<f64, String> {
    let ns = "bench-baseline";
    for c in [pc, sc] {
        let nso: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).map_err(|e| e.to_string())?;
        Api::<k8s_openapi::api::core::v1::Namespace>::all(c.clone()).create(&PostParams::default(), &nso).await.map_err(|e| e.to_string())?;
    }
    let vmobj = |i: usize, strategy: &str| -> Result<DynamicObject, String> {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": format!("vm-{i}"), "namespace": ns},
            "spec": {"runStrategy": strategy, "template": {"spec": {"domain": {"cpu": {"cores": 2}, "memory": {"guest": "4Gi"}},
                     "volumes": [{"name": "root", "dataVolume": {"name": format!("vm-{i}-root")}}]}}}
        }))
        .map_err(|e| e.to_string())
    };
    let pvms: Api<DynamicObject> = Api::namespaced_with(pc.clone(), ns, &vm_resource());
    for i in 0..n {
        pvms.create(&PostParams::default(), &vmobj(i, "Always")?).await.map_err(|e| e.to_string())?;
    }
    let key = pdc_dns::Key::from_base64(&s.knot.key_name, &s.knot.key_algorithm, &s.knot.key_secret).map_err(|e| e.to_string())?;
    let server = pdc_dns::Server::new(std::net::SocketAddr::from(([127, 0, 0, 1], s.knot.port)));
    let zone = "daklak.gov.vn.";
    let set = |i: usize, t: RecordType, v: String| RRset { name: format!("vm-{i}.bench-baseline.daklak.gov.vn."), rtype: t, ttl: 300, values: BTreeSet::from([v]) };
    let create: Vec<Change> = (0..n).flat_map(|i| [Change::Create(set(i, RecordType::A, format!("10.15.{}.{}", 200 + i / 250, i % 250 + 1))), Change::Create(set(i, RecordType::AAAA, format!("2001:db8:1500:200::{}", i + 1)))]).collect();
    // At most 100 changes per UPDATE, as pdc's writer sends them: a message holds 64 KiB.
    for part in create.chunks(100) {
        pdc_dns::update(&server, zone, &key, part).await.map_err(|e| e.to_string())?;
    }

    let t = Instant::now();
    let halt = serde_json::json!({"spec": {"runStrategy": "Halted"}});
    for i in 0..n {
        pvms.patch(&format!("vm-{i}"), &PatchParams::default(), &Patch::Merge(&halt)).await.map_err(|e| e.to_string())?;
    }
    let sdvs: Api<DynamicObject> = Api::namespaced_with(sc.clone(), ns, &dv_resource());
    let svms: Api<DynamicObject> = Api::namespaced_with(sc.clone(), ns, &vm_resource());
    for i in 0..n {
        let dv: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": {"name": format!("vm-{i}-root"), "namespace": ns},
            "spec": {"source": {"snapshot": {"namespace": ns, "name": format!("replica-{i}")}}, "storage": {"resources": {"requests": {"storage": "20Gi"}}}}
        }))
        .map_err(|e| e.to_string())?;
        sdvs.create(&PostParams::default(), &dv).await.map_err(|e| e.to_string())?;
        svms.create(&PostParams::default(), &vmobj(i, "Always")?).await.map_err(|e| e.to_string())?;
    }
    let switch: Vec<Change> = (0..n)
        .flat_map(|i| {
            [
                Change::Replace { expect: set(i, RecordType::A, format!("10.15.{}.{}", 200 + i / 250, i % 250 + 1)), new: set(i, RecordType::A, format!("10.45.{}.{}", 200 + i / 250, i % 250 + 1)) },
                Change::Replace { expect: set(i, RecordType::AAAA, format!("2001:db8:1500:200::{}", i + 1)), new: set(i, RecordType::AAAA, format!("2001:db8:4500:200::{}", i + 1)) },
            ]
        })
        .collect();
    for part in switch.chunks(100) {
        pdc_dns::update(&server, zone, &key, part).await.map_err(|e| e.to_string())?;
    }
    Ok(t.elapsed().as_secs_f64())
}

async fn run() -> Result<(), String> {
    let args = Args::parse(50, "bench/results/dr.json");
    let n = args.count;
    let total = Instant::now();
    eprintln!("starting two control planes, Knot and an operator per site");
    let s = TwoSites::start(DEPT, u32::try_from(n + 2).unwrap_or(u32::MAX), &[]).await.map_err(|e| e.to_string())?;
    let (pc, sc) = (s.primary.client().await.map_err(|e| e.to_string())?, s.standby.client().await.map_err(|e| e.to_string())?);
    let players = s.players.clone();

    let base = baseline(&s, &pc, &sc, n).await?;
    eprintln!("baseline (raw writes of a failover of {n} VMs): {base:.2}s");

    let vms: Api<TenantVM> = Api::namespaced(pc.clone(), DEPT);
    for i in 0..n {
        vms.create(&PostParams::default(), &vm(&format!("vm-{i:02}"), true).map_err(|e| e.to_string())?).await.map_err(|e| e.to_string())?;
    }
    let t = Instant::now();
    loop {
        let ready = vms.list(&Default::default()).await.map_err(|e| e.to_string())?.items.iter().filter(|v| v.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, "Ready"))).count();
        if ready == n {
            break;
        }
        if t.elapsed() > Duration::from_secs(600) {
            return Err(format!("only {ready} of {n} VMs Ready"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("{n} VMs Ready at the primary in {:.1}s", t.elapsed().as_secs_f64());
    Api::<DrPlan>::namespaced(pc.clone(), DEPT).create(&PostParams::default(), &plan(DEPT, "15m").map_err(|e| e.to_string())?).await.map_err(|e| e.to_string())?;
    let t = Instant::now();
    wait_plan(&pc, "Protected", 600, protected).await?;
    wait_plan(&sc, "replicas of every disk at the standby", 600, |p| p.status.as_ref().is_some_and(|s| s.volumes.len() == n && s.volumes.iter().all(|v| v.latest_image.is_some()))).await?;
    eprintln!("plan Protected (standby copies, {n} disks replicating) in {:.1}s", t.elapsed().as_secs_f64());

    let (mut failovers, mut relocates) = (Vec::new(), Vec::new());
    let runs: usize = args.get("runs", RUNS);
    for r in 0..runs {
        eprintln!("run {}", r + 1);
        failovers.push(act(&sc, "Failover", &format!("bench-failover-{r}")).await?);
        wait_plan(&sc, "replicating back", 600, protected).await?;
        relocates.push(act(&pc, "Relocate", &format!("bench-relocate-{r}")).await?);
        wait_plan(&pc, "Protected again", 600, protected).await?;
    }
    players.stop();
    // Requests per VM over the whole run (setup, 10 actions and the replication
    // between them), at each site.
    let requests = |site: &pdc_tests::sites::SiteEnv| site.operator.as_ref().and_then(|o| o.api_requests().ok()).map(|r| r.json(n)).unwrap_or_default();
    let (primary_requests, standby_requests) = (requests(&s.primary), requests(&s.standby));
    let violations = players.violations.lock().map(|v| v.len()).unwrap_or(0);
    let answer = s.knot.dig(&format!("vm-00.{DEPT}.daklak.gov.vn."), "A", false).map_err(|e| e.to_string())?;
    let mut sorted = failovers.clone();
    sorted.sort_by(f64::total_cmp);
    let mut rsorted = relocates.clone();
    rsorted.sort_by(f64::total_cmp);
    let p50 = percentile(&sorted, 50.0);
    let json = serde_json::json!({
        "vms": n,
        "runs": runs,
        "cores": std::thread::available_parallelism().map(|c| c.get()).unwrap_or(0),
        "failover_seconds": failovers,
        "failover_p50_seconds": p50,
        "relocate_seconds": relocates,
        "relocate_p50_seconds": percentile(&rsorted, 50.0),
        "baseline_seconds": base,
        "ratio": p50 / base,
        "vms_set_to_run_at_both_sites": violations,
        "final_answer_is_primary": answer.contains("10.15."),
        "total_seconds": total.elapsed().as_secs_f64(),
        "operator_api_requests_per_vm": {"primary": primary_requests, "standby": standby_requests},
    });
    println!("{}", serde_json::to_string_pretty(&json).unwrap_or_default());
    write_result(&args.out, &json)
}
