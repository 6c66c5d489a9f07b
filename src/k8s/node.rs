//! What the speaker reads from a Node: its conditions, labels and out-of-service taint (for the
//! election) and the address its host-network speaker gossips on.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::Node;

use crate::election::{EXCLUDE_LB_LABEL, NodeStatus, OUT_OF_SERVICE_TAINT};

/// A node's name as cached objects hold it (endpoints, ServiceL2Status objects): one allocation
/// per node name the process has seen, not one per object (a cluster's objects name a few nodes
/// many thousands of times). The names are kept for the life of the process, as many as the
/// nodes ever named.
pub fn shared_name(name: &str) -> Arc<str> {
    static NAMES: Mutex<BTreeSet<Arc<str>>> = Mutex::new(BTreeSet::new());
    // Nothing is left half-done under the lock (one lookup, one insert).
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = names.get(name) {
        return known.clone();
    }
    let new: Arc<str> = Arc::from(name);
    names.insert(new.clone());
    new
}

fn condition(node: &Node, kind: &str) -> Option<bool> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status == "True")
}

/// What election needs to know about a Node.
pub fn node_status(node: &Node) -> Option<NodeStatus> {
    let name = node.metadata.name.clone()?;
    Some(NodeStatus {
        name,
        ready: condition(node, "Ready").unwrap_or(false),
        network_unavailable: condition(node, "NetworkUnavailable").unwrap_or(false),
        out_of_service: node
            .spec
            .as_ref()
            .and_then(|spec| spec.taints.as_ref())
            .is_some_and(|taints| taints.iter().any(|t| t.key == OUT_OF_SERVICE_TAINT)),
        exclude_from_external_lb: node
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(EXCLUDE_LB_LABEL)),
    })
}

/// The node's InternalIP (else first address): where its host-network speaker gossips.
pub fn node_address(node: &Node) -> Option<IpAddr> {
    let addresses = node.status.as_ref()?.addresses.as_ref()?;
    addresses
        .iter()
        .find(|a| a.type_ == "InternalIP")
        .or_else(|| addresses.first())
        .and_then(|a| a.address.parse().ok())
}
