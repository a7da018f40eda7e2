//! Benchmark: `pdcctl ip import` of a declared plan with N external addresses
//! (default 50,000) into a fresh real control plane, against raw creates of the same
//! objects by a plain client in the same run.
//!
//! The plan: one zone at site daklak (10.15.0.0/16, department subnets /24), N/250
//! departments with a /24 each, 250 addresses in use in each. The baseline creates the
//! same kinds and numbers of objects (a zone, the SubnetAllocations and the external
//! AddressAllocations, same specs and labels) at site phuyen (10.45.0.0/16) with
//! POSTs, `--concurrency` in flight, as the import applies them. No operator runs:
//! this measures the import, not what the operator does with it. API requests are
//! the API server's own counts (`apiserver_request_total`, group pdc.io) before and
//! after; pdcctl's peak RSS is from `/usr/bin/time`.
//!
//!     cargo run -p pdc-tests --bin bench-import -- [--count 50000] [--concurrency 16] [--out FILE]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, PostParams};
use pdc_api::{AddressAllocation, NetworkZone, SubnetAllocation};
use pdc_tests::bench::{Args, write_result};
use pdc_tests::cluster::private_env;

const PER_SUBNET: usize = 250;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-import: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The plan as CSV: the zone at `site`, its subnets and addresses.
fn plan(site: &str, second: u8, n: usize) -> String {
    let mut t = String::from("kind,name,site,zone,department,ipv4,ipv6,vlan,subnet_ipv4,subnet_ipv6,role,description\n");
    t.push_str(&format!("zone,bench,{site},,,10.{second}.0.0/16,,180,24,64,,Vùng đo hiệu năng\n"));
    let subnets = n.div_ceil(PER_SUBNET);
    for s in 0..subnets {
        t.push_str(&format!("subnet,,{site},bench,don-vi-{s:03},10.{second}.{s}.0/24,,,,,,\n"));
    }
    for i in 0..n {
        let (s, h) = (i / PER_SUBNET, i % PER_SUBNET + 2);
        t.push_str(&format!("address,may-{i:05}.don-vi-{s:03},{site},bench,don-vi-{s:03},10.{second}.{s}.{h},,,,,server,\n"));
    }
    t
}

/// `apiserver_request_total` for group pdc.io, summed by verb (read with `kubectl get --raw`).
fn requests(kubeconfig: &std::path::Path) -> Result<BTreeMap<String, f64>, String> {
    let o = std::process::Command::new("kubectl").args(["get", "--raw", "/metrics"]).env("KUBECONFIG", kubeconfig).output().map_err(|e| format!("kubectl: {e}"))?;
    let text = String::from_utf8_lossy(&o.stdout);
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{") && l.contains("group=\"pdc.io\"")) {
        let verb = line.split("verb=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("?").to_string();
        let v: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        *out.entry(verb).or_insert(0.0) += v;
    }
    if out.is_empty() {
        return Err(format!("no apiserver_request_total for pdc.io in /metrics: {}", String::from_utf8_lossy(&o.stderr)));
    }
    Ok(out)
}

fn delta(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0))).filter(|(_, v)| *v > 0.0).collect()
}

/// Run `pdcctl ip import FILE` under /usr/bin/time: (seconds, peak RSS MiB, stdout).
fn import(kubeconfig: &std::path::Path, file: &std::path::Path, check: bool) -> Result<(f64, f64, String), String> {
    let bin = pdc_tests::operator::workspace_binary("pdcctl").map_err(|e| e.to_string())?;
    let mut args = vec!["-f".to_string(), "%M".into(), bin.to_string_lossy().into_owned(), "ip".into(), "import".into()];
    if check {
        args.push("--check".into());
    }
    args.push(file.to_string_lossy().into_owned());
    let start = Instant::now();
    let o = std::process::Command::new("/usr/bin/time").args(&args).env("KUBECONFIG", kubeconfig).output().map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    let (out, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned());
    if !o.status.success() {
        return Err(format!("pdcctl ip import failed: {out}{err}"));
    }
    let kib: f64 = err.lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or(0.0);
    Ok((secs, kib / 1024.0, out))
}

