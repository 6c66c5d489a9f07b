//! What the speaker reads from a Node: its conditions and labels (for the election) and the
//! address its host-network speaker gossips on.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Node;

use crate::election::{EXCLUDE_LB_LABEL, NodeStatus};

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
