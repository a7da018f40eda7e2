#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use proptest::prelude::*;

const GI: u128 = 1 << 30;

fn charge(vcpu: u64, mem_gi: u128, ssd_gi: u128, vms: u64) -> Charge {
    Charge { vcpu, memory: mem_gi * GI, storage: BTreeMap::from([("ssd".to_string(), ssd_gi * GI)]), vms }
}

/// A unit with `vms` VMs named `<prefix>0..`, each 2 vCPU / 4Gi / 20Gi ssd, with an
/// A record per VM and one at the unit's apex.
fn unit(name: &str, prefix: &str, vms: usize, quota_vms: u64) -> Unit {
    let subdomain = format!("{name}.daklak.gov.vn");
    let mut u = Unit {
        display_name: name.to_string(),
        code: "H15.100".into(),
        subdomain: subdomain.clone(),
        quota: charge(2 * quota_vms, 4 * u128::from(quota_vms), 20 * u128::from(quota_vms), quota_vms),
        ..Unit::default()
    };
    for i in 0..vms {
        let vm = format!("{prefix}{i}");
        u.vms.insert(vm.clone(), Vm { disks: vec![format!("{vm}-root")], addresses: vec![format!("10.15.{}.{}", name.len(), i + 2)], running: true, zones: vec!["app".into()], taken_over: None });
        u.ledger.insert(format!("vm/{vm}"), charge(2, 4, 20, 1));
        u.records.push(Record { fqdn: format!("{vm}.{subdomain}"), rtype: "A".into(), vm: Some(vm) });
    }
    u.records.push(Record { fqdn: subdomain, rtype: "A".into(), vm: None });
    u.zones = BTreeSet::from(["app".to_string()]);
    u
}

fn estate(units: Vec<(&str, Unit)>) -> Estate {
    Estate { units: units.into_iter().map(|(n, u)| (n.to_string(), u)).collect() }
}

fn act() -> Act {
    Act { reference: "NQ 1/2025".into(), effective_date: "2025-07-01".into(), transition_days: 180, retention_days: 3650, cool_down_days: 30, ..Act::default() }
}

fn merge(units: &[&str], successor: &str, keep: &[&str]) -> Merge {
    Merge { units: units.iter().map(|s| s.to_string()).collect(), successor: successor.into(), keep: keep.iter().map(|s| s.to_string()).collect(), ..Merge::default() }
}

#[test]
fn days_round_trip_and_refuse_what_is_not_a_date() {
    assert_eq!(Day::parse("1970-01-01"), Some(Day(0)));
    assert_eq!(Day::parse("2025-07-01").unwrap().plus(180).format(), "2025-12-28");
    assert_eq!(Day::parse("2024-02-29").unwrap().format(), "2024-02-29");
    for bad in ["2025-02-29", "2025-13-01", "2025-7-1", "yesterday", ""] {
        assert_eq!(Day::parse(bad), None, "{bad}");
    }
}

#[test]
fn a_vm_pdc_took_over_is_refused_moved_or_archived_and_stays_at_the_successor() {
    let mut a_unit = unit("xa-a", "a", 2, 2);
    a_unit.vms.get_mut("a0").unwrap().taken_over = Some(TakenOver::Adopted);
    a_unit.vms.get_mut("a1").unwrap().taken_over = Some(TakenOver::External);
    let mut successor = unit("xa-moi", "m", 1, 10);
    successor.vms.get_mut("m0").unwrap().taken_over = Some(TakenOver::Adopted);
    let e = estate(vec![("xa-a", a_unit), ("xa-moi", successor)]);
    let mut a = act();
    // a0 is kept (moved), a1 is not (halted and archived): both refused.
    a.merges.push(merge(&["xa-a"], "xa-moi", &["xa-a/a0"]));
    let p = plan(&a, &e);
    assert_eq!(p.refusals.len(), 2, "{:?}", p.refusals);
    assert!(p.refusals[0].contains("VM a0 of xa-a was adopted") && p.refusals[0].contains("move it by hand"), "{}", p.refusals[0]);
    assert!(p.refusals[1].contains("VM a1 of xa-a runs outside the cluster") && p.refusals[1].contains("pdcctl vm import a1 --from-image"), "{}", p.refusals[1]);
    // The successor's own adopted VM does not move: nothing refused for it.
    assert!(!p.refusals.iter().any(|r| r.contains("m0")));
}