fn to<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// The baseline: the same objects created with plain POSTs by this process.
async fn raw_creates(client: &Client, text: &str, concurrency: usize) -> Result<(f64, usize), String> {
    use futures::StreamExt;
    let parsed = pdc_core::import::csv(text);
    let report = pdc_core::import::check(parsed, &pdc_core::import::Snapshot::offline());
    if !report.conflicts.is_empty() {
        return Err(format!("the baseline plan has conflicts: {:?}", report.conflicts.first()));
    }
    let w = report.writes;
    let zones: Vec<NetworkZone> = w.zones.iter().map(|z| to(pdcctl_object::zone(z))).collect::<Result<_, _>>()?;
    let subnets: Vec<SubnetAllocation> = w.subnets.iter().map(|s| to(pdcctl_object::subnet(s))).collect::<Result<_, _>>()?;
    let addresses: Vec<AddressAllocation> = w.addresses.iter().map(|a| to(pdcctl_object::address(a))).collect::<Result<_, _>>()?;
    let start = Instant::now();
    let pp = PostParams::default();
    let (sa, aa, za) = (Api::<SubnetAllocation>::all(client.clone()), Api::<AddressAllocation>::all(client.clone()), Api::<NetworkZone>::all(client.clone()));
    let results: Vec<Result<(), kube::Error>> = futures::stream::iter(subnets.iter().map(|s| {
        let (sa, pp) = (&sa, &pp);
        async move { sa.create(pp, s).await.map(|_| ()) }
    }))
    .buffer_unordered(concurrency)
    .collect()
    .await;
    results.into_iter().collect::<Result<Vec<()>, _>>().map_err(|e| e.to_string())?;
    let results: Vec<Result<(), kube::Error>> = futures::stream::iter(addresses.iter().map(|a| {
        let (aa, pp) = (&aa, &pp);
        async move { aa.create(pp, a).await.map(|_| ()) }
    }))
    .buffer_unordered(concurrency)
    .collect()
    .await;
    results.into_iter().collect::<Result<Vec<()>, _>>().map_err(|e| e.to_string())?;
    for z in &zones {
        za.create(&pp, z).await.map_err(|e| e.to_string())?;
    }
    Ok((start.elapsed().as_secs_f64(), zones.len() + subnets.len() + addresses.len()))
}

/// The objects the import writes, built as `pdcctl ip import` builds them (the same
/// labels and specs), for the baseline's POSTs.
mod pdcctl_object {
    use pdc_core::import::{AddressWrite, SubnetWrite, ZoneWrite};
    use serde_json::json;

    pub fn zone(z: &ZoneWrite) -> serde_json::Value {
        let sites: Vec<serde_json::Value> = z.sites.iter().map(|(s, (v4, _))| json!({"site": s, "ipv4": v4.map(|p| p.to_string())})).collect();
        json!({"apiVersion": "pdc.io/v1alpha1", "kind": "NetworkZone", "metadata": {"name": format!("{}-raw", z.name), "labels": {"pdc.io/plan": "raw"}},
               "spec": {"vlan": z.vlan, "sites": sites, "subnetSizes": {"ipv4": z.size_v4, "ipv6": z.size_v6}, "displayName": z.display_name}})
    }

    pub fn subnet(s: &SubnetWrite) -> serde_json::Value {
        json!({"apiVersion": "pdc.io/v1alpha1", "kind": "SubnetAllocation",
               "metadata": {"name": s.prefix.object_name(), "labels": {"app.kubernetes.io/managed-by": "pdc", "pdc.io/department": s.department, "pdc.io/zone": s.zone, "pdc.io/site": s.site, "pdc.io/family": "ipv4", "pdc.io/plan": "raw"}},
               "spec": {"prefix": s.prefix.to_string(), "zone": s.zone, "site": s.site, "department": s.department}})
    }

