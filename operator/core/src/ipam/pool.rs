//! Allocation of host numbers in one department subnet pair (an IPv4 subnet and an
//! IPv6 subnet of one zone at one site), following the pairing rule.

use super::pairing::{host_of_interface_id, interface_id, max_host_for_bits};
use super::prefix::{Addr, Family, Prefix};
use super::set::IntervalSet;
use super::IpamError;

/// Which addresses a claim wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Want {
    DualStack,
    V4Only,
    V6Only,
}

impl Want {
    pub fn families(self) -> &'static [Family] {
        match self {
            Want::DualStack => &[Family::V4, Family::V6],
            Want::V4Only => &[Family::V4],
            Want::V6Only => &[Family::V6],
        }
    }
}

/// The host numbers held in one subnet pair. Host 0 is the network, host 1 the
/// gateway; hosts `1..=reserved` are never handed out; in IPv4 the broadcast
/// address is not either.
#[derive(Clone, Debug)]
pub struct HostPool {
    pub v4: Option<Prefix>,
    pub v6: Option<Prefix>,
    pub reserved: u128,
    held_v4: IntervalSet,
    held_v6: IntervalSet,
}

impl HostPool {
    /// A pool over the given subnets. `reserved` ≥ 1 (the gateway).
    pub fn new(v4: Option<Prefix>, v6: Option<Prefix>, reserved: u128) -> Result<HostPool, IpamError> {
        if let Some(p) = v4
            && (p.family != Family::V4 || p.len > 30)
        {
            return Err(IpamError::InvalidPrefix(format!("{p}: a department IPv4 subnet must be IPv4 and /30 or larger")));
        }
        if let Some(p) = v6
            && (p.family != Family::V6 || p.len > 120)
        {
            return Err(IpamError::InvalidPrefix(format!("{p}: a department IPv6 subnet must be IPv6 and /120 or larger")));
        }
        Ok(HostPool { v4, v6, reserved: reserved.max(1), held_v4: IntervalSet::new(), held_v6: IntervalSet::new() })
    }

    /// A pool with no subnets yet: holds can be recorded before the subnets are known.
    pub fn empty() -> HostPool {
        HostPool { v4: None, v6: None, reserved: 1, held_v4: IntervalSet::new(), held_v6: IntervalSet::new() }
    }

    /// Host numbers a family can hand out, inclusive.
    pub fn range(&self, family: Family) -> Option<(u128, u128)> {
        let lo = self.reserved + 1;
        let hi = match family {
            Family::V4 => self.v4?.size().checked_sub(2)?,
            Family::V6 => max_host_for_bits(self.v6?.host_bits()),
        };
        (lo <= hi).then_some((lo, hi))
    }

    fn held(&self, family: Family) -> &IntervalSet {
        match family {
            Family::V4 => &self.held_v4,
            Family::V6 => &self.held_v6,
        }
    }

    fn held_mut(&mut self, family: Family) -> &mut IntervalSet {
        match family {
            Family::V4 => &mut self.held_v4,
            Family::V6 => &mut self.held_v6,
        }
    }

    /// The address of host `h` in a family.
    pub fn address(&self, family: Family, h: u128) -> Option<Addr> {
        match family {
            Family::V4 => self.v4?.nth(h),
            Family::V6 => self.v6?.nth(interface_id(h)?),
        }
    }

    /// The gateway (host 1) of a family.
    pub fn gateway(&self, family: Family) -> Option<Addr> {
        self.address(family, 1)
    }

    /// The host number of an address in this pair, or why it cannot be one.
    pub fn host_of(&self, a: &Addr) -> Result<u128, IpamError> {
        let subnet = match a.family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
        .ok_or_else(|| IpamError::OutsideSubnet(format!("{a}: this subnet pair has no {} subnet", a.family)))?;
        if !subnet.contains(a) {
            return Err(IpamError::OutsideSubnet(format!("{a} is outside the subnet {subnet}")));
        }
        let offset = a.value - subnet.network;
        let h = match a.family {
            Family::V4 => offset,
            Family::V6 => host_of_interface_id(offset).ok_or_else(|| {
                IpamError::Pairing(format!(
                    "{a} does not follow the pairing rule (the interface identifier must be a host number in decimal digits, e.g. {})",
                    self.address(Family::V6, self.reserved + 1).map_or_else(String::new, |x| x.to_string())
                ))
            })?,
        };
        let (lo, hi) = self.range(a.family).ok_or_else(|| IpamError::Exhausted(format!("{subnet} has no usable hosts")))?;
        if h < lo || h > hi {
            return Err(IpamError::OutsideSubnet(format!(
                "{a} is host {h} of {subnet}; hosts {}..{} are reserved (network, gateway) and usable hosts are {lo}..{hi}",
                0, self.reserved
            )));
        }
        Ok(h)
    }

