//! The DNS server the DNS tests run against is real and set up as the province's:
//! Knot DNS on loopback, zones signed with DNSSEC, updates only with the TSIG key,
//! and what was updated survives a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use pdc_tests::dns::{KnotServer, random_secret};

#[test]
fn knot_signs_answers_and_accepts_only_tsig_signed_updates() {
    let base = std::env::temp_dir().join("pdc-test");
    std::fs::create_dir_all(&base).unwrap();
    let mut knot = KnotServer::start(&base, &["daklak.gov.vn", "15.10.in-addr.arpa"]).unwrap();
    let before = knot.serial("daklak.gov.vn").unwrap();

    // An update signed with the key: answered, signed, serial moved.
    knot.update("zone daklak.gov.vn.\nupdate add dichvucong.daklak.gov.vn. 300 A 10.15.0.5").unwrap();
    let a = knot.dig("dichvucong.daklak.gov.vn", "A", true).unwrap();
    assert!(a.contains("10.15.0.5"), "{a}");
    assert!(a.contains("RRSIG"), "the answer is DNSSEC-signed: {a}");
    assert!(knot.serial("daklak.gov.vn").unwrap() > before);

    // With the wrong secret: refused, nothing changes.
    let wrong = random_secret().unwrap();
    let err = knot.update_with(&wrong, "zone daklak.gov.vn.\nupdate add evil.daklak.gov.vn. 300 A 192.0.2.66").unwrap_err().to_string();
    assert!(err.contains("BADSIG") || err.contains("NOTAUTH"), "{err}");
    assert!(!knot.dig("evil.daklak.gov.vn", "A", false).unwrap().contains("192.0.2.66"));

    // Reverse zone, and the journal across a restart.
    knot.update("zone 15.10.in-addr.arpa.\nupdate add 5.0.15.10.in-addr.arpa. 300 PTR dichvucong.daklak.gov.vn.").unwrap();
    knot.restart().unwrap();
    assert!(knot.dig("5.0.15.10.in-addr.arpa", "PTR", false).unwrap().contains("dichvucong.daklak.gov.vn."));
    assert!(knot.dig("dichvucong.daklak.gov.vn", "A", false).unwrap().contains("10.15.0.5"));
}

