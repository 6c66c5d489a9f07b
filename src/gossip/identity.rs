//! Who a gossip member is.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A speaker as SWIM sees it.
///
/// foca keys members by [`foca::Identity::addr`], the gossip socket address: seeds are known only
/// by address, and foca accepts an announce addressed to any identity with our address. The
/// `generation` orders identities sharing an address: a restarted speaker starts with a higher one
/// (its start time) and so replaces its former self at once instead of waiting for the cluster to
/// forget it, and a speaker wrongly declared down renews itself with `generation + 1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId {
    pub name: String,
    pub addr: SocketAddr,
    pub generation: u64,
}

impl NodeId {
    /// Stand-in identity for a seed we only know by address: foca's announce is accepted by
    /// whichever identity owns that address, and its reply carries the real one.
    pub(crate) fn seed(addr: SocketAddr) -> Self {
        Self {
            name: String::new(),
            addr,
            generation: 0,
        }
    }
}

impl foca::Identity for NodeId {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            generation: self.generation.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        // Newest generation wins; the name only breaks exact ties so the choice is deterministic.
        (self.generation, &self.name) > (adversary.generation, &adversary.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    fn id(name: &str, generation: u64) -> NodeId {
        NodeId {
            name: name.into(),
            addr: "127.0.0.1:7946".parse().unwrap(),
            generation,
        }
    }

    #[test]
    fn restarted_or_renewed_identity_wins() {
        let old = id("node-a", 100);
        let restarted = id("node-a", 200);
        assert!(restarted.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&restarted));
        let renewed = old.renew().unwrap();
        assert_eq!(renewed.generation, 101);
        assert_eq!(renewed.addr(), old.addr());
        assert!(renewed.win_addr_conflict(&old));
    }

    #[test]
    fn conflict_resolution_is_antisymmetric_on_ties() {
        let a = id("node-a", 5);
        let b = id("node-b", 5);
        assert_ne!(a.win_addr_conflict(&b), b.win_addr_conflict(&a));
    }
}
