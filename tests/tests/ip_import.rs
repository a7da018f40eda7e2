//! Taking over the declared address plan against a real kube-apiserver with the
//! operator running: `pdcctl ip import` of the sample plan (the province's shape)
//! with conflicts planted reports each at its line and writes nothing; the fixed
//! plan is imported as declared; claims never get an external address even when
//! their subnet fills; a second import changes nothing; `ip find`, `usage` and
//! `export` show the external addresses; `ip release-external` frees one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use pdc_api::conditions::{self, READY};
use pdc_api::{AddressAllocation, AddressClaim, Department, NetworkZone, SubnetAllocation};
use pdc_tests::cluster::{TestEnv, shared_env, wait_for};

const TIMEOUT: Duration = Duration::from_secs(60);
const KHCN: &str = "so-khoa-hoc-va-cong-nghe";

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn pdcctl(env: &TestEnv, args: &[&str]) -> Run {
    let bin = pdc_tests::operator::workspace_binary("pdcctl").unwrap();
    let o = Command::new(bin).args(args).env("KUBECONFIG", &env.kubeconfig).stdin(Stdio::null()).output().unwrap();
    Run { code: o.status.code().unwrap_or(-1), out: String::from_utf8_lossy(&o.stdout).into_owned(), err: String::from_utf8_lossy(&o.stderr).into_owned() }
}

fn sample() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/samples/address-plan.csv")).unwrap()
}

/// The sample plan plus, for this test, the science department's /28 in the
/// management zone with three IPv4 and one IPv6 address in use in it.
fn fixed_plan() -> String {
    format!(
        "{}subnet,,daklak,mgmt,{KHCN},10.15.64.0/28,2001:db8:1503::/64,,,,,\n\
         address,nas-01.mgmt,daklak,mgmt,{KHCN},10.15.64.5,,,,,server,NAS sao lưu\n\
         address,tape-01.mgmt,daklak,mgmt,{KHCN},10.15.64.7,,,,,server,Thư viện băng từ\n\
         address,ups-01.mgmt,daklak,mgmt,{KHCN},10.15.64.9,,,,,ups,\n\
         address,mon-01.mgmt,daklak,mgmt,{KHCN},,2001:db8:1503::12,,,,server,\"Giám sát, IPv6\"\n",
        sample()
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn claim(name: &str, zone: &str) -> AddressClaim {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "AddressClaim", "metadata": {"name": name}, "spec": {"zone": zone}
    }))
    .unwrap()
}

fn ready_reason(c: &AddressClaim) -> Option<(String, String)> {
    let cond = c.status.as_ref()?.conditions.iter().find(|x| x.type_ == READY)?;
    Some((cond.status.clone(), cond.reason.clone()))
}

async fn externals(client: &Client) -> Vec<AddressAllocation> {
    Api::<AddressAllocation>::all(client.clone()).list(&ListParams::default().labels("pdc.io/external=true")).await.unwrap().items
}

/// A zone of the test's own with a department and a bound claim: the address the
/// plan wrongly declares as in use outside pdc.
async fn claimed_address(client: &Client) -> String {
    pdc_tests::cluster::apply_yaml(
        client,
        "apiVersion: pdc.io/v1alpha1\nkind: NetworkZone\nmetadata: {name: lab}\nspec:\n  vlan: 170\n  sites: [{site: daklak, ipv4: 10.15.112.0/20, ipv6: \"2001:db8:1507::/48\"}]\n  subnetSizes: {ipv4: 28, ipv6: 64}\n",
        None,
    )
    .await
    .unwrap();
    department(client, "so-thu-nghiem", "H15.98", &["lab"]).await;
    let api: Api<AddressClaim> = Api::namespaced(client.clone(), "so-thu-nghiem");
    api.create(&PostParams::default(), &claim("lab-01", "lab")).await.unwrap();
    let c = wait_for(&api, "lab-01", TIMEOUT, "bound", |c| ready_reason(c).is_some_and(|(s, _)| s == "True")).await.unwrap();
    c.status.unwrap().ipv4.unwrap().address
}

async fn department(client: &Client, name: &str, code: &str, zones: &[&str]) -> Department {
    let d: Department = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "Department", "metadata": {"name": name},
        "spec": {"displayName": "Sở Khoa học và Công nghệ", "code": code, "zones": zones, "quota": {"vcpu": 8, "memory": "16Gi", "vms": 4}}
    }))
    .unwrap();
    let api: Api<Department> = Api::all(client.clone());
    api.create(&PostParams::default(), &d).await.unwrap();
    wait_for(&api, name, TIMEOUT, "Ready with subnets", |d| {
        d.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY) && !s.subnets.is_empty())
    })
    .await
    .unwrap()
}

