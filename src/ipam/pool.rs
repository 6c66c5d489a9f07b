//! The configured pools: their ranges' free sets, an index from address to (pool, range), and
//! the per-pool counters behind `pool_stats`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use super::addr::{Addr, is_buggy, usable_count};
use super::error::{AllocError, PoolSpecError};
use super::rangeset::FreeSet;
use super::types::{Family, PoolSpec, ServiceAllocation};

#[derive(Debug, Clone)]
pub(crate) struct Range {
    pub family: Family,
    pub start: u128,
    pub end: u128,
    pub free: FreeSet,
}

#[derive(Debug, Clone)]
pub(crate) struct Pool {
    pub name: String,
    pub auto_assign: bool,
    pub avoid_buggy: bool,
    /// In config order: addresses are handed out range by range in this order.
    pub ranges: Vec<Range>,
    pub total: u128,
    pub in_use: u128,
    /// The IPv6 share of `total` and `in_use` (the rest is IPv4).
    pub v6_total: u128,
    pub v6_in_use: u128,
    pub allocation: Option<Pinning>,
}

/// A pool's `serviceAllocation` with its namespace selectors resolved against the Namespaces
/// the allocator was told about.
#[derive(Debug, Clone)]
pub(crate) struct Pinning {
    pub spec: ServiceAllocation,
    /// `namespaces` plus every known namespace matching a `namespaceSelectors` entry.
    pub resolved: BTreeSet<String>,
}

impl Pool {
    pub fn has_family(&self, family: Family) -> bool {
        self.ranges.iter().any(|r| r.family == family)
    }
}

/// Where an address lives: pool index and range index within the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub pool: usize,
    pub range: usize,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct PoolTable {
    /// In the order given to `set_pools` (ConfigMap order): auto-assignment tries them in turn.
    pub pools: Vec<Pool>,
    by_name: HashMap<String, usize>,
    /// Range start → (range end, slot). Ranges never overlap (checked on build), so the range
    /// holding an address is the one with the greatest start not above it.
    index: BTreeMap<Addr, (u128, Slot)>,
    /// Pools with a `serviceAllocation` and auto-assign on, in the order they are offered to
    /// the Services they are pinned to: priority > 0 ascending, then the rest; ties by name.
    pub pinned: Vec<usize>,
    /// Auto-assign pools without a `serviceAllocation`, in the order given to `set_pools`: the
    /// fallback every Service may use.
    pub fallback: Vec<usize>,
}

