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

/// How long after a member appears the others count it ([`SettledMembers`]): shorter than
/// [`SETTLE`] by a margin that covers the news of a join reaching the members at different
/// moments and their passes taking different times (a pass over 3000 addresses took up to
/// 140 ms on loaded cores), so the node that answered meanwhile lets go before the appearing
/// one takes over. With 100 ms, a run of nine restarts on an idle machine already showed one
/// request answered twice.
pub const COUNTED_AFTER: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct ElectionGate {
    needs_join: bool,
    joined_at: Option<Instant>,
    /// Under a placement policy that reads claims: whether every counted member's state
    /// (its claims) has been heard once. Until then this speaker cannot tell what the others
    /// answer, so it elects nothing. Latched: a member appearing later has claimed nothing.
    needs_claims: bool,
    claims_heard: bool,
}

impl ElectionGate {
    pub fn new(others_seeded: bool) -> Self {
        Self {
            needs_join: others_seeded,
            joined_at: None,
            needs_claims: false,
            claims_heard: false,
        }
    }

    /// Waits, before electing, to have heard every counted member's claims once.
    pub fn needing_claims(mut self, needed: bool) -> Self {
        self.needs_claims = needed;
        self
    }

    /// Records whether every live member's state has been heard; counts only once the gate
    /// has joined and settled (before, the members are not all known).
    pub fn observe_states(&mut self, all_heard: bool, now: Instant) {
        let settled = !self.needs_join || self.joined_at.is_some_and(|at| now >= at + SETTLE);
        self.claims_heard |= all_heard && settled;
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
        (!self.needs_join || self.joined_at.is_some_and(|at| now >= at + SETTLE))
            && (!self.needs_claims || self.claims_heard)
    }

    /// When `may_elect` will next change, if it will without new input.
    pub fn next_check(&self, now: Instant) -> Option<Instant> {
        match self.joined_at {
            Some(at) if self.needs_join && now < at + SETTLE => Some(at + SETTLE),
            _ => None,
        }
    }
}

/// The live members as the election counts them: a member that appears (a speaker started,
/// restarted, or back after being declared down) counts only [`COUNTED_AFTER`] after this
/// speaker first saw it, this speaker itself always. The appearing speaker's own gate keeps it
/// from electing until [`SETTLE`] after it joined, 250 ms later, so the node that answered
/// meanwhile lets go before the returning one takes over: a hand-over without two answerers and
/// with half the silence of letting go at once.
#[derive(Debug, Clone, Default)]
pub struct SettledMembers {
    first_seen: std::collections::BTreeMap<String, Instant>,
}

impl SettledMembers {
    /// Feeds the live members at `now`; returns those that count.
    pub fn observe(
        &mut self,
        live: &std::collections::BTreeSet<String>,
        me: &str,
        now: Instant,
    ) -> std::collections::BTreeSet<String> {
        self.first_seen.retain(|member, _| live.contains(member));
        for member in live {
            self.first_seen.entry(member.clone()).or_insert(now);
        }
        live.iter()
            .filter(|m| {
                *m == me
                    || self
                        .first_seen
                        .get(*m)
                        .is_some_and(|at| now >= *at + COUNTED_AFTER)
            })
            .cloned()
            .collect()
    }

    /// When a member now settling will count.
    pub fn next_check(&self, now: Instant) -> Option<Instant> {
        self.first_seen
            .values()
            .map(|at| *at + COUNTED_AFTER)
            .filter(|due| *due > now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> std::collections::BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn an_appearing_member_counts_after_the_settle_time_and_again_after_it_returns() {
        let t = Instant::now();
        let mut members = SettledMembers::default();
        // This speaker counts at once; the others are new to it.
        assert_eq!(members.observe(&set(&["a", "b"]), "a", t), set(&["a"]));
        assert_eq!(members.next_check(t), Some(t + COUNTED_AFTER));
        let later = t + COUNTED_AFTER;
        assert_eq!(
            members.observe(&set(&["a", "b"]), "a", later),
            set(&["a", "b"])
        );
        assert_eq!(members.next_check(later), None);
        // b leaves (counted out at once) and comes back: it settles again.
        let gone = later + Duration::from_millis(10);
        assert_eq!(members.observe(&set(&["a"]), "a", gone), set(&["a"]));
        let back = gone + Duration::from_millis(10);
        assert_eq!(members.observe(&set(&["a", "b"]), "a", back), set(&["a"]));
        assert_eq!(members.next_check(back), Some(back + COUNTED_AFTER));
        assert_eq!(
            members.observe(&set(&["a", "b"]), "a", back + COUNTED_AFTER),
            set(&["a", "b"])
        );
    }

    #[test]
    fn with_claims_it_waits_to_hear_every_member_once() {
        let t = Instant::now();
        let mut gate = ElectionGate::new(true).needing_claims(true);
        gate.observe_states(true, t);
        gate.observe(true, t);
        assert!(
            !gate.may_elect(t + SETTLE),
            "heard before the members were known"
        );
        gate.observe_states(false, t + SETTLE);
        assert!(
            !gate.may_elect(t + SETTLE),
            "the others' claims are unknown"
        );
        gate.observe_states(true, t + SETTLE);
        assert!(gate.may_elect(t + SETTLE));
        gate.observe_states(false, t + SETTLE);
        assert!(
            gate.may_elect(t + SETTLE),
            "a member appearing later claims nothing"
        );
        assert!(ElectionGate::new(false).needing_claims(false).may_elect(t));
    }

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