/// Conflicts planted in the plan, each with the words its report must hold.
fn planted(base: &str, held: &str) -> (String, Vec<(usize, &'static str)>) {
    let rows: [(&str, &'static str); 6] = [
        ("zone,web,daklak,,,10.15.16.0/22,,160,26,64,,Vùng web", "overlaps 10.15.16.0/20 of zone app at site daklak"),
        ("address,lost-01,daklak,app,,10.99.1.1,,,,,server,", "outside zone app at site daklak"),
        ("address,dup-01.tslcd,daklak,tslcd,,10.15.81.1,,,,,network-point,", "address 10.15.81.1 is declared twice"),
        ("subnet,,daklak,data,thanh-tra-tinh,10.15.33.0/26,,,,,,", "is a /26, but zone data gives every department a /27"),
        ("address,lab-01,daklak,lab,so-thu-nghiem,HELD,,,,,server,", "held in the cluster by AddressClaim so-thu-nghiem/lab-01"),
        ("address,gw-x,daklak,app,so-y-te,10.15.16.2,,,,,gateway,", "in subnet 10.15.16.0/26 of department van-phong-ubnd-tinh, not of so-y-te"),
    ];
    let mut text = base.to_string();
    let mut expect = Vec::new();
    for (row, problem) in rows {
        text.push_str(&row.replace("HELD", held));
        text.push('\n');
        expect.push((text.lines().count(), problem));
    }
    (text, expect)
}

#[tokio::test]
async fn the_declared_plan_is_taken_over_without_renumbering() {
    let env = shared_env(true).unwrap_or_else(|e| panic!("test environment: {e}"));
    let client = env.client().await.unwrap();
    pdc_tests::addressing::load_province_and_sites(&client).await.unwrap();
    let dir = tempdir();
    let held = claimed_address(&client).await;

    // Offline, the file alone: all but the claimed address (only the cluster knows it).
    let (bad, expect) = planted(&fixed_plan(), &held);
    let bad_path = write(&dir, "address-plan-bad.csv", &bad);
    let offline = pdcctl(env, &["ip", "import", "--check", bad_path.to_str().unwrap()]);
    assert_eq!(offline.code, 1, "{}{}", offline.out, offline.err);
    for (line, problem) in expect.iter().filter(|(_, p)| !p.contains("AddressClaim")) {
        assert!(offline.out.contains(&format!("line {line}: ")) && offline.out.contains(problem), "line {line} {problem:?} in:\n{}", offline.out);
    }
    // Against the cluster: every conflict at its line with a fix, and nothing written.
    let refused = pdcctl(env, &["ip", "import", bad_path.to_str().unwrap()]);
    assert_eq!(refused.code, 1, "{}{}", refused.out, refused.err);
    for (line, problem) in &expect {
        let at = refused.out.lines().position(|l| l.starts_with(&format!("line {line}: ")) && l.contains(problem));
        let at = at.unwrap_or_else(|| panic!("no conflict {problem:?} at line {line} in:\n{}", refused.out));
        assert!(refused.out.lines().nth(at + 1).unwrap().trim_start().starts_with("fix: "), "{}", refused.out);
    }
    assert!(refused.out.contains("nothing was written"), "{}", refused.out);
    assert!(externals(&client).await.is_empty(), "a refused plan wrote external addresses");
    assert!(Api::<NetworkZone>::all(client.clone()).get_opt("app").await.unwrap().is_none(), "a refused plan wrote a zone");

    // The fixed plan: taken over as declared.
    let path = write(&dir, "address-plan.csv", &fixed_plan());
    let first = pdcctl(env, &["ip", "import", path.to_str().unwrap()]);
    assert_eq!(first.code, 0, "{}{}", first.out, first.err);
    let declared = fixed_plan().lines().filter(|l| l.starts_with("address,")).map(|l| l.split(',').skip(5).take(2).filter(|c| !c.is_empty()).count()).sum::<usize>();
    assert!(first.out.contains(&format!("written 0 sites, 5 zones, 48 subnets, {declared} addresses; unchanged 2 sites")), "{}", first.out);
    let zones: Api<NetworkZone> = Api::all(client.clone());
    let app = zones.get("app").await.unwrap();
    assert_eq!(app.spec.sites.iter().map(|s| (s.site.as_str(), s.ipv4.as_deref().unwrap())).collect::<Vec<_>>(), [("daklak", "10.15.16.0/20"), ("phuyen", "10.45.16.0/20")]);
    assert!(zones.get("tslcd").await.unwrap().spec.externally_assigned);
    let ext = externals(&client).await;
    assert_eq!(ext.len(), declared);
    assert!(ext.iter().all(|a| a.spec.claim.uid.is_empty() && a.spec.external.as_ref().is_some_and(|e| e.plan == "address-plan.csv")));

    claims_never_get_external_addresses(env, &client).await;

    // A second import of the same file changes nothing.
    let versions = |a: &[AddressAllocation]| a.iter().map(|x| (x.name_any(), x.resource_version())).collect::<std::collections::BTreeMap<_, _>>();
    let before = (versions(&externals(&client).await), zones.get("app").await.unwrap().resource_version());
    let second = pdcctl(env, &["ip", "import", path.to_str().unwrap()]);
    assert_eq!(second.code, 0, "{}{}", second.out, second.err);
    assert!(second.out.contains(&format!("written 0 sites, 0 zones, 0 subnets, 0 addresses; unchanged 2 sites, 5 zones, 48 subnets, {declared} addresses")), "{}", second.out);
    assert_eq!((versions(&externals(&client).await), zones.get("app").await.unwrap().resource_version()), before);

    shown_and_released(env, &client, &held).await;
}

/// The science department's declared /28: hosts 4..14 usable, 5, 7 and 9 (IPv4) and
/// 12 (IPv6) in use outside pdc. Dual-stack claims get 4, 6, 8, 10, 11, 13, 14; the
/// eighth (whichever the operator takes last) finds no host free in both
/// families. A claim in the TSLCD zone is refused.
async fn claims_never_get_external_addresses(env: &TestEnv, client: &Client) {
    let d = department(client, KHCN, "H15.11", &["mgmt", "tslcd"]).await;
    let subnets = d.status.unwrap().subnets;
    let mgmt = subnets.iter().find(|s| s.zone == "mgmt" && s.site == "daklak").unwrap();
    assert_eq!((mgmt.ipv4.as_deref(), mgmt.ipv6.as_deref()), (Some("10.15.64.0/28"), Some("2001:db8:1503::/64")), "the declared subnet, not a new one");
    assert!(!subnets.iter().any(|s| s.zone == "tslcd"), "nothing is carved from an externally assigned zone");
    let api: Api<AddressClaim> = Api::namespaced(client.clone(), KHCN);
    for i in 0..8 {
        api.create(&PostParams::default(), &claim(&format!("vm-{i}"), "mgmt")).await.unwrap();
    }
    // The operator takes the claims in whatever order it sees them: seven bind and
    // one, any of them, finds no host free in both families.
    let settled = |c: &AddressClaim| ready_reason(c).is_some_and(|(s, r)| s == "True" || r == "PoolExhausted");
    let mut bound = Vec::new();
    let mut waiting = Vec::new();
    for i in 0..8 {
        let name = format!("vm-{i}");
        let c = wait_for(&api, &name, TIMEOUT, "bound or PoolExhausted", settled).await.unwrap();
        let message = c.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == READY)).map(|c| c.message.clone());
        match c.status.and_then(|s| s.ipv4.zip(s.ipv6)) {
            Some((v4, v6)) => bound.push((name, v4.address, v6.address)),
            None => waiting.push((name, message.unwrap_or_default())),
        }
    }
    assert_eq!(waiting.len(), 1, "one claim waits on the full pool: {waiting:?}");
    let (exhausted, message) = waiting.remove(0);
    // 4..14 less IPv4 5, 7, 9 and IPv6 12: IPv4 12 and IPv6 5, 7, 9 are free, never both.
    assert!(message.contains("no host number is free in both IPv4 subnet 10.15.64.0/28 (10 of 11"), "{message}");
    let mut got: Vec<(String, String)> = bound.iter().map(|(_, a, b)| (a.clone(), b.clone())).collect();
    got.sort();
    let want: Vec<(String, String)> = [4, 6, 8, 10, 11, 13, 14].iter().map(|h| (format!("10.15.64.{h}"), format!("2001:db8:1503::{h}"))).collect();
    let mut want = want;
    want.sort();
    assert_eq!(got, want);
    api.create(&PostParams::default(), &claim("tslcd-1", "tslcd")).await.unwrap();
    let refused = wait_for(&api, "tslcd-1", TIMEOUT, "ZoneExternallyAssigned", |c| ready_reason(c).is_some_and(|(_, r)| r == "ZoneExternallyAssigned")).await;
    assert!(refused.is_ok(), "{refused:?}");
    // Deleting a claim releases its addresses and never an external one: the claim
    // waiting on the full pool is woken and takes the freed host, not 5, 7 or 9.
    let (holder, _, _) = bound.iter().find(|(_, a, _)| a == "10.15.64.4").unwrap();
    api.delete(holder, &Default::default()).await.unwrap();
    let c = wait_for(&api, &exhausted, TIMEOUT, "bound", |c| ready_reason(c).is_some_and(|(s, _)| s == "True")).await.unwrap();
    assert_eq!(c.status.unwrap().ipv4.unwrap().address, "10.15.64.4");
    let still = pdcctl(env, &["ip", "find", "10.15.64.5", "-o", "json"]);
    assert!(still.out.contains("\"state\": \"external"), "{}", still.out);
}

