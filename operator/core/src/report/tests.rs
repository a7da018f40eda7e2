use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn zone(name: &str, ipv6: bool, phase: Ipv4Phase) -> Zone {
    Zone { name: name.into(), ipv6, phase }
}

fn addr(zone: &str, address: &str) -> Address {
    Address { zone: zone.into(), address: address.into(), ipv6: address.contains(':') }
}

fn unit() -> Unit {
    Unit {
        department: "so-y-te".into(),
        vms: vec![
            Vm { name: "his".into(), ipv6: true, dr: Dr::Protected },
            Vm { name: "ho-so".into(), ipv6: true, dr: Dr::Covered },
            Vm { name: "old".into(), ipv6: false, dr: Dr::None },
        ],
        vcpu: 6,
        memory: 12 << 30,
        storage: [("ssd".to_string(), 60u128 << 30)].into(),
        addresses: vec![addr("dmz", "10.15.0.4"), addr("dmz", "2001:db8:1500::4"), addr("app", "10.15.16.4"), addr("tslcd", "10.99.0.9")],
        names: [("www.so-y-te.daklak.gov.vn".to_string(), (true, true)), ("his.so-y-te.daklak.gov.vn".to_string(), (true, false))].into(),
        zones: vec![zone("dmz", true, Ipv4Phase::Active), zone("app", false, Ipv4Phase::Off)],
        domains: vec![
            Domain { name: "so-y-te.daklak.gov.vn".into(), role: DomainRole::Own },
            Domain { name: "ea-sup.phuyen.gov.vn".into(), role: DomainRole::KeptFrom { unit: "xa-ea-sup".into(), until: Some("2025-12-28".into()) } },
        ],
    }
}

#[test]
fn the_inventory_counts_vms_resources_addresses_per_zone_and_family_names_and_protection() {
    let inv = inventory(&unit(), &["hdd".to_string(), "ssd".to_string()]);
    assert_eq!((inv.vms, inv.vcpu, inv.memory_bytes, inv.names), (3, 6, 12 << 30, 2));
    assert_eq!(inv.storage_bytes, BTreeMap::from([("hdd".to_string(), 0), ("ssd".to_string(), 60 << 30)]), "every tier has a column");
    assert_eq!(inv.addresses["dmz"], Held { ipv4: 1, ipv6: 1 });
    assert_eq!(inv.addresses["app"], Held { ipv4: 1, ipv6: 0 });
    assert_eq!(inv.addresses["tslcd"], Held { ipv4: 1, ipv6: 0 }, "a zone it holds addresses in without using it");
    assert_eq!(inv.dr_protected, Share { have: 1, of: 3 }, "a plan that is not Protected protects nothing");
}

#[test]
fn ipv6_readiness_is_the_mean_of_the_shares_that_count_something() {
    let r = ipv6_readiness(&unit());
    assert_eq!((r.names_with_aaaa, r.vms_with_ipv6, r.zones_with_ipv6), (Share { have: 1, of: 2 }, Share { have: 2, of: 3 }, Share { have: 1, of: 2 }));
    assert!((r.ratio.unwrap() - (0.5 + 2.0 / 3.0 + 0.5) / 3.0).abs() < 1e-12);
    let bare = Unit { department: "x".into(), zones: vec![zone("dmz", true, Ipv4Phase::Active)], ..Default::default() };
    assert_eq!(ipv6_readiness(&bare).ratio, Some(1.0), "no names and no VMs: only the zones count");
    assert_eq!(ipv6_readiness(&Unit::default()).ratio, None, "nothing to count: no ratio");
}

