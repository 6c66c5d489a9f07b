//! The IPs this node answers for and, for IPs whose L2 advertisements name interfaces, the only
//! interfaces it answers and announces them on.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

/// What the announcer serves. An IP without an entry in `only_on` is served on every interface
/// the speaker uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    ips: HashSet<IpAddr>,
    only_on: HashMap<IpAddr, BTreeSet<String>>,
}

impl Owned {
    pub fn new(
        ips: impl IntoIterator<Item = IpAddr>,
        only_on: &BTreeMap<IpAddr, BTreeSet<String>>,
    ) -> Self {
        let ips: HashSet<IpAddr> = ips.into_iter().collect();
        let only_on = only_on
            .iter()
            .filter(|(ip, _)| ips.contains(ip))
            .map(|(ip, names)| (*ip, names.clone()))
            .collect();
        Self { ips, only_on }
    }

    pub fn iter(&self) -> impl Iterator<Item = &IpAddr> {
        self.ips.iter()
    }

    /// Whether `ip` is answered and announced on the interface called `iface`.
    pub fn owns_on(&self, ip: IpAddr, iface: &str) -> bool {
        self.ips.contains(&ip)
            && self
                .only_on
                .get(&ip)
                .is_none_or(|names| names.contains(iface))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restricted_ips_are_owned_only_on_their_interfaces() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        let only = BTreeMap::from([
            (a, BTreeSet::from(["eth1".to_string()])),
            (c, BTreeSet::from(["eth0".to_string()])),
        ]);
        let owned = Owned::new([a, b], &only);
        assert!(owned.owns_on(a, "eth1"));
        assert!(!owned.owns_on(a, "eth0"));
        assert!(owned.owns_on(b, "eth0") && owned.owns_on(b, "eth1"));
        assert!(
            !owned.owns_on(c, "eth0"),
            "a restriction alone owns nothing"
        );
    }
}
