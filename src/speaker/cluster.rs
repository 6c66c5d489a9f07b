//! The speaker's view of the cluster (pure): from Services, EndpointSlices, Nodes and the config
//! to "which node announces which service", using the election rules.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::config::{Config, Protocol};
use crate::controller::service::{is_handled, service_key, status_ips};
use crate::election::{
    self, EXCLUDE_LB_LABEL, EligibilityOptions, EndpointStatus, Liveness, NodeStatus, TrafficScope,
};

/// Label EndpointSlices carry naming their Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The announcing decision for one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// `namespace/name`.
    pub service: String,
    /// Status IPs in layer-2 pools, in status order (the first decides the owner).
    pub ips: Vec<IpAddr>,
    /// The elected node, if any is eligible.
    pub node: Option<String>,
}

/// Everything that is not announced, and why (so each is reported once, not silently dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unannounced {
    /// Services whose IPs are in a BGP pool: allocation works, announcement is not implemented.
    pub bgp: BTreeSet<String>,
    /// Services with a status IP in no pool of the current config.
    pub outside_pools: BTreeSet<String>,
}

/// Settings that shape eligibility.
#[derive(Debug, Clone, Default)]
pub struct ViewOptions {
    pub lb_class: Option<String>,
    pub ignore_exclude_lb: bool,
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

fn is_local_policy(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.external_traffic_policy.as_deref())
        == Some("Local")
}

/// Endpoints of every Service, keyed `namespace/name`.
fn endpoints_by_service(slices: &[EndpointSlice]) -> BTreeMap<String, Vec<EndpointStatus>> {
    let mut map: BTreeMap<String, Vec<EndpointStatus>> = BTreeMap::new();
    for slice in slices {
        let Some(svc) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        let ns = slice.metadata.namespace.as_deref().unwrap_or("default");
        let entry = map.entry(format!("{ns}/{svc}")).or_default();
        for ep in &slice.endpoints {
            let cond = ep.conditions.as_ref();
            entry.push(EndpointStatus {
                node_name: ep.node_name.clone(),
                ready: cond.and_then(|c| c.ready),
                serving: cond.and_then(|c| c.serving),
            });
        }
    }
    map
}

/// Decides the announcer of every handled Service with layer-2 status IPs. `live` is the gossip
/// member set, or `None` when gossip is off (then Node `Ready` decides liveness).
pub fn announcements(
    config: &Config,
    services: &[Service],
    slices: &[EndpointSlice],
    nodes: &[Node],
    live: Option<&BTreeSet<String>>,
    options: &ViewOptions,
) -> (Vec<Announcement>, Unannounced) {
    let statuses: Vec<NodeStatus> = nodes.iter().filter_map(node_status).collect();
    let endpoints = endpoints_by_service(slices);
    let liveness = match live {
        Some(live) => Liveness::Gossip(live),
        None => Liveness::NodeReady,
    };
    let eligibility = EligibilityOptions {
        ignore_exclude_lb: options.ignore_exclude_lb,
    };
    let mut out = Vec::new();
    let mut skipped = Unannounced::default();
    for svc in services {
        if !is_handled(svc, options.lb_class.as_deref()) {
            continue;
        }
        let key = service_key(svc).to_string();
        let mut ips = Vec::new();
        for ip in status_ips(svc) {
            match config.address_pools.iter().find(|p| p.contains(ip)) {
                Some(pool) if pool.protocol == Protocol::Layer2 => ips.push(ip),
                Some(_) => {
                    skipped.bgp.insert(key.clone());
                }
                None => {
                    skipped.outside_pools.insert(key.clone());
                }
            }
        }
        if ips.is_empty() {
            continue;
        }
        let with_endpoint;
        let scope = if is_local_policy(svc) {
            with_endpoint = election::local_endpoint_nodes(
                endpoints.get(&key).map(Vec::as_slice).unwrap_or_default(),
            );
            TrafficScope::Local(&with_endpoint)
        } else {
            TrafficScope::Cluster
        };
        let eligible = election::eligible_nodes(&statuses, liveness, scope, eligibility);
        let node = election::service_owner(&ips, eligible.iter().copied()).map(str::to_owned);
        out.push(Announcement {
            service: key,
            ips,
            node,
        });
    }
    (out, skipped)
}

/// The IPs `me` announces, each with its service.
pub fn owned_by(me: &str, announcements: &[Announcement]) -> BTreeMap<IpAddr, String> {
    announcements
        .iter()
        .filter(|a| a.node.as_deref() == Some(me))
        .flat_map(|a| a.ips.iter().map(|ip| (*ip, a.service.clone())))
        .collect()
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
