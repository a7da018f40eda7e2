//! Taking over a zone that already runs: `pdcctl dns adopt` (the binary) against a
//! real kube-apiserver with the operator, and a real DNSSEC-signing Knot DNS whose
//! zone was filled before pdc. The adoption changes nothing on the server (serial,
//! every answer and signature); afterwards an adopted record's change goes out as an
//! UPDATE, its deletion removes the set, and sets outside the departments'
//! subdomains are never touched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use pdc_api::conditions::{self, READY};
use pdc_api::{DnsRecord, DnsZone};
use pdc_tests::addressing::load_plan;
use pdc_tests::cluster::{private_env, wait_event, wait_for};
use pdc_tests::dns::{KnotServer, programmed, register_zones, wait_programmed};
use pdc_tests::operator::{OperatorOptions, OperatorProcess};

const ZONE: &str = "daklak.gov.vn";

fn record(name: &str, rname: &str, rtype: &str, values: &[&str], adopt: bool) -> DnsRecord {
    let annotations = if adopt { serde_json::json!({"pdc.io/adopt": "true"}) } else { serde_json::json!({}) };
    serde_json::from_value(serde_json::json!({
        "apiVersion": "pdc.io/v1alpha1", "kind": "DnsRecord", "metadata": {"name": name, "annotations": annotations},
        "spec": {"name": rname, "type": rtype, "values": values}
    }))
    .unwrap()
}




/// The signed answer of every set in `sets`, as the server gives it.
fn answers(knot: &KnotServer, sets: &[(String, &str)]) -> BTreeMap<String, String> {
    sets.iter()
        .map(|(n, t)| {
            let out = knot.dig(n, t, true).unwrap();
            let has = out.lines().any(|l| l.split_whitespace().nth(3) == Some(*t));
            assert!(has && out.contains("RRSIG"), "{n} {t} answers, signed: {out}");
            (format!("{n} {t}"), out)
        })
        .collect()
}

fn updates_sent(op: &OperatorProcess) -> f64 {
    op.metric(&format!("pdc_dns_update_duration_seconds_count{{zone=\"{ZONE}\"}}")).unwrap_or(0.0)
}