#[test]
fn the_phase_report_lists_ipv4_still_held_in_a_zone_that_is_off() {
    let phases = BTreeMap::from([("tslcd".to_string(), Ipv4Phase::Deprecated)]);
    let rows = ipv4_phase(&unit(), &phases);
    let zones: Vec<(&str, Ipv4Phase, u64, u64)> = rows.iter().map(|r| (r.zone.as_str(), r.phase, r.ipv4_held, r.ipv6_held)).collect();
    assert_eq!(zones, [("app", Ipv4Phase::Off, 1, 0), ("dmz", Ipv4Phase::Active, 1, 1), ("tslcd", Ipv4Phase::Deprecated, 1, 0)]);
    assert_eq!(rows[0].to_release, ["10.15.16.4"]);
    assert!(rows[1].to_release.is_empty() && rows[2].to_release.is_empty(), "only Off asks for a release");
}

#[test]
fn addresses_to_release_are_in_numeric_order() {
    let mut u = unit();
    u.addresses = vec![addr("app", "10.15.16.10"), addr("app", "10.15.16.9"), addr("app", "10.15.16.100")];
    assert_eq!(ipv4_phase(&u, &BTreeMap::new())[0].to_release, ["10.15.16.9", "10.15.16.10", "10.15.16.100"]);
}

#[test]
fn a_domain_is_held_by_the_most_specific_zone_and_shows_its_dnssec_state() {
    let zones = [
        DnsZone { zone: "gov.vn".into(), dnssec: Dnssec::Unsigned },
        DnsZone { zone: "daklak.gov.vn.".into(), dnssec: Dnssec::Signed },
        DnsZone { zone: "ak.gov.vn".into(), dnssec: Dnssec::Invalid },
    ];
    let rows = domains(&unit(), &zones);
    assert_eq!(rows[0].dns_zone.as_deref(), Some("daklak.gov.vn."));
    assert_eq!((rows[0].dnssec, rows[0].role.as_str()), (Dnssec::Signed, "own"));
    assert_eq!((rows[1].dns_zone.as_deref(), rows[1].dnssec), (Some("gov.vn"), Dnssec::Unsigned), "a label suffix is no parent");
    assert_eq!(rows[1].role, "kept from xa-ea-sup until 2025-12-28");
    assert_eq!(domains(&unit(), &[])[0].dnssec, Dnssec::NoZone);
    assert_eq!(own_role("xa-hoa-phu.phuyen.gov.vn", &["phuyen.gov.vn".into()]), DomainRole::Legacy);
    assert_eq!(own_role("so-y-te.daklak.gov.vn", &["phuyen.gov.vn".into()]), DomainRole::Own);
}

#[test]
fn csv_cells_are_quoted_only_when_they_must_be() {
    assert_eq!(csv_line(&["a", "b c", "x,y", "say \"hi\""]), "a,b c,\"x,y\",\"say \"\"hi\"\"\"");
    assert_eq!((ratio_text(Some(2.0 / 3.0)), ratio_text(None)), ("0.667".to_string(), String::new()));
    assert_eq!((percent_text(Some(0.5)), percent_text(None)), ("50%".to_string(), "-".to_string()));
}

#[test]
fn claims_in_an_active_zone_get_what_they_ask() {
    for want in [Want::DualStack, Want::V4Only, Want::V6Only] {
        for (asks, holds) in [(false, false), (true, false), (true, true)] {
            assert_eq!(claim_families("dmz", Ipv4Phase::Active, want, asks, holds), Ok(want));
        }
    }
}

#[test]
fn a_deprecated_or_off_zone_gives_new_claims_ipv6_and_refuses_ipv4_asked_for() {
    for phase in [Ipv4Phase::Deprecated, Ipv4Phase::Off] {
        assert_eq!(claim_families("dmz", phase, Want::DualStack, false, false), Ok(Want::V6Only));
        assert_eq!(claim_families("dmz", phase, Want::V6Only, false, false), Ok(Want::V6Only));
        let refused = claim_families("dmz", phase, Want::V4Only, true, false).unwrap_err();
        assert!(refused.to_string().contains("zone dmz's IPv4 is") && refused.to_string().contains("families: IPv6"), "{refused}");
        assert!(claim_families("dmz", phase, Want::DualStack, true, false).is_err(), "a DualStack claim naming an ipv4Address asks IPv4 itself");
        assert_eq!(claim_families("dmz", phase, Want::DualStack, false, true), Ok(Want::DualStack), "an IPv4 address held stays");
    }
}

