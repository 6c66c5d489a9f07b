//! The speaker's view of the cluster (pure): from Services, EndpointSlices, Nodes and the config
//! to "which node announces which service", using the election rules.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use std::sync::Arc;

use crate::advertise::{self, Cause, Health, Interfaces, PoolReach};
use crate::config::{Config, Labels};
use crate::election::{
    self, EligibilityOptions, EndpointStatus, Liveness, NodeStatus, TrafficScope,
};

use super::cache::{NodeView, ServiceView, SliceView};
use super::ownership::{self, Announcement, Offer, Placed};

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

/// What every Service's decision reads besides the Service and its endpoints, prepared once per
/// pass.
pub struct Context<'a> {
    pub config: &'a Config,
    pub nodes: &'a [NodeStatus],
    pub node_labels: &'a [(&'a str, &'a Labels)],
    pub liveness: Liveness<'a>,
    /// The usable interfaces each node's speaker published; a node absent is assumed to have
    /// every interface.
    pub known: &'a BTreeMap<String, BTreeSet<String>>,
    pub options: &'a ViewOptions,
}

/// The Nodes as [`Context`] reads them.
pub fn node_inputs(nodes: &[Arc<NodeView>]) -> (Vec<NodeStatus>, Vec<(&str, &Labels)>) {
    static EMPTY: Labels = Labels::new();
    let statuses = nodes.iter().filter_map(|n| n.status().cloned()).collect();
    let labels = nodes
        .iter()
        .filter_map(|n| Some((n.name()?, n.labels().unwrap_or(&EMPTY))))
        .collect();
    (statuses, labels)
}

/// Why a handled Service with status IPs is not offered to the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Its IP is in a BGP pool: allocation works, announcement is not implemented.
    Bgp(Cause),
    /// Its first IP is in no pool of the config.
    OutsidePools,
    /// No L2 advertisement selects its pool.
    NoAdvertisement(Cause),
    /// Not a single ready or serving endpoint (MetalLB announces none of these).
    NoEndpoints,
}

/// One Service before the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evaluated {
    Offered(Offer),
    Skipped {
        service: String,
        ips: Vec<IpAddr>,
        skip: Skip,
    },
}

impl Evaluated {
    pub fn ips(&self) -> &[IpAddr] {
        match self {
            Evaluated::Offered(o) => &o.ips,
            Evaluated::Skipped { ips, .. } => ips,
        }
    }
}

/// One Service's part in the election: offered with the nodes that may announce it, or why it
/// is not; `None` when this speaker does not announce it at all (not handled, or no status IP
/// yet). `slices` are the Service's EndpointSlices.
pub fn evaluate(
    ctx: &Context<'_>,
    svc: &ServiceView,
    slices: &[Arc<SliceView>],
) -> Option<Evaluated> {
    if !svc.is_handled(ctx.options.lb_class.as_deref()) {
        return None;
    }
    let first = svc.ips().first().copied()?;
    let service = svc.key();
    let ips = svc.ips().to_vec();
    let skipped = |skip| {
        Some(Evaluated::Skipped {
            service: service.clone(),
            ips: ips.clone(),
            skip,
        })
    };
    static EMPTY: Labels = Labels::new();
    let labels = svc.labels().unwrap_or(&EMPTY);
    let reach = match advertise::pool_reach(ctx.config, first, labels, ctx.node_labels) {
        PoolReach::Layer2(reach) => reach,
        PoolReach::OutsidePools => return skipped(Skip::OutsidePools),
        PoolReach::Bgp { pool } => return skipped(Skip::Bgp(Cause::Bgp { pool })),
        PoolReach::NoAdvertisement { pool } => {
            return skipped(Skip::NoAdvertisement(Cause::NoAdvertisement { pool }));
        }
    };
    let endpoints = || slices.iter().flat_map(|s| s.endpoints());
    if !endpoints().any(EndpointStatus::counts_for_local) {
        return skipped(Skip::NoEndpoints);
    }
    let with_endpoint;
    let scope = if svc.is_local() {
        with_endpoint = election::local_endpoint_nodes(endpoints());
        TrafficScope::Local(&with_endpoint)
    } else {
        TrafficScope::Cluster
    };
    let health = Health {
        nodes: ctx.nodes,
        liveness: ctx.liveness,
        scope,
        options: EligibilityOptions {
            ignore_exclude_lb: ctx.options.ignore_exclude_lb,
        },
        known_interfaces: ctx.known,
    };
    let eligible = advertise::candidates(&reach, health);
    Some(Evaluated::Offered(Offer {
        service,
        ips,
        reach,
        eligible,
    }))
}

