//! Each speaker's interface state, carried by the gossip (foca custom broadcasts) instead of
//! the API: which interfaces it may announce on, whether each has its link (up and carrier, as
//! the speaker debounces it), and their addresses. Every speaker keeps the newest state of every
//! node it has heard, and the election reads it (a node known to lack an advertisement's
//! interface, or whose link there is down, is passed over while another has it).
//!
//! A state travels as one broadcast item: `(node, incarnation, sequence, state)`,
//! postcard-encoded inside the authenticated gossip envelope. The incarnation is the sending
//! process's random gossip incarnation (`NodeId::incarnation`), so no clock is read: a newer
//! sequence of the same process replaces an older one, in the store and in foca's dissemination
//! backlog, and a state counts only while its process is the live member of that name (a
//! restarted speaker's old states are ignored, then dropped when the old member is declared
//! down). foca spreads an item over a few rounds; an owner republishes its state every
//! [`REFRESH`] so a speaker that joined later learns it too.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use foca::{BroadcastHandler, Invalidates};
use serde::{Deserialize, Serialize};

use super::identity::NodeId;

/// How often a speaker republishes its state unchanged.
pub const REFRESH: Duration = Duration::from_secs(10);

/// Interfaces kept per state: a state must fit in one gossip datagram beside SWIM's own
/// message (at most [`MAX_ITEM_BYTES`]); names are at most 15 bytes (IFNAMSIZ).
pub const MAX_INTERFACES: usize = 16;

/// Addresses kept per state, over all its interfaces, for the same reason.
pub const MAX_ADDRESSES: usize = 16;

/// The largest encoded item: leaves SWIM's header and membership updates room in a datagram.
pub const MAX_ITEM_BYTES: usize = 900;

/// One interface the speaker may announce on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceState {
    pub name: String,
    /// Administratively up with carrier (debounced by the speaker).
    pub up: bool,
    pub addresses: Vec<IpAddr>,
}

/// Addresses kept over all of a state's silence reports.
pub const MAX_REPORTED: usize = 8;

/// Owners named per state's silence reports.
pub const MAX_REPORTS: usize = 4;

/// Addresses a speaker can say it withdrew from; one told of more withdraws from every
/// election instead.
pub const MAX_WITHDRAWN: usize = 8;

/// Addresses of `node` that the reporting speaker (next in line for them) probed and heard
/// no answer for, several times in a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilentReport {
    pub node: String,
    pub addresses: Vec<IpAddr>,
    /// More of `node`'s addresses are silent than listed.
    pub more: bool,
}

/// What one speaker says of its node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub interfaces: Vec<InterfaceState>,
    /// Owners this speaker found silent (answer verification).
    pub silent: Vec<SilentReport>,
    /// Addresses this speaker withdrew from after being reported silent.
    pub withdrawn: Vec<IpAddr>,
}

impl NodeState {
    /// The state with at most [`MAX_INTERFACES`] interfaces and [`MAX_ADDRESSES`] addresses in
    /// all (the first interfaces' first), sorted (so equal states compare equal).
    pub fn bounded(mut self) -> Self {
        self.interfaces.sort_by(|a, b| a.name.cmp(&b.name));
        self.interfaces.truncate(MAX_INTERFACES);
        let mut room = MAX_ADDRESSES;
        for i in &mut self.interfaces {
            i.name.truncate(15);
            i.addresses.sort();
            i.addresses.truncate(room);
            room -= i.addresses.len();
        }
        self.silent.sort_by(|a, b| a.node.cmp(&b.node));
        self.silent.truncate(MAX_REPORTS);
        let mut room = MAX_REPORTED;
        for r in &mut self.silent {
            r.addresses.sort();
            if r.addresses.len() > room {
                r.addresses.truncate(room);
                r.more = true;
            }
            room -= r.addresses.len();
        }
        self.withdrawn.sort();
        self.withdrawn.truncate(MAX_WITHDRAWN);
        self
    }

    /// Drops one piece of the state, least needed first (a silence report, the last owner's;
    /// an interface's address; a withdrawn address), to fit a datagram; `false` when nothing
    /// is left to drop. (A report dropped is found again and sent once there is room.)
    pub fn shed_one(&mut self) -> bool {
        if self.silent.pop().is_some() {
            return true;
        }
        if let Some(i) = self
            .interfaces
            .iter_mut()
            .rev()
            .find(|i| !i.addresses.is_empty())
        {
            i.addresses.pop();
            return true;
        }
        self.withdrawn.pop().is_some()
    }

