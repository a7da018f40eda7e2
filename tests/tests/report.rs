//! `pdcctl report` on the sample province, compared byte for byte with the files in
//! tests/expected. The samples are loaded as the demo loads them (deploy/samples:
//! the Province, the address plan and sizes, the 109 tenants imported with
//! `pdcctl department import` at both sites, the health department's claims, DNS
//! records, VM and DR plan) into two real control planes (daklak, the primary, and
//! phuyen, the standby), each with its operator, linked with `pdc-demo link-sites`,
//! with the KubeVirt/CDI/VolSync players and a Knot DNS server signing the
//! province's zones; once the estate has settled (the DR plan Protected), each report
//! runs at the primary in table and CSV form.
//!
//! The reports carry no ages, times, UIDs or addresses chosen at run time, so the
//! files are stable.
//!
//! To write the files again after a deliberate change, run
//! `PDC_UPDATE_EXPECTED=1 cargo test -p pdc-tests --test report` and review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use pdc_api::conditions::{self, READY};
use pdc_api::{AddressClaim, Department, DnsRecord, DnsZone, DrPlan, TenantVM};
use pdc_tests::cluster::{TestEnv, apply_sample_province, apply_yaml, private_env, wait_for};
use pdc_tests::controlplane::ControlPlane;
use pdc_tests::dns::{KnotServer, register_zones};
use pdc_tests::operator::{OperatorOptions, OperatorProcess, metric_value, workspace_binary};
use pdc_tests::players::Players;
use pdc_tests::pdcctl;

const SETTLE: Duration = Duration::from_secs(300);

fn sample(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/samples")).join(name)
}

fn expected(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/expected")).join(name)
}

async fn apply_sample(client: &Client, name: &str) {
    let text = std::fs::read_to_string(sample(name)).unwrap();
    apply_yaml(client, &text, None).await.unwrap();
}

