//! The address plan against a real kube-apiserver: zones checked at the API and by
//! the operator, department subnets per zone and site, dual-stack claims, conflicts,
//! exhaustion and release.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::{Api, Client, ResourceExt};
use pdc_api::conditions::{self, READY};
use pdc_api::{AddressAllocation, AddressClaim, Department, NetworkZone, SubnetAllocation};
use pdc_tests::cluster::{TestEnv, shared_env, unique, wait_for};

const TIMEOUT: Duration = Duration::from_secs(60);

async fn env() -> (&'static TestEnv, Client) {
    let env = shared_env(true).unwrap_or_else(|e| panic!("test environment: {e}"));
    let client = env.client().await.unwrap();
    pdc_tests::addressing::load_province_and_sites(&client).await.unwrap();
    (env, client)
}

/// A /22 of each site's block (and a /48 of each IPv6 block) that no other test
/// uses: 10.15.128.0/17 holds 32 of them.
fn block() -> (String, String, String, String) {
    static N: AtomicU32 = AtomicU32::new(32);
    let n = N.fetch_add(1, Ordering::Relaxed);
    assert!(n < 64, "out of test blocks");
    (format!("10.15.{}.0/22", n * 4), format!("2001:db8:15{n:02x}::/48"), format!("10.45.{}.0/22", n * 4), format!("2001:db8:45{n:02x}::/48"))
}

/// `base` with the top-level fields of `extra` set over it.
fn merged(mut base: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    if let (Some(b), serde_json::Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

async fn zone(client: &Client, name: &str, v4_len: i32, extra: serde_json::Value) -> NetworkZone {
    let (a4, a6, b4, b6) = block();
    let spec = merged(serde_json::json!({
        "vlan": 200,
        "sites": [{"site": "daklak", "ipv4": a4, "ipv6": a6}, {"site": "phuyen", "ipv4": b4, "ipv6": b6}],
        "subnetSizes": {"ipv4": v4_len, "ipv6": 64},
        "reachability": [{"fromZones": [name], "ports": [{"protocol": "TCP", "port": 443}]}]
    }), extra);
    let z: NetworkZone = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "NetworkZone", "metadata": {"name": name}, "spec": spec
    }))
    .unwrap();
    Api::<NetworkZone>::all(client.clone()).create(&PostParams::default(), &z).await.unwrap()
}

async fn department(client: &Client, name: &str, zones: &[&str]) -> Department {
    let d: Department = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "Department", "metadata": {"name": name},
        "spec": {"displayName": "Sở Thử nghiệm", "code": "H15.99", "zones": zones,
                 "quota": {"vcpu": 8, "memory": "16Gi", "vms": 4}}
    }))
    .unwrap();
    Api::<Department>::all(client.clone()).create(&PostParams::default(), &d).await.unwrap();
    let api: Api<Department> = Api::all(client.clone());
    wait_for(&api, name, TIMEOUT, "Ready with subnets", |d| {
        d.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY) && !s.subnets.is_empty())
    })
    .await
    .unwrap()
}

fn claim(name: &str, zone: &str, extra: serde_json::Value) -> AddressClaim {
    let spec = merged(serde_json::json!({"zone": zone}), extra);
    serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "AddressClaim", "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

fn ready(c: &AddressClaim) -> bool {
    c.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY))
}

/// The Ready condition's reason and message, once it is False with a reason.
async fn failure(api: &Api<AddressClaim>, name: &str) -> (String, String) {
    let c = wait_for(api, name, TIMEOUT, "Ready=False", |c| {
        c.status.as_ref().is_some_and(|s| s.conditions.iter().any(|x| x.type_ == READY && x.status == "False"))
    })
    .await
    .unwrap();
    let cond = c.status.unwrap().conditions.into_iter().find(|x| x.type_ == READY).unwrap();
    (cond.reason, cond.message)
}

/// The message of a request refused by an admission policy.
fn refused<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> String {
    match r {
        Err(kube::Error::Api(s)) if s.code == 403 => s.message,
        other => panic!("expected a refusal at admission, got {other:?}"),
    }
}

