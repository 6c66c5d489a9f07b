//! Nodes' own addresses in a pool are never handed out.
//!
//! A pool may hold a node's InternalIP or ExternalIP (MetalLB tried refusing such pools and
//! reverted it: the user decides). Handing that address to a Service would make the speaker
//! answer ARP/NDP for the node's own address, so each one is held in the allocator as in use,
//! under a key no Service can have (`#` is not allowed in names), like the addresses foreign
//! Services show (`foreign.rs`); the rest of the pool stays usable. A Service requesting one is
//! refused with the node named ([`Core::describe`]).
//!
//! The holds are taken after ours and the foreign ones at the startup rebuild, and again on
//! every config load and every change of the nodes' addresses. A Service of ours that already
//! shows a node's address keeps it (nothing is taken away); the hold is taken once it lets go.

use std::collections::BTreeMap;

use super::{Core, reservation};
use crate::config::overlap::NodeAddress;
use crate::ipam::{AllocError, ServiceKey};

/// The nodes' addresses and which of them the allocator holds.
#[derive(Debug, Clone, Default)]
pub(super) struct NodeHolds {
    /// Every node's own addresses, sorted (from [`Core::set_node_addresses`]).
    wanted: Vec<NodeAddress>,
    /// The allocator keys holding them, each with the address it holds (the first node listed
    /// for an address two nodes share).
    held: BTreeMap<ServiceKey, NodeAddress>,
    /// Some address is held by a Service of ours: tried again when one lets go.
    blocked: bool,
}

fn hold_key(address: &NodeAddress) -> ServiceKey {
    ServiceKey::from(format!("#node/{}", address.ip))
}

impl Core {
    /// The nodes' own addresses changed (or were first listed): held from now on, those no
    /// longer listed freed.
    pub fn set_node_addresses(&mut self, mut addresses: Vec<NodeAddress>) {
        addresses.sort();
        addresses.dedup();
        if self.nodes.wanted == addresses {
            return;
        }
        self.nodes.wanted = addresses;
        self.rehold_nodes();
    }

    /// Frees every node hold and takes them again (pools or node addresses changed). Before the
    /// startup rebuild nothing is held: the rebuild takes them after ours.
    pub(super) fn rehold_nodes(&mut self) {
        for key in std::mem::take(&mut self.nodes.held).into_keys() {
            self.allocator.release(&key);
        }
        if self.synced {
            self.hold_nodes();
        }
    }

    /// Takes the holds not taken yet.
    pub(super) fn hold_nodes(&mut self) {
        let mut blocked = false;
        for address in self.nodes.wanted.clone() {
            let key = hold_key(&address);
            if self.nodes.held.contains_key(&key) {
                continue;
            }
            match self
                .allocator
                .assign(&key, &reservation(&[address.ip]), &[address.ip])
            {
                Ok(_) => {
                    self.nodes.held.insert(key, address);
                }
                Err(AllocError::Conflict { holder, .. }) if !self.is_hold(&holder) => {
                    blocked = true;
                }
                // Outside every pool, an address the pool never hands out (avoid-buggy-ips),
                // or held as a foreign Service's already: nobody gets it anyway.
                Err(_) => {}
            }
        }
        self.nodes.blocked = blocked;
    }

    /// An address of ours may have been freed: takes the node holds one of ours blocked.
    pub(super) fn retry_blocked_nodes(&mut self) {
        if self.nodes.blocked {
            self.hold_nodes();
        }
    }

    /// Whether `key` is an allocator key holding a node's address or a foreign Service's.
    pub(super) fn is_hold(&self, key: &ServiceKey) -> bool {
        self.nodes.held.contains_key(key) || self.is_foreign_hold(key)
    }

    /// The node whose address `key` holds, if it is a node hold.
    pub(super) fn node_hold(&self, key: &ServiceKey) -> Option<&NodeAddress> {
        self.nodes.held.get(key)
    }
}

#[cfg(test)]
#[path = "node_holds_tests.rs"]
mod tests;
