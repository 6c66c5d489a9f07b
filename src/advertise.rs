//! Where a Service is announced (pure): L2 advertisements narrow the election of
//! [`crate::election`] to the nodes they select and the announcing node to the interfaces they
//! name, and when nobody can announce a Service this says why.
//!
//! Each advertisement that selects a Service (its pool and its labels) contributes a [`Reach`]:
//! the nodes it selects and the interfaces it allows. A Service's eligible nodes are the union of
//! those node sets intersected with the election's health rules; the elected node announces on
//! the union of the interfaces of the advertisements that select *it* (an advertisement without
//! `interfaces` allows every usable interface). Ranking stays `sha256(node + "#" + ip)`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::config::{AddressPool, Config, Labels};
use crate::election::{self, EligibilityOptions, Liveness, NodeStatus, TrafficScope};

/// The interfaces an advertisement (or a union of them) allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interfaces {
    /// Every interface the speaker's own rules (up, Ethernet, not excluded) let it use.
    All,
    /// Only these names (still never an excluded one).
    Named(BTreeSet<String>),
}

impl Interfaces {
    fn union(self, other: &Interfaces) -> Interfaces {
        match (self, other) {
            (Interfaces::Named(mut a), Interfaces::Named(b)) => {
                a.extend(b.iter().cloned());
                Interfaces::Named(a)
            }
            _ => Interfaces::All,
        }
    }

    /// What both allow: an address several Services share is answered only where every one of
    /// them may be reached.
    pub fn intersect(self, other: &Interfaces) -> Interfaces {
        match (self, other) {
            (Interfaces::All, other) => other.clone(),
            (this, Interfaces::All) => this,
            (Interfaces::Named(mut a), Interfaces::Named(b)) => {
                a.retain(|name| b.contains(name));
                Interfaces::Named(a)
            }
        }
    }

    /// The interfaces of `usable` (a node's interfaces after its exclusions) this allows.
    pub fn on<'a>(&self, usable: &'a BTreeSet<String>) -> BTreeSet<&'a str> {
        usable
            .iter()
            .filter(|name| match self {
                Interfaces::All => true,
                Interfaces::Named(named) => named.contains(*name),
            })
            .map(String::as_str)
            .collect()
    }
}

/// What one advertisement selecting a Service allows: its nodes and interfaces, and the
/// preference score of the nodes its `preferredNodeSelectors` match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    pub nodes: BTreeSet<String>,
    pub interfaces: Interfaces,
    /// Each node of `nodes` with a score above 0: the sum of the weights of the preferences its
    /// labels match (MetalLB's `preferredNodeSelectors`).
    pub preferred: BTreeMap<String, u32>,
}

/// A node's preference score for a Service: the sum over the advertisements selecting the
/// Service that select the node too (MetalLB's rule; a higher score wins, the hash breaks ties).
pub fn preference_score(reach: &[Reach], node: &str) -> u32 {
    reach
        .iter()
        .filter_map(|r| r.preferred.get(node))
        .copied()
        .sum()
}

/// The union of the nodes of every reach.
pub fn reach_nodes(reach: &[Reach]) -> BTreeSet<&str> {
    reach
        .iter()
        .flat_map(|r| r.nodes.iter().map(String::as_str))
        .collect()
}

/// The interfaces `node` may announce on: the union over the advertisements selecting it, or
/// `None` when none selects it.
pub fn interfaces_of(reach: &[Reach], node: &str) -> Option<Interfaces> {
    reach
        .iter()
        .filter(|r| r.nodes.contains(node))
        .map(|r| &r.interfaces)
        .fold(None, |acc: Option<Interfaces>, i| match acc {
            None => Some(i.clone()),
            Some(acc) => Some(acc.union(i)),
        })
}

/// How a Service's IPs may be announced according to the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolReach {
    /// Advertised by these advertisements (one reach each).
    Layer2(Vec<Reach>),
    /// The IP's pool has no L2 advertisement selecting this Service.
    NoAdvertisement { pool: String },
    /// The IP's pool is announced over BGP only, and the config has no BGP peer to announce
    /// it to.
    Bgp { pool: String },
    /// The IP's pool is announced over BGP only (`advertise_bgp` decides where).
    BgpOnly,
    /// The IP is in no pool of the config.
    OutsidePools,
}

/// The reach of a Service whose first IP is `ip`: every advertisement selecting its pool and
/// matching `service_labels`, resolved over `nodes` (name and labels).
pub fn pool_reach(
    config: &Config,
    ip: IpAddr,
    service_labels: &Labels,
    nodes: &[(&str, &Labels)],
) -> PoolReach {
    match config.address_pools.iter().find(|p| p.contains(ip)) {
        Some(pool) => reach_of_pool(config, pool, Some(service_labels), nodes),
        None => PoolReach::OutsidePools,
    }
}

