//! DnsRecords become records on a real DNSSEC-signed Knot DNS through the operator
//! (real kube-apiserver, the chart's RBAC): answers and RRSIGs, edits made outside
//! pdc repaired, sets pdc does not own left alone and reported, PTRs for named
//! addresses in both reverse trees, a wrong TSIG key and a stopped server reported
//! with the changes kept pending until they can go out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use pdc_api::conditions::{self, READY};
use pdc_api::{AddressClaim, DnsRecord, DnsZone};
use pdc_tests::addressing::{bound, claim, load_plan};
use pdc_tests::cluster::{SYSTEM_NAMESPACE, private_env, wait_for};
use pdc_tests::dns::{KnotServer, random_secret, register_zones, wait_programmed};
use pdc_tests::operator::{OperatorOptions, OperatorProcess, promtool_check_metrics};

const REV4: &str = "15.10.in-addr.arpa";
const REV6: &str = "0.0.5.1.8.b.d.0.1.0.0.2.ip6.arpa";

fn record(name: &str, rname: &str, rtype: &str, values: &[&str]) -> DnsRecord {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "DnsRecord", "metadata": {"name": name},
        "spec": {"name": rname, "type": rtype, "values": values}
    }))
    .unwrap()
}




async fn zone_status(client: &Client, name: &str) -> DnsZone {
    Api::<DnsZone>::all(client.clone()).get(name).await.unwrap()
}