    /// Record host `h` as held in `families` (state read back from the API). Fails,
    /// changing nothing, when one of them is already held.
    pub fn hold(&mut self, h: u128, families: &[Family]) -> Result<(), IpamError> {
        for f in families {
            if self.held(*f).contains(h) {
                return Err(IpamError::Taken(format!("{} host {h}", f.label())));
            }
        }
        for f in families {
            let _ = self.held_mut(*f).insert(h, h);
        }
        Ok(())
    }

    /// Free host `h` in `families`.
    pub fn release(&mut self, h: u128, families: &[Family]) {
        for f in families {
            self.held_mut(*f).remove(h, h);
        }
    }

    pub fn is_held(&self, h: u128, family: Family) -> bool {
        self.held(family).contains(h)
    }

    /// The lowest host number free in every family `want` needs.
    pub fn next_free(&self, want: Want) -> Result<u128, IpamError> {
        let fams = want.families();
        let mut lo = 0u128;
        let mut hi = u128::MAX;
        for f in fams {
            let (l, h) = self.range(*f).ok_or_else(|| IpamError::Exhausted(format!("no {} subnet to allocate from", f.label())))?;
            lo = lo.max(l);
            hi = hi.min(h);
        }
        let mut h = lo;
        loop {
            let mut moved = false;
            for f in fams {
                let next = self.held(*f).first_free(h, hi).ok_or_else(|| self.exhausted(want))?;
                if next != h {
                    h = next;
                    moved = true;
                }
            }
            if !moved {
                return Ok(h);
            }
        }
    }

    /// Why no host is free in every family `want` needs: a family with no free host
    /// in its own range is full; when each has room but never at the same host
    /// number (the pairing rule gives a dual-stack claim one host number in both,
    /// within the range both subnets have), the message says so and what would fit.
    fn exhausted(&self, want: Want) -> IpamError {
        let describe = |f: Family| {
            let subnet = match f {
                Family::V4 => self.v4,
                Family::V6 => self.v6,
            };
            let (allocated, total) = self.usage(f);
            (subnet.map_or_else(|| "-".to_string(), |p| p.to_string()), allocated, total)
        };
        let full = |f: Family| self.range(f).is_none_or(|(l, h)| self.held(f).first_free(l, h).is_none());
        if let Some(f) = want.families().iter().find(|f| full(**f)) {
            let (subnet, allocated, total) = describe(*f);
            return IpamError::Exhausted(format!("{} subnet {subnet} is full: {allocated} of {total} usable addresses allocated", f.label()));
        }
        let (s4, a4, t4) = describe(Family::V4);
        let (s6, a6, _) = describe(Family::V6);
        IpamError::Exhausted(format!(
            "no host number is free in both IPv4 subnet {s4} ({a4} of {t4} usable addresses allocated) and IPv6 subnet {s6} ({a6} allocated): \
             a dual-stack claim takes the same host number in both, and the free IPv4 hosts are taken in IPv6 or the other way round; \
             claim one family only, or release addresses"
        ))
    }

    /// Allocate the lowest free host for `want`.
    pub fn allocate(&mut self, want: Want) -> Result<u128, IpamError> {
        let h = self.next_free(want)?;
        self.hold(h, want.families())?;
        Ok(h)
    }

    /// Allocated and usable addresses of a family (saturating).
    pub fn usage(&self, f: Family) -> (u128, u128) {
        match self.range(f) {
            Some((lo, hi)) => (self.held(f).count_in(lo, hi), (hi - lo).saturating_add(1)),
            None => (0, 0),
        }
    }

