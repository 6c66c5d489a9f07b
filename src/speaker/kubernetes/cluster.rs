//! The speaker's view of the cluster (pure): from Services, EndpointSlices, Nodes and the config
//! to "which node announces which service", using the election rules.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use crate::advertise::{self, Cause, Decision, Eligible, Health, Interfaces, PoolReach, Reach};
use crate::config::{Config, Labels};
use crate::election::{
    self, EligibilityOptions, EndpointStatus, Liveness, NodeStatus, TrafficScope,
};

use super::cache::{NodeView, ServiceView, SliceView};
use crate::speaker::ownership::{self, Announcement, Offer};

/// Everything that is not announced, and why (so each is reported once, not silently dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unannounced {
    /// Services whose IPs are in a BGP-only pool while the config has no BGP peer.
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
    /// `--sticky-ownership`, `--even-spread`.
    pub placement: crate::placement::Policy,
}

/// What every Service's decision reads besides the Service and its endpoints, prepared once per
/// pass ([`Context::new`]).
pub struct Context<'a> {
    config: &'a Config,
    nodes: &'a [NodeStatus],
    node_labels: &'a [(&'a str, &'a Labels)],
    liveness: Liveness<'a>,
    /// The usable interfaces each node's speaker published; a node absent is assumed to have
    /// every interface.
    known: &'a BTreeMap<String, BTreeSet<String>>,
    options: &'a ViewOptions,
    /// Per pool of `config`: its reach when that is the same for every Service (no
    /// advertisement of it selects Services by label), worked out once and shared.
    shared: Vec<Option<Result<Arc<[Reach]>, Skip>>>,
    /// Per pool with a shared reach: the nodes that may announce a `Cluster`-policy Service of
    /// it (the same for all of them), worked out on first use.
    cluster_eligible: RefCell<HashMap<usize, Eligible>>,
}

impl<'a> Context<'a> {
    pub fn new(
        config: &'a Config,
        nodes: &'a [NodeStatus],
        node_labels: &'a [(&'a str, &'a Labels)],
        liveness: Liveness<'a>,
        known: &'a BTreeMap<String, BTreeSet<String>>,
        options: &'a ViewOptions,
    ) -> Self {
        let shared = config
            .address_pools
            .iter()
            .map(|pool| {
                (!advertise::selects_by_service_label(config, pool)).then(|| {
                    layer2_reach(advertise::reach_of_pool(config, pool, None, node_labels))
                })
            })
            .collect();
        Self {
            config,
            nodes,
            node_labels,
            liveness,
            known,
            options,
            shared,
            cluster_eligible: RefCell::new(HashMap::new()),
        }
    }

    fn health<'s>(&'s self, scope: TrafficScope<'s>) -> Health<'s> {
        Health {
            nodes: self.nodes,
            liveness: self.liveness,
            scope,
            options: EligibilityOptions {
                ignore_exclude_lb: self.options.ignore_exclude_lb,
            },
            known_interfaces: self.known,
        }
    }
}

/// A pool's reach, or why its Services are not offered.
fn layer2_reach(reach: PoolReach) -> Result<Arc<[Reach]>, Skip> {
    match reach {
        PoolReach::Layer2(reach) => Ok(reach.into()),
        PoolReach::OutsidePools => Err(Skip::OutsidePools),
        PoolReach::Bgp { pool } => Err(Skip::Bgp(Cause::Bgp { pool })),
        PoolReach::BgpOnly => Err(Skip::BgpOnly),
        PoolReach::NoAdvertisement { pool } => {
            Err(Skip::NoAdvertisement(Cause::NoAdvertisement { pool }))
        }
    }
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
    /// Its IP is in a pool announced over BGP only, and the config has no BGP peer.
    Bgp(Cause),
    /// Its IP is in a pool announced over BGP only (not a layer-2 matter).
    BgpOnly,
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
        service: Arc<str>,
        ips: Arc<[IpAddr]>,
        skip: Skip,
    },
}

