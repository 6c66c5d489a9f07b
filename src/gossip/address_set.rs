//! A set of addresses as gossip carries it (a node's claims: what it answers, what it is about
//! to answer): sorted, IPv4 and IPv6 apart, each address written as its distance from the one
//! before. postcard writes those distances as varints, so addresses handed out next to each
//! other from a pool take a byte or two each, and 10 000 claims fit in a few datagrams.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Sorted, without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddressSet(Vec<IpAddr>);

impl AddressSet {
    pub fn new(addresses: impl IntoIterator<Item = IpAddr>) -> Self {
        let mut all: Vec<IpAddr> = addresses.into_iter().collect();
        all.sort_unstable();
        all.dedup();
        Self(all)
    }

    pub fn iter(&self) -> impl Iterator<Item = &IpAddr> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Drops the highest address; `false` when empty.
    pub fn pop(&mut self) -> bool {
        self.0.pop().is_some()
    }
}

/// The encoded form: the gaps between consecutive addresses of each family (the first from
/// zero).
#[derive(Serialize, Deserialize)]
struct Gaps {
    v4: Vec<u32>,
    v6: Vec<u128>,
}

impl Serialize for AddressSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut gaps = Gaps {
            v4: Vec::new(),
            v6: Vec::new(),
        };
        let (mut last4, mut last6) = (0u32, 0u128);
        // Sorted: every IPv4 address comes before every IPv6 one, each family ascending.
        for ip in &self.0 {
            match ip {
                IpAddr::V4(a) => {
                    let n = u32::from(*a);
                    gaps.v4.push(n - last4);
                    last4 = n;
                }
                IpAddr::V6(a) => {
                    let n = u128::from(*a);
                    gaps.v6.push(n - last6);
                    last6 = n;
                }
            }
        }
        gaps.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for AddressSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let gaps = Gaps::deserialize(deserializer)?;
        let v4 = absolute(gaps.v4.into_iter().map(u128::from), u128::from(u32::MAX))
            .map_err(D::Error::custom)?;
        let v6 = absolute(gaps.v6.into_iter(), u128::MAX).map_err(D::Error::custom)?;
        let out = v4
            .into_iter()
            .map(|n| IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX))))
            .chain(v6.into_iter().map(|n| IpAddr::V6(Ipv6Addr::from(n))))
            .collect();
        Ok(Self(out))
    }
}

/// The addresses (as numbers up to `max`) from their gaps: the first from zero, every later one
/// strictly above the one before.
fn absolute(gaps: impl Iterator<Item = u128>, max: u128) -> Result<Vec<u128>, &'static str> {
    let mut out: Vec<u128> = Vec::new();
    for gap in gaps {
        let n = match out.last() {
            None => gap,
            Some(_) if gap == 0 => return Err("repeated address"),
            Some(l) => l.checked_add(gap).ok_or("address out of range")?,
        };
        if n > max {
            return Err("address out of range");
        }
        out.push(n);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn neighbours_take_a_byte_each() {
        let set = AddressSet::new((0..1000u32).map(|i| {
            IpAddr::V4(Ipv4Addr::from(0xC633_6400 + i * 2)) // 198.51.100.0 on, every other one
        }));
        let bytes = postcard::to_allocvec(&set).unwrap();
        // Two length prefixes, the first address (5 bytes), then a byte per gap.
        assert!(bytes.len() <= 2 + 2 + 5 + 999, "{}", bytes.len());
        assert_eq!(postcard::from_bytes::<AddressSet>(&bytes).unwrap(), set);
    }

    #[test]
    fn fixture_decodes_and_bad_gaps_are_errors() {
        // v4: [192.0.2.1, +2], v6: [2001:db8::1]
        let mut bytes = vec![2, 0x81, 0x84, 0x80, 0x80, 0x0c, 2, 1, 0x81];
        bytes.extend([0x80; 13]);
        bytes.extend([0xee, 0x86, 0x81, 0x40]);
        let set: AddressSet = postcard::from_bytes(&bytes).unwrap();
        let want: Vec<IpAddr> = ["192.0.2.1", "192.0.2.3", "2001:db8::1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(set.iter().copied().collect::<Vec<_>>(), want);
        // A repeated address, and one past 255.255.255.255.
        assert!(postcard::from_bytes::<AddressSet>(&[2, 1, 0, 0]).is_err());
        assert!(
            postcard::from_bytes::<AddressSet>(&[2, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0]).is_err()
        );
    }

    proptest! {
        #[test]
        fn what_is_encoded_decodes_the_same(v4 in proptest::collection::vec(any::<u32>(), 0..50),
                                            v6 in proptest::collection::vec(any::<u128>(), 0..50)) {
            let set = AddressSet::new(
                v4.into_iter().map(|n| IpAddr::V4(n.into()))
                    .chain(v6.into_iter().map(|n| IpAddr::V6(n.into()))),
            );
            let bytes = postcard::to_allocvec(&set).unwrap();
            prop_assert_eq!(postcard::from_bytes::<AddressSet>(&bytes).unwrap(), set);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = postcard::from_bytes::<AddressSet>(&bytes);
        }
    }
}