    /// Intervals held (both families): the memory the pool needs grows with this.
    pub fn intervals(&self) -> usize {
        self.held_v4.intervals() + self.held_v6.intervals()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn pool() -> HostPool {
        HostPool::new(Some(Prefix::parse("10.20.1.64/26").unwrap()), Some(Prefix::parse("2001:db8:20:1::/64").unwrap()), 3).unwrap()
    }

    #[test]
    fn pairs_and_reserves() {
        let mut p = pool();
        assert_eq!(p.gateway(Family::V4).unwrap().to_string(), "10.20.1.65");
        assert_eq!(p.gateway(Family::V6).unwrap().to_string(), "2001:db8:20:1::1");
        let h = p.allocate(Want::DualStack).unwrap();
        assert_eq!(h, 4);
        assert_eq!(p.address(Family::V4, 26).unwrap().to_string(), "10.20.1.90");
        assert_eq!(p.address(Family::V6, 26).unwrap().to_string(), "2001:db8:20:1::26");
        assert_eq!(p.host_of(&Addr::parse("2001:db8:20:1::26").unwrap()).unwrap(), 26);
        assert!(p.host_of(&Addr::parse("2001:db8:20:1::1a").unwrap()).unwrap_err().to_string().contains("pairing rule"));
        assert!(p.host_of(&Addr::parse("10.20.1.65").unwrap()).unwrap_err().to_string().contains("reserved"));
        assert!(p.host_of(&Addr::parse("10.20.2.1").unwrap()).unwrap_err().to_string().contains("outside"));
        assert!(p.host_of(&Addr::parse("10.20.1.127").unwrap()).is_err(), "broadcast");
        // 64 - network - broadcast - 3 reserved = 59 usable; one taken.
        assert_eq!(p.usage(Family::V4), (1, 59));
        for _ in 0..58 {
            p.allocate(Want::DualStack).unwrap();
        }
        let e = p.allocate(Want::DualStack).unwrap_err().to_string();
        assert!(e.contains("full") && e.contains("59 of 59"), "{e}");
        // IPv6 still has room.
        assert_eq!(p.allocate(Want::V6Only).unwrap(), 63);
    }

    #[test]
    fn a_dual_stack_claim_that_finds_no_common_host_says_so() {
        let mut p = HostPool::new(Some(Prefix::parse("10.15.64.0/28").unwrap()), Some(Prefix::parse("2001:db8:1503::/64").unwrap()), 3).unwrap();
        // Hosts 4..14: IPv4 5 and 7 taken elsewhere, IPv6 12.
        p.hold(5, &[Family::V4]).unwrap();
        p.hold(7, &[Family::V4]).unwrap();
        p.hold(12, &[Family::V6]).unwrap();
        let got: Vec<u128> = (0..8).map(|_| p.allocate(Want::DualStack).unwrap()).collect();
        assert_eq!(got, [4, 6, 8, 9, 10, 11, 13, 14]);
        let e = p.allocate(Want::DualStack).unwrap_err().to_string();
        assert!(e.contains("no host number is free in both IPv4 subnet 10.15.64.0/28 (10 of 11") && e.contains("IPv6 subnet 2001:db8:1503::/64 (9 allocated)"), "{e}");
        assert_eq!(p.allocate(Want::V6Only).unwrap(), 5);
        p.hold(12, &[Family::V4]).unwrap();
        let e = p.allocate(Want::DualStack).unwrap_err().to_string();
        assert!(e.contains("IPv4 subnet 10.15.64.0/28 is full: 11 of 11"), "{e}");
    }

    #[test]
    fn a_small_ipv6_subnet_is_the_one_called_full() {
        // A /120 holds host numbers up to 99 (decimal digits in the last byte): a /22's
        // IPv4 hosts beyond it stay free, and the IPv6 subnet is what is full.
        let mut p = HostPool::new(Some(Prefix::parse("10.20.0.0/22").unwrap()), Some(Prefix::parse("2001:db8:20::/120").unwrap()), 1).unwrap();
        let (_, hi) = p.range(Family::V6).unwrap();
        for _ in 2..=hi {
            p.allocate(Want::DualStack).unwrap();
        }
        let e = p.allocate(Want::DualStack).unwrap_err().to_string();
        assert!(e.contains("IPv6 subnet 2001:db8:20::/120 is full"), "{e}");
        assert!(p.allocate(Want::V4Only).is_ok());
    }

    #[test]
    fn v6_only_holds_do_not_block_v4_only() {
        let mut p = pool();
        p.hold(4, &[Family::V6]).unwrap();
        assert_eq!(p.allocate(Want::DualStack).unwrap(), 5);
        assert_eq!(p.allocate(Want::V4Only).unwrap(), 4);
    }

    proptest! {
        /// Never hands out a held host, never a reserved or out-of-range one; and
        /// releasing then allocating again returns to the same state.
        #[test]
        fn never_returns_a_held_address(ops in proptest::collection::vec((0u8..3, any::<bool>(), 0u8..64), 1..300)) {
            let mut p = pool();
            let mut v4 = BTreeSet::new();
            let mut v6 = BTreeSet::new();
            for (w, free, pick) in ops {
                let want = [Want::DualStack, Want::V4Only, Want::V6Only][usize::from(w)];
                if free {
                    let h = u128::from(pick);
                    let fams = want.families();
                    if fams.iter().all(|f| if *f == Family::V4 { v4.contains(&h) } else { v6.contains(&h) }) {
                        let before = (v4.clone(), v6.clone());
                        p.release(h, fams);
                        for f in fams { if *f == Family::V4 { v4.remove(&h); } else { v6.remove(&h); } }
                        // Free then allocate the same: back where we were.
                        let again = p.next_free(want).unwrap();
                        prop_assert!(again <= h);
                        if again == h {
                            p.hold(h, fams).unwrap();
                            for f in fams { if *f == Family::V4 { v4.insert(h); } else { v6.insert(h); } }
                            prop_assert_eq!((v4.clone(), v6.clone()), before);
                        }
                    }
                    continue;
                }
                match p.allocate(want) {
                    Ok(h) => {
                        prop_assert!(h > 3);
                        for f in want.families() {
                            let set = if *f == Family::V4 { &mut v4 } else { &mut v6 };
                            prop_assert!(set.insert(h), "host {} handed out twice in {:?}", h, f);
                        }
                        if want != Want::V6Only { prop_assert!(h <= 62); }
                        prop_assert!(p.address(Family::V6, h).is_some());
                    }
                    Err(e) => prop_assert!(matches!(e, IpamError::Exhausted(_)), "{e}"),
                }
                prop_assert_eq!(p.usage(Family::V4).0, v4.len() as u128);
            }
        }
    }
}
