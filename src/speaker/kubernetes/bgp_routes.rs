//! What this node announces over BGP, read from the watch caches: the handled Services with
//! status addresses, their EndpointSlices and this node's Node object, handed to the pure
//! [`crate::advertise_bgp::node_routes`]. Worked out again whole when a pass saw a change (a
//! Service, an EndpointSlice, a Node or the config): BGP has no election, so no other node's
//! state enters.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::advertise_bgp::{BgpNode, BgpService, NodeRoutes, node_routes};
use crate::config::{Config, Labels};
use crate::election::EndpointStatus;

use super::cache::{NodeView, ServiceView, SliceView};

/// This node's routes, or `None` when the config has no BGP peer (nothing to work out).
pub fn routes(
    config: &Config,
    me: &str,
    node: Option<&NodeView>,
    services: &[Arc<ServiceView>],
    slices: &[Arc<SliceView>],
    lb_class: Option<&str>,
    ignore_exclude_lb: bool,
) -> Option<NodeRoutes> {
    if config.peers.is_empty() {
        return None;
    }
    let empty = Labels::new();
    let labels = node.and_then(NodeView::labels).unwrap_or(&empty);
    let status = node.and_then(NodeView::status);
    let this = BgpNode {
        name: me,
        labels,
        network_unavailable: status.is_some_and(|s| s.network_unavailable),
        exclude_from_external_lb: status.is_some_and(|s| s.exclude_from_external_lb),
    };
    // Per Service: whether an endpoint serves anywhere, and on this node.
    let mut serving: HashMap<&str, (bool, bool)> = HashMap::new();
    for slice in slices {
        let Some(service) = slice.service() else {
            continue;
        };
        let entry = serving.entry(service).or_default();
        for ep in slice.endpoints().iter().filter(|e| e.counts_for_local()) {
            entry.0 = true;
            entry.1 |= on_node(ep, me);
        }
    }
    let handled: Vec<(&ServiceView, Labels)> = services
        .iter()
        .filter(|s| s.is_handled(lb_class) && !s.ips().is_empty())
        .map(|s| (&**s, s.labels()))
        .collect();
    let mut seen = HashSet::new();
    let inputs = handled
        .iter()
        .filter(|(s, _)| seen.insert(s.key()))
        .map(|(s, labels)| {
            let (anywhere, here) = serving.get(s.key()).copied().unwrap_or_default();
            BgpService {
                key: s.key(),
                ips: s.ips(),
                labels,
                local: s.is_local(),
                serving_here: here,
                serving_anywhere: anywhere,
            }
        });
    Some(node_routes(config, this, inputs, ignore_exclude_lb))
}

fn on_node(ep: &EndpointStatus, me: &str) -> bool {
    ep.node_name.as_deref() == Some(me)
}
