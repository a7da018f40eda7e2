#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use proptest::prelude::*;

use super::*;
use crate::ipam::Family;

const HEADER: &str = "kind,name,site,zone,department,ipv4,ipv6,vlan,subnet_ipv4,subnet_ipv6,role,description\n";

/// A plan in the province's shape: two sites, a pdc zone, the TSLCD zone planned
/// outside pdc, department subnets and addresses in use.
fn plan() -> String {
    format!(
        "{HEADER}# sites\n\
         site,daklak,,,,10.15.0.0/16,2001:db8:1500::/40,,,,Primary,Trung tâm tích hợp dữ liệu Đắk Lắk\n\
         site,phuyen,,,,10.45.0.0/16,2001:db8:4500::/40,,,,Standby,\"Trung tâm dữ liệu Phú Yên, dự phòng\"\n\
         zone,app,daklak,,,10.15.16.0/20,2001:db8:1501::/48,120,26,64,,Vùng máy chủ ứng dụng\n\
         zone,app,phuyen,,,10.45.16.0/20,2001:db8:4501::/48,,,,,\n\
         zone,tslcd,daklak,,,10.15.96.0/20,2001:db8:1506::/48,300,28,64,external,Mạng truyền số liệu chuyên dùng\n\
         subnet,,daklak,app,so-y-te,10.15.16.0/26,2001:db8:1501::/64,,,,,\n\
         subnet,,daklak,app,so-tai-chinh,10.15.16.64/26,2001:db8:1501:1::/64,,,,,\n\
         address,his-db01,daklak,app,so-y-te,10.15.16.10,2001:db8:1501::10,,,,server,HIS database\n\
         address,gw-app,daklak,app,,10.15.16.1,,,,,gateway,\n\
         address,fw-app,daklak,app,,10.15.31.254,,,,,firewall,\"HA pair, node 1\"\n\
         address,xa-ea-sup,daklak,tslcd,,10.15.96.17,,,,,network-point,Xã Ea Súp\n"
    )
}

fn run(text: &str, snap: &Snapshot) -> Report {
    check(csv(text), snap)
}

fn cluster() -> Snapshot {
    Snapshot { complete: true, ..Snapshot::default() }
}

/// The cluster after `writes` (what `pdcctl ip import` makes of them).
fn applied(mut snap: Snapshot, w: &Writes, plan: &str) -> Snapshot {
    for s in &w.sites {
        snap.sites.push(SiteState { name: s.name.clone(), primary: s.primary, ipv4_blocks: s.ipv4_blocks.clone(), ipv6_blocks: s.ipv6_blocks.clone() });
    }
    for z in &w.zones {
        if let Some(cur) = snap.zones.iter_mut().find(|c| c.name == z.name) {
            for (site, (a, b)) in &z.sites {
                let e = cur.sites.entry(site.clone()).or_default();
                e.0 = e.0.or(*a);
                e.1 = e.1.or(*b);
            }
        } else {
            let (size_v4, size_v6) = (z.size_v4, z.size_v6);
            let zs = ZoneState { name: z.name.clone(), vlan: i32::from(z.vlan), size_v4, size_v6, externally_assigned: z.externally_assigned, sites: z.sites.clone() };
            snap.zones.push(zs);
        }
    }
    for s in &w.subnets {
        snap.subnets.push(SubnetState { prefix: s.prefix, zone: s.zone.clone(), site: s.site.clone(), department: s.department.clone() });
    }
    for a in &w.addresses {
        snap.addresses.push(AddressState {
            address: a.address,
            subnet: a.subnet.to_string(),
            zone: a.zone.clone(),
            site: a.site.clone(),
            department: a.department.clone(),
            hostname: a.hostname.clone(),
            holder: Holder::External { role: a.role.clone(), plan: plan.into(), description: a.description.clone() },
        });
    }
    snap
}