#[test]
fn communes_merge_kept_vms_move_the_rest_are_archived() {
    let e = estate(vec![("xa-a", unit("xa-a", "a", 2, 2)), ("xa-b", unit("xa-b", "b", 1, 1)), ("xa-moi", unit("xa-moi", "m", 1, 10))]);
    let mut a = act();
    a.merges.push(merge(&["xa-a", "xa-b"], "xa-moi", &["xa-a/a0", "xa-b/*"]));
    let p = plan(&a, &e);
    assert_eq!(p.refusals, Vec::<String>::new());
    let ua = &p.units[0];
    assert_eq!(ua.fate, Fate::Merged { into: "xa-moi".into() });
    assert_eq!(ua.vms_moved.iter().map(|m| m.vm.as_str()).collect::<Vec<_>>(), ["a0"]);
    assert_eq!(ua.vms_halted, ["a1"]);
    assert_eq!(ua.archives[0].until.format(), "2035-06-29");
    // a0's names move; the apex moves; a1's record stays until the transition ends.
    assert!(ua.records_redeclared.contains(&("a0.xa-a.daklak.gov.vn".into(), "a0.xa-moi.daklak.gov.vn".into())));
    assert!(!ua.records_redeclared.iter().any(|(o, _)| o.starts_with("a1.")));
    assert!(p.aliases.contains(&Alias { from: "a0.xa-a.daklak.gov.vn".into(), to: "a0.xa-moi.daklak.gov.vn".into(), kind: "CNAME", until: Day::parse("2025-12-28").unwrap() }));
    // xa-a leaves a name behind (a1's), so it aliases name by name; every name of
    // xa-b moves, so its whole subdomain may answer as a DNAME of the successor's.
    let dnames: Vec<(&str, &str)> = p.aliases.iter().filter(|a| a.kind == "DNAME").map(|a| (a.from.as_str(), a.to.as_str())).collect();
    assert_eq!(dnames, [("xa-b.daklak.gov.vn", "xa-moi.daklak.gov.vn")]);
    // The moved VM's old address is released at the move, reusable after the cool-down;
    // the halted VM's at the retention date.
    let moved = ua.releases.iter().find(|r| r.addresses == ["10.15.4.2"]).unwrap();
    assert_eq!((moved.on.format(), moved.reusable_from.format()), ("2025-07-01".into(), "2025-07-31".into()));
    assert_eq!(ua.quota_moved, charge(2, 4, 20, 1));
    assert_eq!(p.summary()["vmsMoved"], 2);
}

#[test]
fn a_successor_too_small_is_refused_with_what_is_over() {
    let e = estate(vec![("xa-a", unit("xa-a", "a", 3, 3)), ("xa-moi", unit("xa-moi", "m", 1, 2))]);
    let mut a = act();
    a.merges.push(merge(&["xa-a"], "xa-moi", &["xa-a/*"]));
    let p = plan(&a, &e);
    assert_eq!(p.refusals.len(), 1, "{:?}", p.refusals);
    assert!(p.refusals[0].contains("xa-moi's quota is too small") && p.refusals[0].contains("VMs: asks 3"), "{}", p.refusals[0]);
}

#[test]
fn clashing_vm_names_and_missing_units_are_refused() {
    let e = estate(vec![("xa-a", unit("xa-a", "web", 1, 1)), ("xa-b", unit("xa-b", "web", 1, 1)), ("xa-moi", unit("xa-moi", "m", 0, 10))]);
    let mut a = act();
    a.merges.push(merge(&["xa-a", "xa-b", "xa-khong"], "xa-moi", &["xa-a/*", "xa-b/*", "xa-c/*", "xa-a/nope"]));
    let p = plan(&a, &e);
    let all = p.refusals.join("\n");
    assert!(all.contains("VM web0 of xa-b would clash with VM web0 of xa-a"), "{all}");
    assert!(all.contains("merged unit xa-khong does not exist"), "{all}");
    assert!(all.contains("keep xa-c/*: xa-c is not one of the merged units"), "{all}");
    assert!(all.contains("keep xa-a/nope: xa-a has no VM named nope"), "{all}");
}

