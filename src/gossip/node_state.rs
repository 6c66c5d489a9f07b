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

use super::address_set::AddressSet;
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
    /// Under a placement policy that reads claims (`--sticky-ownership`, `--even-spread`):
    /// the addresses this speaker answers, and those it is about to answer.
    pub answering: AddressSet,
    pub pending: AddressSet,
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
    /// an interface's address; a withdrawn address; a pending claim; an answered one), to fit
    /// [`MAX_PARTS`] items; `false` when nothing is left to drop. (A report dropped is found
    /// again and sent once there is room.)
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
        self.withdrawn.pop().is_some() || self.pending.pop() || self.answering.pop()
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

/// One part of a state: the state is postcard-encoded, then cut into parts that each fit a
/// datagram; a state counts once all its parts arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Item {
    node: String,
    incarnation: u64,
    seq: u64,
    part: u16,
    parts: u16,
    bytes: Vec<u8>,
}

/// The most parts a state is cut into: at about 600 bytes each, some 38 KB: a node's claims
/// of about 38 000 neighbouring IPv4 addresses, but of only about 4 000 IPv6 addresses
/// scattered over a /64 (9 bytes each). A larger state sheds claims last (`shed_one`), and the
/// claims shed are then unknown to the other nodes (see the user guide's limits).
pub const MAX_PARTS: usize = 64;

/// The dissemination key of an item: the process, the sequence and the part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemKey {
    process: Process,
    seq: u64,
    part: u16,
}

impl Invalidates for ItemKey {
    /// A newer state replaces every part of an older one; a part of the same state, only
    /// itself.
    fn invalidates(&self, other: &Self) -> bool {
        self.process == other.process
            && (self.seq > other.seq || (self.seq == other.seq && self.part == other.part))
    }
}

/// Why a received item was dropped.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("undecodable node state")]
    Decode(#[from] postcard::Error),
    #[error("node state part {part} of {parts}")]
    Parts { part: u16, parts: u16 },
}

/// A state's sequence and the parts of it heard so far.
type Heard = (u64, Vec<Option<Vec<u8>>>);