impl PoolTable {
    /// Builds the table with every address free, or says which pool/range is wrong.
    pub fn build(specs: &[PoolSpec]) -> Result<PoolTable, PoolSpecError> {
        let mut table = PoolTable::default();
        for spec in specs {
            if spec.name.is_empty() {
                return Err(PoolSpecError::EmptyName);
            }
            if table.by_name.contains_key(&spec.name) {
                return Err(PoolSpecError::DuplicatePool {
                    pool: spec.name.clone(),
                });
            }
            if spec.ranges.is_empty() {
                return Err(PoolSpecError::NoRanges {
                    pool: spec.name.clone(),
                });
            }
            let pool_idx = table.pools.len();
            let mut pool = Pool {
                name: spec.name.clone(),
                auto_assign: spec.auto_assign,
                avoid_buggy: spec.avoid_buggy_ips,
                ranges: Vec::with_capacity(spec.ranges.len()),
                total: 0,
                in_use: 0,
                v6_total: 0,
                v6_in_use: 0,
                allocation: spec.allocation.clone().map(|spec| Pinning {
                    resolved: spec.namespaces.clone(),
                    spec,
                }),
            };
            for &(start_ip, end_ip) in &spec.ranges {
                let (start, end) = (Addr::from_ip(start_ip), Addr::from_ip(end_ip));
                if start.family != end.family {
                    return Err(PoolSpecError::MixedFamilies {
                        pool: spec.name.clone(),
                        start: start_ip,
                        end: end_ip,
                    });
                }
                if start.value > end.value {
                    return Err(PoolSpecError::StartAfterEnd {
                        pool: spec.name.clone(),
                        start: start_ip,
                        end: end_ip,
                    });
                }
                let avoid_buggy = spec.avoid_buggy_ips && start.family == Family::V4;
                let usable = usable_count(start.family, start.value, end.value, avoid_buggy);
                pool.total = pool.total.saturating_add(usable);
                if start.family == Family::V6 {
                    pool.v6_total = pool.v6_total.saturating_add(usable);
                }
                let slot = Slot {
                    pool: pool_idx,
                    range: pool.ranges.len(),
                };
                pool.ranges.push(Range {
                    family: start.family,
                    start: start.value,
                    end: end.value,
                    free: FreeSet::new(start.value, end.value, avoid_buggy),
                });
                if let Some((_, other)) = table.index.insert(start, (end.value, slot)) {
                    // Same start: certainly overlapping; report against the earlier one.
                    return Err(table.overlap_error(&pool, slot, other, specs));
                }
            }
            table.by_name.insert(spec.name.clone(), pool_idx);
            table.pools.push(pool);
        }
        table.check_overlaps(specs)?;
        let pools = &table.pools;
        table.fallback = (0..pools.len())
            .filter(|&i| pools[i].auto_assign && pools[i].allocation.is_none())
            .collect();
        let mut pinned: Vec<usize> = (0..pools.len())
            .filter(|&i| pools[i].auto_assign && pools[i].allocation.is_some())
            .collect();
        pinned.sort_by_key(|&i| {
            let priority = pools[i].allocation.as_ref().map_or(0, |a| a.spec.priority);
            // MetalLB: a priority of 0 (unset) comes last; a negative one is treated alike.
            let rank = if priority > 0 { (0, priority) } else { (1, 0) };
            (rank, pools[i].name.as_str())
        });
        table.pinned = pinned;
        Ok(table)
    }

    fn check_overlaps(&self, specs: &[PoolSpec]) -> Result<(), PoolSpecError> {
        let mut previous: Option<(Addr, u128, Slot)> = None;
        for (&start, &(end, slot)) in &self.index {
            if let Some((prev_start, prev_end, prev_slot)) = previous
                && prev_start.family == start.family
                && prev_end >= start.value
            {
                let pool = &self.pools[slot.pool];
                return Err(self.overlap_error(pool, slot, prev_slot, specs));
            }
            previous = Some((start, end, slot));
        }
        Ok(())
    }

    fn overlap_error(
        &self,
        pool: &Pool,
        slot: Slot,
        other: Slot,
        specs: &[PoolSpec],
    ) -> PoolSpecError {
        let show = |s: Slot| {
            let (a, b) = specs[s.pool].ranges[s.range];
            format!("{a}-{b}")
        };
        PoolSpecError::Overlap {
            pool: pool.name.clone(),
            range: show(slot),
            other_pool: specs[other.pool].name.clone(),
            other_range: show(other),
        }
    }

    pub fn pool_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The range holding `addr`, if any pool has it (buggy or not).
    pub fn locate(&self, addr: Addr) -> Option<Slot> {
        let (start, &(end, slot)) = self.index.range(..=addr).next_back()?;
        (start.family == addr.family && addr.value <= end).then_some(slot)
    }

    /// The range that may hand out `ip`: some pool contains it, and it is not a `.0`/`.255` in a
    /// pool avoiding those.
    pub fn admit(&self, ip: IpAddr) -> Result<Slot, AllocError> {
        let addr = Addr::from_ip(ip);
        let slot = self.locate(addr).ok_or(AllocError::NotInAnyPool { ip })?;
        let pool = &self.pools[slot.pool];
        if pool.avoid_buggy && is_buggy(addr.family, addr.value) {
            return Err(AllocError::BuggyIp {
                ip,
                pool: pool.name.clone(),
            });
        }
        Ok(slot)
    }

