//! The sans-io membership state machine: foca plus authentication, replay protection, timers and
//! seed handling. Fed datagrams and `now`, it yields datagrams to send and the next deadline
//! (quinn-proto style); it never reads the clock or touches a socket.
//!
//! # Port unreachable
//!
//! When the host of a member answers one of our datagrams with ICMP port unreachable, nothing
//! listens on that member's gossip socket: its speaker is gone while its host is up (a crash, an
//! OOM kill, a restart in progress). The edge reports it ([`GossipCore::handle_port_unreachable`])
//! and the member is suspected at once, as a failed probe would have it suspected one probe
//! period later. It stays an ordinary SWIM suspicion: gossiped to the cluster, and refuted by a
//! live member with a higher incarnation, so a forged ICMP message cannot by itself evict a live
//! speaker. The suspicion is gossiped at once; when that gossip round reaches every member
//! (clusters of up to [`SwimTiming::num_indirect_probes`] other members, the number foca's
//! `gossip` sends to), it reaches the suspect directly, and a live suspect's refutation is one
//! round trip away, so the suspect is declared down after the shorter
//! [`SwimTiming::icmp_suspect_to_down_after`]. In larger clusters the suspicion reaches the
//! suspect only by dissemination and it gets the usual `suspect_to_down_after`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use foca::{Foca, Incarnation, Member, OwnedNotification, PostcardCodec, Runtime, State, Timer};
use rand_foca::SeedableRng;
use rand_foca::rngs::SmallRng;

use super::config::SwimTiming;
use super::envelope::{self, PacketKey, Rejected, ReplayGuard, Sealer};
use super::identity::NodeId;
use super::key::KeyRing;
use super::node_state::{self, NodeState, StateHandler};

/// Datagrams dropped before reaching SWIM, by reason (for `ferrolb_gossip_dropped_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// Wrong key or tampered.
    pub auth: u64,
    /// Not an envelope of ours, or authentic but not a valid SWIM message.
    pub decode: u64,
    /// Authentic but already seen.
    pub replay: u64,
}

/// Members by SWIM state (for `ferrolb_members{state}`); this speaker counts as alive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberCounts {
    pub alive: u64,
    pub suspect: u64,
    pub down: u64,
}

/// Something worth logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GossipEvent {
    Up(NodeId),
    Down(NodeId),
    Renamed {
        from: NodeId,
        to: NodeId,
    },
    /// Known by at least one other member.
    Joined,
    /// No other member is alive.
    Alone,
    /// We were declared down and rejoined under a new generation.
    Rejoined(NodeId),
    /// Its host answered ICMP port unreachable: suspected at once, declared down after
    /// `down_after` unless it refutes.
    SuspectedUnreachable {
        id: NodeId,
        down_after: Duration,
    },
    /// A port-unreachable suspicion was not refuted in time: declared down (a [`Self::Down`]
    /// follows).
    UnreachableConfirmed(NodeId),
}

enum Deadline {
    Swim(Timer<NodeId>),
    SeedRetry,
    /// The end of a port-unreachable suspicion of this member at this SWIM incarnation.
    UnreachableSuspect(NodeId, Incarnation),
    /// Time to publish this node's state again, unchanged ([`node_state::REFRESH`]).
    StateRefresh,
}

/// foca's runtime: collects what foca asks for, so the core can seal and schedule it afterwards.
#[derive(Default)]
struct Outbox {
    sends: Vec<(SocketAddr, Vec<u8>)>,
    timers: Vec<(Duration, Timer<NodeId>)>,
    notifications: Vec<OwnedNotification<NodeId>>,
}

impl Runtime<NodeId> for Outbox {
    fn notify(&mut self, notification: foca::Notification<'_, NodeId>) {
        self.notifications.push(notification.to_owned());
    }

    fn send_to(&mut self, to: NodeId, data: &[u8]) {
        self.sends.push((to.addr, data.to_vec()));
    }