/// Poll `check` every 500 ms until it says nothing is missing; panic with what is.
async fn settle<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let start = Instant::now();
    loop {
        let missing = check().await;
        if missing.is_empty() {
            return;
        }
        assert!(start.elapsed() < SETTLE, "{what} not settled within {SETTLE:?}: {}", missing.join("; "));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The province, its address plan and sizes, and the 109 tenants, as the demo loads
/// them at each site.
async fn load_province(env: TestEnv) {
    let client = env.client().await.unwrap();
    apply_sample_province(&client).await.unwrap();
    apply_sample(&client, "network.yaml").await;
    apply_sample(&client, "sizes.yaml").await;
    let tenants = sample("daklak-tenants.yaml");
    let import = tokio::task::spawn_blocking(move || {
        let args = [
            "department", "import", tenants.to_str().unwrap(), "--code-prefix", "H15", "--zone", "dmz", "--vcpu", "16", "--memory", "32Gi",
            "--storage", "ssd=200Gi", "--storage", "hdd=500Gi", "--vms", "8", "--public-addresses", "1", "--timeout", "5m",
        ];
        pdcctl(&env.kubeconfig, &args)
    });
    let (code, out) = import.await.unwrap();
    assert_eq!(code, 0, "department import: {out}");
}

/// Run the workspace's `pdc-demo` with `args`, as the demo does.
fn demo(args: &[&str]) {
    let bin = workspace_binary("pdc-demo").unwrap();
    let out = std::process::Command::new(bin).args(args).output().unwrap();
    assert!(out.status.success(), "pdc-demo {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// What the test keeps running until it ends.
struct Province {
    primary: TestEnv,
    _planes: [ControlPlane; 2],
    _operators: [OperatorProcess; 2],
    _players: Players,
    _knot: KnotServer,
}

/// Two sites with the sample province, linked for DR, their operators running and
/// the province's zones on a signing DNS server both write to; then, at the primary,
/// the health department's claims, DNS records, VM and DR plan.
async fn sample_province() -> Province {
    let ((mut penv, pplane), (senv, splane)) = tokio::try_join!(private_env("daklak"), private_env("phuyen")).unwrap();
    let players = Players::start(vec![("daklak".into(), penv.kubeconfig.clone()), ("phuyen".into(), senv.kubeconfig.clone())]).unwrap();
    let operator = |env: &TestEnv, site: &str| {
        let mut o = OperatorOptions::new(&format!("pdc-{site}"));
        o.env = vec![("PDC_SITE".into(), site.into())];
        OperatorProcess::start(&env.operator_kubeconfig, &o, &env.dir).unwrap()
    };
    let operators = [operator(&penv, "daklak"), operator(&senv, "phuyen")];
    penv.operator_metrics_port = Some(operators[0].metrics_port);
    tokio::join!(load_province(penv.clone()), load_province(senv.clone()));
    let zones = ["daklak.gov.vn", "15.10.in-addr.arpa", "0.0.5.1.8.b.d.0.1.0.0.2.ip6.arpa", "45.10.in-addr.arpa", "0.0.5.4.8.b.d.0.1.0.0.2.ip6.arpa"];
    let knot = KnotServer::start(&penv.dir, &zones).unwrap();
    let client = penv.client().await.unwrap();
    register_zones(&client, &knot, "report-test-tsig").await.unwrap();
    let (pk, sk) = (penv.kubeconfig.to_str().unwrap(), senv.kubeconfig.to_str().unwrap());
    demo(&["copy-dns", pk, sk]);
    demo(&["link-sites", &format!("daklak={pk}"), &format!("phuyen={sk}")]);
    apply_sample(&client, "so-y-te-claims.yaml").await;
    apply_sample(&client, "so-y-te-dns.yaml").await;
    apply_sample(&client, "so-y-te-vm.yaml").await;
    apply_sample(&client, "so-y-te-drplan.yaml").await;
    Province { primary: penv, _planes: [pplane, splane], _operators: operators, _players: players, _knot: knot }
}

/// Whether `conds` has condition `t` True.
fn is(conds: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>, t: &str) -> bool {
    conds.is_some_and(|c| conditions::is_true(c, t))
}

/// What is not settled yet: departments not Ready, claims not bound, the VM without
/// addresses or names, records not programmed, zones not signed.
async fn unsettled(client: &Client) -> Vec<String> {
    let lp = ListParams::default();
    let mut missing = Vec::new();
    let depts = Api::<Department>::all(client.clone()).list(&lp).await.unwrap().items;
    let not_ready = depts.iter().filter(|d| !is(d.status.as_ref().map(|s| &s.conditions), READY)).count();
    if depts.len() < 109 || not_ready > 0 {
        missing.push(format!("{} departments, {not_ready} not Ready", depts.len()));
    }
    for c in Api::<AddressClaim>::namespaced(client.clone(), "so-y-te").list(&lp).await.unwrap().items {
        if !is(c.status.as_ref().map(|s| &s.conditions), READY) {
            missing.push(format!("claim {} not bound", c.name_any()));
        }
    }
    let vm = Api::<TenantVM>::namespaced(client.clone(), "so-y-te").get_opt("ho-so").await.unwrap();
    let vm_done = vm.as_ref().is_some_and(|v| ["AddressesAllocated", "DnsProgrammed", "QuotaAccepted"].iter().all(|t| is(v.status.as_ref().map(|s| &s.conditions), t)));
    if !vm_done {
        missing.push("VM ho-so without addresses, names or quota".into());
    }
    let records = Api::<DnsRecord>::namespaced(client.clone(), "so-y-te").list(&lp).await.unwrap().items;
    let programmed = records.iter().filter(|r| is(r.status.as_ref().map(|s| &s.conditions), "Programmed")).count();
    if records.len() < 7 || programmed < records.len() {
        missing.push(format!("{programmed}/{} records of so-y-te programmed", records.len()));
    }
    let plan = Api::<DrPlan>::namespaced(client.clone(), "so-y-te").get_opt("so-y-te").await.unwrap();
    if !plan.as_ref().is_some_and(|p| is(p.status.as_ref().map(|s| &s.conditions), "Protected")) {
        missing.push("DR plan so-y-te not Protected".into());
    }
    for z in Api::<DnsZone>::all(client.clone()).list(&lp).await.unwrap().items {
        if !is(z.status.as_ref().map(|s| &s.conditions), "DnssecValid") {
            missing.push(format!("zone {} not signed", z.spec.zone));
        }
    }
    missing
}

/// Run a report and compare it with its file (or write the file).
fn check(env: &TestEnv, report: &str, format: &str) -> Option<String> {
    let ext = if format == "csv" { "csv" } else { "txt" };
    let file = expected(&format!("report-{report}.{ext}"));
    let mut args = vec!["report", report];
    if format == "csv" {
        args.extend(["-o", "csv"]);
    }
    let start = Instant::now();
    let (code, out) = pdcctl(&env.kubeconfig, &args);
    assert_eq!(code, 0, "pdcctl report {report} -o {format}: {out}");
    eprintln!("pdcctl report {report} -o {format}: {} lines in {} ms", out.lines().count(), start.elapsed().as_millis());
    if std::env::var_os("PDC_UPDATE_EXPECTED").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &out).unwrap();
        return None;
    }
    let want = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e} (PDC_UPDATE_EXPECTED=1 writes it)", file.display()));
    (want != out).then(|| {
        let diff: Vec<String> = want.lines().zip(out.lines()).filter(|(a, b)| a != b).take(5).map(|(a, b)| format!("  expected: {a}\n  got:      {b}")).collect();
        format!("{} differs ({} lines expected, {} got):\n{}", file.display(), want.lines().count(), out.lines().count(), diff.join("\n"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reports_on_the_sample_province_match_the_expected_files() {
    let province = sample_province().await;
    let env = &province.primary;
    let client = env.client().await.unwrap();
    settle("the sample province", || unsettled(&client)).await;
    // A Department's status is written a moment after its children; wait for the
    // health department's ledger to carry the VM.
    wait_for(&Api::<Department>::all(client.clone()), "so-y-te", SETTLE, "the VM in the quota ledger", |d| {
        d.status.as_ref().is_some_and(|s| s.quota_ledger.contains_key("vm/ho-so"))
    })
    .await
    .unwrap();
    let mut differences = Vec::new();
    for report in ["inventory", "ipv6", "ipv4-phase", "domains"] {
        for format in ["table", "csv"] {
            differences.extend(check(env, report, format));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    gauges_agree_with_the_report(env).await;
}

/// The operator's `pdc_ipv6_ready_ratio` carries, for every unit, the ratio the
/// report prints (computed from its caches, within its 15 s period), and
/// `pdc_zone_ipv4_phase` one phase per zone.
async fn gauges_agree_with_the_report(env: &TestEnv) {
    let (code, csv) = pdcctl(&env.kubeconfig, &["report", "ipv6", "-o", "csv"]);
    assert_eq!(code, 0, "{csv}");
    let ratios: Vec<(String, f64)> = csv.lines().skip(1).filter_map(|l| {
        let (dept, rest) = l.split_once(',')?;
        Some((dept.to_string(), rest.rsplit(',').next()?.parse().ok()?))
    }).collect();
    assert_eq!(ratios.len(), 109, "{csv}");
    let start = Instant::now();
    loop {
        let (_, body) = env.metrics_get("/metrics").unwrap();
        let off: Vec<String> = ratios
            .iter()
            .filter(|(d, r)| (metric_value(&body, &format!("pdc_ipv6_ready_ratio{{department=\"{d}\"}}")) - r).abs() > 0.0005)
            .map(|(d, r)| format!("{d}: report {r}"))
            .collect();
        let phases = body.lines().filter(|l| l.starts_with("pdc_zone_ipv4_phase{") && l.ends_with(" 1")).count();
        if off.is_empty() && phases == 5 {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the gauges disagree with the report: {off:?}; {phases} zones with a phase at 1");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
