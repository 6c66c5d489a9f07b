//! This node's links as the election sees them (pure, time passed in): which usable interfaces
//! have their link, debounced so a blip does not move anything, and the state the speaker
//! gossips ([`NodeState`]).
//!
//! An interface counts as up at once when it is administratively up with carrier; it counts as
//! down only once it has been down (no carrier, administratively down, or deleted) for the whole
//! debounce delay (`--link-debounce-ms`, default 1 s). A 50 ms or 300 ms flap therefore never
//! reaches the election: the owner keeps its addresses through it and answers again when the
//! link returns. Every speaker reads the same debounced states (its own, and the others' through
//! gossip), so they agree on who may announce where.
//!
//! A link that comes back after counting as down is published as up at once, but this node
//! elects itself on it only [`UP_HOLD`] later: the node that answered meanwhile hears the new
//! state (one gossip round trip) and stops first, so the address has a short silence rather than
//! two answerers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::gossip::node_state::{InterfaceState, NodeState};

/// The default of `--link-debounce-ms`.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_secs(1);

/// How long after a link returns this node waits before electing itself on it: longer than the
/// gossip push of its new state takes to reach the others (one round trip on a LAN, and foca's
/// probe period of 200 ms carries it again).
pub const UP_HOLD: Duration = Duration::from_millis(250);

/// The debounced up/down state of this node's usable interfaces.
#[derive(Debug, Clone)]
pub struct LinkDebounce {
    delay: Duration,
    /// The interfaces counted up.
    up: BTreeSet<String>,
    /// When each interface still counted up was first seen down, during its debounce.
    down_since: BTreeMap<String, Instant>,
    /// When each interface that came back counted up again, during its [`UP_HOLD`].
    back_since: BTreeMap<String, Instant>,
    /// Whether anything was observed yet (at start nothing is "back": it is simply up).
    started: bool,
}

impl LinkDebounce {
    pub fn new(delay: Duration) -> Self {
        Self {
            delay,
            up: BTreeSet::new(),
            down_since: BTreeMap::new(),
            back_since: BTreeMap::new(),
            started: false,
        }
    }

    /// Feeds what the interfaces show at `now` (name → has its link); an interface absent from
    /// `raw` is down (deleted, or no longer usable). Returns the interfaces counted up.
    pub fn observe(&mut self, raw: &BTreeMap<String, bool>, now: Instant) -> &BTreeSet<String> {
        for (name, &up) in raw {
            if up {
                self.down_since.remove(name);
                if self.up.insert(name.clone()) && self.started {
                    self.back_since.insert(name.clone(), now);
                }
            }
        }
        self.started = true;
        self.back_since
            .retain(|name, since| self.up.contains(name) && now < *since + UP_HOLD);
        let down: Vec<String> = self
            .up
            .iter()
            .filter(|name| !raw.get(*name).copied().unwrap_or(false))
            .cloned()
            .collect();
        for name in down {
            let since = *self.down_since.entry(name.clone()).or_insert(now);
            if now.saturating_duration_since(since) >= self.delay {
                self.down_since.remove(&name);
                self.back_since.remove(&name);
                self.up.remove(&name);
            }
        }
        &self.up
    }

    /// The interfaces counted up (what this node publishes).
    pub fn up(&self) -> &BTreeSet<String> {
        &self.up
    }

    /// The interfaces this node elects itself on: those counted up, less those back for less
    /// than [`UP_HOLD`] as of the last [`Self::observe`].
    pub fn electable(&self) -> BTreeSet<String> {
        self.up
            .iter()
            .filter(|name| !self.back_since.contains_key(*name))
            .cloned()
            .collect()
    }

    /// When a link now in its debounce will count as down, unless it comes back first, or one
    /// back in its hold becomes electable.
    pub fn next_deadline(&self) -> Option<Instant> {
        let down = self.down_since.values().map(|since| *since + self.delay);
        let back = self.back_since.values().map(|since| *since + UP_HOLD);
        down.chain(back).min()
    }
}

/// The state this node gossips: each usable interface, whether it counts as up, and its
/// addresses (from `addresses`, as `(interface, address)`).
pub fn node_state(
    usable: &BTreeSet<String>,
    up: &BTreeSet<String>,
    addresses: &[(String, IpAddr)],
) -> NodeState {
    NodeState {
        interfaces: usable
            .iter()
            .map(|name| InterfaceState {
                name: name.clone(),
                up: up.contains(name),
                addresses: addresses
                    .iter()
                    .filter(|(on, _)| on == name)
                    .map(|(_, ip)| *ip)
                    .collect(),
            })
            .collect(),
        ..NodeState::default()
    }
    .bounded()
}

