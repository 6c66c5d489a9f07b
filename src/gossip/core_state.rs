//! The core's node states (see [`super::node_state`]): publishing this node's, refreshing it,
//! and the live members' states for the edge.

use std::collections::BTreeMap;
use std::time::Instant;

use super::node_state::{self, NodeState, StateHandler};
use super::{Deadline, GossipCore};

impl GossipCore {
    /// Publishes this node's state (see [`node_state`]): stored, handed to foca to spread with
    /// its messages, and pushed to a few members at once; republished every
    /// [`node_state::REFRESH`]. An unchanged state is not sent again before its refresh.
    pub fn publish_state(&mut self, state: NodeState, now: Instant) {
        let state = state.bounded();
        let seq = match &self.own_state {
            Some((_, known)) if *known == state => return,
            Some((seq, _)) => seq + 1,
            None => 0,
        };
        if self.left {
            return;
        }
        if self.withdrawn {
            // Published when it rejoins.
            self.own_state = Some((seq, state));
            return;
        }
        self.publish(seq, state, now);
    }

    pub(super) fn publish(&mut self, seq: u64, state: NodeState, now: Instant) {
        let id = self.swim.identity();
        let mut state = state;
        let mut items = StateHandler::encode(&id.name, id.incarnation, seq, &state);
        // Too large: shed what is least needed until it fits.
        let mut shed = 0u32;
        while items.len() > node_state::MAX_PARTS && state.shed_one() {
            shed += 1;
            items = StateHandler::encode(&id.name, id.incarnation, seq, &state);
        }
        if shed > 0 {
            tracing::warn!(
                shed,
                "gossip: this node's state is too large to send whole: reports, addresses and \
                 claims left out"
            );
        }
        if items.len() > node_state::MAX_PARTS {
            tracing::warn!(
                parts = items.len(),
                "gossip: this node's state is too large to send"
            );
        } else {
            for item in &items {
                if let Err(error) = self.swim.add_broadcast(item) {
                    tracing::debug!(%error, "gossip: node state");
                }
            }
            if let Err(error) = self.swim.gossip(&mut self.outbox) {
                tracing::debug!(%error, "gossip: node state");
            }
        }
        self.own_state = Some((seq, state));
        self.deadlines
            .retain(|_, deadline| !matches!(deadline, Deadline::StateRefresh));
        self.schedule(now + node_state::REFRESH, Deadline::StateRefresh);
        self.drain(now);
    }

    /// The newest state of each live member's process (this node's included), when they changed
    /// since the last call.
    ///
    /// Called after every datagram: when neither the stored states nor the live processes
    /// changed since the last call it returns at once, without copying anything.
    pub fn take_node_states(&mut self) -> Option<BTreeMap<String, NodeState>> {
        use std::hash::{Hash, Hasher};
        let me = self.swim.identity();
        let live = || {
            self.swim
                .iter_members()
                .map(|m| m.id())
                .chain((!self.left).then_some(me))
                .map(|id| (id.name.as_str(), id.incarnation))
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        live().for_each(|process| process.hash(&mut hasher));
        // Nothing is left half-done under the lock (reads).
        let book = self
            .states
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (book.version(), hasher.finish());
        if self.states_key == Some(key) {
            return None;
        }
        let states = book.states_of(live());
        drop(book);
        self.states_key = Some(key);
        if states == self.states_given {
            return None;
        }
        self.states_given = states.clone();
        Some(states)
    }
}
