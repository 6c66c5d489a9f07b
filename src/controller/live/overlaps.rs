//! The cluster's own networks in the live controller: the nodes' addresses the allocator holds
//! (see `reconcile::node_holds`), and the Warnings and ConfigurationState condition about pools
//! overlapping a ServiceCIDR, a node's address or a Pod CIDR. `controller::networks` watches
//! the objects and hands them over through [`Context::set_networks`].

use std::collections::HashSet;
use std::time::Instant;

use super::{Context, State, may_write, pool_object_in};
use crate::config::overlap::{ClusterNetworks, NodeAddress, find_overlaps};
use crate::controller::decision::{PoolEvent, overlap_warnings};
use crate::controller::writes;

/// What the controller knows of the cluster's networks.
#[derive(Debug, Default)]
pub(super) struct NetworkState {
    /// `None` until the Node watch first listed (only while [`NetworkState::awaited`]).
    known: Option<ClusterNetworks>,
    /// Set by the running controller: no allocation before the nodes are known. Tests of the
    /// reconcile edge that never watch Nodes leave it unset.
    awaited: bool,
    /// The overlap Warnings this leader recorded, each once while it holds.
    pub(super) recorded: HashSet<PoolEvent>,
}

impl NetworkState {
    /// The nodes' own addresses, or `None` while they are awaited and not listed yet.
    pub(super) fn node_addresses(&self) -> Option<Vec<NodeAddress>> {
        match &self.known {
            Some(networks) => Some(networks.node_addresses()),
            None if self.awaited => None,
            None => Some(Vec::new()),
        }
    }
}

impl Context {
    /// The running controller watches Nodes: nothing is allocated before they are first listed.
    pub fn await_networks(&self) {
        self.lock().networks.awaited = true;
    }

    /// The cluster's networks changed (or were first listed).
    pub fn set_networks(&self, networks: ClusterNetworks) {
        let mut state = self.lock();
        if state.networks.known.as_ref() == Some(&networks) {
            return;
        }
        let first = state.networks.known.is_none();
        let addresses = networks.node_addresses();
        state.networks.known = Some(networks);
        if let Some(core) = state.core.as_mut() {
            core.set_node_addresses(addresses);
            let stats = core.pool_stats();
            self.publish_pools(&stats);
        }
        self.refresh_overlaps(&mut state);
        drop(state);
        if first {
            tracing::info!("nodes listed; allocation may start");
        }
        // Freed node addresses may let a waiting Service in; the first listing opens the gate.
        self.trigger_all();
    }

    /// The overlaps of the config in force with the networks: into the ConfigurationState
    /// (written on the next flush), and the Warnings (recorded by [`Context::publish_overlaps`]).
    pub(super) fn refresh_overlaps(&self, state: &mut State) {
        let messages: Vec<String> = match (&state.config, &state.networks.known) {
            (Some(config), Some(networks)) => find_overlaps(config, networks)
                .iter()
                .map(|o| o.message())
                .collect(),
            _ => Vec::new(),
        };
        if let Some(status) = state.status.as_mut()
            && status.overlaps != messages
        {
            status.overlaps = messages;
            self.status_due.notify_one();
        }
        self.overlaps_due.notify_one();
    }

    /// Waits until overlap Warnings may be due.
    pub async fn overlaps_due(&self) {
        self.overlaps_due.notified().await;
    }

    /// Records a Warning on each pool for every overlap not recorded yet (leader only; a pool
    /// whose object is not known yet is recorded once it is). An overlap that goes away is
    /// forgotten, so it is recorded again if it comes back.
    pub async fn publish_overlaps(&self) {
        let due = {
            let mut state = self.lock();
            if !may_write(&state, Instant::now()) {
                return;
            }
            let current = match (&state.config, &state.networks.known) {
                (Some(config), Some(networks)) => overlap_warnings(config, networks),
                _ => Vec::new(),
            };
            state.networks.recorded.retain(|e| current.contains(e));
            let mut due = Vec::new();
            for e in current {
                if state.networks.recorded.contains(&e) {
                    continue;
                }
                if let Some(reference) = pool_object_in(&state, &e.pool) {
                    state.networks.recorded.insert(e.clone());
                    due.push((e, reference));
                }
            }
            due
        };
        for (e, reference) in due {
            tracing::warn!(pool = %e.pool, reason = %e.event.reason, "{}", e.event.message);
            if !self.is_leading() {
                return;
            }
            let event = std::slice::from_ref(&e.event);
            writes::publish_events(&self.client, &self.reporter, &reference, event).await;
        }
    }
}
