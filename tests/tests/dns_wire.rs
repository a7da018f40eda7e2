//! pdc's DNS wire client against a real Knot DNS: UPDATEs with prerequisites signed
//! with TSIG, full and incremental transfers read to the closing SOA, refused keys and a stopped server
//! reported as such.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use pdc_core::dnsplan::{Change, RecordType};
use pdc_dns::{DnsIoError, Key};
use pdc_tests::dns::{KnotServer, random_secret, rrset as set};

#[tokio::test]
async fn updates_transfers_and_refusals_against_knot() {
    let base = std::env::temp_dir().join("pdc-test");
    std::fs::create_dir_all(&base).unwrap();
    let mut knot = KnotServer::start(&base, &["daklak.gov.vn"]).unwrap();
    let (server, key) = (knot.server(), knot.key().unwrap());
    let zone = "daklak.gov.vn";

    let (serial0, signed) = pdc_dns::soa(&server, zone).await.unwrap();
    assert!(signed, "the SOA answer carries an RRSIG");

    // Create every type pdc manages in one message.
    let www = set("www.so-y-te.daklak.gov.vn.", RecordType::A, &["10.15.0.5", "10.15.0.6"]);
    let creates = vec![
        Change::Create(www.clone()),
        Change::Create(set("www.so-y-te.daklak.gov.vn.", RecordType::AAAA, &["2001:db8:15::5"])),
        Change::Create(set("mail.so-y-te.daklak.gov.vn.", RecordType::MX, &["10 mx.daklak.gov.vn."])),
        Change::Create(set("so-y-te.daklak.gov.vn.", RecordType::TXT, &["v=spf1 -all"])),
        Change::Create(set("_sip._tcp.so-y-te.daklak.gov.vn.", RecordType::SRV, &["0 5 5060 sip.daklak.gov.vn."])),
        Change::Create(set("so-y-te.daklak.gov.vn.", RecordType::CAA, &["0 issue \"letsencrypt.org\""])),
        Change::Create(set("portal.so-y-te.daklak.gov.vn.", RecordType::CNAME, &["www.so-y-te.daklak.gov.vn."])),
    ];
    pdc_dns::update(&server, zone, &key, &creates).await.unwrap();
    let dig = knot.dig("www.so-y-te.daklak.gov.vn", "A", true).unwrap();
    assert!(dig.contains("10.15.0.5") && dig.contains("10.15.0.6") && dig.contains("RRSIG"), "{dig}");

    // The transfer reads back exactly what was written, in the same canonical text.
    let t = pdc_dns::transfer(&server, zone, &key).await.unwrap();
    assert!(t.serial > serial0 && t.signed);
    for c in &creates {
        let Change::Create(s) = c else { unreachable!() };
        assert_eq!(t.sets.get(&(s.name.clone(), s.rtype)), Some(s), "{s:?}");
    }

    // A second create of the same set: its prerequisite fails and nothing changes.
    let again = pdc_dns::update(&server, zone, &key, &[Change::Create(set("www.so-y-te.daklak.gov.vn.", RecordType::A, &["192.0.2.1"]))]).await.unwrap_err();
    assert!(matches!(again, DnsIoError::Prerequisite { .. }), "{again}");
    // A replace whose expectation is stale fails too; with the right one it applies.
    let stale = Change::Replace { expect: set("www.so-y-te.daklak.gov.vn.", RecordType::A, &["10.15.0.5"]), new: set("www.so-y-te.daklak.gov.vn.", RecordType::A, &["10.15.0.7"]) };
    assert!(matches!(pdc_dns::update(&server, zone, &key, &[stale]).await.unwrap_err(), DnsIoError::Prerequisite { .. }));
    let fresh = Change::Replace { expect: www.clone(), new: set("www.so-y-te.daklak.gov.vn.", RecordType::A, &["10.15.0.7"]) };
    pdc_dns::update(&server, zone, &key, &[fresh]).await.unwrap();
    let dig = knot.dig("www.so-y-te.daklak.gov.vn", "A", false).unwrap();
    assert!(dig.contains("10.15.0.7") && !dig.contains("10.15.0.5"), "{dig}");
    pdc_dns::update(&server, zone, &key, &[Change::Delete(set("www.so-y-te.daklak.gov.vn.", RecordType::A, &["10.15.0.7"]))]).await.unwrap();
    assert!(!knot.dig("www.so-y-te.daklak.gov.vn", "A", false).unwrap().contains("10.15.0.7"));

    // An incremental transfer from the first transfer's version brings it to what a
    // full transfer reads now (Knot answers from its journal: differences only).
    let now = pdc_dns::transfer(&server, zone, &key).await.unwrap();
    let inc = pdc_dns::incremental(&server, zone, &key, t.clone()).await.unwrap();
    assert!(now.serial > t.serial);
    assert_eq!((inc.serial, &inc.sets, inc.signed), (now.serial, &now.sets, now.signed));
    assert!(!inc.sets.contains_key(&("www.so-y-te.daklak.gov.vn.".to_string(), RecordType::A)));
    // Up to date: the same zone again; from a version newer than the server's: an error.
    let same = pdc_dns::incremental(&server, zone, &key, inc.clone()).await.unwrap();
    assert_eq!((same.serial, &same.sets), (inc.serial, &inc.sets));
    let ahead = pdc_dns::Transfer { serial: now.serial.wrapping_add(10), ..now.clone() };
    assert!(matches!(pdc_dns::incremental(&server, zone, &key, ahead).await.unwrap_err(), DnsIoError::Protocol { .. }));

    // A wrong secret: a TSIG error naming the key, and nothing changes.
    let wrong = Key::from_base64(&knot.key_name, &knot.key_algorithm, &random_secret().unwrap()).unwrap();
    let e = pdc_dns::update(&server, zone, &wrong, &[Change::Create(set("evil.daklak.gov.vn.", RecordType::A, &["192.0.2.66"]))]).await.unwrap_err();
    assert!(matches!(e, DnsIoError::Tsig { .. }) && e.to_string().contains("pdc-key"), "{e}");
    let e = pdc_dns::transfer(&server, zone, &wrong).await.unwrap_err();
    assert!(matches!(e, DnsIoError::Tsig { .. }), "{e}");
    assert!(!knot.dig("evil.daklak.gov.vn", "A", false).unwrap().contains("192.0.2.66"));

    // The server stopped: unreachable, not an empty zone.
    knot.stop();
    let e = pdc_dns::transfer(&server, zone, &key).await.unwrap_err();
    assert!(matches!(e, DnsIoError::Unreachable { .. }), "{e}");
}
