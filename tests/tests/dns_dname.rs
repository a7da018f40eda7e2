//! A DNAME written by pdc's DNS wire client against a real Knot DNS with DNSSEC: it
//! replaces a whole subtree in one UPDATE (every set below its owner deleted in the
//! same message), names below it — also ones created under the target later — are
//! answered through it with the DNAME signed, the owner keeps its own addresses, and
//! removing it leaves nothing below the old name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use pdc_core::dnsplan::{self, Change, RecordType, Zone};
use pdc_tests::dns::{KnotServer, rrset as set};

#[tokio::test]
async fn a_dname_takes_over_a_subtree_in_one_signed_update() {
    let base = std::env::temp_dir().join("pdc-test");
    std::fs::create_dir_all(&base).unwrap();
    let mut knot = KnotServer::start(&base, &["daklak.gov.vn"]).unwrap();
    let (server, key) = (knot.server(), knot.key().unwrap());
    let zone = "daklak.gov.vn";
    let (old, new) = ("cu.daklak.gov.vn.", "moi.daklak.gov.vn.");

    // The old subdomain as pdc wrote it, and its copies under the new one.
    let before = [
        set(old, RecordType::A, &["10.15.0.10"]),
        set("www.cu.daklak.gov.vn.", RecordType::A, &["10.15.0.11"]),
        set("mail.cu.daklak.gov.vn.", RecordType::TXT, &["v=spf1 -all"]),
        set(new, RecordType::A, &["10.15.1.10"]),
        set("www.moi.daklak.gov.vn.", RecordType::A, &["10.15.1.11"]),
        set("mail.moi.daklak.gov.vn.", RecordType::TXT, &["v=spf1 -all"]),
    ];
    pdc_dns::update(&server, zone, &key, &before.iter().cloned().map(Change::Create).collect::<Vec<_>>()).await.unwrap();

    // The DNAME in place of the subtree: the planner's changes, one batch, one UPDATE.
    let current = pdc_dns::transfer(&server, zone, &key).await.unwrap().sets;
    let mut desired: Zone = current.iter().filter(|((n, _), _)| !dnsplan::is_below(n, old)).map(|(k, v)| (k.clone(), v.clone())).collect();
    desired.insert((old.into(), RecordType::DNAME), set(old, RecordType::DNAME, &[new]));
    let owned = current.keys().cloned().chain(desired.keys().cloned()).collect();
    let plan = dnsplan::plan(&current, &desired, &owned);
    assert!(plan.conflicts.is_empty(), "{:?}", plan.conflicts);
    assert_eq!(dnsplan::batch_ends(&plan.changes, 1), [plan.changes.len()], "{:?}", plan.changes);
    pdc_dns::update(&server, zone, &key, &plan.changes).await.unwrap();

    let t = pdc_dns::transfer(&server, zone, &key).await.unwrap();
    assert_eq!(t.sets.get(&(old.to_string(), RecordType::DNAME)), Some(&set(old, RecordType::DNAME, &[new])), "the transfer reads the DNAME back");
    assert!(t.sets.keys().all(|(n, _)| !dnsplan::is_below(n, old)), "{:?}", t.sets.keys());
    assert!(t.signed);

    // A name below the old apex answers through the DNAME: the DNAME, signed, and
    // the synthesized CNAME to the new name, whose address follows.
    let dig = knot.dig("www.cu.daklak.gov.vn", "A", true).unwrap();
    assert!(dig.contains("DNAME") && dig.contains("moi.daklak.gov.vn.") && dig.contains("10.15.1.11"), "{dig}");
    assert!(dig.lines().any(|l| l.contains("RRSIG") && l.contains("DNAME")), "the DNAME is signed: {dig}");
    // The owner is not redirected (RFC 6672 §2.3): it keeps its own address.
    let apex = knot.dig("cu.daklak.gov.vn", "A", false).unwrap();
    assert!(apex.contains("10.15.0.10") && !apex.contains("10.15.1.10"), "{apex}");
    // A name made under the new subdomain later follows too.
    pdc_dns::update(&server, zone, &key, &[Change::Create(set("api.moi.daklak.gov.vn.", RecordType::A, &["10.15.1.12"]))]).await.unwrap();
    let later = knot.dig("api.cu.daklak.gov.vn", "A", true).unwrap();
    assert!(later.contains("10.15.1.12") && later.contains("DNAME"), "{later}");

    // Knot refuses a name added below the DNAME, which would sink the whole batch:
    // the plan reports it as a conflict instead while the DNAME is not pdc's.
    let www = set("www.cu.daklak.gov.vn.", RecordType::A, &["10.15.0.11"]);
    let refused = pdc_dns::update(&server, zone, &key, &[Change::Create(www.clone())]).await;
    assert!(matches!(refused, Err(pdc_dns::DnsIoError::Refused { .. })), "{refused:?}");
    let now = pdc_dns::transfer(&server, zone, &key).await.unwrap().sets;
    let want: Zone = [((www.name.clone(), RecordType::A), www.clone())].into();
    let p = dnsplan::plan(&now, &want, &want.keys().cloned().collect());
    assert!(p.changes.is_empty() && p.conflicts.len() == 1, "{p:?}");

    // The transition over: the DNAME goes, and nothing answers below the old name.
    let end = pdc_dns::transfer(&server, zone, &key).await.unwrap().sets;
    let dname = end.get(&(old.to_string(), RecordType::DNAME)).cloned().unwrap();
    pdc_dns::update(&server, zone, &key, &[Change::Delete(dname)]).await.unwrap();
    let gone = knot.dig("www.cu.daklak.gov.vn", "A", false).unwrap();
    assert!(!gone.contains("DNAME") && !gone.contains("10.15.1.11") && !gone.contains("10.15.0.11"), "{gone}");
    assert!(knot.dig("cu.daklak.gov.vn", "A", false).unwrap().contains("10.15.0.10"), "the owner's own sets stay");
    knot.stop();
}