impl Evaluated {
    /// The offer, when the Service is offered to the election.
    pub fn offer(&self) -> Option<&Offer> {
        match self {
            Evaluated::Offered(o) => Some(o),
            Evaluated::Skipped { .. } => None,
        }
    }

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
pub fn evaluate<'s>(
    ctx: &Context<'_>,
    svc: &ServiceView,
    slices: impl Iterator<Item = &'s SliceView> + Clone,
) -> Option<Evaluated> {
    if !svc.is_handled(ctx.options.lb_class.as_deref()) {
        return None;
    }
    let first = svc.ips().first().copied()?;
    let skipped = |skip| {
        Some(Evaluated::Skipped {
            service: svc.shared_key().clone(),
            ips: svc.shared_ips().clone(),
            skip,
        })
    };
    let Some(index) = ctx
        .config
        .address_pools
        .iter()
        .position(|p| p.contains(first))
    else {
        return skipped(Skip::OutsidePools);
    };
    let shared = ctx.shared.get(index).and_then(Option::as_ref);
    let reach = match shared {
        Some(reach) => reach.clone(),
        None => {
            let labels = svc.labels();
            let pool = &ctx.config.address_pools[index];
            layer2_reach(advertise::reach_of_pool(
                ctx.config,
                pool,
                Some(&labels),
                ctx.node_labels,
            ))
        }
    };
    let reach = match reach {
        Ok(reach) => reach,
        Err(skip) => return skipped(skip),
    };
    let endpoints = || slices.clone().flat_map(|s| s.endpoints());
    if !endpoints().any(EndpointStatus::counts_for_local) {
        return skipped(Skip::NoEndpoints);
    }
    let eligible = if svc.is_local() {
        let with_endpoint = election::local_endpoint_nodes(endpoints());
        advertise::candidates(&reach, ctx.health(TrafficScope::Local(&with_endpoint)))
    } else if shared.is_some() {
        ctx.cluster_eligible
            .borrow_mut()
            .entry(index)
            .or_insert_with(|| advertise::candidates(&reach, ctx.health(TrafficScope::Cluster)))
            .clone()
    } else {
        advertise::candidates(&reach, ctx.health(TrafficScope::Cluster))
    };
    Some(Evaluated::Offered(Offer {
        service: svc.shared_key().clone(),
        ips: svc.shared_ips().clone(),
        reach,
        eligible,
    }))
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
            Skip::BgpOnly => {}
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
    pub fn placed(&mut self, service: &str, ips: &[IpAddr], decision: &Decision) {
        if let (Some(cause), Some(first)) = (&decision.cause, ips.first()) {
            self.causes
                .insert(service.to_owned(), (*first, cause.clone()));
        }
        if let Interfaces::Named(names) = &decision.interfaces {
            self.interfaces.insert(service.to_owned(), names.clone());
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
/// The whole-cluster form of [`evaluate`] and [`ownership::place`]; the speaker's passes run
/// those on what changed.
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
    let ctx = Context::new(config, &statuses, &node_labels, liveness, known, options);
    let mut by_service: BTreeMap<&str, Vec<Arc<SliceView>>> = BTreeMap::new();
    for slice in slices {
        if let Some(svc) = slice.service() {
            by_service.entry(svc).or_default().push(slice.clone());
        }
    }
    let evaluated: Vec<Evaluated> = services
        .iter()
        .filter_map(|svc| {
            let own = by_service.get(svc.key()).map(Vec::as_slice);
            evaluate(&ctx, svc, own.unwrap_or_default().iter().map(|s| &**s))
        })
        .collect();
    // No node withdrew from anything here (answer verification is the live speaker's).
    // No node claims anything yet: a cluster placing from scratch (sticky ownership is then
    // MetalLB's ranking; even spread, the even placement).
    let claims = crate::placement::Claims::default();
    let placed = ownership::place(
        evaluated.iter().filter_map(Evaluated::offer),
        known,
        &ownership::Withdrawn::new(),
        ownership::Steering {
            policy: options.placement,
            claims: &claims,
        },
    );
    let mut unannounced = Unannounced::default();
    for e in &evaluated {
        if let Evaluated::Skipped { service, ips, skip } = e {
            unannounced.skipped(service, ips, skip);
        }
    }
    let mut out = Vec::with_capacity(placed.len());
    for p in placed {
        unannounced.placed(&p.service, &p.ips, &p.decision);
        out.push(Announcement {
            service: p.service.to_string(),
            ips: p.ips.to_vec(),
            node: p.decision.node.map(|n| n.to_string()),
        });
    }
    (out, unannounced)
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
