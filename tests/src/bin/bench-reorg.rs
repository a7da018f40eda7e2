//! Benchmark: a reorganization act merging C communes into S successors, with V
//! TenantVMs and R DnsRecords in the communes (one VM in `--keep-every` kept and
//! moved, the others halted and archived), carried out against a fresh real control
//! plane with Knot signing the zone and the KubeVirt, CDI and CSI stand-ins. Timed
//! from `action: Apply` to the act waiting for the end of its transition (every
//! step before it done), while a prober asks a sample of the affected names every
//! 200 ms: answers lost must be 0.
//!
//! Baseline, same run, same API server, 16 in flight, no operator: the object
//! writes the act comes down to, made by a plain client on a shadow copy (per VM a
//! TenantVM patch halting it and a VolumeSnapshot per disk; per kept VM a TenantVM
//! create at the successor and the old one's delete; per record its copy and its
//! alias; per old VM name an alias; per unit two Department patches).
//!
//!     bash bench/reorg.sh [--communes 100] [--successors 30] [--vms 1000] [--records 5000] [--keep-every 10]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use pdc_api::{Department, DnsRecord, Reorganization, TenantVM};
use pdc_operator::compute::build::snapshot_resource;
use pdc_tests::addressing::load_plan;
use pdc_tests::bench::{Args, Timings, create_all, programmed, record, tenant_vm, vm_ready, wait_leader, watch_ready, write_result};
use pdc_tests::cluster::{apply_yaml, private_env};
use pdc_tests::dns::{KnotServer, register_zones};
use pdc_tests::operator::{OperatorOptions, OperatorProcess};

struct Shape {
    communes: usize,
    successors: usize,
    vms: usize,
    records: usize,
    keep_every: usize,
    conc: usize,
}

impl Shape {
    fn commune(&self, i: usize) -> String {
        format!("xa-{:03}", i % self.communes)
    }
    fn kept(&self, i: usize) -> bool {
        i.is_multiple_of(self.keep_every)
    }
    /// Objects the act writes (the baseline's count).
    fn writes(&self) -> usize {
        let kept = self.vms.div_ceil(self.keep_every);
        self.vms * 3 + kept * 2 + self.records * 2 + self.vms + self.communes * 2
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-reorg: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Two departments the baseline writes in (made with the estate, empty).
const SHADOW: (&str, &str) = ("bl-src", "bl-dst");

/// The baseline in the shadow departments, with the operator stopped: the same
/// writes, by a plain client; what it made is removed afterwards (the operator
/// never saw it, so nothing holds a finalizer).
async fn baseline(client: &Client, s: &Shape) -> Result<Duration, String> {
    let (ns, to) = SHADOW;
    let vms: Api<TenantVM> = Api::namespaced(client.clone(), ns);
    let moved: Api<TenantVM> = Api::namespaced(client.clone(), to);
    let snaps: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &snapshot_resource());
    let recs: Api<DnsRecord> = Api::namespaced(client.clone(), ns);
    let depts: Api<Department> = Api::all(client.clone());
    // Untimed: the shadow estate the writes change.
    futures::stream::iter(0..s.vms)
        .map(|i| {
            let vms = vms.clone();
            async move { vms.create(&PostParams::default(), &tenant_vm(&format!("vm-{i:05}"))?).await.map(|_| ()).map_err(err) }
        })
        .buffer_unordered(s.conc)
        .try_collect::<Vec<_>>()
        .await?;
    let start = Instant::now();
    let pp = PostParams::default();
    futures::stream::iter(0..s.vms)
        .map(|i| {
            let (vms, moved, snaps, recs) = (vms.clone(), moved.clone(), snaps.clone(), recs.clone());
            let kept = s.kept(i);
            let pp = pp.clone();
            async move {
                let name = format!("vm-{i:05}");
                vms.patch(&name, &PatchParams::apply("bench").force(), &Patch::Apply(serde_json::json!({"apiVersion": "pdc.io/v1alpha1", "kind": "TenantVM", "metadata": {"name": name}, "spec": {"runStrategy": "Halted"}}))).await.map_err(err)?;
                for disk in ["root", "data"] {
                    let snap: DynamicObject = serde_json::from_value(serde_json::json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "metadata": {"name": format!("{name}-{disk}")}, "spec": {"source": {"persistentVolumeClaimName": format!("{name}-{disk}")}}})).map_err(err)?;
                    snaps.create(&pp, &snap).await.map_err(err)?;
                }
                let alias: DnsRecord = serde_json::from_value(serde_json::json!({"apiVersion": "pdc.io/v1alpha1", "kind": "DnsRecord", "metadata": {"name": format!("alias-{name}")}, "spec": {"name": format!("alias-{name}"), "type": "CNAME", "values": ["portal.daklak.gov.vn."]}})).map_err(err)?;
                recs.create(&pp, &alias).await.map_err(err)?;
                if kept {
                    moved.create(&pp, &tenant_vm(&name)?).await.map_err(err)?;
                    vms.delete(&name, &DeleteParams::default()).await.map_err(err)?;
                }
                Ok::<(), String>(())
            }
        })
        .buffer_unordered(s.conc)
        .try_collect::<Vec<_>>()
        .await?;
    futures::stream::iter(0..s.records * 2)
        .map(|i| {
            let recs = recs.clone();
            async move {
                let (_, r) = record(&[ns.to_string()], i, "shadow", &[])?;
                recs.create(&PostParams::default(), &r).await.map(|_| ()).map_err(err)
            }
        })
        .buffer_unordered(s.conc)
        .try_collect::<Vec<_>>()
        .await?;
    // Two patches per unit, on the units themselves, undone after the clock stops.
    let mark = |v: &str| serde_json::json!({"metadata": {"annotations": {"bench/shadow-lifecycle": v}}});
    for step in ["Retiring", "Retired"] {
        futures::stream::iter(0..s.communes)
            .map(|i| {
                let depts = depts.clone();
                let body = mark(step);
                async move { depts.patch(&s.commune(i), &PatchParams::default(), &Patch::Merge(&body)).await.map(|_| ()).map_err(err) }
            })
            .buffer_unordered(s.conc)
            .try_collect::<Vec<_>>()
            .await?;
    }
    let took = start.elapsed();
    for i in 0..s.communes {
        depts.patch(&s.commune(i), &PatchParams::default(), &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"bench/shadow-lifecycle": null}}}))).await.map_err(err)?;
    }
    let (dp, lp) = (DeleteParams::default(), ListParams::default());
    for n in [ns, to] {
        Api::<TenantVM>::namespaced(client.clone(), n).delete_collection(&dp, &lp).await.map_err(err)?;
    }
    snaps.delete_collection(&dp, &lp).await.map_err(err)?;
    recs.delete_collection(&dp, &lp).await.map_err(err)?;
    Ok(took)
}