#[tokio::test]
async fn a_running_zone_is_adopted_without_a_change_on_the_server() {
    let (env, _plane) = private_env("dns-adopt").await.unwrap();
    let client = env.client().await.unwrap();
    let knot = KnotServer::start(&env.dir, &[ZONE]).unwrap();
    let mut opts = OperatorOptions::new("pdc-dns-adopt-0");
    opts.env = vec![("PDC_DNS_RESYNC".into(), "1s".into()), ("PDC_DNS_MAX_BACKOFF".into(), "2s".into())];
    let op = OperatorProcess::start(&env.operator_kubeconfig, &opts, &env.dir).unwrap();
    let (yte, tc) = ("so-y-te".to_string(), "so-tai-chinh".to_string());
    load_plan(&client, "app", 24, &[yte.clone(), tc.clone()]).await.unwrap();
    let (sy, st) = (format!("{yte}.{ZONE}"), format!("{tc}.{ZONE}"));

    // The zone as it ran before pdc: sets in two departments' subdomains, sets outside
    // any, a delegation inside one, a type pdc does not manage.
    knot.update(&format!(
        "zone {ZONE}.\n\
         update add www.{sy}. 300 A 192.0.2.10\nupdate add www.{sy}. 300 A 192.0.2.11\n\
         update add www.{sy}. 600 AAAA 2001:db8:15::10\n\
         update add {sy}. 3600 MX 10 mail.{ZONE}.\nupdate add {sy}. 3600 TXT \"v=spf1 mx -all\"\n\
         update add portal.{sy}. 300 CNAME www.{sy}.\n\
         update add _sip._tcp.{sy}. 300 SRV 0 5 5060 sip.{ZONE}.\n\
         update add {sy}. 300 CAA 0 issue \"letsencrypt.org\"\n\
         update add info.{sy}. 300 HINFO \"x86\" \"linux\"\n\
         update add dkim.{sy}. 300 TXT \"v=DKIM1; \" \"p=MIGfMA0\"\n\
         update add www.{st}. 300 A 192.0.2.20\n\
         update add legacy.{st}. 300 A 192.0.2.21\nupdate add clash.{st}. 300 A 192.0.2.22\n\
         update add lab.{st}. 300 NS ns.lab.{st}.\nupdate add ns.lab.{st}. 300 A 192.0.2.53\n\
         update add mail.{ZONE}. 300 A 192.0.2.25\nupdate add www.{ZONE}. 300 CNAME portal.{ZONE}.\n\
         update add {ZONE}. 300 TXT \"google-site-verification=abc\""
    ))
    .unwrap();
    let zones = register_zones(&client, &knot, "knot-tsig").await.unwrap();
    wait_for(&Api::<DnsZone>::all(client.clone()), &zones[0], Duration::from_secs(30), "Ready and signed", |z| {
        z.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, READY) && conditions::is_true(&s.conditions, "DnssecValid"))
    })
    .await
    .unwrap();

    // Before the command: a record marked for adoption that declares other values
    // takes the set over (replaced with a guarded UPDATE); one without the marker at
    // a set pdc does not own is a conflict; the one pdc writes anew is pdc's already.
    let tc_api: Api<DnsRecord> = Api::namespaced(client.clone(), &tc);
    let pp = PostParams::default();
    tc_api.create(&pp, &record("legacy", "legacy", "A", &["10.15.0.21"], true)).await.unwrap();
    tc_api.create(&pp, &record("clash", "clash", "A", &["10.15.0.22"], false)).await.unwrap();
    tc_api.create(&pp, &record("api", "api", "A", &["10.15.0.23"], false)).await.unwrap();
    wait_programmed(&tc_api, "legacy", "True", "Programmed").await.unwrap();
    wait_programmed(&tc_api, "clash", "False", "Conflict").await.unwrap();
    wait_programmed(&tc_api, "api", "True", "Programmed").await.unwrap();
    let legacy = knot.dig(&format!("legacy.{st}"), "A", false).unwrap();
    assert!(legacy.contains("10.15.0.21") && !legacy.contains("192.0.2.21"), "{legacy}");
    // The record says what the server had before, as it is gone from the zone now.
    let note = wait_event(&client, &tc, "legacy", "AdoptedSetReplaced", Duration::from_secs(30), |n| n.contains("the server had 192.0.2.21") && n.contains("replaced with 10.15.0.21")).await;
    assert!(note.is_ok(), "{note:?}");
    assert!(knot.dig(&format!("clash.{st}"), "A", false).unwrap().contains("192.0.2.22"));

    // What the server holds and says before the adoption.
    let adoptable: Vec<(String, &str)> = vec![
        (format!("www.{sy}"), "A"),
        (format!("www.{sy}"), "AAAA"),
        (sy.clone(), "MX"),
        (sy.clone(), "TXT"),
        (sy.clone(), "CAA"),
        (format!("portal.{sy}"), "CNAME"),
        (format!("_sip._tcp.{sy}"), "SRV"),
        (format!("www.{st}"), "A"),
    ];
    let foreign: Vec<(String, &str)> = vec![(format!("mail.{ZONE}"), "A"), (format!("www.{ZONE}"), "CNAME"), (ZONE.to_string(), "TXT"), (format!("info.{sy}"), "HINFO"), (format!("dkim.{sy}"), "TXT")];
    let all: Vec<(String, &str)> = adoptable.iter().chain(&foreign).cloned().collect();
    let serial0 = knot.serial(ZONE).unwrap();
    let before = answers(&knot, &all);
    let updates0 = updates_sent(&op);

    // The proposal: the sets inside the subdomains, nothing else.
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["dns", "adopt", "--zone", ZONE, "-o", "json"]);
    assert_eq!(code, 0, "{out}");
    let p: serde_json::Value = serde_json::from_str(&out).unwrap();
    let proposed: Vec<(String, String, String)> = p["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["metadata"]["namespace"].as_str().unwrap().into(), r["metadata"]["name"].as_str().unwrap().into(), r["spec"]["type"].as_str().unwrap().into()))
        .collect();
    assert_eq!(proposed.len(), adoptable.len(), "{proposed:?}");
    for (ns, obj, t) in [(&yte, "www-a", "A"), (&yte, "www-aaaa", "AAAA"), (&yte, "mx", "MX"), (&yte, "txt", "TXT"), (&yte, "caa", "CAA"), (&yte, "portal-cname", "CNAME"), (&tc, "www-a", "A")] {
        assert!(proposed.contains(&(ns.clone(), obj.into(), t.into())), "{ns}/{obj} {t} proposed: {proposed:?}");
    }
    let www6 = p["records"].as_array().unwrap().iter().find(|r| r["metadata"]["name"] == "www-aaaa").unwrap();
    assert_eq!((www6["spec"]["ttl"].as_u64(), www6["metadata"]["annotations"]["pdc.io/adopt"].as_str()), (Some(600), Some("true")), "{www6}");
    let foreign_names: Vec<&str> = p["foreign"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(foreign_names, vec![format!("{ZONE}."), format!("mail.{ZONE}."), format!("www.{ZONE}.")], "{out}");
    let skipped: Vec<String> = p["skipped"].as_array().unwrap().iter().map(|s| format!("{} {}: {}", s["name"].as_str().unwrap(), s["type"].as_str().unwrap(), s["reason"].as_str().unwrap())).collect();
    for want in [format!("ns.lab.{st}. A: at or below the delegation lab.{st}."), format!("lab.{st}. NS: a delegation"), format!("info.{sy}. HINFO: pdc does not manage HINFO"), format!("dkim.{sy}. TXT: its strings are split")] {
        assert!(skipped.iter().any(|s| s.starts_with(&want)), "skipped {want}: {skipped:?}");
    }
    assert_eq!(p["alreadyOwned"], 3, "legacy, clash and api are DnsRecords already: {out}");
    assert!(!out.contains(&knot.key_secret), "the TSIG secret is never shown");
    // The people's view: a summary and the manifests, and nothing was created.
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["dns", "adopt", "--zone", ZONE]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("DEPARTMENT") && out.contains("TO ADOPT") && out.contains("Foreign") && out.contains("kind: DnsRecord") && out.contains("pdc.io/adopt"), "{out}");
    assert!(Api::<DnsRecord>::namespaced(client.clone(), &yte).list(&Default::default()).await.unwrap().items.is_empty());
    // Without a terminal and without --yes, --apply does nothing.
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["dns", "adopt", "--zone", ZONE, "--apply"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("--yes"), "{out}");
    assert!(Api::<DnsRecord>::namespaced(client.clone(), &yte).list(&Default::default()).await.unwrap().items.is_empty());

    // The adoption: applied, waited for until every record is Programmed.
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["dns", "adopt", "--zone", ZONE, "--apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{0}/{0} programmed", adoptable.len())), "{out}");
    let yte_api: Api<DnsRecord> = Api::namespaced(client.clone(), &yte);
    let mut adopted = yte_api.list(&Default::default()).await.unwrap().items;
    adopted.extend(tc_api.list(&Default::default()).await.unwrap().items.into_iter().filter(|r| r.name_any() == "www-a"));
    assert_eq!(adopted.len(), adoptable.len());
    for r in &adopted {
        assert_eq!(programmed(r), Some(("True".into(), "Programmed".into())), "{}/{}", r.namespace().unwrap(), r.name_any());
        assert!(r.managed_fields().iter().any(|m| m.manager.as_deref() == Some("pdcctl")), "applied with field manager pdcctl");
    }
    // Several syncs later: not one UPDATE, the same serial, the same signed answers.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(updates_sent(&op), updates0, "the adoption sent no UPDATE");
    assert_eq!(knot.serial(ZONE).unwrap(), serial0, "the serial did not move");
    assert_eq!(answers(&knot, &all), before, "every answer (and signature) is as before");

    // Again: nothing new to propose.
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["dns", "adopt", "--zone", ZONE, "-o", "json"]);
    assert_eq!(code, 0, "{out}");
    let again: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(again["records"].as_array().unwrap().len(), 0, "{out}");
    assert_eq!(again["alreadyOwned"], 3 + adoptable.len(), "{out}");
    let (code, out) = pdc_tests::pdcctl(&env.kubeconfig, &["dns", "adopt", "--zone", ZONE, "-d", &tc, "--apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Nothing to adopt"), "{out}");

    // pdc owns them now: a change goes out as an UPDATE (the serial moves), a
    // deletion removes the set; the foreign sets never change.
    yte_api.patch("www-a", &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"values": ["10.15.0.10"]}}))).await.unwrap();
    knot.wait_dig(&format!("www.{sy}"), "A", "the new value", |o| o.contains("10.15.0.10") && !o.contains("192.0.2.1") && o.contains("RRSIG")).unwrap();
    wait_programmed(&yte_api, "www-a", "True", "Programmed").await.unwrap();
    assert!(knot.serial(ZONE).unwrap() > serial0, "the change moved the serial");
    assert!(updates_sent(&op) > updates0, "the change went out as an UPDATE");
    yte_api.delete("txt", &DeleteParams::default()).await.unwrap();
    knot.wait_dig(&sy, "TXT", "the adopted TXT removed with its record", |o| !o.contains("v=spf1")).unwrap();
    let after = answers(&knot, &foreign);
    for (k, v) in &after {
        assert_eq!(Some(v), before.get(k), "foreign set {k} untouched");
    }
    assert!(knot.dig(&format!("clash.{st}"), "A", false).unwrap().contains("192.0.2.22"), "a conflicting set pdc does not own stays");
    let log = std::fs::read_to_string(&op.log).unwrap();
    assert!(!log.contains(&knot.key_secret));
}