#[test]
fn a_new_successor_needs_a_name_and_code_and_gets_the_units_quotas() {
    let e = estate(vec![("xa-a", unit("xa-a", "a", 1, 1)), ("xa-b", unit("xa-b", "b", 1, 1))]);
    let mut a = act();
    a.merges.push(merge(&["xa-a", "xa-b"], "xa-moi", &["xa-a/*", "xa-b/*"]));
    assert!(plan(&a, &e).refusals[0].contains("successor xa-moi does not exist"));
    a.merges[0].successor_display_name = Some("Xã Mới".into());
    a.merges[0].successor_code = Some("H15.200".into());
    let p = plan(&a, &e);
    assert_eq!(p.refusals, Vec::<String>::new());
    assert_eq!(p.new_units[0].quota, charge(4, 8, 40, 2));
    assert!(p.aliases.iter().any(|x| x.to == "a0.xa-moi.daklak.gov.vn"));
}

#[test]
fn a_dissolved_unit_is_halted_archived_and_its_names_alias_the_lookup_unit() {
    let mut h = unit("huyen-x", "h", 2, 2);
    h.claims.insert("gw".into(), vec!["10.15.9.1".into()]);
    let e = estate(vec![("huyen-x", h), ("so-noi-vu", unit("so-noi-vu", "s", 0, 1))]);
    let mut a = act();
    a.dissolutions.push(Dissolution { unit: "huyen-x".into(), lookups_go_to: Some("so-noi-vu".into()) });
    let p = plan(&a, &e);
    assert_eq!(p.refusals, Vec::<String>::new());
    assert_eq!(p.units[0].vms_halted, ["h0", "h1"]);
    assert_eq!(p.units[0].releases.len(), 3);
    assert!(p.units[0].releases.iter().all(|r| r.on == p.retention_ends));
    assert_eq!(p.aliases.iter().filter(|x| x.to == "so-noi-vu.daklak.gov.vn").count(), 3);
}

#[test]
fn a_rename_with_a_new_slug_moves_everything_and_aliases_each_name() {
    let e = estate(vec![("so-tttt", unit("so-tttt", "w", 2, 2)), ("so-khcn", unit("so-khcn", "k", 0, 1))]);
    let mut a = act();
    a.renames.push(Rename { unit: "so-tttt".into(), display_name: "Sở KH&CN".into(), new_name: Some("so-khcn".into()) });
    assert!(plan(&a, &e).refusals[0].contains("a Department so-khcn already exists"));
    a.renames[0].new_name = Some("so-khcn-moi".into());
    let p = plan(&a, &e);
    assert_eq!(p.refusals, Vec::<String>::new());
    assert_eq!(p.units[0].vms_moved.len(), 2);
    assert!(p.units[0].vms_moved.iter().all(|m| m.to == "so-khcn-moi"));
    assert_eq!(p.new_units[0].from, ["so-tttt"]);
    // Every name pdc serves there aliases its new name, one CNAME per name, and the
    // whole subdomain its new one as a DNAME (which the zone writer puts in place of
    // the CNAMEs once that is safe).
    let alias = |from: &str, to: &str, kind| Alias { from: from.into(), to: to.into(), kind, until: p.transition_ends };
    let cname = |from: &str, to: &str| alias(from, to, "CNAME");
    assert_eq!(
        p.aliases,
        vec![
            cname("so-tttt.daklak.gov.vn", "so-khcn-moi.daklak.gov.vn"),
            alias("so-tttt.daklak.gov.vn", "so-khcn-moi.daklak.gov.vn", "DNAME"),
            cname("w0.so-tttt.daklak.gov.vn", "w0.so-khcn-moi.daklak.gov.vn"),
            cname("w1.so-tttt.daklak.gov.vn", "w1.so-khcn-moi.daklak.gov.vn"),
        ]
    );
    let with_work: Vec<Step> = STEPS.into_iter().filter(|s| p.has_work(*s)).collect();
    assert_eq!(with_work, [Step::Freeze, Step::CreateUnits, Step::MoveVms, Step::Redeclare, Step::Retire, Step::RemoveAliases, Step::Release]);
}

