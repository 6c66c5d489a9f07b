//! The owner's side of answer verification (pure, time passed in): told through gossip that
//! its answers for an address do not reach the node next in line
//! (`speaker::answer_check`), an owner withdraws from that address and tries to heal.
//!
//! - **Withdraw.** The address leaves this node's owned set at once (it stops answering), then
//!   the withdrawal is gossiped and every speaker elects the address's group without this node
//!   (`ownership::Withdrawn`): the next node answers, never two at once.
//! - **Heal.** The speaker reopens its packet sockets and announces again (the edge does that
//!   when [`Withdrawals::observe`] says so).
//! - **Come back.** After a hold ([`HOLD`], doubling for an address withdrawn again, up to
//!   [`MAX_HOLD`]) the withdrawal is taken back. This node elects itself for the address only
//!   [`UP_HOLD`] after that (the node that answered meanwhile hears it first and stops), as
//!   after a link returns. If it is still silent, the next node finds out again.
//! - **Everything at once.** Told of more silent addresses than a report carries, the owner
//!   assumes its answering is broken as a whole and withdraws from every election for the hold
//!   ([`Withdrawals::all`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::link_state::UP_HOLD;

/// How long an address stays withdrawn the first time.
pub const HOLD: Duration = Duration::from_secs(30);

/// The longest hold, for an address withdrawn again and again.
pub const MAX_HOLD: Duration = Duration::from_secs(480);

/// An address that stays answered this long after it came back starts over at [`HOLD`].
pub const FORGIVE_AFTER: Duration = Duration::from_secs(600);

/// What other nodes reported about this node's answers (from their gossiped states).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reported {
    /// Addresses reported silent.
    pub addresses: BTreeSet<IpAddr>,
    /// A reporter found more of this node's addresses silent than its report lists.
    pub more: bool,
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    count: u32,
    /// When the address last came back.
    back: Option<Instant>,
}

/// Which addresses this node has withdrawn from, and until when.
#[derive(Debug, Clone, Default)]
pub struct Withdrawals {
    held: BTreeMap<IpAddr, Instant>,
    /// Withdrawn from every election until then.
    all: Option<(Instant, u32)>,
    /// Taken back, not yet elected on again (until then).
    returning: BTreeMap<IpAddr, Instant>,
    all_returning: Option<Instant>,
    /// How many times this node withdrew from everything (the hold doubles each time).
    all_strikes: u32,
    strikes: BTreeMap<IpAddr, Strikes>,
}

impl Withdrawals {
    /// Feeds the reports about this node and the addresses it owns now; returns whether the
    /// speaker should heal (a new withdrawal began: reopen its sockets and announce again).
    /// A report of an address this node does not own is stale and ignored. More withdrawals
    /// than `capacity` (what a gossiped state carries), or a report that lists only part of
    /// the silence, withdraw this node from every election instead.
    pub fn observe(
        &mut self,
        reported: &Reported,
        owned: &BTreeSet<IpAddr>,
        now: Instant,
        capacity: usize,
    ) -> bool {
        self.expire(now);
        let new: Vec<IpAddr> = reported
            .addresses
            .intersection(owned)
            .filter(|ip| !self.held.contains_key(*ip))
            .copied()
            .collect();
        let overflow = self.held.len() + new.len() > capacity;
        if (reported.more || overflow) && !owned.is_empty() {
            if self.all.is_some() {
                return false;
            }
            let strikes = self.all.map_or(self.all_strikes, |(_, s)| s);
            self.all = Some((now + hold(strikes), strikes + 1));
            self.all_strikes = strikes + 1;
            return true;
        }
        for ip in &new {
            let strikes = self.strikes.entry(*ip).or_insert(Strikes {
                count: 0,
                back: None,
            });
            if strikes
                .back
                .is_some_and(|back| now.saturating_duration_since(back) >= FORGIVE_AFTER)
            {
                strikes.count = 0;
            }
            self.held.insert(*ip, now + hold(strikes.count));
            strikes.count += 1;
            strikes.back = None;
        }
        !new.is_empty()
    }

    /// The addresses this node tells the others it withdrew from.
    pub fn published(&self) -> BTreeSet<IpAddr> {
        self.held.keys().copied().collect()
    }

    /// The addresses this node does not elect itself for: withdrawn, or just taken back.
    pub fn excluded(&self) -> BTreeSet<IpAddr> {
        self.held
            .keys()
            .chain(self.returning.keys())
            .copied()
            .collect()
    }

    /// Whether this node stays out of every election (published by leaving the gossip
    /// elections), or is just back from that.
    pub fn all(&self) -> bool {
        self.all.is_some() || self.all_returning.is_some()
    }

    /// Whether this node tells the others it left every election (the part of [`Self::all`]
    /// that is gossiped).
    pub fn all_published(&self) -> bool {
        self.all.is_some()
    }