#[tokio::test]
async fn records_reach_a_signed_zone_and_stay_right() {
    let (env, _plane) = private_env("dns").await.unwrap();
    let client = env.client().await.unwrap();
    let mut knot = KnotServer::start(&env.dir, &["daklak.gov.vn", REV4, REV6]).unwrap();
    let mut opts = OperatorOptions::new("pdc-dns-0");
    opts.env = vec![("PDC_DNS_RESYNC".into(), "2s".into()), ("PDC_DNS_MAX_BACKOFF".into(), "2s".into())];
    let op = OperatorProcess::start(&env.operator_kubeconfig, &opts, &env.dir).unwrap();

    let dept = "so-y-te".to_string();
    load_plan(&client, "app", 24, std::slice::from_ref(&dept)).await.unwrap();
    let sub = format!("{dept}.daklak.gov.vn");
    // Sets that were in the zone before pdc: one at a name a department will want.
    knot.update(&format!("zone daklak.gov.vn.\nupdate add legacy.{sub}. 300 A 192.0.2.10\nupdate add mail.daklak.gov.vn. 300 A 192.0.2.25")).unwrap();
    let serial0 = knot.serial("daklak.gov.vn").unwrap();
    let zones = register_zones(&client, &knot, "knot-tsig").await.unwrap();
    for z in &zones {
        wait_for(&Api::<DnsZone>::all(client.clone()), z, Duration::from_secs(30), "Ready", |z| {
            z.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY) && conditions::is_true(&s.conditions, "DnssecValid"))
        })
        .await
        .unwrap();
    }

    let api: Api<DnsRecord> = Api::namespaced(client.clone(), &dept);
    let pp = PostParams::default();
    for r in [
        record("www", "www", "A", &["10.15.0.5", "10.15.0.6"]),
        record("www6", "www", "AAAA", &["2001:db8:1500::5"]),
        record("spf", "@", "TXT", &["v=spf1 mx -all"]),
        record("mx", "@", "MX", &["10 mail.daklak.gov.vn."]),
        record("portal", "portal", "CNAME", &[&format!("www.{sub}.")]),
        record("caa", "@", "CAA", &["0 issue \"letsencrypt.org\""]),
        record("sip", "_sip._tcp", "SRV", &["0 5 5060 sip.daklak.gov.vn."]),
        record("legacy", "legacy", "A", &["10.15.0.99"]),
        record("bad", "bad", "A", &["10.15.0.300"]),
    ] {
        api.create(&pp, &r).await.unwrap();
    }
    for n in ["www", "www6", "spf", "mx", "portal", "caa", "sip"] {
        let r = wait_programmed(&api, n, "True", "Programmed").await.unwrap();
        let st = r.status.unwrap();
        assert!(st.fqdn.unwrap().ends_with(&format!("{sub}.")) && st.last_change_time.is_some());
    }
    // Answers, signed.
    let a = knot.wait_dig(&format!("www.{sub}"), "A", "both addresses", |o| o.contains("10.15.0.5") && o.contains("10.15.0.6")).unwrap();
    assert!(a.contains("RRSIG"), "{a}");
    for (n, t, v) in [("www", "AAAA", "2001:db8:1500::5"), ("", "TXT", "v=spf1 mx -all"), ("", "MX", "mail.daklak.gov.vn."), ("portal", "CNAME", "www."), ("", "CAA", "letsencrypt.org"), ("_sip._tcp", "SRV", "5060")] {
        let name = if n.is_empty() { sub.clone() } else { format!("{n}.{sub}") };
        let out = knot.dig(&name, t, true).unwrap();
        assert!(out.contains(v) && out.contains("RRSIG"), "{name} {t}: {out}");
    }
    assert!(knot.serial("daklak.gov.vn").unwrap() > serial0);

    // Refusals the department can act on.
    let bad = wait_programmed(&api, "bad", "False", "Invalid").await.unwrap();
    let msg = conditions::find(&bad.status.unwrap().conditions, "Programmed").unwrap().message.clone();
    assert!(msg.contains("not an IPv4 address"), "{msg}");
    // A second record at the CNAME's name (the older record keeps it).
    api.create(&pp, &record("clash", "portal", "A", &["10.15.0.7"])).await.unwrap();
    let clash = wait_programmed(&api, "clash", "False", "CnameConflict").await.unwrap();
    assert!(conditions::find(&clash.status.unwrap().conditions, "Programmed").unwrap().message.contains("CNAME"));
    // A set pdc does not own: reported, untouched.
    let legacy = wait_programmed(&api, "legacy", "False", "Conflict").await.unwrap();
    let msg = conditions::find(&legacy.status.unwrap().conditions, "Programmed").unwrap().message.clone();
    assert!(msg.contains("192.0.2.10") && msg.contains("does not manage"), "{msg}");
    let out = knot.dig(&format!("legacy.{sub}"), "A", false).unwrap();
    assert!(out.contains("192.0.2.10") && !out.contains("10.15.0.99"), "{out}");
    assert!(knot.dig("mail.daklak.gov.vn", "A", false).unwrap().contains("192.0.2.25"));
    let zone = zone_status(&client, "daklak-gov-vn").await.status.unwrap();
    assert_eq!(zone.conflicts, 1);
    assert!(zone.serial.unwrap() > i64::from(serial0));

    // An edit outside pdc to a set pdc owns is put back at the next serial check.
    knot.update(&format!("zone daklak.gov.vn.\nupdate delete www.{sub}. A\nupdate add www.{sub}. 300 A 192.0.2.77")).unwrap();
    knot.wait_dig(&format!("www.{sub}"), "A", "repaired", |o| o.contains("10.15.0.5") && o.contains("10.15.0.6") && !o.contains("192.0.2.77")).unwrap();

    // A change and a deletion.
    api.patch("www", &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"values": ["10.15.0.8"]}}))).await.unwrap();
    knot.wait_dig(&format!("www.{sub}"), "A", "the new value", |o| o.contains("10.15.0.8") && !o.contains("10.15.0.5")).unwrap();
    wait_programmed(&api, "www", "True", "Programmed").await.unwrap();
    api.delete("spf", &DeleteParams::default()).await.unwrap();
    knot.wait_dig(&sub, "TXT", "no TXT", |o| !o.contains("v=spf1")).unwrap();
    let start = Instant::now();
    while api.get_opt("spf").await.unwrap().is_some() {
        assert!(start.elapsed() < Duration::from_secs(30), "the deleted DnsRecord keeps its finalizer");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // pdcctl: the records, the zones, a manifest's plan (offline), a live check.
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["dns", "records", "--department", &dept]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("FQDN") && out.contains(&format!("www.{sub}.")) && out.contains("True Programmed") && out.contains("False Conflict"), "{out}");
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["dns", "zones"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("daklak.gov.vn") && out.contains("True Synced") && out.contains("signed"), "{out}");
    let manifest = env.dir.join("records.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: pdc.io/v1alpha1\nkind: DnsRecord\nmetadata: {{name: www, namespace: {dept}}}\nspec: {{name: www, type: A, values: [10.15.0.9]}}\n---\n\
             apiVersion: pdc.io/v1alpha1\nkind: DnsRecord\nmetadata: {{name: new, namespace: {dept}}}\nspec: {{name: new, type: AAAA, values: ['2001:db8:1500::9']}}\n"
        ),
    )
    .unwrap();
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["dns", "plan", "-f", manifest.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("replace") && out.contains("10.15.0.8") && out.contains("10.15.0.9") && out.contains("create") && out.contains(&format!("new.{sub}.")), "{out}");
    assert!(!knot.dig(&format!("www.{sub}"), "A", false).unwrap().contains("10.15.0.9"), "plan changes nothing");
    let bad = env.dir.join("bad.yaml");
    std::fs::write(&bad, "apiVersion: pdc.io/v1alpha1\nkind: DnsRecord\nmetadata: {name: vn}\nspec: {name: cổng-thông-tin, type: A, values: [10.15.0.1]}\n").unwrap();
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["dns", "plan", "-f", bad.to_str().unwrap(), "--department", &dept, "--subdomain", &sub]);
    assert_eq!(code, 1, "a refused manifest is a failed operation, not a usage error: {out}");
    assert!(out.contains("cong-thong-tin") && out.contains("diacritics"), "{out}");
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["dns", "check", &format!("www.{sub}")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("10.15.0.8") && out.contains("DNSSEC: signed") && out.contains("matches what pdc declares"), "{out}");

    // PTRs for a named address pair, in both reverse zones.
    let claims: Api<AddressClaim> = Api::namespaced(client.clone(), &dept);
    let mut c = claim("db1", "app");
    c.spec.hostname = Some("db1".into());
    claims.create(&pp, &c).await.unwrap();
    let c = wait_for(&claims, "db1", Duration::from_secs(30), "bound", bound).await.unwrap();
    let st = c.status.unwrap();
    let (v4, v6) = (st.ipv4.unwrap().address, st.ipv6.unwrap().address);
    for addr in [&v4, &v6] {
        let rev = pdc_core::ipam::Addr::parse(addr).unwrap().reverse_name();
        let out = knot.wait_dig(&rev, "PTR", "the PTR", |o| o.contains(&format!("db1.{sub}."))).unwrap();
        assert!(out.contains("RRSIG"), "{out}");
    }
    // A PTR outside pdc's prefixes in the same reverse zone is not pdc's.
    knot.update(&format!("zone {REV4}.\nupdate add 9.9.15.10.in-addr.arpa. 300 PTR printer.daklak.gov.vn.")).unwrap();
    claims.delete("db1", &DeleteParams::default()).await.unwrap();
    let rev4 = pdc_core::ipam::Addr::parse(&v4).unwrap().reverse_name();
    knot.wait_dig(&rev4, "PTR", "the PTR removed with the address", |o| !o.contains("db1")).unwrap();
    // 10.15.9.9 is inside the zone's prefix, so pdc owns it: with no allocation, it goes.
    knot.wait_dig("9.9.15.10.in-addr.arpa", "PTR", "a stray PTR in pdc's prefix removed", |o| !o.contains("printer")).unwrap();

    // A wrong TSIG key: the zone says so, new records wait, nothing is lost.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let wrong = random_secret().unwrap();
    secrets.patch("knot-tsig", &PatchParams::default(), &Patch::Merge(serde_json::json!({"stringData": {"secret": wrong}}))).await.unwrap();
    api.create(&pp, &record("api", "api", "A", &["10.15.0.20"])).await.unwrap();
    let z = wait_for(&Api::<DnsZone>::all(client.clone()), "daklak-gov-vn", Duration::from_secs(30), "TsigRefused", |z| {
        z.status.as_ref().is_some_and(|s| s.pending >= 1 && conditions::find(&s.conditions, READY).is_some_and(|c| c.reason == "TsigRefused"))
    })
    .await
    .unwrap();
    let c = conditions::find(&z.status.as_ref().unwrap().conditions, READY).unwrap();
    assert!(c.message.contains("pdc-key") && !c.message.contains(&wrong), "{}", c.message);
    let r = wait_programmed(&api, "api", "False", "Pending").await.unwrap();
    assert!(conditions::find(&r.status.unwrap().conditions, "Programmed").unwrap().message.contains("TSIG"));
    assert!(z.status.unwrap().pending >= 1);
    secrets.patch("knot-tsig", &PatchParams::default(), &Patch::Merge(serde_json::json!({"stringData": {"secret": knot.key_secret}}))).await.unwrap();
    wait_programmed(&api, "api", "True", "Programmed").await.unwrap();
    assert!(knot.dig(&format!("api.{sub}"), "A", false).unwrap().contains("10.15.0.20"));

    // The server stops: changes stay pending (status and metric) and go out when it returns.
    knot.stop();
    api.create(&pp, &record("ftp", "ftp", "A", &["10.15.0.21"])).await.unwrap();
    wait_programmed(&api, "ftp", "False", "Pending").await.unwrap();
    let z = wait_for(&Api::<DnsZone>::all(client.clone()), "daklak-gov-vn", Duration::from_secs(30), "ServerUnreachable", |z| {
        z.status.as_ref().is_some_and(|s| s.pending >= 1 && conditions::find(&s.conditions, READY).is_some_and(|c| c.reason == "ServerUnreachable"))
    })
    .await
    .unwrap();
    assert!(z.status.unwrap().pending >= 1);
    assert!(op.metric("pdc_dns_pending_changes{zone=\"daklak.gov.vn\"}").unwrap() >= 1.0);
    assert_eq!(op.metric("pdc_dns_zone_in_sync{zone=\"daklak.gov.vn\"}").unwrap(), 0.0);
    knot.restart().unwrap();
    wait_programmed(&api, "ftp", "True", "Programmed").await.unwrap();
    assert!(knot.dig(&format!("ftp.{sub}"), "A", true).unwrap().contains("10.15.0.21"));
    // What was there before the stop survived it.
    assert!(knot.dig(&format!("www.{sub}"), "A", false).unwrap().contains("10.15.0.8"));
    wait_for(&Api::<DnsZone>::all(client.clone()), "daklak-gov-vn", Duration::from_secs(30), "Ready again", |z| {
        z.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY) && s.pending == 0)
    })
    .await
    .unwrap();

    // Metrics: named per Prometheus' rules, per zone.
    let (_, body) = op.http_get("/metrics").unwrap();
    promtool_check_metrics(&body).unwrap();
    assert!(op.metric("pdc_dns_last_sync_timestamp_seconds{zone=\"daklak.gov.vn\"}").unwrap() > 1.7e9);
    assert_eq!(op.metric("pdc_dns_zone_in_sync{zone=\"daklak.gov.vn\"}").unwrap(), 1.0);
    assert!(body.contains("pdc_dns_update_duration_seconds_bucket{zone=\"daklak.gov.vn\""));
    assert!(body.contains("pdc_dns_errors_total{reason=\"tsig\",zone=\"daklak.gov.vn\"}"), "errors by reason");
    // After the first full transfer, pdc's own updates and the out-of-band edits above
    // were read back as differences (IXFR), not by transferring the zone again each time.
    let transfers = |kind: &str| op.metric(&format!("pdc_dns_transfers_total{{kind=\"{kind}\",zone=\"daklak.gov.vn\"}}")).unwrap_or(0.0);
    assert!(transfers("incremental") >= 3.0, "incremental {} full {}", transfers("incremental"), transfers("full"));
    assert!(transfers("full") < transfers("incremental"), "incremental {} full {}", transfers("incremental"), transfers("full"));
    // The key never reaches the log.
    let log = std::fs::read_to_string(&op.log).unwrap();
    assert!(!log.contains(&knot.key_secret) && !log.contains(&wrong));
}