#[test]
fn codes_are_reissued_under_the_new_prefix_and_never_reused() {
    let mut py = unit("so-y-te-py", "p", 0, 0);
    py.code = "H45.12".into();
    let mut dl = unit("so-y-te", "d", 0, 0);
    dl.code = "H15.200.12".into();
    let e = estate(vec![("so-y-te-py", py), ("so-y-te", dl)]);
    let mut a = act();
    a.code_reissues.push(CodeReissue { from: "H45".into(), to: "H15.200".into(), deadline: "2025-08-01".into() });
    let p = plan(&a, &e);
    assert!(p.refusals[0].contains("which so-y-te already holds"), "{:?}", p.refusals);
    a.code_reissues[0].to = "H15.201".into();
    let p = plan(&a, &e);
    assert_eq!(p.codes, vec![CodeChange { unit: "so-y-te-py".into(), old: "H45.12".into(), new: "H15.201.12".into(), deadline: Day::parse("2025-08-01").unwrap() }]);
}

#[test]
fn what_the_api_refuses_the_offline_plan_refuses_too() {
    let e = estate(vec![("xa-a", unit("xa-a", "a", 0, 1)), ("xa-b", unit("xa-b", "b", 0, 1)), ("xa-c", unit("xa-c", "c", 0, 1))]);
    let mut a = act();
    a.merges.push(merge(&["xa-a"], "xa-b", &[]));
    a.merges.push(merge(&["xa-a", "xa-b"], "xa-c", &[]));
    a.dissolutions.push(Dissolution { unit: "xa-c".into(), lookups_go_to: None });
    let all = plan(&a, &e).refusals.join("\n");
    for want in ["xa-a appears in 2 merges", "successor xa-b is itself merged away", "successor xa-c is dissolved by the same act"] {
        assert!(all.contains(want), "{want} not in {all}");
    }
}

#[test]
fn steps_run_in_order_and_wait_for_their_dates() {
    let p = plan(&act(), &Estate::default());
    let before = p.effective.plus(0);
    let mut done = BTreeSet::new();
    assert_eq!(next_step(&done, Day(before.0 - 10), &p), Next::Run(Step::Freeze));
    done.extend([Step::Freeze, Step::CreateUnits, Step::MoveVms, Step::Archive, Step::Redeclare, Step::ReissueCodes]);
    assert_eq!(next_step(&done, Day(before.0 - 10), &p), Next::WaitUntil(Step::Retire, p.effective));
    done.insert(Step::Retire);
    assert_eq!(next_step(&done, p.effective, &p), Next::WaitUntil(Step::RemoveAliases, p.transition_ends));
    done.insert(Step::RemoveAliases);
    assert_eq!(next_step(&done, p.transition_ends, &p), Next::WaitUntil(Step::Release, p.retention_ends));
    done.insert(Step::Release);
    assert_eq!(next_step(&done, p.retention_ends, &p), Next::Done);
}

#[test]
fn a_step_has_work_only_when_the_plan_changes_something_in_it() {
    let e = estate(vec![("xa-a", unit("xa-a", "a", 1, 1)), ("xa-b", unit("xa-b", "b", 0, 2)), ("so-x", unit("so-x", "s", 0, 1))]);
    let mut a = act();
    a.merges.push(merge(&["xa-a"], "xa-b", &["xa-a/*"]));
    let p = plan(&a, &e);
    assert_eq!(p.refusals, Vec::<String>::new());
    let with_work: Vec<Step> = STEPS.into_iter().filter(|s| p.has_work(*s)).collect();
    // The moved VM's old addresses are given back after the move.
    assert_eq!(with_work, [Step::Freeze, Step::MoveVms, Step::Redeclare, Step::Retire, Step::RemoveAliases, Step::Release]);
    // A rename of the display name only: the unit stays, nothing retires.
    let mut a = act();
    a.renames.push(Rename { unit: "so-x".into(), display_name: "Sở X".into(), new_name: None });
    let p = plan(&a, &e);
    let with_work: Vec<Step> = STEPS.into_iter().filter(|s| p.has_work(*s)).collect();
    assert_eq!(with_work, [Step::CreateUnits]);
    assert!(!p.units[0].retires());
}

