//! When a starting speaker may take part in the election (pure, time passed in).
//!
//! A speaker that has not yet heard from the cluster sees only itself alive and would elect
//! itself owner of every IP, announcing them over the real owners and pulling clients to a node
//! that lets go a moment later. So a speaker seeded with other members elects nothing until it
//! has joined, then waits a short settle time for the member list to fill in. A speaker that
//! expects nobody else (static mode: seeded with nobody; Kubernetes: no other ready speaker pod)
//! is a cluster of one and elects at once. A speaker that can never join the others it expects
//! (wrong gossip key) therefore never takes an IP.

use std::time::{Duration, Instant};

/// Time after joining during which the member list is still being learned from gossip.
pub const SETTLE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct ElectionGate {
    needs_join: bool,
    joined_at: Option<Instant>,
}

impl ElectionGate {
    pub fn new(others_seeded: bool) -> Self {
        Self {
            needs_join: others_seeded,
            joined_at: None,
        }
    }

    /// Whether other speakers are expected now (they come and go: a lone speaker elects at
    /// once, and waits for gossip again only if another speaker appears before it joined).
    pub fn set_needs_join(&mut self, needs_join: bool) {
        self.needs_join = needs_join;
    }

    /// Records the membership's "joined" flag.
    pub fn observe(&mut self, joined: bool, now: Instant) {
        if joined && self.joined_at.is_none() {
            self.joined_at = Some(now);
        }
    }

    pub fn joined(&self) -> bool {
        self.joined_at.is_some()
    }

    pub fn may_elect(&self, now: Instant) -> bool {
        !self.needs_join || self.joined_at.is_some_and(|at| now >= at + SETTLE)
    }

    /// When `may_elect` will next change, if it will without new input.
    pub fn next_check(&self, now: Instant) -> Option<Instant> {
        match self.joined_at {
            Some(at) if self.needs_join && now < at + SETTLE => Some(at + SETTLE),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alone_elects_at_once() {
        let t = Instant::now();
        let gate = ElectionGate::new(false);
        assert!(gate.may_elect(t));
        assert_eq!(gate.next_check(t), None);
    }

    #[test]
    fn others_going_away_opens_the_gate_and_others_arriving_closes_it_until_joined() {
        let t = Instant::now();
        let mut gate = ElectionGate::new(true);
        assert!(!gate.may_elect(t));
        gate.set_needs_join(false);
        assert!(gate.may_elect(t), "nobody else expected: elect alone");
        gate.set_needs_join(true);
        assert!(
            !gate.may_elect(t),
            "another speaker appeared: join it first"
        );
        gate.observe(true, t);
        assert!(gate.may_elect(t + SETTLE));
    }

    #[test]
    fn seeded_waits_for_join_then_settles() {
        let t = Instant::now();
        let mut gate = ElectionGate::new(true);
        assert!(
            !gate.may_elect(t + Duration::from_secs(60)),
            "never without joining"
        );
        gate.observe(false, t + Duration::from_secs(1));
        assert!(!gate.joined());
        let joined = t + Duration::from_secs(2);
        gate.observe(true, joined);
        assert!(gate.joined());
        assert!(!gate.may_elect(joined));
        assert_eq!(gate.next_check(joined), Some(joined + SETTLE));
        assert!(gate.may_elect(joined + SETTLE));
        assert_eq!(gate.next_check(joined + SETTLE), None);
        gate.observe(true, joined + Duration::from_secs(5));
        assert!(gate.may_elect(joined + SETTLE), "first join time is kept");
    }
}