    /// The names of the interfaces whose link is up.
    pub fn up_interfaces(&self) -> impl Iterator<Item = &str> {
        self.interfaces
            .iter()
            .filter(|i| i.up)
            .map(|i| i.name.as_str())
    }
}

/// A speaker process: its node name and random gossip incarnation.
pub type Process = (String, u64);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Item {
    node: String,
    incarnation: u64,
    seq: u64,
    state: NodeState,
}

/// The dissemination key of an item: the process and the sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemKey {
    process: Process,
    seq: u64,
}

impl Invalidates for ItemKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.process == other.process && self.seq >= other.seq
    }
}

/// Why a received item was dropped.
#[derive(Debug, thiserror::Error)]
#[error("undecodable node state")]
pub struct StateError(#[from] postcard::Error);

/// The newest state of each speaker process heard, shared between foca's handler and the core.
#[derive(Debug, Default)]
pub struct StateBook {
    states: BTreeMap<Process, (u64, NodeState)>,
    /// Bumped by every insert and removal, so a reader can tell nothing changed without copying.
    version: u64,
}

impl StateBook {
    /// The state of each of `live` (processes) that has said one, by node name.
    pub fn states_of<'a>(
        &self,
        live: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> BTreeMap<String, NodeState> {
        live.into_iter()
            .filter_map(|(node, incarnation)| {
                let (_, state) = self.states.get(&(node.to_owned(), incarnation))?;
                Some((node.to_owned(), state.clone()))
            })
            .collect()
    }

    /// Forgets what a process said (it was declared down).
    pub fn forget(&mut self, node: &str, incarnation: u64) {
        if self
            .states
            .remove(&(node.to_owned(), incarnation))
            .is_some()
        {
            self.version += 1;
        }
    }

    /// Changes with every insert and removal.
    pub fn version(&self) -> u64 {
        self.version
    }
}

/// foca's custom broadcast handler over the shared [`StateBook`].
#[derive(Debug, Clone, Default)]
pub struct StateHandler(pub Arc<Mutex<StateBook>>);

impl StateHandler {
    /// The encoded item for process `(node, incarnation)`'s `state`, its `seq`-th.
    pub fn encode(node: &str, incarnation: u64, seq: u64, state: &NodeState) -> Vec<u8> {
        let item = Item {
            node: node.to_owned(),
            incarnation,
            seq,
            state: state.clone(),
        };
        // Encoding into a Vec cannot fail for these plain types.
        postcard::to_allocvec(&item).unwrap_or_default()
    }
}

impl BroadcastHandler<NodeId> for StateHandler {
    type Key = ItemKey;
    type Error = StateError;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&NodeId>,
    ) -> Result<Option<ItemKey>, StateError> {
        let item: Item = postcard::from_bytes(data)?;
        let process = (item.node, item.incarnation);
        // Nothing is left half-done under the lock (one lookup, one insert).
        let mut book = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((known, _)) = book.states.get(&process)
            && *known >= item.seq
        {
            return Ok(None);
        }
        let key = ItemKey {
            process: process.clone(),
            seq: item.seq,
        };
        book.states
            .insert(process, (item.seq, item.state.bounded()));
        book.version += 1;
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(up: bool) -> NodeState {
        NodeState {
            interfaces: vec![InterfaceState {
                name: "eth1".into(),
                up,
                addresses: vec!["192.0.2.11".parse().unwrap()],
            }],
            ..NodeState::default()
        }
    }

    fn heard(handler: &StateHandler, live: &[(&str, u64)]) -> BTreeMap<String, NodeState> {
        handler.0.lock().unwrap().states_of(live.iter().copied())
    }

    #[test]
    fn a_newer_sequence_replaces_an_older_one_and_an_older_one_is_dropped() {
        let mut handler = StateHandler::default();
        let v1 = StateHandler::encode("node-a", 7, 1, &state(true));
        let v2 = StateHandler::encode("node-a", 7, 2, &state(false));
        assert!(handler.receive_item(&v1, None).unwrap().is_some());
        assert!(handler.receive_item(&v2, None).unwrap().is_some());
        // Old news, and the same news again: not disseminated further, not stored.
        assert!(handler.receive_item(&v1, None).unwrap().is_none());
        assert!(handler.receive_item(&v2, None).unwrap().is_none());
        assert_eq!(heard(&handler, &[("node-a", 7)])["node-a"], state(false));
    }

    #[test]
    fn only_the_live_process_of_a_node_counts_whatever_the_sequences() {
        let mut handler = StateHandler::default();
        // The old process said a lot; the restarted one (another random incarnation) starts
        // from 0 and is the one alive.
        let old = StateHandler::encode("node-a", 7, 900, &state(false));
        let new = StateHandler::encode("node-a", 3, 0, &state(true));
        assert!(handler.receive_item(&old, None).unwrap().is_some());
        assert!(handler.receive_item(&new, None).unwrap().is_some());
        assert_eq!(heard(&handler, &[("node-a", 3)])["node-a"], state(true));
        assert_eq!(heard(&handler, &[("node-a", 7)])["node-a"], state(false));
        handler.0.lock().unwrap().forget("node-a", 7);
        assert!(heard(&handler, &[("node-a", 7)]).is_empty());
        // A process that said nothing yet has no state.
        assert!(heard(&handler, &[("node-b", 1)]).is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut handler = StateHandler::default();
        assert!(handler.receive_item(&[0xff; 7], None).is_err());
        assert!(handler.receive_item(&[], None).is_err());
    }

    #[test]
    fn the_newer_key_invalidates_the_older_of_the_same_node_only() {
        let key = |node: &str, seq| ItemKey {
            process: (node.into(), 1),
            seq,
        };
        assert!(key("a", 2).invalidates(&key("a", 1)));
        assert!(!key("a", 1).invalidates(&key("a", 2)));
        assert!(!key("a", 2).invalidates(&key("b", 1)));
    }

    #[test]
    fn a_bounded_state_fits_a_gossip_datagram() {
        let long = "x".repeat(15);
        let state = NodeState {
            interfaces: (0..40)
                .map(|i| InterfaceState {
                    name: format!("{long}{i}"),
                    up: true,
                    addresses: (0..20)
                        .map(|a| format!("2001:db8::{i}:{a}").parse().unwrap())
                        .collect(),
                })
                .collect(),
            ..NodeState::default()
        }
        .bounded();
        assert_eq!(state.interfaces.len(), MAX_INTERFACES);
        let addresses: usize = state.interfaces.iter().map(|i| i.addresses.len()).sum();
        assert_eq!(addresses, MAX_ADDRESSES);
        let encoded = StateHandler::encode(&"n".repeat(253), u64::MAX, u64::MAX, &state);
        assert!(encoded.len() <= MAX_ITEM_BYTES, "{}", encoded.len());
    }

    /// Silence reports and withdrawals are bounded, and a state too large for a datagram sheds
    /// reports first and withdrawals last until it fits.
    #[test]
    fn reports_and_withdrawals_are_bounded_and_shed_to_fit() {
        let v6 = |i: usize| -> IpAddr { format!("2001:db8::{i:x}").parse().unwrap() };
        let state = NodeState {
            interfaces: (0..MAX_INTERFACES)
                .map(|i| InterfaceState {
                    name: format!("{}{i}", "x".repeat(13)),
                    up: true,
                    addresses: vec![v6(i)],
                })
                .collect(),
            silent: (0..6)
                .map(|n| SilentReport {
                    node: format!("node-{n}-{}", "y".repeat(200)),
                    addresses: (0..5).map(|a| v6(100 + n * 10 + a)).collect(),
                    more: false,
                })
                .collect(),
            withdrawn: (0..20).map(|i| v6(500 + i)).collect(),
        }
        .bounded();
        assert_eq!(state.silent.len(), MAX_REPORTS);
        let reported: usize = state.silent.iter().map(|r| r.addresses.len()).sum();
        assert_eq!(reported, MAX_REPORTED);
        assert!(state.silent.iter().any(|r| r.more));
        assert_eq!(state.withdrawn.len(), MAX_WITHDRAWN);
        let mut fitted = state.clone();
        let name = "n".repeat(253);
        while StateHandler::encode(&name, u64::MAX, u64::MAX, &fitted).len() > MAX_ITEM_BYTES {
            assert!(fitted.shed_one(), "nothing left to shed");
        }
        assert_eq!(fitted.withdrawn, state.withdrawn, "withdrawals are kept");
        assert!(fitted.silent.len() < state.silent.len(), "reports go first");
        assert_eq!(fitted.silent[..], state.silent[..fitted.silent.len()]);
    }
}
