//! A zone's IPv4 phase against a real kube-apiserver with the operator running:
//! once a zone's IPv4 is Deprecated new claims get IPv6 only and a claim asking IPv4
//! itself is refused with a condition saying what to ask instead, while IPv4 already
//! held stays; once Off, a department newly allowed the zone gets no IPv4 subnet,
//! `pdcctl report ipv4-phase` lists the IPv4 still held as to be released, and the
//! operator's state-set gauge follows the phase.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use pdc_api::conditions::{self, READY};
use pdc_api::{AddressAllocation, AddressClaim, Department, DnsRecord, IpFamilies, NetworkZone, TenantVM};
use pdc_tests::addressing::{bound, claim, load_plan};
use pdc_tests::cluster::{TestEnv, apply_yaml, shared_env, wait_for};
use pdc_tests::operator::metric_value;
use pdc_tests::pdcctl;

const TIMEOUT: Duration = Duration::from_secs(60);
const DEPT: &str = "so-y-te";
const ZONE: &str = "web";

async fn env() -> (&'static TestEnv, Client) {
    let env = shared_env(true).unwrap_or_else(|e| panic!("test environment: {e}"));
    let client = env.client().await.unwrap();
    load_plan(&client, ZONE, 24, &[DEPT.to_string()]).await.unwrap();
    (env, client)
}

async fn set_phase(client: &Client, phase: &str) -> Result<NetworkZone, kube::Error> {
    Api::<NetworkZone>::all(client.clone()).patch(ZONE, &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"ipv4Phase": phase}}))).await
}

fn ready(c: &AddressClaim) -> Option<(String, String, String)> {
    let c = conditions::find(&c.status.as_ref()?.conditions, READY)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn create(client: &Client, mut c: AddressClaim, families: IpFamilies, ipv4: Option<&str>) -> String {
    c.spec.families = families;
    c.spec.ipv4_address = ipv4.map(str::to_string);
    let name = c.metadata.name.clone().unwrap();
    Api::<AddressClaim>::namespaced(client.clone(), DEPT).create(&PostParams::default(), &c).await.unwrap();
    name
}

/// Wait until the operator's /metrics has `series` at `value`.
fn wait_metric(env: &TestEnv, series: &str, value: f64) {
    let start = Instant::now();
    loop {
        let (_, body) = env.metrics_get("/metrics").unwrap();
        if metric_value(&body, series) == value {
            return;
        }
        assert!(start.elapsed() < TIMEOUT, "{series} is not {value} within {TIMEOUT:?}: {}", body.lines().filter(|l| l.contains("ipv4_phase")).collect::<Vec<_>>().join("\n"));
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A TenantVM with one NIC in the zone, once its addresses are allocated.
async fn vm_in_zone(client: &Client, name: &str) -> TenantVM {
    let size = "apiVersion: pdc.io/v1alpha1\nkind: SizeClass\nmetadata: {name: m1.small}\nspec: {vcpu: 2, memory: 4Gi}\n";
    apply_yaml(client, size, None).await.unwrap();
    let quota = serde_json::json!({"spec": {"quota": {"vcpu": 4, "memory": "8Gi", "storage": {"ssd": "100Gi"}, "vms": 2}}});
    Api::<Department>::all(client.clone()).patch(DEPT, &PatchParams::default(), &Patch::Merge(quota)).await.unwrap();
    let vm: TenantVM = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "TenantVM", "metadata": {"name": name},
        "spec": {"size": "m1.small", "image": {"url": "https://images.daklak.gov.vn/ubuntu-24.04.qcow2"},
                 "rootDisk": {"size": "20Gi", "tier": "ssd"}, "nics": [{"zone": ZONE}], "hostname": name}
    }))
    .unwrap();
    let api: Api<TenantVM> = Api::namespaced(client.clone(), DEPT);
    api.create(&PostParams::default(), &vm).await.unwrap();
    wait_for(&api, name, TIMEOUT, "addresses allocated", |v| v.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, "AddressesAllocated"))).await.unwrap()
}