#[test]
fn a_clean_plan_becomes_its_writes_and_a_second_import_changes_nothing() {
    let r = run(&plan(), &cluster());
    assert_eq!(r.conflicts, vec![], "{:#?}", r.conflicts);
    let w = &r.writes;
    assert_eq!((w.sites.len(), w.zones.len(), w.subnets.len(), w.addresses.len()), (2, 2, 4, 5));
    let tslcd = w.zones.iter().find(|z| z.name == "tslcd").unwrap();
    assert!(tslcd.externally_assigned && tslcd.create && tslcd.size_v4 == 28);
    let app = w.zones.iter().find(|z| z.name == "app").unwrap();
    assert_eq!(app.sites.keys().collect::<Vec<_>>(), ["daklak", "phuyen"]);
    // The HIS database is in the health department's subnet; the gateway (no department
    // given) is too, so it is held in that department's pool; the firewall is in none.
    let by = |a: &str| w.addresses.iter().find(|x| x.address.to_string() == a).unwrap();
    assert_eq!((by("10.15.16.10").department.as_str(), by("10.15.16.10").subnet.to_string()), ("so-y-te", "10.15.16.0/26".into()));
    assert_eq!(by("10.15.16.1").department, "so-y-te");
    assert_eq!((by("10.15.31.254").department.as_str(), by("10.15.31.254").subnet.to_string()), ("", "10.15.16.0/20".into()));
    assert_eq!(by("10.15.31.254").description.as_deref(), Some("HA pair, node 1"));
    let again = run(&plan(), &applied(cluster(), w, "plan.csv"));
    assert_eq!(again.conflicts, vec![]);
    assert_eq!(again.writes.count(), 0, "{:#?}", again.writes);
    assert_eq!(again.writes.unchanged, Unchanged { sites: 2, zones: 2, subnets: 4, addresses: 5 });
}

/// Each planted mistake, the line it is reported at, and words of the problem and the fix.
#[test]
fn every_conflict_is_reported_at_its_line_with_a_fix() {
    let cases: &[(&str, &str, &str)] = &[
        ("zone,dmz,daklak,,,10.15.16.0/22,,110,27,64,,", "overlaps 10.15.16.0/20 of zone app", "never overlap"),
        ("address,x,daklak,app,,10.99.0.5,,,,,server,", "outside zone app at site daklak", "in no zone"),
        ("address,x,daklak,app,,10.15.96.20,,,,,server,", "outside zone app", "lies in zone tslcd at site daklak"),
        ("address,dup,daklak,app,so-y-te,10.15.16.10,,,,,server,", "declared twice (also at line 10)", "one row per address"),
        ("subnet,,daklak,app,so-noi-vu,10.15.16.128/25,,,,,,", "is a /25, but zone app gives every department a /26", "declare a /26"),
        ("subnet,,daklak,app,so-noi-vu,10.15.16.0/26,,,,,,", "overlaps 10.15.16.0/26 of department so-y-te at line 8", "never overlap"),
        ("subnet,,daklak,app,Sở Nội vụ,10.15.17.0/26,,,,,,", "not a Department's name", "write so-noi-vu"),
        ("zone,data,daklak,,,10.15.32.5/20,,130,27,64,,", "invalid prefix", "write 10.15.32.0/20"),
        ("address,x,daklak,app,so-tai-chinh,10.15.16.12,,,,,server,", "in subnet 10.15.16.0/26 of department so-y-te, not of so-tai-chinh", "write department so-y-te"),
        ("address,x,daklak,app,so-y-te,10.15.16.63,,,,,server,", "broadcast address", "correct"),
        ("address,Máy chủ,daklak,app,,10.15.20.1,,,,,server,", "not a DNS name", "write may-chu"),
        ("address,x,daklak,app,,10.15.20.2,,,,,,", "role column is empty", "network-point"),
        ("zone,app,phuyen,,,10.45.16.0/20,,121,,,,", "vlan is 120 on an earlier row, 121 here", "write vlan 120"),
        ("bogus,x,,,,,,,,,,", "unknown kind", "site, zone, subnet or address"),
        ("address,a,b,c,d,e,f,g,h,i,j,k,l,m", "14 cells, but the header has 12 columns", "quote cells"),
    ];
    let base_lines = plan().lines().count();
    for (row, problem, fix) in cases {
        let text = format!("{}{row}\n", plan());
        let r = run(&text, &cluster());
        let line = base_lines + 1;
        let hit = r.conflicts.iter().find(|c| c.problem.contains(problem));
        let Some(c) = hit else { panic!("{row}: no conflict {problem:?} in {:#?}", r.conflicts) };
        assert_eq!(c.at, Loc::line(line), "{row}: {c}");
        assert!(c.fix.contains(fix), "{row}: fix {:?} lacks {fix:?}", c.fix);
        assert_eq!(r.writes.count(), 0, "{row}: a plan with a conflict writes nothing");
    }
}