fn rejected<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> String {
    match r {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422, "{}", s.message);
            s.message
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn zone_prefixes_are_checked_at_the_api() {
    let (_, client) = env().await;
    let api: Api<NetworkZone> = Api::all(client.clone());
    let make = |sites: serde_json::Value, sizes: serde_json::Value| -> NetworkZone {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "pdc.io/v1alpha1", "kind": "NetworkZone", "metadata": {"name": unique("bad")},
            "spec": {"vlan": 10, "sites": sites, "subnetSizes": sizes}
        }))
        .unwrap()
    };
    let sizes = serde_json::json!({"ipv4": 26, "ipv6": 64});
    let m = rejected(api.create(&PostParams::default(), &make(serde_json::json!([{"site": "daklak", "ipv4": "10.15.1.5/20"}]), sizes.clone())).await);
    assert!(m.contains("host bits zero"), "{m}");
    let m = rejected(api.create(&PostParams::default(), &make(serde_json::json!([{"site": "daklak", "ipv4": "2001:db8::/48"}]), sizes.clone())).await);
    assert!(m.contains("IPv4 prefix"), "{m}");
    let m = rejected(api.create(&PostParams::default(), &make(serde_json::json!([{"site": "daklak", "ipv4": "10.15.0.0/300"}]), sizes.clone())).await);
    assert!(m.contains("CIDR"), "{m}");
    let m = rejected(api.create(&PostParams::default(), &make(serde_json::json!([{"site": "daklak", "ipv4": "10.15.0.0/28"}]), sizes.clone())).await);
    assert!(m.contains("at least as large as spec.subnetSizes.ipv4"), "{m}");

    // Sizes and prefixes are fixed once set; adding a family is allowed.
    let name = unique("fixed");
    let z = zone(&client, &name, 26, serde_json::json!({"sites": [{"site": "daklak", "ipv4": "10.15.64.0/20"}]})).await;
    assert_eq!(z.spec.sites.len(), 1);
    let m = rejected(api.patch(&name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"subnetSizes": {"ipv4": 27, "ipv6": 64}}}))).await);
    assert!(m.contains("subnetSizes cannot change"), "{m}");
    let m = rejected(
        api.patch(&name, &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"sites": [{"site": "daklak", "ipv4": "10.15.224.0/20"}]}})))
            .await,
    );
    assert!(m.contains("cannot be changed or removed"), "{m}");
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"sites": [{"site": "daklak", "ipv4": "10.15.64.0/20", "ipv6": "2001:db8:15ff::/48"}]}})),
    )
    .await
    .unwrap();
    api.delete(&z.name_any(), &DeleteParams::default()).await.unwrap();
}

#[tokio::test]
async fn an_overlapping_zone_is_not_ready_and_names_the_other_zone() {
    let (_, client) = env().await;
    let first = unique("first");
    let z = zone(&client, &first, 26, serde_json::json!({})).await;
    let v4 = z.spec.sites[0].ipv4.clone().unwrap();
    let second = unique("second");
    // A /24 inside the first zone's /22.
    let inner = v4.replace("/22", "/24");
    zone(&client, &second, 26, serde_json::json!({"sites": [{"site": "daklak", "ipv4": inner}]})).await;
    let api: Api<NetworkZone> = Api::all(client.clone());
    let z2 = wait_for(&api, &second, TIMEOUT, "Ready=False", |z| {
        z.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == READY && c.status == "False"))
    })
    .await
    .unwrap();
    let msg = &z2.status.unwrap().conditions[0].message;
    assert!(msg.contains(&format!("overlaps zone {first}'s {v4} at site daklak")), "{msg}");
    // The older zone keeps working.
    wait_for(&api, &first, TIMEOUT, "Ready", |z| z.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY))).await.unwrap();
    // A department asking for the overlapping zone is told why it gets nothing.
    let dname = unique("so-overlap");
    let d: Department = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "Department", "metadata": {"name": dname},
        "spec": {"displayName": "Sở Chồng lấn", "code": "H15.98", "zones": [second]}
    }))
    .unwrap();
    let dapi: Api<Department> = Api::all(client.clone());
    dapi.create(&PostParams::default(), &d).await.unwrap();
    let d = wait_for(&dapi, &dname, TIMEOUT, "NetworkPending", |d| {
        d.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.reason == "NetworkPending"))
    })
    .await
    .unwrap();
    let msg = &d.status.unwrap().conditions[0].message;
    assert!(msg.contains(&format!("zone {second} cannot hand out subnets")) && msg.contains(&first), "{msg}");
}

