//! This node's links and the other nodes' as both speakers' passes read them: its own
//! usable interfaces rescanned on every pass and at once on a netlink change, debounced
//! (`speaker::link_state`), published through gossip when they change; the others' from the
//! states gossip carries. With gossip off only this node's own are known: the election assumes
//! every other node has every interface with its link.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{info, warn};

use crate::gossip::GossipHandle;
use crate::gossip::address_set::AddressSet;
use crate::gossip::node_state::{InterfaceState, NodeState, SilentReport};
use crate::layer2::iface::{ExcludePatterns, carrier, discover};
use crate::layer2::links::watch_links;
use crate::layer2::sys::interface_addresses;
use crate::speaker::handover::Claimed;
use crate::speaker::link_state::{LinkDebounce, node_state};

pub struct OwnLinks {
    debounce: LinkDebounce,
    events: Option<watch::Receiver<u64>>,
    states: Option<watch::Receiver<BTreeMap<String, NodeState>>>,
    published: Option<NodeState>,
    /// The interfaces' addresses, and the link event count they were read at: read again only
    /// after a link or address change (every pass without the netlink watch).
    addresses: Option<(u64, Vec<(String, IpAddr)>)>,
    /// Answer verification's part of the state: silence reports, withdrawn addresses.
    verification: (Vec<SilentReport>, Vec<IpAddr>),
    /// The placement's part: the addresses this node answers and those pending.
    claims: (AddressSet, AddressSet),
}

impl OwnLinks {
    /// Starts the netlink wake-up (without it, the passes still rescan on every wake).
    pub fn new(delay: Duration, membership: Option<&GossipHandle>) -> Self {
        let events = match watch_links() {
            Ok(rx) => Some(rx),
            Err(e) => {
                warn!(error = %e, "cannot watch link changes; interfaces are rescanned on every pass only");
                None
            }
        };
        Self {
            debounce: LinkDebounce::new(delay),
            events,
            states: membership.map(GossipHandle::node_states),
            published: None,
            addresses: None,
            verification: (Vec::new(), Vec::new()),
            claims: (AddressSet::default(), AddressSet::default()),
        }
    }

    /// Rescans this node's usable interfaces and returns those it elects itself on (counted up
    /// and out of their hold; `None` when they cannot be listed: what was known stays);
    /// publishes the node's state (every interface counted up) when it changed.
    pub async fn refresh(
        &mut self,
        excludes: &ExcludePatterns,
        membership: Option<&GossipHandle>,
        now: Instant,
    ) -> Option<BTreeSet<String>> {
        let found = match discover(excludes) {
            Ok(found) => found,
            Err(e) => {
                warn!(error = %e, "cannot list network interfaces");
                return None;
            }
        };
        // Carrier that cannot be read (a driver without it) counts as present.
        let raw: BTreeMap<String, bool> = found
            .iter()
            .map(|i| (i.name.clone(), carrier(&i.name).unwrap_or(true)))
            .collect();
        let up = self.debounce.observe(&raw, now).clone();
        let electable = self.debounce.electable();
        if let Some(gossip) = membership {
            let seen = self.events.as_ref().map(|rx| *rx.borrow());
            let stale = match (&self.addresses, seen) {
                (Some((at, _)), Some(now_at)) => *at != now_at,
                _ => true,
            };
            if stale {
                let read = interface_addresses().unwrap_or_else(|e| {
                    warn!(error = %e, "cannot list interface addresses");
                    Vec::new()
                });
                self.addresses = Some((seen.unwrap_or_default(), read));
            }
            let addresses = self.addresses.as_ref().map_or(&[][..], |(_, a)| a);
            let usable: BTreeSet<String> = raw.keys().cloned().collect();
            let mut state = node_state(&usable, &up, addresses);
            (state.silent, state.withdrawn) = self.verification.clone();
            (state.answering, state.pending) = self.claims.clone();
            let state = state.bounded();
            if self.published.as_ref() != Some(&state) {
                let (with_link, without): (Vec<_>, Vec<_>) =
                    state.interfaces.iter().partition(|i| i.up);
                let names = |list: Vec<&InterfaceState>| -> Vec<String> {
                    list.into_iter().map(|i| i.name.clone()).collect()
                };
                info!(up = ?names(with_link), down = ?names(without),
                    "interface state sent to the other speakers");
                gossip.publish_state(state.clone()).await;
                self.published = Some(state);
            }
        }
        Some(electable)
    }

    /// Publishes answer verification's part of the state (silence reports, withdrawn
    /// addresses) and the placement's (claims) when they changed. Called after the owned set
    /// went to the announcer, so an address this node withdrew from or released is no longer
    /// answered here before the others hear.
    pub async fn publish_news(
        &mut self,
        membership: Option<&GossipHandle>,
        verification: (Vec<SilentReport>, Vec<IpAddr>),
        claimed: Claimed,
    ) {
        let claims = (
            AddressSet::new(claimed.answering),
            AddressSet::new(claimed.pending),
        );
        if verification == self.verification && claims == self.claims {
            return;
        }
        self.verification = verification;
        self.claims = claims;
        if let (Some(gossip), Some(published)) = (membership, &self.published) {
            let mut state = published.clone();
            (state.silent, state.withdrawn) = self.verification.clone();
            (state.answering, state.pending) = self.claims.clone();
            let state = state.bounded();
            if *published != state {
                gossip.publish_state(state.clone()).await;
                self.published = Some(state);
            }
        }
    }

    /// Every live member's state, as gossip last said (empty with gossip off); the election
    /// reads the others' interfaces from it (`link_state::others_up`), answer verification
    /// their reports, withdrawals and addresses.
    pub fn states(&self) -> BTreeMap<String, NodeState> {
        self.states
            .as_ref()
            .map(|rx| rx.borrow().clone())
            .unwrap_or_default()
    }

    /// When a link in its debounce would count as down.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.debounce.next_deadline()
    }

    /// Resolves when a link or address changed here, or another node's state changed.
    pub async fn changed(&mut self) {
        let Self { events, states, .. } = self;
        tokio::select! {
            () = next_change(events) => {}
            () = next_change(states) => {}
        }
    }
}

/// Resolves on `rx`'s next change; never when there is none (a watch whose sender is gone is
/// dropped, so it cannot wake the pass in a loop).
async fn next_change<T>(rx: &mut Option<watch::Receiver<T>>) {
    if let Some(watch) = rx {
        if watch.changed().await.is_ok() {
            return;
        }
        *rx = None;
    }
    std::future::pending().await
}

/// What each other node claims, from the states gossip carries.
pub fn claims_of(states: &BTreeMap<String, NodeState>, me: &str) -> BTreeMap<String, Claimed> {
    states
        .iter()
        .filter(|(node, _)| *node != me)
        .map(|(node, s)| {
            let claimed = Claimed {
                answering: s.answering.iter().copied().collect(),
                pending: s.pending.iter().copied().collect(),
            };
            (node.clone(), claimed)
        })
        .collect()
}