#[test]
fn the_cluster_state_is_checked_before_anything_is_written() {
    let first = run(&plan(), &cluster());
    let mut snap = applied(cluster(), &first.writes, "plan.csv");
    // A claim took an address the plan declares; the zone was renumbered; a department
    // got another subnet in the zone; an external address was imported with other details.
    let claimed = snap.addresses.iter_mut().find(|a| a.address.to_string() == "10.15.16.10").unwrap();
    claimed.holder = Holder::Claim("so-y-te/his-db".into());
    let ext = snap.addresses.iter_mut().find(|a| a.address.to_string() == "10.15.96.17").unwrap();
    ext.hostname = Some("ea-sup-old".into());
    let app = snap.zones.iter_mut().find(|z| z.name == "app").unwrap();
    app.sites.insert("phuyen".into(), (Prefix::parse("10.45.32.0/20").ok(), None));
    snap.subnets.retain(|s| s.department != "so-tai-chinh" || s.prefix.family != Family::V4);
    snap.subnets.push(SubnetState { prefix: Prefix::parse("10.15.17.0/26").unwrap(), zone: "app".into(), site: "daklak".into(), department: "so-tai-chinh".into() });
    let r = run(&plan(), &snap);
    let at = |needle: &str| r.conflicts.iter().find(|c| c.problem.contains(needle)).map(|c| c.at.clone());
    assert_eq!(at("held in the cluster by AddressClaim so-y-te/his-db"), Some(Loc::line(10)), "{:#?}", r.conflicts);
    assert_eq!(at("was imported from plan.csv as network-point ea-sup-old"), Some(Loc::line(13)));
    assert_eq!(at("has IPv4 prefix 10.45.32.0/20 at site phuyen in the cluster"), Some(Loc::line(6)));
    assert_eq!(at("already holds IPv4 subnet 10.15.17.0/26"), Some(Loc::line(9)));
    assert_eq!(r.writes, Writes::default());
}

#[test]
fn offline_a_reference_to_the_cluster_is_a_note_and_at_import_a_conflict() {
    let text = format!("{HEADER}address,his-app01,daklak,app,so-y-te,10.15.16.11,,,,,server,\n");
    let offline = run(&text, &Snapshot::offline());
    assert_eq!(offline.conflicts, vec![]);
    assert_eq!(offline.notes, vec!["line 2: zone app is not in the file; the import checks that the cluster has it".to_string()]);
    let online = run(&text, &cluster());
    assert_eq!(online.conflicts.len(), 1);
    assert_eq!(online.conflicts[0].problem, "zone app is neither in the file nor in the cluster");
}

#[test]
fn yaml_reads_as_the_csv_does_and_names_its_lines() {
    let text = "\
sites:
  - name: daklak
    role: Primary
    displayName: Trung tâm tích hợp dữ liệu Đắk Lắk
    ipv4Blocks: [10.15.0.0/16]
zones:
  - name: tslcd
    vlan: 300
    externallyAssigned: true
    subnetSizes: {ipv4: 28, ipv6: 64}
    sites:
      - {site: daklak, ipv4: 10.15.96.0/20}
addresses:
  - {hostname: xa-ea-sup, zone: tslcd, site: daklak, ipv4: 10.15.96.17, role: network-point}
  - {hostname: xa-ea-rok, zone: tslcd, site: daklak, ipv4: 10.15.96.17, role: network-point}
";
    let doc: YamlPlan = serde_yaml::from_str(text).unwrap();
    let r = check(yaml(doc, text), &cluster());
    assert_eq!(r.conflicts.len(), 1, "{:#?}", r.conflicts);
    assert_eq!(r.conflicts[0].at, Loc { line: Some(15), entry: Some(("addresses", 1)) });
    assert_eq!(r.conflicts[0].to_string(), "line 15 (addresses[1]): address 10.15.96.17 is declared twice (also at line 14 (addresses[0]))\n    fix: keep one row per address");
    let csv_twin = format!(
        "{HEADER}site,daklak,,,,10.15.0.0/16,,,,,Primary,Trung tâm tích hợp dữ liệu Đắk Lắk\nzone,tslcd,daklak,,,10.15.96.0/20,,300,28,64,external,\naddress,xa-ea-sup,daklak,tslcd,,10.15.96.17,,,,,network-point,\n"
    );
    let from_yaml: Vec<Item> = yaml(serde_yaml::from_str(text).unwrap(), text).entries.into_iter().take(3).map(|e| e.item).collect();
    let from_csv: Vec<Item> = csv(&csv_twin).entries.into_iter().map(|e| e.item).collect();
    assert_eq!(from_yaml, from_csv);
}