#[tokio::test]
async fn a_department_gets_a_subnet_pair_per_zone_and_site_with_attachment_and_policy() {
    let (_, client) = env().await;
    let zname = unique("web");
    let z = zone(&client, &zname, 26, serde_json::json!({"internetFacing": true})).await;
    let dname = unique("so-web");
    let d = department(&client, &dname, &[&zname]).await;
    let subnets = d.status.unwrap().subnets;
    assert_eq!(subnets.len(), 2, "{subnets:?}");
    let daklak = subnets.iter().find(|s| s.site == "daklak").unwrap();
    let zone_v4 = z.spec.sites[0].ipv4.clone().unwrap();
    let first_v4 = zone_v4.replace("/22", "/26");
    assert_eq!(daklak.ipv4.as_deref(), Some(first_v4.as_str()));
    assert!(daklak.ipv6.as_deref().unwrap().ends_with("::/64"), "{daklak:?}");
    // Each subnet is an object named after it.
    let subs: Api<SubnetAllocation> = Api::all(client.clone());
    let name = first_v4.replace('/', "-");
    let a = subs.get(&name).await.unwrap();
    assert_eq!((a.spec.department.as_str(), a.spec.zone.as_str(), a.spec.site.as_str()), (dname.as_str(), zname.as_str(), "daklak"));
    // A second department gets the next subnet.
    let d2 = department(&client, &unique("so-web2"), &[&zname]).await;
    let next = d2.status.unwrap().subnets.into_iter().find(|s| s.site == "daklak").unwrap().ipv4.unwrap();
    assert_eq!(next, zone_v4.replace(".0/22", ".64/26"));
    // Attachment (Multus) and reachability policy in the namespace.
    let nads: Api<DynamicObject> = Api::namespaced_with(client.clone(), &dname, &pdc_operator::ipam::attach::nad_resource());
    let nad = nads.get(&format!("pdc-zone-{zname}")).await.unwrap();
    let cfg: serde_json::Value = serde_json::from_str(nad.data["spec"]["config"].as_str().unwrap()).unwrap();
    assert_eq!(cfg["vlan"], 200);
    let np = Api::<NetworkPolicy>::namespaced(client.clone(), &dname).get(&format!("pdc-zone-{zname}")).await.unwrap();
    let ingress = np.spec.unwrap().ingress.unwrap();
    assert_eq!(ingress.len(), 2, "zone rule and Internet rule");
    // The zone reports its utilisation.
    let zapi: Api<NetworkZone> = Api::all(client.clone());
    let z = wait_for(&zapi, &zname, Duration::from_secs(45), "2 subnets in use", |z| {
        z.status.as_ref().is_some_and(|s| s.usage.iter().any(|u| u.site == "daklak" && u.family == "IPv4" && u.subnets_allocated == "2"))
    })
    .await
    .unwrap();
    let u = z.status.unwrap().usage.into_iter().find(|u| u.site == "daklak" && u.family == "IPv6").unwrap();
    assert_eq!(u.subnets_total, "65536");
    // And as metrics, lint-clean.
    let env = pdc_tests::cluster::shared_env(true).unwrap();
    let (_, body) = env.metrics_get("/metrics").unwrap();
    let series = format!(r#"pdc_ipam_subnets_allocated{{family="IPv4",site="daklak",zone="{zname}"}}"#);
    assert_eq!(pdc_tests::operator::metric_value(&body, &series), 2.0, "{body}");
    let series = format!(r#"pdc_ipam_subnets_capacity{{family="IPv6",site="daklak",zone="{zname}"}}"#);
    assert_eq!(pdc_tests::operator::metric_value(&body, &series), 65536.0, "{body}");
    pdc_tests::operator::promtool_check_metrics(&body).unwrap();
}

#[tokio::test]
async fn claims_get_paired_addresses_conflicts_are_explained_and_release_frees() {
    let (_, client) = env().await;
    let zname = unique("app");
    zone(&client, &zname, 29, serde_json::json!({})).await;
    let other = unique("other");
    zone(&client, &other, 26, serde_json::json!({})).await;
    let dname = unique("so-claims");
    let d = department(&client, &dname, &[&zname]).await;
    let sub = d.status.unwrap().subnets.into_iter().find(|s| s.site == "daklak").unwrap();
    let v4net: std::net::Ipv4Addr = sub.ipv4.as_ref().unwrap().split('/').next().unwrap().parse().unwrap();
    let api: Api<AddressClaim> = Api::namespaced(client.clone(), &dname);

    // A dual-stack pair: host 4 (1 is the gateway, 2-3 reserved) in both families.
    api.create(&PostParams::default(), &claim("web-1", &zname, serde_json::json!({"hostname": "web-1"}))).await.unwrap();
    let c = wait_for(&api, "web-1", TIMEOUT, "bound", ready).await.unwrap();
    let s = c.status.unwrap();
    let v4 = s.ipv4.unwrap();
    let v6 = s.ipv6.unwrap();
    assert_eq!(v4.address, (std::net::Ipv4Addr::from(u32::from(v4net) + 4)).to_string());
    assert_eq!(v4.gateway, (std::net::Ipv4Addr::from(u32::from(v4net) + 1)).to_string());
    assert_eq!(v4.prefix_length, 29);
    assert!(v6.address.ends_with("::4") && v6.gateway.ends_with("::1"), "{v6:?}");
    assert_eq!(s.site.as_deref(), Some("daklak"));
    let alloc = Api::<AddressAllocation>::all(client.clone()).get(&v4.address).await.unwrap();
    assert_eq!(alloc.spec.claim.name, "web-1");
    assert_eq!(alloc.spec.hostname.as_deref(), Some(format!("web-1.{dname}.daklak.gov.vn").as_str()));

    // A specific address, then the same address again.
    let want = std::net::Ipv4Addr::from(u32::from(v4net) + 6).to_string();
    api.create(&PostParams::default(), &claim("db-1", &zname, serde_json::json!({"ipv4Address": want}))).await.unwrap();
    let c = wait_for(&api, "db-1", TIMEOUT, "bound", ready).await.unwrap();
    assert_eq!(c.status.as_ref().unwrap().ipv4.as_ref().unwrap().address, want);
    assert!(c.status.unwrap().ipv6.unwrap().address.ends_with("::6"));
    api.create(&PostParams::default(), &claim("db-2", &zname, serde_json::json!({"ipv4Address": want}))).await.unwrap();
    let (reason, msg) = failure(&api, "db-2").await;
    assert_eq!(reason, "AddressTaken", "{msg}");
    assert!(msg.contains(&want), "{msg}");
    // Outside the department's subnet, or a zone it may not use: refused at the API
    // (the namespace names its zones and subnets), and nothing is stored.
    let e = refused(api.create(&PostParams::default(), &claim("far", &zname, serde_json::json!({"ipv4Address": "10.99.0.10"}))).await);
    assert!(e.contains("10.99.0.10 is outside the subnets of department") && e.contains(&v4net.to_string()), "{e}");
    let e = refused(api.create(&PostParams::default(), &claim("elsewhere", &other, serde_json::json!({}))).await);
    assert!(e.contains(&format!("zone {other} is not allowed for department {dname}")) && e.contains(&format!("its zones: {zname}")), "{e}");
    assert!(api.get_opt("far").await.unwrap().is_none() && api.get_opt("elsewhere").await.unwrap().is_none());

    // A /29 has 8 addresses: network, gateway, 2 reserved, broadcast → hosts 4, 5, 6.
    api.create(&PostParams::default(), &claim("web-2", &zname, serde_json::json!({}))).await.unwrap();
    let c = wait_for(&api, "web-2", TIMEOUT, "bound", ready).await.unwrap();
    assert!(c.status.unwrap().ipv6.unwrap().address.ends_with("::5"));
    api.create(&PostParams::default(), &claim("web-3", &zname, serde_json::json!({}))).await.unwrap();
    let (reason, msg) = failure(&api, "web-3").await;
    assert_eq!(reason, "PoolExhausted");
    assert!(msg.contains("3 of 3"), "{msg}");

    // Nothing half-made: the failed claims hold nothing.
    let allocs: Api<AddressAllocation> = Api::all(client.clone());
    let mine: Vec<String> = allocs
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|a| a.spec.department == dname)
        .map(|a| a.spec.claim.name)
        .collect();
    let mut counts = std::collections::BTreeMap::new();
    for n in &mine {
        *counts.entry(n.as_str()).or_insert(0) += 1;
    }
    assert_eq!(counts, std::collections::BTreeMap::from([("db-1", 2), ("web-1", 2), ("web-2", 2)]));

    // Releasing web-1 lets web-3 through, with web-1's old address.
    api.delete("web-1", &DeleteParams::default()).await.unwrap();
    let c = wait_for(&api, "web-3", TIMEOUT, "bound after release", ready).await.unwrap();
    assert_eq!(c.status.unwrap().ipv4.unwrap().address, v4.address);
}

#[tokio::test]
async fn a_claim_cannot_be_changed_and_odd_input_is_rejected_at_the_api() {
    let (_, client) = env().await;
    let dname = unique("so-immut");
    let zname = unique("immut");
    zone(&client, &zname, 26, serde_json::json!({})).await;
    department(&client, &dname, &[&zname]).await;
    let api: Api<AddressClaim> = Api::namespaced(client.clone(), &dname);
    let m = rejected(api.create(&PostParams::default(), &claim("x", &zname, serde_json::json!({"ipv4Address": "10.15.0.300"}))).await);
    assert!(m.contains("IPv4 address"), "{m}");
    let m = rejected(api.create(&PostParams::default(), &claim("x", &zname, serde_json::json!({"hostname": "Máy-chủ"}))).await);
    assert!(m.contains("no diacritics"), "{m}");
    let m = rejected(api.create(&PostParams::default(), &claim("x", &zname, serde_json::json!({"families": "IPv6", "ipv4Address": "10.15.0.4"}))).await);
    assert!(m.contains("IPv6-only"), "{m}");
    api.create(&PostParams::default(), &claim("x", &zname, serde_json::json!({}))).await.unwrap();
    let m = rejected(api.patch("x", &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"zone": "dmz"}}))).await);
    assert!(m.contains("cannot be changed"), "{m}");
}

