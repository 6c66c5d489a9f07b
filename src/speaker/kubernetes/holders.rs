//! Which offered Services hold each address: the index a pass follows to elect the Services
//! sharing an address together.
//!
//! A sorted list of (address, Service) pairs: an address's holders sit next to each other, in
//! key order. Nearly every address has one holder, so a pair per holder is all it stores; a
//! hash map of 10 000 addresses would reserve room for half as many again, each with an inline
//! list. Changes are single inserts and removals (one Service's offer changed); a pass that
//! decides everything builds it again in one sort.

use std::net::IpAddr;
use std::sync::Arc;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Holders(Vec<(IpAddr, Arc<str>)>);

impl Holders {
    /// The index of these (address, Service) pairs, in any order.
    pub fn from_pairs(mut pairs: Vec<(IpAddr, Arc<str>)>) -> Self {
        pairs.sort_unstable();
        pairs.dedup();
        pairs.shrink_to_fit();
        Self(pairs)
    }

    fn find(&self, ip: IpAddr, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(i, k)| (*i, &**k).cmp(&(ip, key)))
    }

    /// Records `key` among the holders of `ip` (once).
    pub fn hold(&mut self, ip: IpAddr, key: &Arc<str>) {
        if let Err(at) = self.find(ip, key) {
            if self.0.len() == self.0.capacity() {
                // Grows by an eighth, not double: an insert moves the tail anyway, and the
                // list is most of what it holds.
                self.0.reserve_exact(self.0.len() / 8 + 16);
            }
            self.0.insert(at, (ip, key.clone()));
        }
    }

    /// Takes `key` out of the holders of `ip`.
    pub fn release(&mut self, ip: IpAddr, key: &str) {
        if let Ok(at) = self.find(ip, key) {
            self.0.remove(at);
        }
    }

    /// The Services holding `ip`, in key order.
    pub fn of(&self, ip: IpAddr) -> impl Iterator<Item = &Arc<str>> {
        let start = self.0.partition_point(|(i, _)| *i < ip);
        self.0[start..]
            .iter()
            .take_while(move |(i, _)| *i == ip)
            .map(|(_, k)| k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn of(h: &Holders, at: &str) -> Vec<String> {
        h.of(ip(at)).map(|k| k.to_string()).collect()
    }

    /// Holders come back per address, in key order, each once; releasing one leaves the
    /// others; an address nobody holds has no holder, whatever its neighbours hold.
    #[test]
    fn an_address_lists_exactly_its_holders() {
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) =
            ("shop/a".into(), "shop/b".into(), "web/c".into());
        let mut h = Holders::from_pairs(vec![
            (ip("192.0.2.7"), c.clone()),
            (ip("192.0.2.7"), a.clone()),
            (ip("2001:db8::7"), a.clone()),
            (ip("192.0.2.7"), a.clone()),
        ]);
        assert_eq!(of(&h, "192.0.2.7"), ["shop/a", "web/c"]);
        assert_eq!(of(&h, "2001:db8::7"), ["shop/a"]);
        h.hold(ip("192.0.2.7"), &b);
        h.hold(ip("192.0.2.7"), &b);
        assert_eq!(of(&h, "192.0.2.7"), ["shop/a", "shop/b", "web/c"]);
        h.release(ip("192.0.2.7"), "shop/a");
        h.release(ip("192.0.2.7"), "shop/nobody");
        assert_eq!(of(&h, "192.0.2.7"), ["shop/b", "web/c"]);
        assert!(of(&h, "192.0.2.6").is_empty() && of(&h, "192.0.2.8").is_empty());
        h.release(ip("2001:db8::7"), "shop/a");
        assert!(of(&h, "2001:db8::7").is_empty());
        assert_eq!(
            h,
            Holders::from_pairs(vec![(ip("192.0.2.7"), c), (ip("192.0.2.7"), b)])
        );
    }

    /// Grown one insert at a time, the list keeps no more than an eighth of room to spare
    /// (plus a few entries), unlike a doubling `Vec` or a hash map.
    #[test]
    fn growing_keeps_little_room_to_spare() {
        let key: Arc<str> = "shop/a".into();
        let mut h = Holders::default();
        for i in 0..10_000u32 {
            h.hold(
                IpAddr::from(std::net::Ipv6Addr::from(u128::from(i) << 8)),
                &key,
            );
        }
        assert_eq!(h.0.len(), 10_000);
        assert!(
            h.0.capacity() <= 10_000 + 10_000 / 8 + 16,
            "{}",
            h.0.capacity()
        );
        assert!(h.0.windows(2).all(|w| w[0] < w[1]), "kept sorted");
    }
}
