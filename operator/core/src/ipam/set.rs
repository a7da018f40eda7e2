//! A set of `u128` values kept as disjoint, coalesced, inclusive intervals. Holding
//! a million consecutive addresses costs one interval, and the first free value
//! after a point is found in O(log n) without iterating a range.

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Included, Unbounded};

/// Disjoint, non-adjacent inclusive intervals `start → end`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntervalSet {
    map: BTreeMap<u128, u128>,
}

impl IntervalSet {
    pub fn new() -> IntervalSet {
        IntervalSet::default()
    }

    /// Number of intervals (a measure of fragmentation, and of memory).
    pub fn intervals(&self) -> usize {
        self.map.len()
    }

    /// The interval that holds `x`, if any.
    pub fn interval_of(&self, x: u128) -> Option<(u128, u128)> {
        self.map.range(..=x).next_back().filter(|(_, e)| **e >= x).map(|(s, e)| (*s, *e))
    }

    pub fn contains(&self, x: u128) -> bool {
        self.interval_of(x).is_some()
    }

    /// The first held interval that intersects `[lo, hi]`.
    pub fn first_overlap(&self, lo: u128, hi: u128) -> Option<(u128, u128)> {
        if let Some(iv) = self.interval_of(lo) {
            return Some(iv);
        }
        self.map.range((Excluded(lo), Included(hi))).next().map(|(s, e)| (*s, *e))
    }

    /// Add `[lo, hi]`; fails with the held interval it would overlap, changing nothing.
    pub fn insert(&mut self, lo: u128, hi: u128) -> Result<(), (u128, u128)> {
        if lo > hi {
            return Ok(());
        }
        if let Some(held) = self.first_overlap(lo, hi) {
            return Err(held);
        }
        let mut start = lo;
        let mut end = hi;
        // Merge with a left neighbour that ends just before `lo`.
        if let Some(prev) = lo.checked_sub(1)
            && let Some((s, _)) = self.interval_of(prev)
        {
            self.map.remove(&s);
            start = s;
        }
        // Merge with a right neighbour that starts just after `hi`.
        if let Some(next) = hi.checked_add(1)
            && let Some(e) = self.map.remove(&next)
        {
            end = e;
        }
        self.map.insert(start, end);
        Ok(())
    }

    /// Remove `[lo, hi]` from the set; values in it that are not held are ignored.
    pub fn remove(&mut self, lo: u128, hi: u128) {
        if lo > hi {
            return;
        }
        let touched: Vec<(u128, u128)> = {
            let mut v: Vec<(u128, u128)> = self.interval_of(lo).into_iter().collect();
            v.extend(self.map.range((Excluded(lo), Included(hi))).map(|(s, e)| (*s, *e)));
            v
        };
        for (s, e) in touched {
            self.map.remove(&s);
            if s < lo {
                self.map.insert(s, lo - 1);
            }
            if e > hi {
                self.map.insert(hi + 1, e);
            }
        }
    }

    /// The smallest value in `[lo, hi]` that is not held.
    pub fn first_free(&self, lo: u128, hi: u128) -> Option<u128> {
        if lo > hi {
            return None;
        }
        match self.interval_of(lo) {
            None => Some(lo),
            // Intervals are coalesced, so the value after this one is free.
            Some((_, e)) => e.checked_add(1).filter(|n| *n <= hi),
        }
    }

    /// The smallest `size`-aligned block `[b, b + size - 1]` inside `[lo, hi]` that
    /// holds nothing. `size` must be a power of two and `lo` aligned to it.
    pub fn first_free_block(&self, lo: u128, hi: u128, size: u128) -> Option<u128> {
        if size == 0 {
            return None;
        }
        let mask = size - 1;
        let mut b = lo;
        loop {
            let end = b.checked_add(mask)?;
            if end > hi {
                return None;
            }
            match self.first_overlap(b, end) {
                None => return Some(b),
                Some((_, e)) => {
                    // Next aligned block after the held interval.
                    let after = e.checked_add(1)?;
                    b = after.checked_add(mask)? & !mask;
                }
            }
        }
    }