#[tokio::test]
async fn deleting_a_department_releases_its_subnets() {
    let (_, client) = env().await;
    let zname = unique("temp");
    zone(&client, &zname, 26, serde_json::json!({})).await;
    let dname = unique("so-temp");
    department(&client, &dname, &[&zname]).await;
    let subs: Api<SubnetAllocation> = Api::all(client.clone());
    let held = |list: Vec<SubnetAllocation>| list.into_iter().filter(|s| s.spec.department == dname).count();
    assert_eq!(held(subs.list(&Default::default()).await.unwrap().items), 4, "2 sites × 2 families");
    Api::<Department>::all(client.clone()).delete(&dname, &DeleteParams::default()).await.unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let n = held(subs.list(&Default::default()).await.unwrap().items);
        if n == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{n} subnets still held");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn pdcctl(env: &TestEnv, args: &[&str]) -> (bool, String) {
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, args);
    (code == 0, out)
}

#[tokio::test]
async fn pdcctl_shows_the_plan_usage_holders_and_exports() {
    let (env, client) = env().await;
    let zname = unique("cli");
    zone(&client, &zname, 28, serde_json::json!({})).await;
    let dname = unique("so-cli");
    department(&client, &dname, &[&zname]).await;
    let api: Api<AddressClaim> = Api::namespaced(client.clone(), &dname);
    api.create(&PostParams::default(), &claim("portal", &zname, serde_json::json!({"hostname": "portal"}))).await.unwrap();
    let c = wait_for(&api, "portal", TIMEOUT, "bound", ready).await.unwrap();
    let s = c.status.unwrap();
    let (v4, v6) = (s.ipv4.unwrap(), s.ipv6.unwrap());

    let (ok, plan) = pdcctl(env, &["ip", "plan"]);
    assert!(ok, "{plan}");
    assert!(plan.starts_with("Đắk Lắk (daklak.gov.vn)"), "{plan}");
    let line = plan.lines().find(|l| l.contains(&dname) && l.contains(&v4.subnet)).unwrap_or_else(|| panic!("{plan}"));
    assert!(line.contains("1 IPv4, 1 IPv6 in use"), "{line}");

    let (ok, usage) = pdcctl(env, &["ip", "usage", "-o", "json"]);
    assert!(ok, "{usage}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&usage).unwrap();
    let row = rows.iter().find(|r| r["zone"] == zname.as_str() && r["site"] == "daklak" && r["family"] == "IPv4").unwrap();
    // A /22 holds 64 /28s; a /28 has 16 - network - broadcast - 3 reserved = 11 usable.
    assert_eq!((row["subnetsAllocated"].as_str(), row["subnetsTotal"].as_str()), (Some("1"), Some("64")));
    assert_eq!((row["addressesAllocated"].as_str(), row["addressesTotal"].as_str()), (Some("1"), Some("11")));
    let v6row = rows.iter().find(|r| r["zone"] == zname.as_str() && r["site"] == "daklak" && r["family"] == "IPv6").unwrap();
    assert_eq!(v6row["subnetsTotal"], "65536");

    let (ok, found) = pdcctl(env, &["ip", "find", &v6.address]);
    assert!(ok, "{found}");
    assert!(found.contains("allocated") && found.contains(&format!("{dname}/portal")) && found.contains("ip6.arpa."), "{found}");
    let free = v4.address.rsplit_once('.').map(|(a, b)| format!("{a}.{}", b.parse::<u8>().unwrap() + 1)).unwrap();
    let (ok, found) = pdcctl(env, &["ip", "find", &free]);
    assert!(ok && found.contains("free, inside a department subnet") && found.contains(&dname), "{found}");
    let (ok, found) = pdcctl(env, &["ip", "find", "192.0.2.1"]);
    assert!(!ok && found.contains("outside the address plan"), "{found}");
    let (ok, found) = pdcctl(env, &["ip", "find", "10.15.0.999"]);
    assert!(!ok && found.contains("not an IPv4 or IPv6 address"), "{found}");

    let (ok, csv) = pdcctl(env, &["ip", "export", "-o", "csv"]);
    assert!(ok, "{csv}");
    assert_eq!(csv.lines().next(), Some("kind,value,family,zone,site,department,claim,hostname"));
    let row = csv.lines().find(|l| l.starts_with(&format!("address,{},", v4.address))).unwrap_or_else(|| panic!("{csv}"));
    assert!(row.ends_with(&format!("{dname}/portal,portal.{dname}.daklak.gov.vn")), "{row}");
}

#[tokio::test]
async fn a_department_admin_claims_addresses_but_cannot_forge_them() {
    let (env, client) = env().await;
    let zname = unique("adm");
    zone(&client, &zname, 26, serde_json::json!({})).await;
    let dname = unique("so-adm");
    let d: Department = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "Department", "metadata": {"name": dname},
        "spec": {"displayName": "Sở Quản trị", "code": "H15.97", "zones": [zname], "admins": {"users": [format!("admin@{dname}")]}}
    }))
    .unwrap();
    Api::<Department>::all(client.clone()).create(&PostParams::default(), &d).await.unwrap();
    wait_for(&Api::<Department>::all(client.clone()), &dname, TIMEOUT, "Ready", |d| {
        d.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY))
    })
    .await
    .unwrap();
    let admin = env.client_as(&format!("admin@{dname}"), &["tenants"]).await.unwrap();
    let api: Api<AddressClaim> = Api::namespaced(admin.clone(), &dname);
    api.create(&PostParams::default(), &claim("mine", &zname, serde_json::json!({}))).await.unwrap();
    wait_for(&Api::<AddressClaim>::namespaced(client.clone(), &dname), "mine", TIMEOUT, "bound", ready).await.unwrap();
    let forbidden = |r: Result<_, kube::Error>| matches!(r, Err(kube::Error::Api(s)) if s.code == 403);
    // Its status is the operator's word, not the admin's.
    let fake = serde_json::json!({"status": {"ipv4": {"address": "8.8.8.8", "prefixLength": 32, "gateway": "8.8.8.8", "subnet": "8.8.8.8/32"}}});
    assert!(forbidden(api.patch_status("mine", &PatchParams::default(), &Patch::Merge(&fake)).await.map(|_| ())));
    // Allocation objects are cluster-scoped and the operator's alone.
    let allocs: Api<AddressAllocation> = Api::all(admin.clone());
    assert!(forbidden(allocs.list(&Default::default()).await.map(|_| ())));
    assert!(forbidden(allocs.delete("10.15.0.4", &DeleteParams::default()).await.map(|_| ())));
    let subs: Api<SubnetAllocation> = Api::all(admin);
    assert!(forbidden(subs.list(&Default::default()).await.map(|_| ())));
}