/// The newest state of each speaker process heard, shared between foca's handler and the core.
#[derive(Debug, Default)]
pub struct StateBook {
    states: BTreeMap<Process, (u64, NodeState)>,
    /// The parts heard so far of a state newer than the stored one.
    partial: BTreeMap<Process, Heard>,
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
        self.partial.remove(&(node.to_owned(), incarnation));
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
    /// The encoded items (parts, each at most [`MAX_ITEM_BYTES`]) for process
    /// `(node, incarnation)`'s `state`, its `seq`-th.
    pub fn encode(node: &str, incarnation: u64, seq: u64, state: &NodeState) -> Vec<Vec<u8>> {
        // Encoding into a Vec cannot fail for these plain types.
        let whole = postcard::to_allocvec(state).unwrap_or_default();
        // Room for the item's own fields: the name, three varints and two lengths.
        let room = MAX_ITEM_BYTES.saturating_sub(node.len() + 32).max(64);
        let chunks: Vec<&[u8]> = if whole.is_empty() {
            vec![&[][..]]
        } else {
            whole.chunks(room).collect()
        };
        let parts = u16::try_from(chunks.len()).unwrap_or(u16::MAX);
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| {
                let item = Item {
                    node: node.to_owned(),
                    incarnation,
                    seq,
                    part: u16::try_from(i).unwrap_or(u16::MAX),
                    parts,
                    bytes: bytes.to_vec(),
                };
                postcard::to_allocvec(&item).unwrap_or_default()
            })
            .collect()
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
        let (part, parts) = (item.part, item.parts);
        if parts == 0 || part >= parts || usize::from(parts) > MAX_PARTS {
            return Err(StateError::Parts { part, parts });
        }
        let process = (item.node, item.incarnation);
        // Nothing is left half-done under the lock.
        let mut book = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((known, _)) = book.states.get(&process)
            && *known >= item.seq
        {
            return Ok(None);
        }
        let heard = book
            .partial
            .entry(process.clone())
            .or_insert_with(|| (item.seq, vec![None; usize::from(parts)]));
        if heard.0 > item.seq {
            return Ok(None);
        }
        if heard.0 < item.seq || heard.1.len() != usize::from(parts) {
            *heard = (item.seq, vec![None; usize::from(parts)]);
        }
        let slot = &mut heard.1[usize::from(part)];
        if slot.is_some() {
            return Ok(None);
        }
        *slot = Some(item.bytes);
        let key = ItemKey {
            process: process.clone(),
            seq: item.seq,
            part,
        };
        if heard.1.iter().any(Option::is_none) {
            return Ok(Some(key));
        }
        let whole: Vec<u8> = heard.1.iter().flatten().flatten().copied().collect();
        book.partial.remove(&process);
        let state: NodeState = postcard::from_bytes(&whole)?;
        book.states.insert(process, (item.seq, state.bounded()));
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
        let v1 = StateHandler::encode("node-a", 7, 1, &state(true)).remove(0);
        let v2 = StateHandler::encode("node-a", 7, 2, &state(false)).remove(0);
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
        let old = StateHandler::encode("node-a", 7, 900, &state(false)).remove(0);
        let new = StateHandler::encode("node-a", 3, 0, &state(true)).remove(0);
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
            part: 0,
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
        assert_eq!(encoded.len(), 1, "one part");
        assert!(encoded[0].len() <= MAX_ITEM_BYTES, "{}", encoded[0].len());
    }

    /// Silence reports and withdrawals are bounded, and a state too large for its parts sheds
    /// reports first and answered claims last until it fits.
    #[test]
    fn reports_and_withdrawals_are_bounded_and_shed_to_fit() {
        let v6 = |i: usize| -> IpAddr {
            std::net::Ipv6Addr::from((0x2001_0db8u128 << 96) | i as u128).into()
        };
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
            ..NodeState::default()
        }
        .bounded();
        assert_eq!(state.silent.len(), MAX_REPORTS);
        let reported: usize = state.silent.iter().map(|r| r.addresses.len()).sum();
        assert_eq!(reported, MAX_REPORTED);
        assert!(state.silent.iter().any(|r| r.more));
        assert_eq!(state.withdrawn.len(), MAX_WITHDRAWN);
        // Claims too many for every part: reports, interface addresses, withdrawals and
        // pending claims go before answered ones.
        let mut fitted = state.clone();
        fitted.pending = AddressSet::new((0..100).map(|i| v6(1_000_000 + i * 977)));
        fitted.answering = AddressSet::new((0..20_000).map(|i| v6(i * 7919)));
        let name = "n".repeat(253);
        while StateHandler::encode(&name, u64::MAX, u64::MAX, &fitted).len() > MAX_PARTS {
            assert!(fitted.shed_one(), "nothing left to shed");
        }
        assert!(fitted.silent.is_empty() && fitted.withdrawn.is_empty());
        assert!(fitted.pending.is_empty());
        assert!(fitted.answering.len() > 5_000, "{}", fitted.answering.len());
    }

    /// A state in several parts counts once every part arrived, in any order; a newer state's
    /// part drops the older one's parts.
    #[test]
    fn parts_are_put_back_together() {
        let v4 = |i: u32| IpAddr::V4((0xC000_0200 + i).into());
        let big = NodeState {
            answering: AddressSet::new((0..2000).map(|i| v4(i * 300))),
            ..state(true)
        };
        let parts = StateHandler::encode("node-a", 7, 1, &big);
        assert!(parts.len() > 2, "{}", parts.len());
        assert!(parts.iter().all(|p| p.len() <= MAX_ITEM_BYTES));
        let mut handler = StateHandler::default();
        for part in parts.iter().rev().skip(1) {
            assert!(handler.receive_item(part, None).unwrap().is_some());
            assert!(
                handler.receive_item(part, None).unwrap().is_none(),
                "a repeat"
            );
        }
        assert!(
            heard(&handler, &[("node-a", 7)]).is_empty(),
            "a part missing"
        );
        // A newer, smaller state replaces the half-heard one.
        let newer = StateHandler::encode("node-a", 7, 2, &state(false));
        assert!(handler.receive_item(&newer[0], None).unwrap().is_some());
        assert_eq!(heard(&handler, &[("node-a", 7)])["node-a"], state(false));
        assert!(
            handler.receive_item(&parts[0], None).unwrap().is_none(),
            "old"
        );
        // Parts out of range are errors.
        let mut bad = StateHandler::encode("node-b", 1, 1, &state(true)).remove(0);
        let at = bad.len() - 4; // part, parts, then the one-byte payload's length and byte
        bad[at] = 3;
        assert!(handler.receive_item(&bad, None).is_err());
    }

    /// 10 000 claims from one pool fit comfortably.
    #[test]
    fn ten_thousand_neighbouring_claims_fit() {
        let v4 = |i: u32| IpAddr::V4((0xC633_0000 + i).into());
        let state = NodeState {
            answering: AddressSet::new((0..30_000).filter(|i| i % 3 == 0).map(v4)),
            ..NodeState::default()
        };
        let parts = StateHandler::encode(&"n".repeat(253), u64::MAX, u64::MAX, &state);
        assert!(parts.len() <= MAX_PARTS / 2, "{}", parts.len());
    }
}
