//! The speaker's view of the cluster (pure): from Services, EndpointSlices, Nodes and the config
//! to "which node announces which service", using the election rules.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::advertise::{self, Cause, Health, Interfaces, PoolReach};
use crate::config::{Config, Labels};
use crate::election::{
    self, EligibilityOptions, EndpointStatus, Liveness, NodeStatus, TrafficScope,
};
use crate::k8s::endpoints::endpoints_by_service;
use crate::k8s::node::node_status;
use crate::k8s::service::{is_handled, is_local_policy, service_key, status_ips};

use super::ownership::{self, Announcement, Offer};

/// Everything that is not announced, and why (so each is reported once, not silently dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unannounced {
    /// Services whose IPs are in a BGP pool: allocation works, announcement is not implemented.
    pub bgp: BTreeSet<String>,
    /// Services with a status IP in no pool of the current config.
    pub outside_pools: BTreeSet<String>,
    /// Services without a single ready or serving endpoint (MetalLB announces none of these).
    pub no_endpoints: BTreeSet<String>,
    /// Services holding an IP that no node announces, with the cause and the first IP.
    pub causes: BTreeMap<String, (IpAddr, Cause)>,
    /// Services whose advertisements restrict the elected node to some interfaces.
    pub interfaces: BTreeMap<String, BTreeSet<String>>,
}

/// Settings that shape eligibility.
#[derive(Debug, Clone, Default)]
pub struct ViewOptions {
    pub lb_class: Option<String>,
    pub ignore_exclude_lb: bool,
}

/// Decides the announcer of every handled Service with layer-2 status IPs and at least one ready
/// or serving endpoint, among the nodes its L2 advertisements select that `liveness` keeps (the
/// gossip members, or with gossip off the Ready nodes running a speaker); Services sharing an
/// address are announced from one node ([`ownership::place`]). A Service's pool is the first
/// pool of `config` holding its first IP; the caller may append pools of earlier configs after
/// the current ones (see `Reconciler::adopt`). `known` holds the usable interfaces each node's
/// speaker published; a node absent from it is assumed to have every interface.
pub fn announcements(
    config: &Config,
    services: &[Service],
    slices: &[EndpointSlice],
    nodes: &[Node],
    liveness: Liveness<'_>,
    known: &BTreeMap<String, BTreeSet<String>>,
    options: &ViewOptions,
) -> (Vec<Announcement>, Unannounced) {
    let statuses: Vec<NodeStatus> = nodes.iter().filter_map(node_status).collect();
    let empty = Labels::new();
    let node_labels: Vec<(&str, &Labels)> = nodes
        .iter()
        .filter_map(|n| {
            let name = n.metadata.name.as_deref()?;
            Some((name, n.metadata.labels.as_ref().unwrap_or(&empty)))
        })
        .collect();
    let endpoints = endpoints_by_service(slices);
    let eligibility = EligibilityOptions {
        ignore_exclude_lb: options.ignore_exclude_lb,
    };
    let mut offers = Vec::new();
    let mut skipped = Unannounced::default();
    for svc in services {
        if !is_handled(svc, options.lb_class.as_deref()) {
            continue;
        }
        let key = service_key(svc).to_string();
        let ips: Vec<IpAddr> = status_ips(svc);
        let Some(first) = ips.first().copied() else {
            continue;
        };
        let labels = svc.metadata.labels.as_ref().unwrap_or(&empty);
        let reach = match advertise::pool_reach(config, first, labels, &node_labels) {
            PoolReach::Layer2(reach) => reach,
            PoolReach::OutsidePools => {
                skipped.outside_pools.insert(key);
                continue;
            }
            PoolReach::Bgp { pool } => {
                skipped.bgp.insert(key.clone());
                skipped.causes.insert(key, (first, Cause::Bgp { pool }));
                continue;
            }
            PoolReach::NoAdvertisement { pool } => {
                skipped
                    .causes
                    .insert(key, (first, Cause::NoAdvertisement { pool }));
                continue;
            }
        };
        let svc_endpoints = endpoints.get(&key).map(Vec::as_slice).unwrap_or_default();
        if !svc_endpoints.iter().any(EndpointStatus::counts_for_local) {
            skipped.no_endpoints.insert(key.clone());
            skipped
                .causes
                .insert(key, (first, Cause::NoServingEndpoint));
            continue;
        }
        let with_endpoint;
        let scope = if is_local_policy(svc) {
            with_endpoint = election::local_endpoint_nodes(svc_endpoints);
            TrafficScope::Local(&with_endpoint)
        } else {
            TrafficScope::Cluster
        };
        let health = Health {
            nodes: &statuses,
            liveness,
            scope,
            options: eligibility,
            known_interfaces: known,
        };
        let eligible = advertise::candidates(&reach, health);
        offers.push(Offer {
            service: key,
            ips,
            reach,
            eligible,
        });
    }
    let mut out = Vec::with_capacity(offers.len());
    for placed in ownership::place(offers, known) {
        let decision = placed.decision;
        if let (Some(cause), Some(first)) = (decision.cause, placed.ips.first()) {
            skipped
                .causes
                .insert(placed.service.clone(), (*first, cause));
        }
        if let Interfaces::Named(names) = decision.interfaces {
            skipped.interfaces.insert(placed.service.clone(), names);
        }
        out.push(Announcement {
            service: placed.service,
            ips: placed.ips,
            node: decision.node,
        });
    }
    (out, skipped)
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