/// Random estates of up to five units (VM names from a small pool so they clash) and
/// an act merging some of them into the last, keeping some VMs.
fn scenario() -> impl Strategy<Value = (Estate, Act)> {
    let unit_s = (0usize..4, 0u64..6, proptest::collection::vec(0usize..3, 0..4));
    (proptest::collection::vec(unit_s, 2..6), proptest::collection::vec(any::<bool>(), 0..16)).prop_map(|(units, keeps)| {
        let mut e = Estate::default();
        let names: Vec<String> = (0..units.len()).map(|i| format!("xa-{i}")).collect();
        for (i, (n, q, vm_ids)) in units.iter().enumerate() {
            let mut u = unit(&names[i], "x", 0, *q);
            for id in vm_ids.iter().take(*n) {
                let vm = format!("vm{id}");
                if u.vms.contains_key(&vm) {
                    continue;
                }
                u.vms.insert(vm.clone(), Vm { disks: vec![format!("{vm}-root")], addresses: vec![format!("10.15.{i}.{id}")], running: true, zones: vec!["app".into()], taken_over: None });
                u.ledger.insert(format!("vm/{vm}"), charge(2, 4, 20, 1));
                u.records.push(Record { fqdn: format!("{vm}.{}", u.subdomain), rtype: "A".into(), vm: Some(vm) });
            }
            // A volume of its own, and one on its first VM.
            let first = u.vms.keys().next().cloned();
            for (vol, at) in [(format!("loose-{i}"), None), (format!("data-{i}"), first)] {
                u.ledger.insert(format!("volume/{vol}"), charge(0, 0, 5, 0));
                u.volumes.insert(vol, at);
            }
            e.units.insert(names[i].clone(), u);
        }
        let successor = names.last().cloned().unwrap_or_default();
        let merged: Vec<String> = names[..names.len() - 1].to_vec();
        let mut keep = Vec::new();
        let mut k = keeps.iter();
        for m in &merged {
            for vm in e.units[m].vms.keys() {
                if k.next().copied().unwrap_or(false) {
                    keep.push(format!("{m}/{vm}"));
                }
            }
        }
        let mut a = act();
        a.merges.push(Merge { units: merged, successor, keep, ..Merge::default() });
        (e, a)
    })
}