#[tokio::test]
async fn a_deprecated_zone_gives_new_claims_ipv6_only_and_an_off_zone_lists_the_ipv4_still_held() {
    let (env, client) = env().await;
    let claims: Api<AddressClaim> = Api::namespaced(client.clone(), DEPT);
    let phase = |p: &str| format!("pdc_zone_ipv4_phase{{phase=\"{p}\",zone=\"{ZONE}\"}}");
    wait_metric(env, &phase("Active"), 1.0);

    // A phase the schema does not know is refused by the API server, naming the three.
    let err = set_phase(&client, "Retired").await.unwrap_err().to_string();
    assert!(err.contains("Active") && err.contains("Deprecated") && err.contains("Off"), "{err}");

    // Before: a dual-stack pair.
    create(&client, claim("truoc", ZONE), IpFamilies::DualStack, None).await;
    let before = wait_for(&claims, "truoc", TIMEOUT, "bound dual-stack", bound).await.unwrap().status.unwrap();
    let held_v4 = before.ipv4.unwrap().address;

    set_phase(&client, "Deprecated").await.unwrap();
    wait_metric(env, &phase("Deprecated"), 1.0);
    assert_eq!(metric_value(&env.metrics_get("/metrics").unwrap().1, &phase("Active")), 0.0, "a state set: one phase at 1");

    // A new dual-stack claim gets IPv6 only, and says why.
    create(&client, claim("sau", ZONE), IpFamilies::DualStack, None).await;
    let after = wait_for(&claims, "sau", TIMEOUT, "Ready", |c| ready(c).is_some_and(|r| r.0 == "True")).await.unwrap();
    let (_, reason, message) = ready(&after).unwrap();
    let st = after.status.unwrap();
    assert!(st.ipv4.is_none() && st.ipv6.is_some(), "{st:?}");
    assert_eq!(reason, "Bound");
    assert!(message.contains("IPv6 only"), "{message}");

    // One asking IPv4 itself is refused with a condition saying what to ask instead.
    create(&client, claim("chi-v4", ZONE), IpFamilies::IPv4, None).await;
    let refused = wait_for(&claims, "chi-v4", TIMEOUT, "refused", |c| ready(c).is_some_and(|r| r.1 == "ZoneIPv4Deprecated")).await.unwrap();
    let (_, reason, message) = ready(&refused).unwrap();
    assert_eq!(reason, "ZoneIPv4Deprecated", "{message}");
    assert!(message.contains("web's IPv4 is Deprecated") && message.contains("families: IPv6"), "{message}");
    assert!(refused.status.unwrap().ipv4.is_none());

    // A VM's NIC in the zone is a new claim too: IPv6 only, and only an AAAA name.
    let vm = vm_in_zone(&client, "cong-v6").await;
    let nic = &vm.status.unwrap().nics[0];
    assert!(nic.ipv4.is_none() && nic.ipv6.is_some(), "{nic:?}");
    let records = Api::<DnsRecord>::namespaced(client.clone(), DEPT);
    assert!(records.get_opt("cong-v6-aaaa").await.unwrap().is_some(), "the VM's AAAA record");
    assert!(records.get_opt("cong-v6-a").await.unwrap().is_none(), "no A record without IPv4");

    // The IPv4 address held before stays.
    let allocations: Api<AddressAllocation> = Api::all(client.clone());
    let name = pdc_core::ipam::Addr::parse(&held_v4).unwrap().object_name();
    assert!(allocations.get_opt(&name).await.unwrap().is_some(), "{held_v4} was taken away");

    // Off: an ipv4Address is refused too, and the report lists the IPv4 still held.
    set_phase(&client, "Off").await.unwrap();
    wait_metric(env, &phase("Off"), 1.0);
    create(&client, claim("dia-chi-v4", ZONE), IpFamilies::DualStack, Some("10.15.0.200")).await;
    let refused = wait_for(&claims, "dia-chi-v4", TIMEOUT, "refused", |c| ready(c).is_some_and(|r| r.1 == "ZoneIPv4Off")).await.unwrap();
    assert!(ready(&refused).unwrap().2.contains("IPv4 is Off"));
    // A department allowed the zone now gets its IPv6 subnet and no IPv4 one.
    let late: Department = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "Department", "metadata": {"name": "so-noi-vu"},
        "spec": {"displayName": "Sở Nội vụ", "code": "H15.2", "zones": [ZONE]}
    }))
    .unwrap();
    let depts: Api<Department> = Api::all(client.clone());
    depts.create(&PostParams::default(), &late).await.unwrap();
    let late = wait_for(&depts, "so-noi-vu", TIMEOUT, "Ready with its subnets", |d| {
        d.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY) && !s.subnets.is_empty())
    })
    .await
    .unwrap();
    let subnets = late.status.unwrap().subnets;
    assert!(subnets.iter().all(|s| s.ipv4.is_none() && s.ipv6.is_some()), "{subnets:?}");
    let held = depts.get(DEPT).await.unwrap().status.unwrap().subnets;
    assert!(held.iter().all(|s| s.ipv4.is_some()), "the IPv4 subnet held before stays: {held:?}");

    let (code, csv) = pdcctl(&env.kubeconfig, &["report", "ipv4-phase", "-d", DEPT, "-o", "csv"]);
    assert_eq!(code, 0, "{csv}");
    assert_eq!(csv, format!("department,zone,phase,ipv4_held,ipv6_held,ipv4_to_release\n{DEPT},{ZONE},Off,1,3,{held_v4}\n"));
    let (code, table) = pdcctl(&env.kubeconfig, &["report", "ipv4-phase", "-d", DEPT]);
    assert_eq!(code, 0, "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row, [DEPT, ZONE, "Off", "1", "3", held_v4.as_str()], "{table}");
}
