//! Taking over a VM that already runs: whether the addresses a TenantVM says the VM
//! keeps are the addresses it has. pdc must hold every address the VM uses in a
//! zone (or a later claim could be handed one, and two machines would answer to it)
//! and must claim none it does not use; each kept address must lie in the
//! department's own subnet of its NIC's zone, where its claim can hold it.

use crate::ipam::{Addr, Prefix};

/// One NIC of the TenantVM: its zone and the addresses it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptNic {
    pub zone: String,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
}

/// Why the addresses do not fit, as a message that says what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misfit {
    /// A kept address does not parse.
    Invalid(String),
    /// A kept address is outside the department's subnets of its NIC's zone.
    OutsideSubnet { address: String, zone: String, subnets: Vec<String> },
    /// The running instance does not report a kept address.
    NotOnTheVm { address: String, reported: Vec<String> },
    /// The instance uses an address in a zone that no NIC keeps.
    Unkept { address: String, zone: String },
}

impl std::fmt::Display for Misfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Misfit::Invalid(a) => write!(f, "{a} is not an IP address"),
            Misfit::OutsideSubnet { address, zone, subnets } if subnets.is_empty() => {
                write!(f, "{address} cannot be kept in zone {zone}: the department has no subnet there yet")
            }
            Misfit::OutsideSubnet { address, zone, subnets } => {
                write!(f, "{address} is outside the department's subnets in zone {zone} ({}): it cannot be claimed there; renumber the VM or ask for the zone the address is in", subnets.join(", "))
            }
            Misfit::NotOnTheVm { address, reported } => {
                write!(f, "the running VM does not have {address} (it reports {}): keep only the addresses it has", if reported.is_empty() { "none".to_string() } else { reported.join(", ") })
            }
            Misfit::Unkept { address, zone } => write!(f, "the running VM uses {address} in zone {zone} but no NIC keeps it: add it to spec.nics, or pdc could hand it to another VM"),
        }
    }
}

fn zone_of<'a>(a: &Addr, prefixes: &'a [(String, Prefix)]) -> Option<&'a str> {
    prefixes.iter().find(|(_, p)| p.contains(a)).map(|(z, _)| z.as_str())
}