proptest! {
    /// Every VM of a merged unit is moved or halted, exactly once; none is lost.
    #[test]
    fn no_vm_is_orphaned((e, a) in scenario()) {
        let p = plan(&a, &e);
        for up in &p.units {
            let u = &e.units[&up.unit];
            let mut seen: Vec<&str> = up.vms_moved.iter().map(|m| m.vm.as_str()).chain(up.vms_halted.iter().map(String::as_str)).collect();
            seen.sort_unstable();
            let all: Vec<&str> = u.vms.keys().map(String::as_str).collect();
            prop_assert_eq!(seen, all);
            prop_assert_eq!(up.archives.len(), up.vms_halted.len());
        }
    }

    /// Every volume of a merged unit is moved or archived, exactly once: moved when
    /// it is attached to nothing or to a VM that moves, archived with a halted VM.
    #[test]
    fn no_volume_is_orphaned((e, a) in scenario()) {
        let p = plan(&a, &e);
        for up in &p.units {
            let u = &e.units[&up.unit];
            let mut seen: Vec<&str> = up.volumes_moved.iter().map(String::as_str).chain(up.volumes_archived.iter().map(|v| v.volume.as_str())).collect();
            seen.sort_unstable();
            let all: Vec<&str> = u.volumes.keys().map(String::as_str).collect();
            prop_assert_eq!(seen, all);
            for v in &up.volumes_archived {
                prop_assert!(v.vm.as_ref().is_some_and(|vm| up.vms_halted.contains(vm)), "{} archived without its VM halted", v.volume);
            }
            for v in &up.volumes_moved {
                let at = u.volumes[v].as_ref();
                prop_assert!(at.is_none_or(|vm| up.vms_moved.iter().any(|m| &m.vm == vm)), "{} moved without its VM", v);
            }
        }
    }

    /// A plan without refusals never puts two VMs of one name in the successor and
    /// never takes the successor over its quota; a refusal names the reason.
    #[test]
    fn accepted_plans_fit_and_do_not_clash((e, a) in scenario()) {
        let p = plan(&a, &e);
        let succ = &a.merges[0].successor;
        let mut names: BTreeSet<String> = e.units[succ].vms.keys().cloned().collect();
        let mut clash = false;
        let mut moved = Charge::default();
        for up in &p.units {
            moved.add(&up.quota_moved);
            for m in &up.vms_moved {
                clash |= !names.insert(m.vm.clone());
            }
        }
        let over = quota::admit(&e.units[succ].quota, &e.units[succ].ledger, "x", &moved).is_err();
        prop_assert_eq!(p.refusals.is_empty(), !clash && !over, "refusals {:?}", p.refusals);
    }

    /// Aliases are made only from names pdc serves for the units the act names, and
    /// point into the successor's subdomain.
    #[test]
    fn aliases_only_from_names_pdc_owns((e, a) in scenario()) {
        let p = plan(&a, &e);
        let owned: BTreeSet<&str> = a.merges[0].units.iter().flat_map(|u| e.units[u].records.iter().map(|r| r.fqdn.as_str())).collect();
        let succ_sub = &e.units[&a.merges[0].successor].subdomain;
        for x in &p.aliases {
            prop_assert!(owned.contains(x.from.as_str()), "{} is not a name of a merged unit", x.from);
            prop_assert!(x.to.ends_with(succ_sub.as_str()));
        }
    }

    /// Dates survive formatting.
    #[test]
    fn days_format_and_parse_back(d in -50_000i64..100_000) {
        prop_assert_eq!(Day::parse(&Day(d).format()), Some(Day(d)));
    }
}

#[test]
fn a_kept_vm_needs_its_zones_at_an_existing_successor() {
    let mut succ = unit("xa-moi", "m", 0, 10);
    succ.zones = BTreeSet::from(["dmz".to_string()]);
    let e = estate(vec![("xa-a", unit("xa-a", "a", 1, 2)), ("xa-moi", succ.clone())]);
    let mut a = act();
    a.merges.push(Merge { units: vec!["xa-a".into()], successor: "xa-moi".into(), keep: vec!["xa-a/a0".into()], ..Merge::default() });
    let p = plan(&a, &e);
    assert!(p.refusals.iter().any(|r| r.contains("VM a0 of xa-a has a NIC in zone app, which successor xa-moi does not use")), "{:?}", p.refusals);
    succ.zones.insert("app".into());
    let p = plan(&a, &estate(vec![("xa-a", unit("xa-a", "a", 1, 2)), ("xa-moi", succ)]));
    assert!(p.refusals.is_empty(), "{:?}", p.refusals);
    // Not kept: halted and archived, whatever its zones.
    a.merges[0].keep.clear();
    let mut bare = unit("xa-moi", "m", 0, 10);
    bare.zones.clear();
    assert!(plan(&a, &estate(vec![("xa-a", unit("xa-a", "a", 1, 2)), ("xa-moi", bare)])).refusals.is_empty());
}