/// The reach of `pool` for a Service labelled `service_labels`; `None`: for every Service, which
/// is the answer only when no advertisement of the pool selects Services by label (see
/// [`selects_by_service_label`]).
pub fn reach_of_pool(
    config: &Config,
    pool: &AddressPool,
    service_labels: Option<&Labels>,
    nodes: &[(&str, &Labels)],
) -> PoolReach {
    let ads = config.l2_advertisements_for(pool);
    if ads.is_empty() && !config.bgp_advertisements_for(pool).is_empty() {
        // Announced over BGP, not layer 2 (a legacy `bgp` pool, or BGPAdvertisements only).
        if config.peers.is_empty() {
            return PoolReach::Bgp {
                pool: pool.name.clone(),
            };
        }
        return PoolReach::BgpOnly;
    }
    let reach: Vec<Reach> = ads
        .into_iter()
        .filter(|ad| service_labels.is_none_or(|labels| ad.selects_service(labels)))
        .map(|ad| {
            let selected = nodes.iter().filter(|(_, labels)| ad.selects_node(labels));
            Reach {
                nodes: selected
                    .clone()
                    .map(|(name, _)| (*name).to_owned())
                    .collect(),
                interfaces: if ad.all_interfaces() {
                    Interfaces::All
                } else {
                    Interfaces::Named(ad.interfaces.iter().cloned().collect())
                },
                preferred: selected
                    .map(|(name, labels)| ((*name).to_owned(), ad.preference_score(labels)))
                    .filter(|(_, score)| *score > 0)
                    .collect(),
            }
        })
        .collect();
    if reach.is_empty() {
        return PoolReach::NoAdvertisement {
            pool: pool.name.clone(),
        };
    }
    PoolReach::Layer2(reach)
}

/// Whether some advertisement of `pool` picks Services by their labels, so its reach differs
/// from Service to Service.
pub fn selects_by_service_label(config: &Config, pool: &AddressPool) -> bool {
    config
        .l2_advertisements_for(pool)
        .iter()
        .any(|ad| !ad.service_selectors.is_empty())
}

/// Why a node is not eligible, counted per Service for the "no eligible node" cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeReason {
    NotSelected,
    NotAlive,
    OutOfService,
    NetworkUnavailable,
    ExcludedByLabel,
    NoEndpoint,
}

impl NodeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeReason::NotSelected => "not selected by an advertisement",
            NodeReason::NotAlive => "not alive",
            NodeReason::OutOfService => "out-of-service taint",
            NodeReason::NetworkUnavailable => "NetworkUnavailable",
            NodeReason::ExcludedByLabel => "exclude-from-external-load-balancers",
            NodeReason::NoEndpoint => "no serving endpoint",
        }
    }
}

/// Why a Service that holds an IP is announced by no node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    NoAdvertisement {
        pool: String,
    },
    Bgp {
        pool: String,
    },
    NoServingEndpoint,
    NoEligibleNode {
        counts: BTreeMap<NodeReason, usize>,
    },
    NoInterface {
        node: String,
    },
    /// The Services sharing its address (directly or through a chain) allow no node in common.
    NoCommonNode {
        sharers: Vec<String>,
    },
}

impl Cause {
    /// The `reason` label of `ferrolb_speaker_unannounced`.
    pub fn label(&self) -> &'static str {
        match self {
            Cause::NoAdvertisement { .. } => "no_advertisement",
            Cause::Bgp { .. } => "bgp_pool",
            Cause::NoServingEndpoint => "no_serving_endpoint",
            Cause::NoEligibleNode { .. } => "no_eligible_node",
            Cause::NoInterface { .. } => "no_interface",
            Cause::NoCommonNode { .. } => "no_common_node",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::NoAdvertisement { pool } => write!(
                f,
                "not announced: no L2Advertisement selects pool {pool} for this Service"
            ),
            Cause::Bgp { pool } => write!(
                f,
                "not announced: pool {pool} is announced over BGP and the config has no BGP peer"
            ),
            Cause::NoServingEndpoint => write!(
                f,
                "not announced: no serving endpoint (an address is announced only while one of the \
                 Service's endpoints is ready or serving)"
            ),
            Cause::NoEligibleNode { counts } => {
                write!(f, "not announced: no eligible node (")?;
                for (i, (reason, n)) in counts.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{n} {}", reason.as_str())?;
                }
                write!(f, ")")
            }
            Cause::NoInterface { node } => write!(
                f,
                "not announced: elected node {node} has none of the advertised interfaces"
            ),
            Cause::NoCommonNode { sharers } => write!(
                f,
                "not announced: the Services sharing its address ({}) allow no node in common",
                sharers.join(", ")
            ),
        }
    }
}

/// The election's inputs besides the reach.
#[derive(Debug, Clone, Copy)]
pub struct Health<'a> {
    pub nodes: &'a [NodeStatus],
    pub liveness: Liveness<'a>,
    pub scope: TrafficScope<'a>,
    pub options: EligibilityOptions,
    /// Usable interfaces of the nodes that published them; a node missing here is assumed to
    /// have every interface (so nodes that do not know each other agree on the owner).
    pub known_interfaces: &'a BTreeMap<String, BTreeSet<String>>,
}