/// Asks `names` for A every 200 ms until stopped: (answers asked, answers lost).
fn prober(port: u16, names: Vec<String>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    tokio::spawn(async move {
        let server = pdc_dns::Server::new(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
        let (mut asked, mut lost) = (0, Vec::new());
        while !stop.load(Ordering::SeqCst) {
            for n in &names {
                asked += 1;
                match pdc_dns::query(&server, n, "A", false).await {
                    Ok(a) if (a.rcode == "No Error" || a.rcode == "NoError") && !a.records.is_empty() => {}
                    Ok(a) => lost.push(format!("{n}: {}", a.rcode)),
                    Err(e) => lost.push(format!("{n}: {e}")),
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        (asked, lost)
    })
}

/// The estate: communes and successors with their quotas, VMs and records, all
/// Ready and programmed (untimed).
async fn estate(client: &Client, s: &Shape) -> Result<(), String> {
    let communes: Vec<String> = (0..s.communes).map(|i| s.commune(i)).collect();
    let successors: Vec<String> = (0..s.successors).map(|j| format!("xa-moi-{j:02}")).collect();
    let all: Vec<String> = communes.iter().chain(&successors).cloned().chain([SHADOW.0.to_string(), SHADOW.1.to_string()]).collect();
    load_plan(client, "app", 24, &all).await.map_err(err)?;
    apply_yaml(client, "apiVersion: pdc.io/v1alpha1\nkind: SizeClass\nmetadata: {name: m1.small}\nspec: {vcpu: 2, memory: 4Gi}\n", None).await.map_err(err)?;
    let per = s.vms.div_ceil(s.communes) + 1;
    let quota = |n: usize| serde_json::json!({"spec": {"quota": {"vcpu": 2 * n, "memory": format!("{}Gi", 4 * n), "storage": {"ssd": format!("{}Gi", 20 * n), "hdd": format!("{}Gi", 50 * n)}, "vms": n}}});
    let dapi: Api<Department> = Api::all(client.clone());
    for d in &communes {
        dapi.patch(d, &PatchParams::default(), &Patch::Merge(&quota(per))).await.map_err(err)?;
    }
    for d in &successors {
        dapi.patch(d, &PatchParams::default(), &Patch::Merge(&quota(per * s.communes.div_ceil(s.successors)))).await.map_err(err)?;
    }
    let t: Timings<(String, String)> = Timings::default();
    let watch = watch_ready::<TenantVM>(client.clone(), t.clone(), vm_ready);
    create_all(client, s.vms, s.conc, &t, |i| Ok((s.commune(i), tenant_vm(&format!("vm-{i:05}"))?))).await?;
    t.wait_ready(s.vms, Duration::from_secs(3600)).await?;
    watch.abort();
    let r: Timings<(String, String)> = Timings::default();
    let watch = watch_ready::<DnsRecord>(client.clone(), r.clone(), programmed);
    create_all(client, s.records, s.conc, &r, |i| record(&communes, i, "web", &[])).await?;
    // (A VM is Ready once its own records are programmed.)
    r.wait_ready(s.records, Duration::from_secs(3600)).await?;
    watch.abort();
    Ok(())
}

/// The most merges one act holds (the CRD's limit, which keeps its CEL rules within
/// the API server's cost budget): a larger reorganization is several acts.
const MERGES_PER_ACT: usize = 16;

/// The acts: successors `0..S` in groups of [`MERGES_PER_ACT`].
fn acts(s: &Shape) -> Result<Vec<Reorganization>, String> {
    (0..s.successors).step_by(MERGES_PER_ACT).map(|first| act(s, &format!("nq-1680-bench-{first:02}"), first..(first + MERGES_PER_ACT).min(s.successors))).collect()
}

fn act(s: &Shape, name: &str, successors: std::ops::Range<usize>) -> Result<Reorganization, String> {
    let today = k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    let merges: Vec<serde_json::Value> = successors
        .map(|j| {
            let units: Vec<String> = (0..s.communes).filter(|c| c % s.successors == j).map(|c| s.commune(c)).collect();
            let keep: Vec<String> = (0..s.vms).filter(|i| s.kept(*i) && units.contains(&s.commune(*i))).map(|i| format!("{}/vm-{i:05}", s.commune(i))).collect();
            serde_json::json!({"units": units, "successor": format!("xa-moi-{j:02}"), "keep": keep})
        })
        .collect();
    serde_json::from_value(serde_json::json!({"apiVersion": "pdc.io/v1alpha1", "kind": "Reorganization", "metadata": {"name": name},
        "spec": {"reference": "Nghị quyết 1680/NQ-UBTVQH15", "effectiveDate": today, "transitionDays": 30, "retentionDays": 60, "merges": merges}}))
    .map_err(err)
}

async fn run() -> Result<(), String> {
    let a = Args::parse(1000, "bench/results/reorg.json");
    let s = Shape {
        communes: a.get("communes", 100),
        successors: a.get("successors", 30),
        vms: a.get("vms", 1000),
        records: a.get("records", 5000),
        keep_every: a.get("keep-every", 10).max(1),
        conc: a.concurrency,
    };
    eprintln!("starting a fresh control plane and Knot DNS");
    let (env, _plane) = private_env("bench-reorg").await.map_err(err)?;
    let client = env.client().await.map_err(err)?;
    let knot = KnotServer::start(&env.dir, &["daklak.gov.vn", "15.10.in-addr.arpa"]).map_err(err)?;
    register_zones(&client, &knot, "knot-tsig").await.map_err(err)?;
    let players = pdc_tests::players::Players::start(vec![("bench".into(), env.kubeconfig.clone())]).map_err(err)?;
    let mut op = OperatorProcess::start(&env.operator_kubeconfig, &OperatorOptions::new("bench-operator"), &env.dir).map_err(err)?;
    wait_leader(&op).await?;
    eprintln!("estate: {} communes, {} successors, {} VMs, {} records", s.communes, s.successors, s.vms, s.records);
    let t0 = Instant::now();
    estate(&client, &s).await?;
    eprintln!("estate ready in {:.0} s", t0.elapsed().as_secs_f64());

    // The baseline runs with the operator stopped (a plain client alone).
    op.stop();
    eprintln!("baseline: {} object writes by a plain client, {} in flight", s.writes(), s.conc);
    let base = baseline(&client, &s).await?;
    eprintln!("baseline took {:.2} s", base.as_secs_f64());
    let mut op = OperatorProcess::start(&env.operator_kubeconfig, &OperatorOptions::new("bench-operator-2"), &env.dir).map_err(err)?;
    wait_leader(&op).await?;

    let api: Api<Reorganization> = Api::all(client.clone());
    let all = acts(&s)?;
    let names: Vec<String> = all.iter().map(|a| a.name_any()).collect();
    for a in &all {
        api.create(&PostParams::default(), a).await.map_err(err)?;
    }
    let planned = Instant::now();
    for name in &names {
        loop {
            let a = api.get(name).await.map_err(err)?;
            let st = a.status.clone().unwrap_or_default();
            match st.phase.as_deref() {
                Some("Planned") => break,
                Some("Refused") => return Err(format!("{name} is refused: {:?}", st.refusals)),
                _ if planned.elapsed() > Duration::from_secs(300) => return Err(format!("{name} was not planned within 300 s")),
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }
    let acts_names = names;
    // The prober's sample: every 10th record name, every 10th VM name.
    let probed: Vec<String> = (0..s.records)
        .step_by(10)
        .map(|i| format!("web-{i:05}.{}.daklak.gov.vn", s.commune(i)))
        .chain((0..s.vms).step_by(10).map(|i| format!("vm-{i:05}.{}.daklak.gov.vn", s.commune(i))))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let probe = prober(knot.port, probed.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("applying the acts {acts_names:?}");
    let start = Instant::now();
    for name in &acts_names {
        api.patch(name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"action": "Apply", "actionToken": "1"}}))).await.map_err(err)?;
    }
    let mut last = String::new();
    let mut step_times = serde_json::Map::new();
    loop {
        let mut now = Vec::new();
        let mut waiting = 0;
        for name in &acts_names {
            let st = api.get(name).await.map_err(err)?.status.unwrap_or_default();
            now.push(format!("{} {}", st.phase.clone().unwrap_or_default(), st.current_step.clone().unwrap_or_default()));
            waiting += usize::from(st.phase.as_deref() == Some("InTransition"));
        }
        let now = now.join(" | ");
        if now != last {
            eprintln!("  {:>6.1} s  {now}", start.elapsed().as_secs_f64());
            step_times.insert(now.clone(), serde_json::json!(start.elapsed().as_secs_f64()));
            last = now;
        }
        if waiting == acts_names.len() {
            break;
        }
        if start.elapsed() > Duration::from_secs(7200) {
            return Err(format!("the acts did not reach InTransition within 2 h: {last}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let took = start.elapsed();
    // The old names' aliases answering (the last ones may still be on their way).
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::SeqCst);
    let (asked, lost) = probe.await.map_err(err)?;
    let rss = op.peak_rss_kib().map(|k| k as f64 / 1024.0);
    let requests = op.api_requests().map_err(err)?;
    op.stop();
    players.stop();
    let moved = Api::<TenantVM>::all(client.clone()).list(&ListParams::default()).await.map_err(err)?.items.iter().filter(|v| v.annotations().contains_key("pdc.io/moved-from")).count();
    let objects = s.vms + s.records + s.communes;
    println!("| measure | value |");
    println!("|---|---|");
    println!("| shape | {} communes → {} successors in {} acts, {} VMs ({} kept and moved), {} records |", s.communes, s.successors, acts_names.len(), s.vms, moved, s.records);
    println!("| baseline: {} object writes by a plain client | {:.2} s |", s.writes(), base.as_secs_f64());
    println!("| pdc: Apply → every step before the transition's end done | {:.2} s |", took.as_secs_f64());
    println!("| pdc / baseline | {:.2} |", took.as_secs_f64() / base.as_secs_f64());
    println!("| answers asked / lost ({} names sampled, every 200 ms) | {asked} / {} |", probed.len(), lost.len());
    println!("| operator API requests | {} |", requests.per(objects));
    println!("| operator peak RSS | {} |", rss.map_or("n/a".into(), |m| format!("{m:.0} MiB")));
    write_result(
        &a.out,
        &serde_json::json!({
            "communes": s.communes, "successors": s.successors, "vms": s.vms, "records": s.records, "keep_every": s.keep_every, "moved": moved,
            "baseline_writes": s.writes(), "baseline_seconds": base.as_secs_f64(), "pdc_seconds": took.as_secs_f64(),
            "ratio": took.as_secs_f64() / base.as_secs_f64(), "steps_at_seconds": step_times,
            "answers_asked": asked, "answers_lost": lost.len(), "lost_sample": lost.iter().take(20).collect::<Vec<_>>(), "names_probed": probed.len(), "acts": acts_names,
            "operator_api_requests": requests.json(objects), "operator_peak_rss_mib": rss,
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        }),
    )?;
    if lost.is_empty() { Ok(()) } else { Err(format!("{} answers lost", lost.len())) }
}