/// Elects the offered Services ([`ownership::place`]; so the set must hold every Service that
/// shares an address with one in it) and passes the skipped ones through, without a node.
pub fn settle(
    evaluated: Vec<Evaluated>,
    known: &BTreeMap<String, BTreeSet<String>>,
) -> (Vec<Placed>, Vec<Evaluated>) {
    let mut offers = Vec::new();
    let mut skipped = Vec::new();
    for e in evaluated {
        match e {
            Evaluated::Offered(o) => offers.push(o),
            skip @ Evaluated::Skipped { .. } => skipped.push(skip),
        }
    }
    (ownership::place(offers, known), skipped)
}

impl Unannounced {
    /// Records a Service that was not offered.
    pub fn skipped(&mut self, service: &str, ips: &[IpAddr], skip: &Skip) {
        let Some(first) = ips.first().copied() else {
            return;
        };
        let key = service.to_owned();
        match skip {
            Skip::OutsidePools => {
                self.outside_pools.insert(key);
            }
            Skip::Bgp(cause) => {
                self.bgp.insert(key.clone());
                self.causes.insert(key, (first, cause.clone()));
            }
            Skip::NoAdvertisement(cause) => {
                self.causes.insert(key, (first, cause.clone()));
            }
            Skip::NoEndpoints => {
                self.no_endpoints.insert(key.clone());
                self.causes.insert(key, (first, Cause::NoServingEndpoint));
            }
        }
    }

    /// Records an elected Service's cause (when nobody may announce it) and interfaces.
    pub fn placed(&mut self, placed: &Placed) {
        let decision = &placed.decision;
        if let (Some(cause), Some(first)) = (&decision.cause, placed.ips.first()) {
            self.causes
                .insert(placed.service.clone(), (*first, cause.clone()));
        }
        if let Interfaces::Named(names) = &decision.interfaces {
            self.interfaces
                .insert(placed.service.clone(), names.clone());
        }
    }
}

/// Decides the announcer of every handled Service with layer-2 status IPs and at least one ready
/// or serving endpoint, among the nodes its L2 advertisements select that `liveness` keeps (the
/// gossip members, or with gossip off the Ready nodes running a speaker); Services sharing an
/// address are announced from one node ([`ownership::place`]). A Service's pool is the first
/// pool of `config` holding its first IP; the caller may append pools of earlier configs after
/// the current ones (see `Reconciler::adopt`). `known` holds the usable interfaces each node's
/// speaker published; a node absent from it is assumed to have every interface.
///
/// The whole-cluster form of [`evaluate`] and [`settle`]; the speaker's passes run those on
/// what changed.
pub fn announcements(
    config: &Config,
    services: &[Arc<ServiceView>],
    slices: &[Arc<SliceView>],
    nodes: &[Arc<NodeView>],
    liveness: Liveness<'_>,
    known: &BTreeMap<String, BTreeSet<String>>,
    options: &ViewOptions,
) -> (Vec<Announcement>, Unannounced) {
    let (statuses, node_labels) = node_inputs(nodes);
    let ctx = Context {
        config,
        nodes: &statuses,
        node_labels: &node_labels,
        liveness,
        known,
        options,
    };
    let mut by_service: BTreeMap<&str, Vec<Arc<SliceView>>> = BTreeMap::new();
    for slice in slices {
        if let Some(svc) = slice.service() {
            by_service.entry(svc).or_default().push(slice.clone());
        }
    }
    let evaluated = services
        .iter()
        .filter_map(|svc| {
            let own = by_service.get(svc.key().as_str()).map(Vec::as_slice);
            evaluate(&ctx, svc, own.unwrap_or_default())
        })
        .collect();
    let (placed, skipped) = settle(evaluated, known);
    let mut unannounced = Unannounced::default();
    for e in &skipped {
        if let Evaluated::Skipped { service, ips, skip } = e {
            unannounced.skipped(service, ips, skip);
        }
    }
    let mut out = Vec::with_capacity(placed.len());
    for p in placed {
        unannounced.placed(&p);
        out.push(Announcement {
            service: p.service,
            ips: p.ips,
            node: p.decision.node,
        });
    }
    (out, unannounced)
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