#[test]
fn csv_cells_follow_rfc_4180_quoting() {
    let text = format!("{HEADER}address,a,daklak,app,,10.15.16.5,,,,,server,\"Phòng \"\"A\"\", tầng 2\"\n");
    let p = csv(&text);
    assert_eq!(p.conflicts, vec![]);
    let Item::Address(a) = &p.entries[0].item else { panic!() };
    assert_eq!(a.description.as_deref(), Some("Phòng \"A\", tầng 2"));
    let open = csv(&format!("{HEADER}address,a,daklak,app,,10.15.16.5,,,,,server,\"not closed\n"));
    assert!(open.conflicts[0].problem.contains("not closed"), "{:?}", open.conflicts);
}

/// A random plan: `n` department subnets in one zone and `m` addresses, some inside a
/// subnet and some in none, written as CSV.
fn random_plan() -> impl Strategy<Value = String> {
    (1usize..12, proptest::collection::btree_set(0u32..4096, 0..60)).prop_map(|(depts, hosts)| {
        let mut t = format!("{HEADER}site,daklak,,,,10.15.0.0/16,2001:db8:1500::/40,,,,Primary,\n");
        t.push_str("zone,app,daklak,,,10.15.16.0/20,2001:db8:1501::/48,120,26,64,,\n");
        for d in 0..depts {
            t.push_str(&format!("subnet,,daklak,app,dept-{d},10.15.{}.{}/26,2001:db8:1501:{d:x}::/64,,,,,\n", 16 + d / 4, (d % 4) * 64));
        }
        for h in hosts {
            let v = 0x0a0f_1000u32 + h;
            let a = std::net::Ipv4Addr::from(v);
            t.push_str(&format!("address,host-{h},daklak,app,,{a},,,,,server,\n"));
        }
        t
    })
}

proptest! {
    /// Importing what an import wrote changes nothing; no address is written twice;
    /// every address lies in the subnet it is recorded in.
    #[test]
    fn import_converges_and_never_writes_an_address_twice(text in random_plan()) {
        let r = run(&text, &cluster());
        // Network and broadcast addresses of a department subnet are refused, nothing else.
        prop_assert!(r.conflicts.iter().all(|c| c.problem.contains("network address") || c.problem.contains("broadcast address")), "{:#?}", r.conflicts);
        if r.conflicts.is_empty() {
            let mut names = std::collections::BTreeSet::new();
            for a in &r.writes.addresses {
                prop_assert!(names.insert(a.address.object_name()));
                prop_assert!(a.subnet.contains(&a.address));
                prop_assert_eq!(a.department.is_empty(), a.subnet.len == 20);
            }
            let again = run(&text, &applied(cluster(), &r.writes, "p"));
            prop_assert_eq!(again.conflicts, vec![]);
            prop_assert_eq!(again.writes.count(), 0);
        }
    }

    /// Whatever the bytes, reading never panics and every complaint names a line.
    #[test]
    fn any_text_reads_without_panicking(text in "[a-z0-9,.:/\" \n#-]{0,400}") {
        let p = csv(&text);
        prop_assert!(p.conflicts.iter().all(|c| c.at.line.is_some()));
        let _ = check(p, &cluster());
    }
}