    fn submit_after(&mut self, event: Timer<NodeId>, after: Duration) {
        self.timers.push((after, event));
    }
}

type Swim = Foca<NodeId, PostcardCodec, SmallRng, StateHandler>;

pub struct GossipCore {
    swim: Swim,
    outbox: Outbox,
    /// Send key first.
    keys: Vec<PacketKey>,
    sealer: Sealer,
    replay: ReplayGuard,
    deadlines: BTreeMap<(Instant, u64), Deadline>,
    next_deadline_id: u64,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<GossipEvent>,
    seeds: Vec<SocketAddr>,
    seed_retry_interval: Duration,
    /// Port-unreachable suspicions: how long to refute when the suspicion went straight to the
    /// suspect, how long otherwise, and up to how many other members the suspicion's gossip
    /// round reaches every one of.
    icmp_down_after: Duration,
    down_after: Duration,
    direct_reach: usize,
    icmp_suspicions: u64,
    drops: DropCounts,
    left: bool,
    /// Out of the cluster by choice until [`Self::rejoin`] (see [`Self::withdraw`]).
    withdrawn: bool,
    /// The node states heard (this node's included), shared with foca's handler.
    states: StateHandler,
    /// This node's state as last published, with its sequence.
    own_state: Option<(u64, NodeState)>,
    /// The live members' states as [`Self::take_node_states`] last gave them, and the book's
    /// version and the live processes' fingerprint they were read at.
    states_given: BTreeMap<String, NodeState>,
    states_key: Option<(u64, u64)>,
}

impl GossipCore {
    /// `identity.incarnation` must be drawn at random for each process (see [`NodeId`]); it also
    /// marks this process's packets for replay protection. `rng_seed` drives SWIM's random member
    /// choices.
    pub fn new(
        identity: NodeId,
        keys: &KeyRing,
        seeds: &[SocketAddr],
        timing: &SwimTiming,
        rng_seed: u64,
        now: Instant,
    ) -> Self {
        let sealer = Sealer::new(
            PacketKey::derive(&keys.send),
            &identity.name,
            identity.incarnation,
        );
        let keys = keys.all().map(PacketKey::derive).collect();
        let seeds = seeds
            .iter()
            .copied()
            .filter(|seed| *seed != identity.addr)
            .collect();
        let states = StateHandler::default();
        let swim = Foca::with_custom_broadcast(
            identity,
            timing.foca_config(),
            SmallRng::seed_from_u64(rng_seed),
            PostcardCodec,
            states.clone(),
        );
        let mut core = Self {
            swim,
            outbox: Outbox::default(),
            keys,
            sealer,
            replay: ReplayGuard::default(),
            deadlines: BTreeMap::new(),
            next_deadline_id: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            seeds,
            seed_retry_interval: timing.seed_retry_interval,
            icmp_down_after: timing.icmp_suspect_to_down_after,
            down_after: timing.suspect_to_down_after,
            direct_reach: timing
                .num_indirect_probes
                .get()
                .min(usize::from(timing.max_transmissions.get())),
            icmp_suspicions: 0,
            drops: DropCounts::default(),
            left: false,
            withdrawn: false,
            states,
            own_state: None,
            states_given: BTreeMap::new(),
            states_key: None,
        };
        core.schedule(now, Deadline::SeedRetry);
        core
    }

    /// A datagram arrived. Anything not authentic, not fresh or not valid SWIM is counted and
    /// dropped; only authenticated payloads reach foca.
    pub fn handle_datagram(&mut self, packet: &[u8], now: Instant) {
        if self.left || self.withdrawn {
            // Withdrawn: an announce answered now would make us a member again.
            return;
        }
        let opened = match envelope::open_with(&self.keys, packet) {
            Ok(opened) => opened,
            Err(Rejected::BadTag) => {
                self.drops.auth += 1;
                return;
            }
            Err(_) => {
                self.drops.decode += 1;
                return;
            }
        };
        let own = self.swim.identity();
        if opened.sender == own.name && opened.incarnation == own.incarnation {
            // Our own probe of a former self of ours (same socket, older incarnation), looped
            // back: nobody is there to answer it, which is how that former self is declared down.
            return;
        }
        if !self
            .replay
            .accept(opened.sender, opened.incarnation, opened.seq)
        {
            self.drops.replay += 1;
            return;
        }
        if let Err(error) = self.swim.handle_data(opened.payload, &mut self.outbox) {
            tracing::debug!(sender = opened.sender, %error, "gossip: dropped SWIM message");
            self.drops.decode += 1;
        }
        self.drain(now);
    }