/// Check the kept addresses against the instance's. `reported`: the addresses the
/// running instance reports on its interfaces (empty when it reports none: no guest
/// agent; then the kept addresses are taken as declared). `subnets`: the
/// department's subnets, per zone; `zones`: every zone's prefixes, which tell an
/// address in a zone from a pod-network or link-local one (those pdc leaves alone).
pub fn check(nics: &[KeptNic], reported: &[String], subnets: &[(String, Prefix)], zones: &[(String, Prefix)]) -> Result<(), Misfit> {
    let mut kept = Vec::new();
    for n in nics {
        for text in [&n.ipv4, &n.ipv6].into_iter().flatten() {
            let a = Addr::parse(text).map_err(|_| Misfit::Invalid(text.clone()))?;
            let mine: Vec<&Prefix> = subnets.iter().filter(|(z, p)| *z == n.zone && p.family == a.family).map(|(_, p)| p).collect();
            if !mine.iter().any(|p| p.contains(&a)) {
                let all = subnets.iter().filter(|(z, _)| *z == n.zone).map(|(_, p)| p.to_string()).collect();
                return Err(Misfit::OutsideSubnet { address: text.clone(), zone: n.zone.clone(), subnets: all });
            }
            kept.push(a);
        }
    }
    let on_vm: Vec<Addr> = reported.iter().filter_map(|r| Addr::parse(r).ok()).collect();
    if !on_vm.is_empty()
        && let Some(a) = kept.iter().find(|a| !on_vm.contains(a))
    {
        return Err(Misfit::NotOnTheVm { address: a.to_string(), reported: on_vm.iter().map(ToString::to_string).collect() });
    }
    for a in &on_vm {
        if let Some(z) = zone_of(a, zones).or_else(|| zone_of(a, subnets))
            && !kept.contains(a)
        {
            return Err(Misfit::Unkept { address: a.to_string(), zone: z.to_string() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Prefix {
        Prefix::parse(s).unwrap()
    }

    fn subnets() -> Vec<(String, Prefix)> {
        vec![("app".into(), p("10.15.1.0/24")), ("app".into(), p("2001:db8:15:1::/64")), ("dmz".into(), p("10.16.1.0/24"))]
    }

    fn zones() -> Vec<(String, Prefix)> {
        vec![("app".into(), p("10.15.0.0/16")), ("app".into(), p("2001:db8:15::/48")), ("dmz".into(), p("10.16.0.0/16"))]
    }

    fn nic(zone: &str, v4: Option<&str>, v6: Option<&str>) -> KeptNic {
        KeptNic { zone: zone.into(), ipv4: v4.map(Into::into), ipv6: v6.map(Into::into) }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn the_kept_addresses_must_be_the_ones_the_vm_has_in_its_zones() {
        let app = nic("app", Some("10.15.1.50"), Some("2001:db8:15:1::32"));
        // The pod network's and link-local addresses are not pdc's.
        let reported = s(&["10.15.1.50", "2001:db8:15:1::32", "10.244.0.7", "fe80::1"]);
        assert_eq!(check(std::slice::from_ref(&app), &reported, &subnets(), &zones()), Ok(()));
        // No guest agent: taken as declared.
        assert_eq!(check(std::slice::from_ref(&app), &[], &subnets(), &zones()), Ok(()));
        let cases: Vec<(Vec<KeptNic>, Vec<String>, &str)> = vec![
            (vec![nic("app", Some("10.15.2.9"), None)], vec![], "outside the department's subnets in zone app (10.15.1.0/24, 2001:db8:15:1::/64)"),
            (vec![nic("dmz", Some("10.15.1.50"), None)], vec![], "outside the department's subnets in zone dmz"),
            (vec![nic("app", Some("10.15.1.51"), None)], s(&["10.15.1.50"]), "does not have 10.15.1.51 (it reports 10.15.1.50)"),
            (vec![nic("app", Some("10.15.1.50"), None)], s(&["10.15.1.50", "2001:db8:15:1::32"]), "uses 2001:db8:15:1::32 in zone app but no NIC keeps it"),
            (vec![app.clone()], s(&["10.15.1.50", "2001:db8:15:1::32", "10.16.1.9"]), "uses 10.16.1.9 in zone dmz"),
            (vec![nic("app", Some("ten"), None)], vec![], "ten is not an IP address"),
        ];
        for (nics, reported, msg) in cases {
            let e = check(&nics, &reported, &subnets(), &zones()).unwrap_err().to_string();
            assert!(e.contains(msg), "{e}");
        }
    }

    proptest! {
        /// Keeping exactly the VM's addresses in the department's subnets always
        /// fits; leaving any one of them out, or keeping one it lacks, never does.
        #[test]
        fn exactly_the_vms_addresses_fit(hosts in proptest::collection::btree_set(2u32..250, 1..6), drop in any::<prop::sample::Index>(), extra in 2u32..250) {
            let addrs: Vec<String> = hosts.iter().map(|h| format!("10.15.1.{h}")).collect();
            let nics: Vec<KeptNic> = addrs.iter().map(|a| nic("app", Some(a), None)).collect();
            let mut reported = addrs.clone();
            reported.push("10.244.3.3".into());
            prop_assert_eq!(check(&nics, &reported, &subnets(), &zones()), Ok(()));
            let i = drop.index(nics.len());
            let mut fewer = nics.clone();
            fewer.remove(i);
            prop_assert!(check(&fewer, &reported, &subnets(), &zones()).is_err());
            if !hosts.contains(&extra) {
                let mut more = nics.clone();
                more.push(nic("app", Some(&format!("10.15.1.{extra}")), None));
                let not_on_vm = matches!(check(&more, &reported, &subnets(), &zones()), Err(Misfit::NotOnTheVm { .. }));
                prop_assert!(not_on_vm);
            }
        }
    }
}
