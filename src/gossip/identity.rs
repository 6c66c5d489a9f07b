//! Who a gossip member is.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A speaker as SWIM sees it: one process lifetime of one node.
///
/// - `incarnation` is drawn at random (non-zero) when the process starts and is also the replay
///   envelope's incarnation. It is never compared for order: the wall clock plays no part, so a
///   node restarted with its clock stepped back is as new as any other restart.
/// - `generation` counts renewals within one incarnation: a speaker wrongly declared down renews
///   itself with `generation + 1` and so wins over its down record.
///
/// foca keys members by [`foca::Identity::addr`], here [`MemberAddr`], the gossip socket *and* the
/// incarnation. A restarted speaker is therefore a different member from its former self, not a
/// rival for the same slot: its former self, which no longer answers probes, is declared down by
/// ordinary failure detection (or was already, by its graceful leave), and stale or replayed news
/// about it can never displace the live process. Ordering incarnations by start time instead,
/// as an earlier version did, locks a speaker out whenever its clock has gone back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId {
    pub name: String,
    pub addr: SocketAddr,
    pub incarnation: u64,
    pub generation: u64,
}

/// foca's "address" of a member: which process at which socket.
///
/// Incarnation 0 is never drawn and stands for "whichever process listens there": a seed is known
/// only by its socket, and the announce addressed to it must be accepted by the process that
/// runs there now. foca compares addresses only with `==`, never hashes them, and never stores a
/// seed stand-in as a member, so this wildcard equality is confined to that one check.
#[derive(Debug, Clone, Copy)]
pub struct MemberAddr {
    pub socket: SocketAddr,
    pub incarnation: u64,
}

impl PartialEq for MemberAddr {
    fn eq(&self, other: &Self) -> bool {
        self.socket == other.socket
            && (self.incarnation == other.incarnation
                || self.incarnation == 0
                || other.incarnation == 0)
    }
}

impl NodeId {
    /// Stand-in identity for a seed we only know by address: foca's announce is accepted by
    /// whichever identity owns that address, and its reply carries the real one.
    pub(crate) fn seed(addr: SocketAddr) -> Self {
        Self {
            name: String::new(),
            addr,
            incarnation: 0,
            generation: 0,
        }
    }
}

impl foca::Identity for NodeId {
    type Addr = MemberAddr;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            generation: self.generation.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> MemberAddr {
        MemberAddr {
            socket: self.addr,
            incarnation: self.incarnation,
        }
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        // Only renewals of one incarnation share an address (seed stand-ins are never members):
        // the newest generation wins; the name only breaks exact ties so the choice is
        // deterministic.
        (self.generation, &self.name) > (adversary.generation, &adversary.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    fn id(name: &str, incarnation: u64, generation: u64) -> NodeId {
        NodeId {
            name: name.into(),
            addr: "127.0.0.1:7946".parse().unwrap(),
            incarnation,
            generation,
        }
    }

    #[test]
    fn renewed_identity_wins() {
        let old = id("node-a", 7, 0);
        let renewed = old.renew().unwrap();
        assert_eq!(renewed.generation, 1);
        assert_eq!(renewed.incarnation, 7);
        assert!(renewed.addr() == old.addr());
        assert!(renewed.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&renewed));
    }

    #[test]
    fn restarts_are_different_members_and_seeds_match_any_process() {
        let before = id("node-a", 900, 5);
        let after = id("node-a", 3, 0);
        assert!(before.addr() != after.addr(), "never rivals for one slot");
        let seed = NodeId::seed(before.addr);
        assert!(seed.addr() == before.addr() && seed.addr() == after.addr());
        let elsewhere = NodeId::seed("127.0.0.2:7946".parse().unwrap());
        assert!(elsewhere.addr() != after.addr());
    }

    #[test]
    fn conflict_resolution_is_antisymmetric_on_ties() {
        let a = id("node-a", 1, 5);
        let b = id("node-b", 1, 5);
        assert_ne!(a.win_addr_conflict(&b), b.win_addr_conflict(&a));
    }
}
