//! The free addresses of one configured range, kept as disjoint inclusive intervals in a
//! `BTreeMap` (start → end). Taking the lowest, taking a given address and giving one back each
//! touch at most two intervals, so they are O(log n) in the number of intervals whatever the
//! range's size: a /8 or a /64 costs what a /30 does.
//!
//! `avoid-buggy-ips` is handled lazily. The set starts as the whole range, buggy addresses
//! included, and [`FreeSet::lowest`] moves the first interval's start past a `.0`/`.255` (or drops
//! an interval holding nothing else) the first time it sees one there. A buggy address is never
//! taken by anyone, so carving it out is permanent, and each interval's start is carved at most
//! once per interval created; intervals are created one per take or give-back, so the carving is
//! O(log n) amortised and nothing ever enumerates the range.

use std::collections::BTreeMap;

use super::addr::skip_buggy;

#[derive(Debug, Clone)]
pub(crate) struct FreeSet {
    intervals: BTreeMap<u128, u128>,
    avoid_buggy: bool,
}

impl FreeSet {
    /// All of `[start, end]` free. `avoid_buggy` must only be set for IPv4 ranges.
    pub fn new(start: u128, end: u128, avoid_buggy: bool) -> FreeSet {
        let mut intervals = BTreeMap::new();
        intervals.insert(start, end);
        FreeSet {
            intervals,
            avoid_buggy,
        }
    }

    /// The lowest free (and, when avoiding buggy IPs, usable) address, without taking it.
    pub fn lowest(&mut self) -> Option<u128> {
        loop {
            let (&start, &end) = self.intervals.first_key_value()?;
            if !self.avoid_buggy {
                return Some(start);
            }
            let usable = skip_buggy(start);
            if usable == start {
                return Some(start);
            }
            // Carve the buggy head off for good (see the module comment for why it is safe).
            self.intervals.remove(&start);
            if usable <= end {
                self.intervals.insert(usable, end);
                return Some(usable);
            }
        }
    }

    /// Whether `value` is free.
    pub fn contains(&self, value: u128) -> bool {
        self.interval_holding(value).is_some()
    }

    fn interval_holding(&self, value: u128) -> Option<(u128, u128)> {
        let (&start, &end) = self.intervals.range(..=value).next_back()?;
        (value <= end).then_some((start, end))
    }

    /// Marks `value` as used; false when it was not free.
    pub fn take(&mut self, value: u128) -> bool {
        let Some((start, end)) = self.interval_holding(value) else {
            return false;
        };
        self.intervals.remove(&start);
        if start < value {
            self.intervals.insert(start, value - 1);
        }
        if value < end {
            self.intervals.insert(value + 1, end);
        }
        true
    }

    /// Marks `value` as free again, merging with adjacent free intervals. `value` must be inside
    /// the range and not free.
    pub fn put(&mut self, value: u128) {
        debug_assert!(!self.contains(value), "{value} given back twice");
        let mut start = value;
        let mut end = value;
        if let Some((&left_start, &left_end)) = self.intervals.range(..value).next_back()
            && left_end.checked_add(1) == Some(value)
        {
            self.intervals.remove(&left_start);
            start = left_start;
        }
        if let Some(right_start) = value.checked_add(1)
            && let Some(right_end) = self.intervals.remove(&right_start)
        {
            end = right_end;
        }
        self.intervals.insert(start, end);
    }

    #[cfg(test)]
    pub fn interval_count(&self) -> usize {
        self.intervals.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_lowest_and_merges_on_give_back() {
        let mut set = FreeSet::new(10, 20, false);
        assert_eq!(set.lowest(), Some(10));
        assert!(set.take(10));
        assert!(!set.take(10), "an address is taken once");
        assert!(set.take(15));
        assert_eq!(set.interval_count(), 2);
        assert_eq!(set.lowest(), Some(11));
        set.put(10);
        set.put(15);
        assert_eq!(
            set.interval_count(),
            1,
            "give-backs merge into one interval"
        );
        assert_eq!(set.lowest(), Some(10));
        assert!(!set.take(21), "outside the range");
    }

    #[test]
    fn exhausts_and_handles_the_top_of_the_space() {
        let mut set = FreeSet::new(u128::MAX - 1, u128::MAX, false);
        assert!(set.take(u128::MAX));
        assert!(set.take(u128::MAX - 1));
        assert_eq!(set.lowest(), None);
        set.put(u128::MAX);
        assert_eq!(set.lowest(), Some(u128::MAX));
    }

    #[test]
    fn skips_buggy_addresses_lazily() {
        // 10.0.0.254 - 10.0.2.0: usable are .254 of the first /24, .1-.254 of the next.
        let start = 0x0a00_00fe;
        let mut set = FreeSet::new(start, 0x0a00_0200, true);
        assert_eq!(set.lowest(), Some(start));
        assert!(set.take(start));
        assert_eq!(
            set.lowest(),
            Some(0x0a00_0101),
            "10.0.0.255 and 10.0.1.0 skipped"
        );
        for v in 0x0a00_0101..=0x0a00_01fe {
            assert_eq!(set.lowest(), Some(v));
            assert!(set.take(v));
        }
        assert_eq!(
            set.lowest(),
            None,
            "only 10.0.1.255 and 10.0.2.0 remain, both buggy"
        );
        // Giving back an address next to carved ones still works.
        set.put(0x0a00_01fe);
        assert_eq!(set.lowest(), Some(0x0a00_01fe));
    }

    #[test]
    fn a_huge_range_costs_intervals_not_addresses() {
        let mut set = FreeSet::new(0, u128::from(u64::MAX), false);
        for v in 0..1000 {
            assert!(set.take(v * 2));
        }
        assert_eq!(set.lowest(), Some(1));
        assert_eq!(set.interval_count(), 1000, "999 single gaps and the tail");
    }
}
