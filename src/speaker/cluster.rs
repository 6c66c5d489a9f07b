//! The speaker's view of the cluster (pure): from Services, EndpointSlices, Nodes and the config
//! to "which node announces which service", using the election rules.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::config::{Config, Protocol};
use crate::election::{
    self, EligibilityOptions, EndpointStatus, Liveness, NodeStatus, TrafficScope,
};
use crate::k8s::endpoints::endpoints_by_service;
use crate::k8s::node::node_status;
use crate::k8s::service::{is_handled, is_local_policy, service_key, status_ips};

use super::ownership::{self, Announcement, Candidate};

/// Everything that is not announced, and why (so each is reported once, not silently dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unannounced {
    /// Services whose IPs are in a BGP pool: allocation works, announcement is not implemented.
    pub bgp: BTreeSet<String>,
    /// Services with a status IP in no pool of the current config.
    pub outside_pools: BTreeSet<String>,
    /// Services without a single ready or serving endpoint (MetalLB announces none of these).
    pub no_endpoints: BTreeSet<String>,
}

/// Settings that shape eligibility.
#[derive(Debug, Clone, Default)]
pub struct ViewOptions {
    pub lb_class: Option<String>,
    pub ignore_exclude_lb: bool,
}

/// Decides the announcer of every handled Service with layer-2 status IPs and at least one ready
/// or serving endpoint, among the nodes `liveness` keeps (the gossip members, or with gossip off
/// the Ready nodes running a speaker). An IP is layer-2 when the first pool of `config` holding it is; the
/// caller may append pools of earlier configs after the current ones (see
/// `Reconciler::reload_config`).
pub fn announcements(
    config: &Config,
    services: &[Service],
    slices: &[EndpointSlice],
    nodes: &[Node],
    liveness: Liveness<'_>,
    options: &ViewOptions,
) -> (Vec<Announcement>, Unannounced) {
    let statuses: Vec<NodeStatus> = nodes.iter().filter_map(node_status).collect();
    let endpoints = endpoints_by_service(slices);
    let eligibility = EligibilityOptions {
        ignore_exclude_lb: options.ignore_exclude_lb,
    };
    let mut candidates = Vec::new();
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
        let svc_endpoints = endpoints.get(&key).map(Vec::as_slice).unwrap_or_default();
        if !svc_endpoints.iter().any(EndpointStatus::counts_for_local) {
            skipped.no_endpoints.insert(key);
            continue;
        }
        let with_endpoint;
        let scope = if is_local_policy(svc) {
            with_endpoint = election::local_endpoint_nodes(svc_endpoints);
            TrafficScope::Local(&with_endpoint)
        } else {
            TrafficScope::Cluster
        };
        let eligible = election::eligible_nodes(&statuses, liveness, scope, eligibility);
        candidates.push(Candidate {
            service: key,
            ips,
            eligible: eligible.into_iter().map(str::to_owned).collect(),
        });
    }
    (ownership::elect(candidates), skipped)
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
