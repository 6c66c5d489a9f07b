//! The speaker's view of the cluster (pure): from Services, EndpointSlices, Nodes and the config
//! to "which node announces which service", using the election rules.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::advertise::{self, Cause, Health, Interfaces, PoolReach};
use crate::config::{Config, Labels};
use crate::election::{self, EligibilityOptions, Liveness, NodeStatus, TrafficScope};
use crate::k8s::endpoints::endpoints_by_service;
use crate::k8s::node::node_status;
use crate::k8s::service::{is_handled, is_local_policy, service_key, status_ips};

use super::ownership::Announcement;

/// Everything that is not announced, and why (so each is reported once, not silently dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unannounced {
    /// Services whose IPs are in a BGP pool: allocation works, announcement is not implemented.
    pub bgp: BTreeSet<String>,
    /// Services with a status IP in no pool of the current config.
    pub outside_pools: BTreeSet<String>,
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

/// Decides the announcer of every handled Service with layer-2 status IPs. `live` is the gossip
/// member set, or `None` when gossip is off (then Node `Ready` decides liveness). A Service is
/// announced only from the nodes its L2 advertisements select.
pub fn announcements(
    config: &Config,
    services: &[Service],
    slices: &[EndpointSlice],
    nodes: &[Node],
    live: Option<&BTreeSet<String>>,
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
    let liveness = match live {
        Some(live) => Liveness::Gossip(live),
        None => Liveness::NodeReady,
    };
    let eligibility = EligibilityOptions {
        ignore_exclude_lb: options.ignore_exclude_lb,
    };
    let known = BTreeMap::new();
    let mut out = Vec::new();
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
        let with_endpoint;
        let scope = if is_local_policy(svc) {
            with_endpoint = election::local_endpoint_nodes(
                endpoints.get(&key).map(Vec::as_slice).unwrap_or_default(),
            );
            TrafficScope::Local(&with_endpoint)
        } else {
            TrafficScope::Cluster
        };
        let health = Health {
            nodes: &statuses,
            liveness,
            scope,
            options: eligibility,
            known_interfaces: &known,
        };
        let decision = advertise::decide(&ips, &reach, health);
        if let Some(cause) = decision.cause {
            skipped.causes.insert(key.clone(), (first, cause));
        }
        if let Interfaces::Named(names) = decision.interfaces {
            skipped.interfaces.insert(key.clone(), names);
        }
        out.push(Announcement {
            service: key,
            ips,
            node: decision.node,
        });
    }
    (out, skipped)
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