#[test]
fn a_new_ipv4_subnet_is_carved_only_while_the_zone_is_active_and_one_held_stays() {
    assert!(carves_ipv4_subnet(Ipv4Phase::Active, false));
    assert!(!carves_ipv4_subnet(Ipv4Phase::Deprecated, false) && !carves_ipv4_subnet(Ipv4Phase::Off, false));
    assert!(Ipv4Phase::ALL.iter().all(|p| carves_ipv4_subnet(*p, true)));
}

fn arb_unit() -> impl Strategy<Value = Unit> {
    let vm = (any::<bool>(), 0u8..3).prop_map(|(ipv6, dr)| Vm { name: "vm".into(), ipv6, dr: [Dr::None, Dr::Covered, Dr::Protected][usize::from(dr)] });
    let names = prop::collection::btree_map("[a-z]{1,6}", (any::<bool>(), any::<bool>()), 0..8);
    let zones = prop::collection::vec(("[a-z]{1,4}", any::<bool>(), 0u8..3), 0..5);
    let addrs = prop::collection::vec(("[a-z]{1,4}", 0u8..255, any::<bool>()), 0..12);
    (prop::collection::vec(vm, 0..8), names, zones, addrs).prop_map(|(vms, names, zones, addrs)| Unit {
        department: "u".into(),
        vms,
        names,
        zones: zones.into_iter().map(|(n, v6, p)| zone(&n, v6, Ipv4Phase::ALL[usize::from(p)])).collect(),
        addresses: addrs.into_iter().map(|(z, h, v6)| addr(&z, &if v6 { format!("2001:db8::{h:x}") } else { format!("10.0.0.{h}") })).collect(),
        ..Default::default()
    })
}

proptest! {
    #[test]
    fn the_ratio_lies_between_the_smallest_and_largest_share(u in arb_unit()) {
        let r = ipv6_readiness(&u);
        let shares: Vec<f64> = [r.names_with_aaaa, r.vms_with_ipv6, r.zones_with_ipv6].iter().filter_map(|s| s.ratio()).collect();
        match r.ratio {
            None => prop_assert!(shares.is_empty()),
            Some(x) => {
                let lo = shares.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = shares.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                prop_assert!((0.0..=1.0).contains(&x) && x >= lo - 1e-12 && x <= hi + 1e-12);
            }
        }
    }

    #[test]
    fn every_address_is_counted_once_in_the_inventory_and_the_phase_report(u in arb_unit()) {
        let inv = inventory(&u, &[]);
        let held: u64 = inv.addresses.values().map(|h| h.ipv4 + h.ipv6).sum();
        prop_assert_eq!(held, u.addresses.len() as u64);
        let rows = ipv4_phase(&u, &BTreeMap::new());
        prop_assert_eq!(rows.iter().map(|r| r.ipv4_held + r.ipv6_held).sum::<u64>(), u.addresses.len() as u64);
        for r in &rows {
            let expected = if r.phase == Ipv4Phase::Off { r.ipv4_held } else { 0 };
            prop_assert_eq!(r.to_release.len() as u64, expected);
        }
        prop_assert!(inv.dr_protected.have <= inv.dr_protected.of);
    }

    #[test]
    fn outside_an_active_zone_no_new_claim_gets_ipv4(phase in 1usize..3, want in 0usize..3, asks: bool) {
        let want = [Want::DualStack, Want::V4Only, Want::V6Only][want];
        if let Ok(got) = claim_families("z", Ipv4Phase::ALL[phase], want, asks, false) {
            prop_assert_eq!(got, Want::V6Only);
        }
    }
}
