//! The address plan: IPv4 and IPv6 as `u128`, interval sets that never iterate a
//! range, prefix carving (site block → zone prefix → department subnet), overlap
//! detection, and the dual-stack pairing rule.

pub mod pairing;
pub mod pool;
pub mod prefix;
pub mod set;

pub use pool::{HostPool, Want};
pub use prefix::{Addr, Family, Prefix};
pub use set::IntervalSet;

/// Why an address-plan operation failed; the message is for the person who asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("invalid address: {0}")]
    InvalidAddress(String),
    #[error("invalid prefix: {0}")]
    InvalidPrefix(String),
    #[error("{0}")]
    OutsideSubnet(String),
    #[error("{0}")]
    Pairing(String),
    #[error("already allocated: {0}")]
    Taken(String),
    #[error("{0}")]
    Exhausted(String),
}

/// The first free aligned `/len` inside `parent`, given the blocks already carved
/// from it (held as intervals). `None` when `parent` is full.
pub fn carve(parent: &Prefix, len: u8, carved: &IntervalSet) -> Result<Option<Prefix>, IpamError> {
    if len < parent.len || len > parent.family.bits() {
        return Err(IpamError::InvalidPrefix(format!("a /{len} cannot be carved from {parent}")));
    }
    let probe = Prefix { family: parent.family, network: 0, len };
    let size = probe.size();
    Ok(carved
        .first_free_block(parent.first(), parent.last(), size)
        .map(|network| Prefix { family: parent.family, network, len }))
}

/// How many `/len` blocks fit in `parent` (saturating).
pub fn blocks_in(parent: &Prefix, len: u8) -> u128 {
    let shift = u32::from(len.saturating_sub(parent.len));
    if shift >= 128 { u128::MAX } else { 1u128 << shift }
}

/// Pairs `(i, j)`, `i < j`, of entries whose prefixes overlap. `O(n log n)` plus the
/// number of pairs reported.
pub fn overlaps<T>(entries: &[(T, Prefix)]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|i| entries.get(*i).map(|(_, p)| (p.family, p.first())));
    let mut out = Vec::new();
    // Sweep: the open blocks whose end reaches the current start.
    let mut open: Vec<usize> = Vec::new();
    for i in order {
        let Some((_, p)) = entries.get(i) else { continue };
        open.retain(|j| entries.get(*j).is_some_and(|(_, q)| q.family == p.family && q.last() >= p.first()));
        for j in &open {
            out.push(((*j).min(i), (*j).max(i)));
        }
        open.push(i);
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn carves_in_order_and_reports_full() {
        let zone = Prefix::parse("10.20.0.0/24").unwrap();
        let mut held = IntervalSet::new();
        let mut got = Vec::new();
        while let Some(p) = carve(&zone, 26, &held).unwrap() {
            held.insert(p.first(), p.last()).unwrap();
            got.push(p.to_string());
        }
        assert_eq!(got, vec!["10.20.0.0/26", "10.20.0.64/26", "10.20.0.128/26", "10.20.0.192/26"]);
        assert_eq!(blocks_in(&zone, 26), 4);
        let v6 = Prefix::parse("2001:db8:20::/48").unwrap();
        assert_eq!(blocks_in(&v6, 64), 65536);
        assert_eq!(carve(&v6, 64, &IntervalSet::new()).unwrap().unwrap().to_string(), "2001:db8:20::/64");
        assert!(carve(&v6, 40, &IntervalSet::new()).is_err());
    }

    #[test]
    fn finds_overlaps_across_families_only_within_one() {
        let e = vec![
            ("dmz@daklak", Prefix::parse("10.20.0.0/22").unwrap()),
            ("app@daklak", Prefix::parse("10.20.4.0/22").unwrap()),
            ("data@daklak", Prefix::parse("10.20.6.0/24").unwrap()),
            ("dmz-v6", Prefix::parse("2001:db8::/48").unwrap()),
            ("app-v6", Prefix::parse("2001:db8:1::/48").unwrap()),
        ];
        assert_eq!(overlaps(&e), vec![(1, 2)]);
    }

    fn v4_prefix() -> impl Strategy<Value = Prefix> {
        (any::<u16>(), 16u8..=28).prop_map(|(hi, len)| {
            let mask = Prefix { family: Family::V4, network: 0, len }.host_mask();
            Prefix { family: Family::V4, network: (0x0a00_0000u128 | (u128::from(hi) << 8)) & !mask, len }
        })
    }

    proptest! {
        /// The sweep finds exactly the overlapping pairs a quadratic check finds.
        #[test]
        fn overlap_sweep_is_exact(ps in proptest::collection::vec(v4_prefix(), 0..40)) {
            let e: Vec<((), Prefix)> = ps.iter().map(|p| ((), *p)).collect();
            let mut want = Vec::new();
            for i in 0..ps.len() { for j in i + 1..ps.len() { if ps[i].overlaps(&ps[j]) { want.push((i, j)); } } }
            prop_assert_eq!(overlaps(&e), want);
        }

        /// Carving never overlaps what is carved and stays inside the parent.
        #[test]
        fn carving_never_overlaps(lens in proptest::collection::vec(20u8..=28, 1..60)) {
            let zone = Prefix::parse("10.20.0.0/18").unwrap();
            let mut held = IntervalSet::new();
            let mut got: Vec<Prefix> = Vec::new();
            for len in lens {
                if let Some(p) = carve(&zone, len, &held).unwrap() {
                    prop_assert!(zone.covers(&p));
                    prop_assert!(got.iter().all(|q| !q.overlaps(&p)), "{} overlaps", p);
                    held.insert(p.first(), p.last()).unwrap();
                    got.push(p);
                }
            }
        }
    }
}