    /// Marks a free, admitted address as used. False if it was not free.
    pub fn take(&mut self, slot: Slot, value: u128) -> bool {
        let pool = &mut self.pools[slot.pool];
        let taken = pool.ranges[slot.range].free.take(value);
        if taken {
            pool.in_use += 1;
            if pool.ranges[slot.range].family == Family::V6 {
                pool.v6_in_use += 1;
            }
        }
        taken
    }

    /// Returns a used address to its range's free set.
    pub fn put(&mut self, slot: Slot, value: u128) {
        let pool = &mut self.pools[slot.pool];
        pool.ranges[slot.range].free.put(value);
        pool.in_use -= 1;
        if pool.ranges[slot.range].family == Family::V6 {
            pool.v6_in_use -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, ranges: &[(&str, &str)]) -> PoolSpec {
        PoolSpec {
            name: name.into(),
            ranges: ranges
                .iter()
                .map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap()))
                .collect(),
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: None,
        }
    }

    #[test]
    fn rejects_bad_specs_naming_the_pool() {
        let overlap = PoolTable::build(&[
            spec("a", &[("192.0.2.0", "192.0.2.15")]),
            spec("b", &[("192.0.2.10", "192.0.2.20")]),
        ])
        .unwrap_err();
        assert_eq!(
            overlap,
            PoolSpecError::Overlap {
                pool: "b".into(),
                range: "192.0.2.10-192.0.2.20".into(),
                other_pool: "a".into(),
                other_range: "192.0.2.0-192.0.2.15".into(),
            }
        );
        let same_start = PoolTable::build(&[spec(
            "a",
            &[("2001:db8::", "2001:db8::f"), ("2001:db8::", "2001:db8::1")],
        )])
        .unwrap_err();
        assert!(matches!(same_start, PoolSpecError::Overlap { ref pool, .. } if pool == "a"));
        assert!(matches!(
            PoolTable::build(&[spec("a", &[("192.0.2.9", "192.0.2.1")])]),
            Err(PoolSpecError::StartAfterEnd { .. })
        ));
        assert!(matches!(
            PoolTable::build(&[spec("a", &[("192.0.2.1", "2001:db8::1")])]),
            Err(PoolSpecError::MixedFamilies { .. })
        ));
        assert_eq!(
            PoolTable::build(&[spec("a", &[]), spec("a", &[])]).unwrap_err(),
            PoolSpecError::NoRanges { pool: "a".into() }
        );
        assert_eq!(
            PoolTable::build(&[
                spec("a", &[("192.0.2.1", "192.0.2.1")]),
                spec("a", &[("192.0.2.2", "192.0.2.2")])
            ])
            .unwrap_err(),
            PoolSpecError::DuplicatePool { pool: "a".into() }
        );
    }

    #[test]
    fn same_numbers_in_different_families_do_not_overlap() {
        // 0.0.0.1 and ::1 are both the number 1; they must not collide.
        let table = PoolTable::build(&[
            spec("v4", &[("0.0.0.0", "0.0.0.255")]),
            spec("v6", &[("::", "::ff")]),
        ])
        .unwrap();
        assert_eq!(table.admit("::1".parse().unwrap()).unwrap().pool, 1);
        assert_eq!(table.admit("0.0.0.1".parse().unwrap()).unwrap().pool, 0);
    }

    #[test]
    fn admits_only_addresses_inside_ranges() {
        let mut avoid = spec(
            "a",
            &[("192.0.2.0", "192.0.2.255"), ("2001:db8::", "2001:db8::ff")],
        );
        avoid.avoid_buggy_ips = true;
        let table = PoolTable::build(&[avoid]).unwrap();
        assert_eq!(table.pools[0].total, 254 + 256);
        assert!(table.admit("192.0.2.1".parse().unwrap()).is_ok());
        assert!(matches!(
            table.admit("192.0.2.255".parse().unwrap()),
            Err(AllocError::BuggyIp { .. })
        ));
        assert!(table.admit("2001:db8::ff".parse().unwrap()).is_ok());
        assert_eq!(
            table.admit("198.51.100.1".parse().unwrap()),
            Err(AllocError::NotInAnyPool {
                ip: "198.51.100.1".parse().unwrap()
            })
        );
    }
}
