//! Addresses as numbers: each family maps into `u128` (IPv4 as its 32-bit value), so one interval
//! structure serves both, and the `.0`/`.255` rule becomes arithmetic instead of a scan.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::types::Family;

/// An address as `(family, number)`. Ordering is numeric within a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Addr {
    pub family: Family,
    pub value: u128,
}

impl Addr {
    pub fn from_ip(ip: IpAddr) -> Addr {
        match ip {
            IpAddr::V4(v4) => Addr {
                family: Family::V4,
                value: u128::from(u32::from(v4)),
            },
            IpAddr::V6(v6) => Addr {
                family: Family::V6,
                value: u128::from(v6),
            },
        }
    }

    pub fn to_ip(self) -> IpAddr {
        match self.family {
            // A V4 `Addr` is only ever built from a 32-bit value, so the truncation is exact.
            Family::V4 => IpAddr::V4(Ipv4Addr::from(self.value as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(self.value)),
        }
    }
}

/// Whether an address ends in `.0` or `.255`, which some old firmware mistakes for a network or
/// broadcast address. Only IPv4 addresses can be buggy.
pub(crate) fn is_buggy(family: Family, value: u128) -> bool {
    family == Family::V4 && matches!(value & 0xff, 0 | 0xff)
}

/// The first non-buggy IPv4 value at or after `value` (which may exceed `u32::MAX` at the very
/// top of the space; callers compare against their interval's end).
pub(crate) fn skip_buggy(value: u128) -> u128 {
    match value & 0xff {
        0 => value + 1,
        0xff => value + 2,
        _ => value,
    }
}

/// How many buggy IPv4 values lie in `[start, end]`, by counting whole /24s: each holds exactly
/// two (`.0` and `.255`).
pub(crate) fn buggy_count(start: u128, end: u128) -> u128 {
    // Buggy values in [0, n]: two per completed /24 below n's /24, plus n's own .0, plus .255
    // when n is that.
    fn upto(n: u128) -> u128 {
        (n >> 8) * 2 + 1 + u128::from(n & 0xff == 0xff)
    }
    if start > end {
        return 0;
    }
    let below = if start == 0 { 0 } else { upto(start - 1) };
    upto(end) - below
}

/// Addresses in `[start, end]` a pool can hand out.
pub(crate) fn usable_count(family: Family, start: u128, end: u128, avoid_buggy: bool) -> u128 {
    let all = end - start + 1;
    if avoid_buggy && family == Family::V4 {
        all - buggy_count(start, end)
    } else {
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_families() {
        for ip in [
            "192.0.2.7",
            "0.0.0.0",
            "255.255.255.255",
            "2001:db8::1",
            "::",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(Addr::from_ip(ip).to_ip(), ip);
        }
        assert!(
            Addr::from_ip("255.255.255.255".parse().unwrap())
                < Addr::from_ip("::".parse().unwrap()),
            "all of IPv4 sorts before IPv6"
        );
    }

    #[test]
    fn buggy_count_matches_enumeration() {
        for (start, end) in [
            (0u128, 0u128),
            (0, 255),
            (1, 254),
            (255, 256),
            (250, 1030),
            (3, 3),
        ] {
            let counted = (start..=end).filter(|v| is_buggy(Family::V4, *v)).count() as u128;
            assert_eq!(buggy_count(start, end), counted, "[{start}, {end}]");
        }
        // A /8 without enumerating: 65536 /24s, two buggy addresses each.
        assert_eq!(buggy_count(10 << 24, (11 << 24) - 1), 131_072);
        assert_eq!(
            usable_count(Family::V4, 10 << 24, (11 << 24) - 1, true),
            16_646_144
        );
        assert_eq!(
            usable_count(Family::V6, 0, 255, true),
            256,
            "IPv6 is never buggy"
        );
    }

    #[test]
    fn skip_buggy_lands_on_the_next_usable_address() {
        assert_eq!(skip_buggy(0x0a00_0000), 0x0a00_0001);
        assert_eq!(skip_buggy(0x0a00_00ff), 0x0a00_0101);
        assert_eq!(skip_buggy(0x0a00_0042), 0x0a00_0042);
    }
}