/// Who announces a Service and where, or why nobody does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Shared by every Service of a pass elected to the same node.
    pub node: Option<Arc<str>>,
    /// The interfaces the elected node may use (before its own exclusions).
    pub interfaces: Interfaces,
    /// The node ranked right after the elected one: it checks that the elected node answers
    /// (`speaker::answer_check`).
    pub next: Option<Arc<str>>,
    /// Set when the Service is not announced (or, for `NoInterface`, announced by nobody even
    /// though a node is elected).
    pub cause: Option<Cause>,
}

/// The nodes that may announce a Service, before ranking: healthy nodes its advertisements
/// select, narrowed to those known to have one of their advertised interfaces when any has one
/// (so the IP stays reachable). `Err` says why no node may.
pub fn candidates(reach: &[Reach], health: Health<'_>) -> Eligible {
    let selected = reach_nodes(reach);
    let healthy =
        election::eligible_nodes(health.nodes, health.liveness, health.scope, health.options);
    let eligible: Vec<&str> = healthy
        .into_iter()
        .filter(|n| selected.contains(n))
        .collect();
    if eligible.is_empty() {
        return Err(match health.scope {
            TrafficScope::Local(with) if with.is_empty() => Cause::NoServingEndpoint,
            _ => Cause::NoEligibleNode {
                counts: reasons(&selected, health),
            },
        });
    }
    let reachable: BTreeSet<String> = eligible
        .iter()
        .filter(|n| has_interface(reach, n, health.known_interfaces))
        .map(|n| (*n).to_owned())
        .collect();
    if reachable.is_empty() {
        Ok(Arc::new(eligible.into_iter().map(str::to_owned).collect()))
    } else {
        Ok(Arc::new(reachable))
    }
}

/// The nodes that may announce a Service, shared (`Arc`) by the Services that read the same
/// nodes, or why none may.
pub type Eligible = Result<Arc<BTreeSet<String>>, Cause>;

/// Whether `node` has one of the interfaces its advertisements allow; a node that published no
/// interfaces is assumed to have them all.
fn has_interface(reach: &[Reach], node: &str, known: &BTreeMap<String, BTreeSet<String>>) -> bool {
    let Some(usable) = known.get(node) else {
        return true;
    };
    interfaces_of(reach, node).is_some_and(|i| !i.on(usable).is_empty())
}

/// Where the elected `node` announces: the interfaces its advertisements allow, and
/// [`Cause::NoInterface`] when it is known to have none of them.
pub fn placement(
    reach: &[Reach],
    node: &str,
    known: &BTreeMap<String, BTreeSet<String>>,
) -> (Interfaces, Option<Cause>) {
    let interfaces = interfaces_of(reach, node).unwrap_or(Interfaces::All);
    let cause = (!has_interface(reach, node, known)).then(|| Cause::NoInterface {
        node: node.to_owned(),
    });
    (interfaces, cause)
}

/// Elects the announcer of one Service holding `ips` on its own (a Service that shares no
/// address): [`candidates`], ranked by its first IP ([`election::group_owner`]), then
/// [`placement`].
pub fn decide(ips: &[IpAddr], reach: &[Reach], health: Health<'_>) -> Decision {
    let pool = match candidates(reach, health) {
        Ok(pool) => pool,
        Err(cause) => {
            return Decision {
                node: None,
                interfaces: Interfaces::All,
                next: None,
                cause: Some(cause),
            };
        }
    };
    let first = ips.first().map(std::slice::from_ref).unwrap_or_default();
    let (node, next) = election::group_owner_and_next(
        first,
        pool.iter()
            .map(|n| (n.as_str(), preference_score(reach, n))),
    );
    let (node, next) = (node.map(Arc::from), next.map(Arc::from));
    let (interfaces, cause) = match &node {
        Some(n) => placement(reach, n, health.known_interfaces),
        None => (Interfaces::All, None),
    };
    Decision {
        node,
        interfaces,
        next,
        cause,
    }
}

/// For each node, the first rule it fails (advertisement, liveness, taint, network, label,
/// endpoint).
fn reasons(selected: &BTreeSet<&str>, health: Health<'_>) -> BTreeMap<NodeReason, usize> {
    let mut counts = BTreeMap::new();
    for node in health.nodes {
        let alive = match health.liveness {
            Liveness::Gossip(live) => live.contains(&node.name),
            Liveness::NodeReady(speakers) => node.ready && speakers.contains(&node.name),
        };
        let reason = if !selected.contains(node.name.as_str()) {
            NodeReason::NotSelected
        } else if !alive {
            NodeReason::NotAlive
        } else if node.out_of_service {
            NodeReason::OutOfService
        } else if node.network_unavailable {
            NodeReason::NetworkUnavailable
        } else if node.exclude_from_external_lb && !health.options.ignore_exclude_lb {
            NodeReason::ExcludedByLabel
        } else {
            NodeReason::NoEndpoint
        };
        *counts.entry(reason).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
#[path = "advertise_tests.rs"]
mod tests;