/// Zone isolation on VM NICs: each department zone gets a MultiNetworkPolicy bound
/// to the zone's attachment, whose peers are the matrix's prefixes; for every pair of
/// zones it allows exactly what the zone rules say, and `pdcctl zone rules` prints
/// the same matrix for the physical firewalls.
#[tokio::test]
async fn vm_nic_rules_follow_the_zone_matrix_and_pdcctl_agrees() {
    let (env, client) = env().await;
    let (dmz, app, data) = (unique("mdmz"), unique("mapp"), unique("mdata"));
    let tcp = |p: u16| serde_json::json!({"protocol": "TCP", "port": p});
    zone(&client, &dmz, 26, serde_json::json!({"internetFacing": true, "internetPorts": [tcp(443)], "reachability": [{"fromZones": [&app], "ports": [tcp(443)]}, {"fromZones": [&data], "ports": [tcp(22)]}]})).await;
    zone(&client, &app, 26, serde_json::json!({"reachability": [{"fromZones": [&dmz], "ports": [{"protocol": "TCP", "port": 8080, "endPort": 8081}]}]})).await;
    zone(&client, &data, 26, serde_json::json!({"resolvers": ["10.15.255.53"], "reachability": [{"fromZones": [&app], "ports": [tcp(5432)]}, {"fromZones": [&data]}]})).await;
    let dname = unique("so-mnp");
    let d = department(&client, &dname, &[&dmz, &app, &data]).await;
    let zapi: Api<NetworkZone> = Api::all(client.clone());
    let mut zones: Vec<NetworkZone> = Vec::new();
    for z in [&dmz, &app, &data] {
        zones.push(zapi.get(z).await.unwrap());
    }
    let prefixes = |z: &str| zones.iter().find(|x| x.name_any() == z).unwrap().prefixes();
    let internet = vec!["0.0.0.0/0".to_string(), "::/0".to_string()];
    // The table: who reaches whom, on which ports.
    let allowed: Vec<(&str, &str, serde_json::Value)> = vec![
        (&app, &dmz, serde_json::json!([tcp(443)])),
        (&data, &dmz, serde_json::json!([tcp(22)])),
        (&dmz, &app, serde_json::json!([{"protocol": "TCP", "port": 8080, "endPort": 8081}])),
        (&app, &data, serde_json::json!([tcp(5432)])),
        (&data, &data, serde_json::Value::Null),
    ];
    let mnps: Api<DynamicObject> = Api::namespaced_with(client.clone(), &dname, &pdc_operator::ipam::attach::multi_policy_resource());
    let mut policy = std::collections::BTreeMap::new();
    for z in [&dmz, &app, &data] {
        let name = format!("pdc-zone-{z}");
        let p = wait_for(&mnps, &name, TIMEOUT, "MultiNetworkPolicy", |_| true).await.unwrap();
        assert_eq!(p.annotations()["k8s.v1.cni.cncf.io/policy-for"], format!("{dname}/{name}"));
        assert_eq!(p.data["spec"]["podSelector"], serde_json::json!({}));
        assert_eq!(p.data["spec"]["policyTypes"], serde_json::json!(["Ingress", "Egress"]));
        policy.insert(z.to_string(), p.data["spec"].clone());
    }
    let cidrs = |rule: &serde_json::Value, key: &str| -> Vec<String> {
        rule[key].as_array().unwrap().iter().map(|p| p["ipBlock"]["cidr"].as_str().unwrap().to_string()).collect()
    };
    let find = |spec: &serde_json::Value, dir: &str, key: &str, want: &[String]| -> Option<serde_json::Value> {
        spec[dir].as_array().unwrap().iter().find(|r| cidrs(r, key) == want).map(|r| r["ports"].clone())
    };
    for from in [&dmz, &app, &data] {
        for to in [&dmz, &app, &data] {
            let expected = allowed.iter().find(|(f, t, _)| f == from && t == to).map(|(_, _, p)| p.clone());
            let into = find(&policy[to.as_str()], "ingress", "from", &prefixes(from));
            let out_of = find(&policy[from.as_str()], "egress", "to", &prefixes(to));
            assert_eq!(into, expected, "{from} -> {to}: ingress of {to}");
            assert_eq!(out_of, expected, "{from} -> {to}: egress of {from}");
        }
    }
    assert_eq!(find(&policy[dmz.as_str()], "ingress", "from", &internet), Some(serde_json::json!([tcp(443)])), "the Internet reaches the DMZ on its Internet ports only, not SSH");
    assert_eq!(find(&policy[app.as_str()], "ingress", "from", &internet), None);
    // The department's own subnets of a zone talk freely; the zone's resolvers answer on 53.
    let status = d.status.unwrap();
    let own: Vec<String> = status.subnets.iter().filter(|s| s.zone == app).flat_map(|s| [s.ipv4.clone(), s.ipv6.clone()]).flatten().collect();
    assert_eq!(find(&policy[app.as_str()], "ingress", "from", &own), Some(serde_json::Value::Null));
    assert_eq!(
        find(&policy[data.as_str()], "egress", "to", &["10.15.255.53/32".to_string()]),
        Some(serde_json::json!([{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]))
    );
    // Spoof checking on the zone's bridge.
    let nad = Api::<DynamicObject>::namespaced_with(client.clone(), &dname, &pdc_operator::ipam::attach::nad_resource()).get(&format!("pdc-zone-{data}")).await.unwrap();
    let cfg: serde_json::Value = serde_json::from_str(nad.data["spec"]["config"].as_str().unwrap()).unwrap();
    assert_eq!(cfg["macspoofchk"], true);

    // pdcctl zone rules: the same matrix.
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["zone", "rules", "-o", "json"]);
    assert_eq!(code, 0, "{out}");
    let flows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let ours = [&dmz, &app, &data];
    let mut got: Vec<(String, String)> = flows
        .iter()
        .filter(|f| ours.iter().any(|z| f["to"] == z.as_str()))
        .map(|f| (f["from"].as_str().unwrap().to_string(), f["to"].as_str().unwrap().to_string()))
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = allowed.iter().map(|(f, t, _)| (f.to_string(), t.to_string())).chain([("internet".to_string(), dmz.clone())]).collect();
    want.sort();
    assert_eq!(got, want);
    for f in flows.iter().filter(|f| ours.iter().any(|z| f["to"] == z.as_str()) && f["from"] != "internet") {
        let (from, to) = (f["from"].as_str().unwrap(), f["to"].as_str().unwrap());
        assert_eq!(f["fromPrefixes"], serde_json::json!(prefixes(from)));
        let mnp_ports = find(&policy[to], "ingress", "from", &prefixes(from)).unwrap();
        let cli_ports = f.get("ports").cloned().filter(|p| p.as_array().is_some_and(|a| !a.is_empty())).unwrap_or(serde_json::Value::Null);
        assert_eq!(cli_ports, mnp_ports, "{from} -> {to}");
    }
    let (code, nft) = pdc_tests::pdcctl(&env.kubeconfig, &["zone", "rules", "-o", "nftables"]);
    assert_eq!(code, 0, "{nft}");
    let (a4, d4) = (&prefixes(&app)[0], &prefixes(&data)[0]);
    assert!(nft.contains(&format!("ip saddr {{ {a4}, ")) && nft.contains("tcp dport 5432 accept"), "{nft}");
    assert!(nft.contains(&format!("# {app} -> {data}")) && nft.contains(d4), "{nft}");
    let (code, csv) = pdc_tests::pdcctl(&env.kubeconfig, &["zone", "rules", "-o", "csv"]);
    assert_eq!(code, 0, "{csv}");
    assert!(csv.lines().any(|l| l.starts_with(&format!("{dmz},{app},")) && l.ends_with(",tcp,8080-8081")), "{csv}");
}
