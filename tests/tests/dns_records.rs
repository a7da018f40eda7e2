//! DnsRecords are refused at the API when their name leaves the department's
//! subdomain, has diacritics, or breaks CNAME rules (real kube-apiserver, the chart's
//! admission policy, a department admin's own credentials).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, ResourceExt};
use pdc_api::conditions::{self, READY};
use pdc_api::{Department, DnsRecord};
use pdc_tests::cluster::{shared_env, unique, wait_for};

fn record(name: &str, rname: &str, rtype: &str, values: &[&str]) -> DnsRecord {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "DnsRecord", "metadata": {"name": name},
        "spec": {"name": rname, "type": rtype, "values": values}
    }))
    .unwrap()
}

fn refused(r: Result<DnsRecord, kube::Error>) -> String {
    match r {
        Err(kube::Error::Api(s)) => {
            assert!(s.code == 422 || s.code == 403, "{}: {}", s.code, s.message);
            s.message
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn records_stay_inside_the_department_subdomain() {
    let env = shared_env(true).unwrap_or_else(|e| panic!("test environment: {e}"));
    let client = env.client().await.unwrap();
    pdc_tests::cluster::apply_sample_province(&client).await.unwrap();
    let dname = unique("so-y-te");
    let d: Department = serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "Department", "metadata": {"name": dname},
        "spec": {"displayName": "Sở Y tế", "code": "H15.23", "admins": {"users": [format!("admin@{dname}")]}}
    }))
    .unwrap();
    let depts: Api<Department> = Api::all(client.clone());
    depts.create(&PostParams::default(), &d).await.unwrap();
    wait_for(&depts, &dname, Duration::from_secs(30), "Ready", |d| {
        d.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY))
    })
    .await
    .unwrap();
    let sub = format!("{dname}.daklak.gov.vn");
    let admin = env.client_as(&format!("admin@{dname}"), &["tenants"]).await.unwrap();
    pdc_tests::cluster::wait_allowed(&admin, "create", "pdc.io", "dnsrecords", &dname, Duration::from_secs(60)).await.unwrap();
    let api: Api<DnsRecord> = Api::namespaced(admin, &dname);
    let pp = PostParams::default();

    // Inside: relative, @, absolute under the subdomain.
    api.create(&pp, &record("www", "www", "A", &["10.15.0.5"])).await.unwrap();
    api.create(&pp, &record("apex", "@", "TXT", &["v=spf1 -all"])).await.unwrap();
    api.create(&pp, &record("api", &format!("api.{sub}."), "AAAA", &["2001:db8:1500::5"])).await.unwrap();

    // Outside: another department's name, the province apex.
    let m = refused(api.create(&pp, &record("steal", "www.so-tai-chinh.daklak.gov.vn.", "A", &["10.15.0.6"])).await);
    assert!(m.contains(&format!("outside subdomain {sub}")), "{m}");
    let m = refused(api.create(&pp, &record("apex2", "daklak.gov.vn.", "A", &["10.15.0.7"])).await);
    assert!(m.contains("outside subdomain"), "{m}");
    // Diacritics: refused, pointing at the slug.
    let m = refused(api.create(&pp, &record("vn", "cổng-thông-tin", "A", &["10.15.0.8"])).await);
    assert!(m.contains("no diacritics") && m.contains("pdcctl slug"), "{m}");
    // A CNAME has one value.
    let m = refused(api.create(&pp, &record("alias", "portal", "CNAME", &["a.daklak.gov.vn.", "b.daklak.gov.vn."])).await);
    assert!(m.contains("exactly one value"), "{m}");
    // A DNAME (a whole subtree, names other teams may hold) is the operator's alone.
    let m = refused(api.create(&pp, &record("cu", "cu", "DNAME", &["moi.daklak.gov.vn."])).await);
    assert!(m.contains("only pdc's reorganizations declare one"), "{m}");
    // Taking over a set someone else wrote (the adoption marker) is an engineer's
    // decision: refused to the department, on create and by update; a record an
    // engineer adopted stays editable by the department.
    let adopting = |name: &str, value: &str| {
        let mut r = record(name, name, "A", &[value]);
        r.metadata.annotations = Some([("pdc.io/adopt".to_string(), "true".to_string())].into());
        r
    };
    let m = refused(api.create(&pp, &adopting("legacy", "10.15.0.10")).await);
    assert!(m.contains("only province engineers"), "{m}");
    let merge = |v: serde_json::Value| kube::api::Patch::Merge(v);
    let patch = kube::api::PatchParams::default();
    let m = refused(api.patch("www", &patch, &merge(serde_json::json!({"metadata": {"annotations": {"pdc.io/adopt": "true"}}}))).await);
    assert!(m.contains("only province engineers"), "{m}");
    let engineer: Api<DnsRecord> = Api::namespaced(client.clone(), &dname);
    engineer.create(&pp, &adopting("legacy", "10.15.0.10")).await.unwrap();
    api.patch("legacy", &patch, &merge(serde_json::json!({"spec": {"values": ["10.15.0.11"]}}))).await.unwrap();
    // Not to another name or type: it would take over whatever set is there.
    let m = refused(api.patch("legacy", &patch, &merge(serde_json::json!({"spec": {"name": "mail"}}))).await);
    assert!(m.contains("only province engineers"), "{m}");

    // Outside any department namespace: refused, whoever asks.
    let ns = unique("plain");
    Api::<Namespace>::all(client.clone())
        .create(&pp, &Namespace { metadata: ObjectMeta { name: Some(ns.clone()), ..Default::default() }, ..Default::default() })
        .await
        .unwrap();
    let m = refused(Api::<DnsRecord>::namespaced(client.clone(), &ns).create(&pp, &record("x", "www", "A", &["10.15.0.9"])).await);
    assert!(m.contains("not a Department namespace"), "{m}");
    let mut stored: Vec<String> = api.list(&Default::default()).await.unwrap().items.iter().map(|r| r.name_any()).collect();
    stored.sort();
    assert_eq!(stored, vec!["apex", "api", "legacy", "www"], "only the accepted records were stored");
}