async fn shown_and_released(env: &TestEnv, client: &Client, held: &str) {
    let find = pdcctl(env, &["ip", "find", "10.15.64.7"]);
    assert_eq!(find.code, 0, "{}{}", find.out, find.err);
    assert!(find.out.contains("external: in use outside pdc (server), imported from address-plan.csv") && find.out.contains("Thư viện băng từ"), "{}", find.out);
    let usage = pdcctl(env, &["ip", "usage", "-o", "json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&usage.out).unwrap();
    let mgmt_v4 = rows.iter().find(|r| r["zone"] == "mgmt" && r["site"] == "daklak" && r["family"] == "IPv4").unwrap();
    // In the department subnet, and in none (physical servers, firewalls), as declared.
    assert_eq!(mgmt_v4["addressesExternal"], declared_in("mgmt", "daklak").to_string(), "{mgmt_v4}");
    let tslcd = rows.iter().find(|r| r["zone"] == "tslcd" && r["site"] == "phuyen" && r["family"] == "IPv4").unwrap();
    assert_eq!(tslcd["addressesExternal"], declared_in("tslcd", "phuyen").to_string(), "{tslcd}");
    let export = pdcctl(env, &["ip", "export", "-o", "csv"]);
    assert!(export.out.lines().any(|l| l.starts_with("address,10.15.81.1,IPv4,tslcd,daklak,,external:network-point,")), "{}", export.out);

    // Released explicitly, and only an external one.
    let no = pdcctl(env, &["ip", "release-external", held, "--yes"]);
    assert_eq!(no.code, 1, "{}{}", no.out, no.err);
    assert!(no.err.contains("held by AddressClaim so-thu-nghiem/lab-01"), "{}", no.err);
    let yes = pdcctl(env, &["ip", "release-external", "10.15.64.5", "--yes"]);
    assert_eq!(yes.code, 0, "{}{}", yes.out, yes.err);
    assert!(yes.out.contains("released 10.15.64.5 (server, zone mgmt, site daklak)"), "{}", yes.out);
    // The full pool's only free pair now is the released one.
    let api: Api<AddressClaim> = Api::namespaced(client.clone(), KHCN);
    api.create(&PostParams::default(), &claim("vm-8", "mgmt")).await.unwrap();
    let c = wait_for(&api, "vm-8", TIMEOUT, "bound", |c| ready_reason(c).is_some_and(|(s, _)| s == "True")).await.unwrap();
    assert_eq!(c.status.unwrap().ipv4.unwrap().address, "10.15.64.5");
    let subnets = Api::<SubnetAllocation>::all(client.clone()).list(&ListParams::default().labels("pdc.io/plan=address-plan.csv")).await.unwrap();
    assert_eq!(subnets.items.len(), 48);
}

/// IPv4 addresses the fixed plan declares in a zone at a site.
fn declared_in(zone: &str, site: &str) -> usize {
    fixed_plan().lines().filter(|l| l.starts_with("address,")).map(|l| l.split(',').collect::<Vec<_>>()).filter(|c| c[2] == site && c[3] == zone && !c[5].is_empty()).count()
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("pdc-ip-import-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