    /// Fires every deadline due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(entry) = self.deadlines.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let deadline = entry.remove();
            if self.left || self.withdrawn {
                continue;
            }
            match deadline {
                Deadline::Swim(timer) => {
                    if let Err(error) = self.swim.handle_timer(timer, &mut self.outbox) {
                        tracing::debug!(%error, "gossip: timer");
                    }
                }
                Deadline::SeedRetry => {
                    if self.swim.num_members() == 0 {
                        self.announce_to_seeds();
                    }
                    self.schedule(now + self.seed_retry_interval, Deadline::SeedRetry);
                }
                Deadline::UnreachableSuspect(id, incarnation) => {
                    self.confirm_unreachable(id, incarnation);
                }
                Deadline::StateRefresh => {
                    if let Some((seq, state)) = self.own_state.take() {
                        self.publish(seq + 1, state, now);
                    }
                }
            }
            self.drain(now);
        }
    }

    /// The host at `addr` answered a datagram of ours with ICMP port unreachable: every alive
    /// member at that gossip socket is suspected at once (see the module docs, "Port
    /// unreachable"). Members already suspect or down, unknown addresses and our own are left
    /// alone.
    pub fn handle_port_unreachable(&mut self, addr: SocketAddr, now: Instant) {
        if self.left || self.withdrawn || addr == self.swim.identity().addr {
            return;
        }
        let suspects: Vec<Member<NodeId>> = self
            .swim
            .iter_membership_state()
            .filter(|m| m.id().addr == addr && m.state() == State::Alive)
            .map(|m| Member::new(m.id().clone(), m.incarnation(), State::Suspect))
            .collect();
        if suspects.is_empty() {
            return;
        }
        // Counted before the suspicion: the suspect is one of the active members.
        let down_after = if self.swim.num_members() <= self.direct_reach {
            self.icmp_down_after
        } else {
            self.down_after
        };
        for suspect in &suspects {
            self.icmp_suspicions += 1;
            self.schedule(
                now + down_after,
                Deadline::UnreachableSuspect(suspect.id().clone(), suspect.incarnation()),
            );
            self.events.push_back(GossipEvent::SuspectedUnreachable {
                id: suspect.id().clone(),
                down_after,
            });
        }
        if let Err(error) = self
            .swim
            .apply_many(suspects.into_iter(), true, &mut self.outbox)
        {
            tracing::debug!(%error, "gossip: suspect");
        }
        // Now rather than at the next gossip round: this is what reaches a live suspect, whose
        // refutation then races the deadline.
        if let Err(error) = self.swim.gossip(&mut self.outbox) {
            tracing::debug!(%error, "gossip: suspect");
        }
        self.drain(now);
    }

    /// Port-unreachable suspicions so far (`ferrolb_gossip_icmp_suspicions_total`).
    pub fn icmp_suspicions(&self) -> u64 {
        self.icmp_suspicions
    }

    /// Replaces the keys (a rotation step): sends with `keys.send` from now on, accepts any of
    /// them. Membership and replay state are kept, so nobody notices but a peer without the new
    /// send key.
    pub fn set_keys(&mut self, keys: &KeyRing) {
        self.sealer.set_key(PacketKey::derive(&keys.send));
        self.keys = keys.all().map(PacketKey::derive).collect();
    }

    /// How many keys are accepted (2 during a rotation).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Announces our departure, so the others mark us down at once instead of by failure
    /// detection. Afterwards the core is inert.
    pub fn leave(&mut self, now: Instant) {
        if self.left {
            return;
        }
        if !self.withdrawn {
            self.announce_departure(now);
        }
        self.left = true;
    }

    /// Leaves the cluster but keeps running, so [`Self::rejoin`] can come back: a speaker that
    /// cannot announce (no usable config) must not be elected, and a graceful leave makes the
    /// others mark it down and elect again at once. Until it rejoins it ignores every datagram
    /// and timer, and counts only itself as live.
    pub fn withdraw(&mut self, now: Instant) {
        if self.left || self.withdrawn {
            return;
        }
        self.announce_departure(now);
        self.withdrawn = true;
    }

    /// The graceful leave: our down update goes out in three gossip rounds to random members, so
    /// one lost datagram does not turn it into a timeout; no timer of ours runs afterwards.
    fn announce_departure(&mut self, now: Instant) {
        if let Err(error) = self.swim.leave_cluster(&mut self.outbox) {
            tracing::debug!(%error, "gossip: leave");
        }
        for _ in 0..2 {
            if let Err(error) = self.swim.gossip(&mut self.outbox) {
                tracing::debug!(%error, "gossip: leave");
            }
        }
        self.drain(now);
        self.deadlines.clear();
    }

    /// Comes back after [`Self::withdraw`]: under a renewed identity (the next generation,
    /// which wins over the down record the others keep of the withdrawn one), announced to the
    /// seeds at once and again while alone.
    pub fn rejoin(&mut self, now: Instant) {
        if self.left || !self.withdrawn {
            return;
        }
        self.withdrawn = false;
        let renewed = foca::Identity::renew(self.swim.identity());
        match renewed.map(|id| self.swim.change_identity(id, &mut self.outbox)) {
            Some(Ok(())) => {}
            Some(Err(error)) => tracing::debug!(%error, "gossip: rejoin"),
            None => tracing::debug!("gossip: rejoin: identity cannot be renewed"),
        }
        self.announce_to_seeds();
        self.schedule(now + self.seed_retry_interval, Deadline::SeedRetry);
        if let Some((seq, state)) = self.own_state.take() {
            self.publish(seq + 1, state, now);
        }
        self.drain(now);
    }

    /// Whether this member is out of the cluster by choice ([`Self::withdraw`]).
    pub fn is_withdrawn(&self) -> bool {
        self.withdrawn
    }

    /// Replaces the seed list (e.g. when the speaker learns of new speaker pods) and announces to
    /// the seeds not in the previous list at once, even when not alone: two groups that formed
    /// separately merge this way.
    pub fn set_seeds(&mut self, seeds: &[SocketAddr], now: Instant) {
        if self.left {
            return;
        }
        if self.withdrawn {
            // Kept for the rejoin; nobody is told of us meanwhile.
            let own = self.swim.identity().addr;
            self.seeds = seeds.iter().copied().filter(|s| *s != own).collect();
            return;
        }
        let own = self.swim.identity().addr;
        let seeds: Vec<SocketAddr> = seeds.iter().copied().filter(|s| *s != own).collect();
        let fresh: Vec<SocketAddr> = seeds
            .iter()
            .copied()
            .filter(|s| !self.seeds.contains(s))
            .collect();
        self.seeds = seeds;
        self.announce_to(&fresh);
        self.drain(now);
    }

    /// When [`Self::handle_timeout`] next needs calling.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.keys().next().map(|(at, _)| *at)
    }

    /// Next sealed datagram to send.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<GossipEvent> {
        self.events.pop_front()
    }

    pub fn identity(&self) -> &NodeId {
        self.swim.identity()
    }

    pub fn has_left(&self) -> bool {
        self.left
    }

    /// Names of live members (alive or suspect), this speaker included until it leaves (only
    /// this speaker while withdrawn: it hears nobody).
    pub fn live_members(&self) -> BTreeSet<String> {
        if self.withdrawn {
            return [self.swim.identity().name.clone()].into();
        }
        let mut names: BTreeSet<String> = self
            .swim
            .iter_members()
            .map(|m| m.id().name.clone())
            .collect();
        if !self.left {
            names.insert(self.swim.identity().name.clone());
        }
        names
    }

    pub fn member_counts(&self) -> MemberCounts {
        let mut counts = MemberCounts {
            alive: u64::from(!self.left),
            ..MemberCounts::default()
        };
        if self.withdrawn {
            return counts;
        }
        for member in self.swim.iter_membership_state() {
            match member.state() {
                State::Alive => counts.alive += 1,
                State::Suspect => counts.suspect += 1,
                State::Down => counts.down += 1,
            }
        }
        counts
    }

    pub fn drops(&self) -> DropCounts {
        self.drops
    }

    /// Declares `id` down if it is still suspect at `incarnation`: a refutation raised its
    /// incarnation, and down is final, so anything else leaves it alone.
    fn confirm_unreachable(&mut self, id: NodeId, incarnation: Incarnation) {
        let unrefuted = self.swim.iter_membership_state().any(|m| {
            m.id() == &id && m.state() == State::Suspect && m.incarnation() == incarnation
        });
        if !unrefuted {
            return;
        }
        self.events
            .push_back(GossipEvent::UnreachableConfirmed(id.clone()));
        let down = Member::new(id, incarnation, State::Down);
        if let Err(error) = self
            .swim
            .apply_many(std::iter::once(down), true, &mut self.outbox)
        {
            tracing::debug!(%error, "gossip: declare down");
        }
    }

    fn announce_to_seeds(&mut self) {
        self.announce_to(&self.seeds.clone());
    }

    fn announce_to(&mut self, seeds: &[SocketAddr]) {
        for &seed in seeds {
            if let Err(error) = self.swim.announce(NodeId::seed(seed), &mut self.outbox) {
                tracing::debug!(%seed, %error, "gossip: announce");
            }
        }
    }

    fn schedule(&mut self, at: Instant, deadline: Deadline) {
        self.next_deadline_id += 1;
        self.deadlines.insert((at, self.next_deadline_id), deadline);
    }

    /// Seals what foca sent, turns its timer requests into deadlines, records its notifications.
    fn drain(&mut self, now: Instant) {
        for (to, payload) in std::mem::take(&mut self.outbox.sends) {
            self.transmits.push_back((to, self.sealer.seal(&payload)));
        }
        for (after, timer) in std::mem::take(&mut self.outbox.timers) {
            self.schedule(now + after, Deadline::Swim(timer));
        }
        // A member that appears learns this node's state at once, not at the next refresh
        // (a starting speaker waits to have heard every member's claims).
        let mut welcome = false;
        for notification in std::mem::take(&mut self.outbox.notifications) {
            let event = match notification {
                OwnedNotification::MemberUp(id) => {
                    welcome = true;
                    GossipEvent::Up(id)
                }
                OwnedNotification::MemberDown(id) => {
                    // Nothing is left half-done under the lock (one removal).
                    self.states
                        .0
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .forget(&id.name, id.incarnation);
                    GossipEvent::Down(id)
                }
                OwnedNotification::Rename(from, to) => GossipEvent::Renamed { from, to },
                OwnedNotification::Active => GossipEvent::Joined,
                OwnedNotification::Idle => GossipEvent::Alone,
                OwnedNotification::Rejoin(id) => GossipEvent::Rejoined(id),
                // Only after our own leave (identities renew instead of going defunct).
                OwnedNotification::Defunct => continue,
            };
            self.events.push_back(event);
        }
        if welcome
            && !self.left
            && !self.withdrawn
            && let Some((seq, state)) = self.own_state.take()
        {
            self.publish(seq + 1, state, now);
        }
    }
}

// This node's state in gossip: publishing it, and the live members' states.
#[path = "core_state.rs"]
mod state;

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
