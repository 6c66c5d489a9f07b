//! Claim first, answer second (pure, time passed in): how a node under a placement policy that
//! reads claims (`--sticky-ownership`, `--even-spread`; [`crate::placement`]) starts and stops
//! answering, so that two speakers whose inputs differ for a moment (a watch a little behind,
//! claims still in flight) never both answer one address.
//!
//! Each node gossips what it claims: the addresses it *answers* and those it is about to
//! answer (*pending*). Elected for an address:
//!
//! - one it answers: it keeps answering, unless another node answers it too and ranks before it
//!   for that address (`sha256(node + "#" + ip)`, the same in every speaker whatever its view);
//! - one another live node answers: it waits for that node to release it;
//! - one nobody claims: it claims it as pending and answers it [`HOLD`] later, unless it heard
//!   meanwhile another node claim it and that node ranks before it (then it drops its claim);
//!   two nodes that claimed at once thus hear each other before either answers, and one gives
//!   way. An address whose answering node left the members (a takeover) is answered at once, as
//!   under MetalLB's ranking: waiting would only lengthen the silence.
//!
//! Not elected for an address, it stops answering and claiming it at once. Its claims are
//! gossiped after the announcer stopped answering what it released.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::election;

/// How long a pending claim waits before it is answered: news of it must have reached the
/// others, and theirs this node, in that time. The same pause as a returning member's
/// (`election_gate::COUNTED_AFTER`).
pub const HOLD: Duration = Duration::from_millis(250);

/// What one node claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claimed {
    pub answering: BTreeSet<IpAddr>,
    pub pending: BTreeSet<IpAddr>,
}

impl Claimed {
    /// Every address claimed, answered or pending.
    pub fn all(&self) -> impl Iterator<Item = &IpAddr> {
        self.answering.iter().chain(&self.pending)
    }
}

/// This node's claims and when each pending one was made.
#[derive(Debug, Clone, Default)]
pub struct Handover {
    me: String,
    answering: BTreeSet<IpAddr>,
    pending: BTreeMap<IpAddr, Instant>,
    /// What each other node answered at the last step, to tell an address whose answering
    /// node left from one it still holds.
    others_before: BTreeMap<String, BTreeSet<IpAddr>>,
}

impl Handover {
    pub fn new(me: String) -> Self {
        Self {
            me,
            ..Self::default()
        }
    }

    /// Decides what this node answers, now that it is elected for `elected` and the other
    /// live nodes claim `others`; returns whether its claims changed.
    pub fn step(
        &mut self,
        elected: &BTreeSet<IpAddr>,
        others: &BTreeMap<String, Claimed>,
        now: Instant,
    ) -> bool {
        let before = self.claimed();
        let me = self.me.as_str();
        let first = |a: &str, b: &str, ip: IpAddr| {
            (election::rank_key(a, ip), a) < (election::rank_key(b, ip), b)
        };
        // Addresses answered by a node that is no longer a member.
        let orphaned: BTreeSet<IpAddr> = self
            .others_before
            .iter()
            .filter(|(node, _)| !others.contains_key(*node))
            .flat_map(|(_, ips)| ips.iter().copied())
            .collect();
        let mut answering = BTreeSet::new();
        let mut pending = BTreeMap::new();
        for ip in elected {
            let answered_by: Vec<&str> = others
                .iter()
                .filter(|(_, c)| c.answering.contains(ip))
                .map(|(n, _)| n.as_str())
                .collect();
            if self.answering.contains(ip) {
                if answered_by.iter().all(|other| first(me, other, *ip)) {
                    answering.insert(*ip);
                }
                continue;
            }
            if !answered_by.is_empty() {
                continue;
            }
            let outranked = others
                .iter()
                .any(|(n, c)| c.pending.contains(ip) && first(n, me, *ip));
            if outranked {
                continue;
            }
            if orphaned.contains(ip) {
                answering.insert(*ip);
                continue;
            }
            let since = self.pending.get(ip).copied().unwrap_or(now);
            if now >= since + HOLD {
                answering.insert(*ip);
            } else {
                pending.insert(*ip, since);
            }
        }
        self.answering = answering;
        self.pending = pending;
        self.others_before = others
            .iter()
            .map(|(n, c)| (n.clone(), c.answering.clone()))
            .collect();
        self.claimed() != before
    }

    /// The addresses this node answers.
    pub fn answering(&self) -> &BTreeSet<IpAddr> {
        &self.answering
    }

    /// What this node claims, to gossip.
    pub fn claimed(&self) -> Claimed {
        Claimed {
            answering: self.answering.clone(),
            pending: self.pending.keys().copied().collect(),
        }
    }

    /// When the first pending claim is due to be answered.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().min().map(|since| *since + HOLD)
    }
}

#[cfg(test)]
#[path = "handover_tests.rs"]
mod tests;