    /// How many values in `[lo, hi]` are held (saturating).
    pub fn count_in(&self, lo: u128, hi: u128) -> u128 {
        let mut n: u128 = 0;
        let start = self.interval_of(lo).map_or(lo, |(s, _)| s);
        for (s, e) in self.map.range((Included(start), Unbounded)) {
            if *s > hi {
                break;
            }
            let a = (*s).max(lo);
            let b = (*e).min(hi);
            if a <= b {
                n = n.saturating_add(b - a).saturating_add(1);
            }
        }
        n
    }

    /// The intervals, in order.
    pub fn iter(&self) -> impl Iterator<Item = (u128, u128)> + '_ {
        self.map.iter().map(|(s, e)| (*s, *e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn coalesces_and_splits() {
        let mut s = IntervalSet::new();
        s.insert(10, 19).unwrap();
        s.insert(20, 29).unwrap();
        s.insert(0, 9).unwrap();
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(0, 29)]);
        assert_eq!(s.insert(5, 40), Err((0, 29)));
        s.remove(10, 12);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(0, 9), (13, 29)]);
        assert_eq!(s.first_free(0, 100), Some(10));
        assert_eq!(s.count_in(0, 100), 27);
        assert_eq!(s.first_free_block(0, 255, 16), Some(32));
        s.insert(u128::MAX - 1, u128::MAX).unwrap();
        assert_eq!(s.first_free(u128::MAX - 1, u128::MAX), None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Take(u16, u8),
        Free(u16, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![(any::<u16>(), 0u8..8).prop_map(|(a, n)| Op::Take(a, n)), (any::<u16>(), 0u8..16).prop_map(|(a, n)| Op::Free(a, n))]
    }

    proptest! {
        /// The interval set agrees with a plain set of values under any sequence of
        /// takes and frees, and stays coalesced.
        #[test]
        fn matches_a_plain_set(ops in proptest::collection::vec(op(), 1..200)) {
            let mut s = IntervalSet::new();
            let mut model = BTreeSet::new();
            for o in ops {
                match o {
                    Op::Take(a, n) => {
                        let (lo, hi) = (u128::from(a), u128::from(a) + u128::from(n));
                        let clash = (lo..=hi).any(|x| model.contains(&x));
                        prop_assert_eq!(s.insert(lo, hi).is_err(), clash);
                        if !clash { model.extend(lo..=hi); }
                    }
                    Op::Free(a, n) => {
                        let (lo, hi) = (u128::from(a), u128::from(a) + u128::from(n));
                        s.remove(lo, hi);
                        for x in lo..=hi { model.remove(&x); }
                    }
                }
            }
            prop_assert_eq!(s.count_in(0, u128::MAX), model.len() as u128);
            let v: Vec<(u128, u128)> = s.iter().collect();
            for w in v.windows(2) {
                prop_assert!(w[0].1 + 1 < w[1].0, "not coalesced: {:?}", w);
            }
            for x in model.iter().take(50) { prop_assert!(s.contains(*x)); }
            let free = s.first_free(0, 70_000).unwrap();
            prop_assert!(!model.contains(&free));
            prop_assert!((0..free).all(|x| model.contains(&x)));
        }

        /// A free block never intersects what is held, and is aligned.
        #[test]
        fn free_blocks_are_free_and_aligned(takes in proptest::collection::vec((0u16..4096, 0u8..40), 0..60), bits in 0u32..8) {
            let mut s = IntervalSet::new();
            for (a, n) in takes { let _ = s.insert(u128::from(a), u128::from(a) + u128::from(n)); }
            let size = 1u128 << bits;
            if let Some(b) = s.first_free_block(0, 8191, size) {
                prop_assert_eq!(b % size, 0);
                prop_assert_eq!(s.count_in(b, b + size - 1), 0);
                // No earlier aligned block is free.
                let mut c = 0;
                while c < b { prop_assert!(s.count_in(c, c + size - 1) > 0); c += size; }
            }
        }
    }
}