#[test]
fn a_merged_units_volumes_and_claims_move_and_the_rest_are_archived() {
    let mut xa = unit("xa-a", "a", 2, 2);
    xa.volumes.insert("du-lieu".into(), None);
    xa.volumes.insert("a0-data".into(), Some("a0".into()));
    xa.volumes.insert("a1-data".into(), Some("a1".into()));
    xa.volumes.insert("mo-coi".into(), Some("khong-co".into()));
    for v in ["du-lieu", "a0-data", "a1-data", "mo-coi"] {
        xa.ledger.insert(format!("volume/{v}"), charge(0, 0, 10, 0));
    }
    xa.claims.insert("camera".into(), vec!["10.15.4.90".into()]);
    xa.claim_zones.insert("camera".into(), "dmz".into());
    let mut succ = unit("xa-moi", "m", 0, 10);
    let e = |succ: &Unit| estate(vec![("xa-a", xa.clone()), ("xa-moi", succ.clone())]);
    let mut a = act();
    a.merges.push(merge(&["xa-a"], "xa-moi", &["xa-a/a0"]));
    // The claim's zone is not the successor's: refused, saying what to change.
    let p = plan(&a, &e(&succ));
    assert_eq!(p.refusals, ["AddressClaim camera of xa-a is in zone dmz, which successor xa-moi does not use: add dmz to its zones before the act"]);
    succ.zones.insert("dmz".into());
    let p = plan(&a, &e(&succ));
    assert_eq!(p.refusals, Vec::<String>::new());
    let ua = &p.units[0];
    // Unattached, attached to the kept VM, or to a VM that does not exist: moved;
    // attached to the halted VM: archived with it.
    assert_eq!(ua.volumes_moved, ["a0-data", "du-lieu", "mo-coi"]);
    assert_eq!(ua.volumes_archived, [VolumeArchive { volume: "a1-data".into(), vm: Some("a1".into()), until: p.retention_ends }]);
    assert_eq!(ua.claims_moved, ["camera"]);
    assert!(ua.releases.iter().any(|r| r.addresses == ["10.15.4.90"] && r.on == p.effective && r.reusable_from == p.effective.plus(30)));
    // The VM and three volumes are charged at the successor.
    assert_eq!(ua.quota_moved, charge(2, 4, 50, 1));
    assert!(p.has_work(Step::MoveVms) && p.has_work(Step::Archive));
    assert_eq!((p.summary()["volumesMoved"], p.summary()["claimsMoved"], p.summary()["volumesArchived"]), (3, 1, 1));
    // The successor's quota must hold the volumes too.
    succ.quota.storage.insert("ssd".into(), 40 * GI);
    let p = plan(&a, &e(&succ));
    assert!(p.refusals.iter().any(|r| r.contains("xa-moi's quota is too small")), "{:?}", p.refusals);
    // A volume or claim of the same name at the successor clashes.
    let mut succ = unit("xa-moi", "m", 0, 10);
    succ.zones.insert("dmz".into());
    succ.volumes.insert("du-lieu".into(), None);
    succ.claims.insert("camera".into(), Vec::new());
    let all = plan(&a, &e(&succ)).refusals.join("\n");
    assert!(all.contains("TenantVolume du-lieu of xa-a would clash with TenantVolume du-lieu of xa-moi at xa-moi"), "{all}");
    assert!(all.contains("AddressClaim camera of xa-a would clash with AddressClaim camera of xa-moi"), "{all}");
}

#[test]
fn a_dissolved_units_volumes_are_archived_until_the_retention_date() {
    let mut h = unit("huyen-x", "h", 1, 1);
    h.volumes.insert("luu-tru".into(), None);
    h.volumes.insert("h0-data".into(), Some("h0".into()));
    let e = estate(vec![("huyen-x", h)]);
    let mut a = act();
    a.dissolutions.push(Dissolution { unit: "huyen-x".into(), lookups_go_to: None });
    let p = plan(&a, &e);
    assert_eq!(p.refusals, Vec::<String>::new());
    let until = p.retention_ends;
    assert_eq!(
        p.units[0].volumes_archived,
        [VolumeArchive { volume: "h0-data".into(), vm: Some("h0".into()), until }, VolumeArchive { volume: "luu-tru".into(), vm: None, until }]
    );
    assert!(p.units[0].volumes_moved.is_empty());
    // Only a volume: archived, then released (its TenantVolume deleted) after the retention.
    let mut only = unit("huyen-y", "h", 0, 1);
    only.records.clear();
    only.volumes.insert("luu-tru".into(), None);
    let mut a = act();
    a.dissolutions.push(Dissolution { unit: "huyen-y".into(), lookups_go_to: None });
    let p = plan(&a, &estate(vec![("huyen-y", only)]));
    let with_work: Vec<Step> = STEPS.into_iter().filter(|s| p.has_work(*s)).collect();
    assert_eq!(with_work, [Step::Freeze, Step::Archive, Step::Retire, Step::Release]);
}