    /// When a hold ends.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.held
            .values()
            .chain(self.returning.values())
            .chain(self.all.as_ref().map(|(until, _)| until))
            .chain(self.all_returning.as_ref())
            .min()
            .copied()
    }

    /// Ends the holds that are over.
    pub fn expire(&mut self, now: Instant) {
        self.returning.retain(|_, until| now < *until);
        if self.all_returning.is_some_and(|until| now >= until) {
            self.all_returning = None;
        }
        if let Some((until, _)) = self.all
            && now >= until
        {
            self.all = None;
            self.all_returning = Some(now + UP_HOLD);
        }
        let over: Vec<IpAddr> = self
            .held
            .iter()
            .filter(|(_, until)| now >= **until)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in over {
            self.held.remove(&ip);
            self.returning.insert(ip, now + UP_HOLD);
            if let Some(s) = self.strikes.get_mut(&ip) {
                s.back = Some(now);
            }
        }
        self.strikes.retain(|ip, s| {
            self.held.contains_key(ip)
                || s.back
                    .is_none_or(|back| now.saturating_duration_since(back) < FORGIVE_AFTER)
        });
    }
}

/// The hold after `strikes` earlier withdrawals of one address.
fn hold(strikes: u32) -> Duration {
    HOLD.saturating_mul(1 << strikes.min(8)).min(MAX_HOLD)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> BTreeSet<IpAddr> {
        list.iter().map(|i| i.parse().unwrap()).collect()
    }

    fn report(list: &[&str]) -> Reported {
        Reported {
            addresses: ips(list),
            more: false,
        }
    }

    #[test]
    fn a_reported_address_is_withdrawn_held_and_comes_back_after_the_up_hold() {
        let t0 = Instant::now();
        let owned = ips(&["192.0.2.10", "192.0.2.11"]);
        let mut w = Withdrawals::default();
        assert!(w.observe(&report(&["192.0.2.10", "192.0.2.99"]), &owned, t0, 8));
        // Only an owned address: the other report is stale.
        assert_eq!(w.published(), ips(&["192.0.2.10"]));
        assert_eq!(w.excluded(), ips(&["192.0.2.10"]));
        // Reported again while held: nothing new, no second heal.
        assert!(!w.observe(&report(&["192.0.2.10"]), &owned, t0 + HOLD / 2, 8));
        assert_eq!(w.next_deadline(), Some(t0 + HOLD));
        // The hold ends: published back at once, elected on only after the up hold.
        w.expire(t0 + HOLD);
        assert!(w.published().is_empty());
        assert_eq!(w.excluded(), ips(&["192.0.2.10"]));
        w.expire(t0 + HOLD + UP_HOLD);
        assert!(w.excluded().is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn an_address_silent_again_is_held_longer_and_forgiven_after_a_quiet_while() {
        let t0 = Instant::now();
        let owned = ips(&["192.0.2.10"]);
        let mut w = Withdrawals::default();
        let mut now = t0;
        for expected in [HOLD, 2 * HOLD, 4 * HOLD, 8 * HOLD, MAX_HOLD, MAX_HOLD] {
            assert!(w.observe(&report(&["192.0.2.10"]), &owned, now, 8));
            assert_eq!(w.next_deadline(), Some(now + expected));
            now += expected;
            w.expire(now);
            now += UP_HOLD;
            w.expire(now);
        }
        // Answered for a long while after coming back: the next hold is the first one's.
        now += FORGIVE_AFTER;
        w.expire(now);
        assert!(w.observe(&report(&["192.0.2.10"]), &owned, now, 8));
        assert_eq!(w.next_deadline(), Some(now + HOLD));
    }

    #[test]
    fn more_silence_than_a_report_lists_withdraws_from_everything() {
        let t0 = Instant::now();
        let owned = ips(&["192.0.2.10"]);
        let mut w = Withdrawals::default();
        let more = Reported {
            addresses: ips(&["192.0.2.10"]),
            more: true,
        };
        assert!(w.observe(&more, &owned, t0, 8));
        assert!(w.all() && w.all_published());
        w.expire(t0 + HOLD);
        assert!(w.all() && !w.all_published());
        w.expire(t0 + HOLD + UP_HOLD);
        assert!(!w.all());
        // A node owning nothing has nothing to withdraw from.
        let mut idle = Withdrawals::default();
        assert!(!idle.observe(&more, &BTreeSet::new(), t0, 8));
        assert!(!idle.all());
        // More addresses than a state can carry: everything too.
        let owned = ips(&["192.0.2.10", "192.0.2.11", "192.0.2.12"]);
        let mut full = Withdrawals::default();
        assert!(full.observe(&report(&["192.0.2.10", "192.0.2.11"]), &owned, t0, 2));
        assert!(!full.all());
        assert!(full.observe(&report(&["192.0.2.12"]), &owned, t0, 2));
        assert!(full.all_published());
    }
}