/// Each other node's interfaces with their link, from the states gossip carries (this node's
/// own left out: it knows its own first hand).
pub fn others_up(
    states: &BTreeMap<String, NodeState>,
    me: &str,
) -> BTreeMap<String, BTreeSet<String>> {
    states
        .iter()
        .filter(|(node, _)| node.as_str() != me)
        .map(|(node, state)| {
            (
                node.clone(),
                state.up_interfaces().map(str::to_owned).collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(list: &[(&str, bool)]) -> BTreeMap<String, bool> {
        list.iter().map(|(n, u)| (n.to_string(), *u)).collect()
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_link_counts_as_down_only_after_the_whole_debounce() {
        let t0 = Instant::now();
        let mut links = LinkDebounce::new(DEFAULT_DEBOUNCE);
        assert_eq!(
            *links.observe(&raw(&[("eth0", true), ("eth1", true)]), t0),
            set(&["eth0", "eth1"])
        );
        // eth1 loses carrier: still up during the debounce.
        let down = raw(&[("eth0", true), ("eth1", false)]);
        assert_eq!(*links.observe(&down, t0 + 10 * MS), set(&["eth0", "eth1"]));
        assert_eq!(links.next_deadline(), Some(t0 + 10 * MS + DEFAULT_DEBOUNCE));
        assert_eq!(
            *links.observe(&down, t0 + 1009 * MS),
            set(&["eth0", "eth1"])
        );
        assert_eq!(*links.observe(&down, t0 + 1010 * MS), set(&["eth0"]));
        assert_eq!(links.next_deadline(), None);
        // Back: published as up at once, electable after the hold.
        let back = t0 + 1011 * MS;
        let both = raw(&[("eth0", true), ("eth1", true)]);
        assert_eq!(*links.observe(&both, back), set(&["eth0", "eth1"]));
        assert_eq!(links.electable(), set(&["eth0"]));
        assert_eq!(links.next_deadline(), Some(back + UP_HOLD));
        links.observe(&both, back + UP_HOLD - MS);
        assert_eq!(links.electable(), set(&["eth0"]));
        links.observe(&both, back + UP_HOLD);
        assert_eq!(links.electable(), set(&["eth0", "eth1"]));
        assert_eq!(links.next_deadline(), None);
    }

    #[test]
    fn at_start_every_link_with_carrier_is_electable_at_once() {
        let mut links = LinkDebounce::new(DEFAULT_DEBOUNCE);
        links.observe(&raw(&[("eth0", true), ("eth1", false)]), Instant::now());
        assert_eq!(links.electable(), set(&["eth0"]));
        assert_eq!(links.next_deadline(), None);
    }

    #[test]
    fn flaps_shorter_than_the_debounce_never_count() {
        let t0 = Instant::now();
        let mut links = LinkDebounce::new(DEFAULT_DEBOUNCE);
        links.observe(&raw(&[("eth1", true)]), t0);
        for (start, length) in [(100, 50), (1000, 300), (2000, 999)] {
            let down_at = t0 + start * MS;
            let back_at = down_at + length * MS;
            assert!(
                links
                    .observe(&raw(&[("eth1", false)]), down_at)
                    .contains("eth1")
            );
            assert!(
                links
                    .observe(&raw(&[("eth1", false)]), back_at - MS)
                    .contains("eth1")
            );
            assert!(
                links
                    .observe(&raw(&[("eth1", true)]), back_at)
                    .contains("eth1")
            );
        }
        // A new flap starts its own debounce, not the first one's.
        let later = t0 + 5000 * MS;
        links.observe(&raw(&[("eth1", false)]), later);
        assert_eq!(links.next_deadline(), Some(later + DEFAULT_DEBOUNCE));
    }

    #[test]
    fn a_deleted_interface_goes_down_after_the_debounce_and_a_new_down_one_never_counts() {
        let t0 = Instant::now();
        let mut links = LinkDebounce::new(Duration::from_millis(300));
        links.observe(&raw(&[("eth1", true)]), t0);
        // Deleted, and a new interface that starts without carrier.
        let after = raw(&[("eth2", false)]);
        assert_eq!(*links.observe(&after, t0 + MS), set(&["eth1"]));
        assert!(links.observe(&after, t0 + 301 * MS).is_empty());
    }

    #[test]
    fn the_state_lists_every_usable_interface_with_its_link_and_addresses() {
        let usable = set(&["eth0", "eth1"]);
        let up = set(&["eth0"]);
        let addresses = vec![
            ("eth0".to_string(), "192.0.2.11".parse().unwrap()),
            ("eth1".to_string(), "198.51.100.11".parse().unwrap()),
            ("lo".to_string(), "127.0.0.1".parse().unwrap()),
        ];
        let state = node_state(&usable, &up, &addresses);
        assert_eq!(state.interfaces.len(), 2);
        assert!(state.interfaces[0].up && !state.interfaces[1].up);
        assert_eq!(
            state.interfaces[1].addresses,
            ["198.51.100.11".parse::<IpAddr>().unwrap()]
        );
        let states = BTreeMap::from([
            ("node-a".to_string(), state.clone()),
            ("me".to_string(), state),
        ]);
        assert_eq!(
            others_up(&states, "me"),
            BTreeMap::from([("node-a".to_string(), set(&["eth0"]))])
        );
    }
}