    pub fn address(a: &AddressWrite) -> serde_json::Value {
        json!({"apiVersion": "pdc.io/v1alpha1", "kind": "AddressAllocation",
               "metadata": {"name": a.address.object_name(), "labels": {"app.kubernetes.io/managed-by": "pdc", "pdc.io/department": a.department, "pdc.io/zone": a.zone, "pdc.io/site": a.site, "pdc.io/family": "ipv4", "pdc.io/external": "true", "pdc.io/plan": "raw"}},
               "spec": {"address": a.address.to_string(), "subnet": a.subnet.to_string(), "zone": a.zone, "site": a.site, "department": a.department,
                        "claim": {"namespace": "", "name": "", "uid": ""}, "hostname": a.hostname, "external": {"role": a.role, "plan": "raw"}}})
    }
}

async fn run() -> Result<(), String> {
    let a = Args::parse(50_000, "bench/results/import-50k.json");
    let (env, _plane) = private_env("bench-import").await.map_err(|e| e.to_string())?;
    let client = env.client().await.map_err(|e| e.to_string())?;
    pdc_tests::addressing::load_province_and_sites(&client).await.map_err(|e| e.to_string())?;
    let dir = env.dir.clone();
    let (pdc_plan, raw_plan) = (plan("daklak", 15, a.count), plan("phuyen", 45, a.count));
    let file = dir.join(format!("plan-{}.csv", a.count));
    std::fs::write(&file, &pdc_plan).map_err(|e| e.to_string())?;
    let (check_s, check_rss, _) = import(&env.kubeconfig, &file, true)?;
    eprintln!("offline check: {check_s:.2} s, {check_rss:.0} MiB");

    let before = requests(&env.kubeconfig)?;
    let (raw_s, objects) = raw_creates(&client, &raw_plan, a.concurrency).await?;
    let raw_req = delta(&requests(&env.kubeconfig)?, &before);
    eprintln!("raw creates: {objects} objects in {raw_s:.1} s");

    let before = requests(&env.kubeconfig)?;
    let (import_s, import_rss, out) = import(&env.kubeconfig, &file, false)?;
    let import_req = delta(&requests(&env.kubeconfig)?, &before);
    eprintln!("import: {import_s:.1} s, {import_rss:.0} MiB: {}", out.trim());

    let before = requests(&env.kubeconfig)?;
    let (again_s, again_rss, again_out) = import(&env.kubeconfig, &file, false)?;
    let again_req = delta(&requests(&env.kubeconfig)?, &before);
    if !again_out.contains("written 0 sites, 0 zones, 0 subnets, 0 addresses") {
        return Err(format!("the second import wrote something: {again_out}"));
    }
    let writes = |m: &BTreeMap<String, f64>| m.iter().filter(|(k, _)| !matches!(k.as_str(), "GET" | "LIST" | "WATCH")).map(|(_, v)| v).sum::<f64>();
    let total = |m: &BTreeMap<String, f64>| m.values().sum::<f64>();
    let n = objects as f64;
    let json = serde_json::json!({
        "count": a.count, "objects": objects, "concurrency": a.concurrency, "cores": std::thread::available_parallelism().map(|c| c.get()).unwrap_or(0),
        "offline_check_seconds": check_s, "offline_check_peak_rss_mib": check_rss,
        "import_seconds": import_s, "import_peak_rss_mib": import_rss, "import_objects_per_second": n / import_s,
        "import_api_requests": {"by_verb": import_req, "total": total(&import_req), "writes": writes(&import_req), "per_object": total(&import_req) / n, "writes_per_object": writes(&import_req) / n},
        "baseline_raw_create_seconds": raw_s, "baseline_api_requests": {"by_verb": raw_req, "total": total(&raw_req), "per_object": total(&raw_req) / n},
        "ratio": import_s / raw_s,
        "second_import_seconds": again_s, "second_import_peak_rss_mib": again_rss,
        "second_import_api_requests": {"by_verb": again_req, "total": total(&again_req), "writes": writes(&again_req)},
    });
    println!("{}", serde_json::to_string_pretty(&json).unwrap_or_default());
    tokio::time::sleep(Duration::from_millis(10)).await;
    write_result(&a.out, &json)
}
