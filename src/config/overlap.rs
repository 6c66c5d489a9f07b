//! Pools overlapping the cluster's own networks: a ServiceCIDR, a node's InternalIP/ExternalIP,
//! a node's Pod CIDR. None of these refuses a pool (MetalLB tried refusing node addresses and
//! reverted it: the user decides); each is reported, and the controller never hands out a node's
//! own address. Pure: the controller, `ferrolb plan` and `ferrolb doctor` all call
//! [`find_overlaps`] over the networks they read.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::schema::{Config, ip_to_u128};

/// Where a ServiceCIDR came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CidrSource {
    /// A `networking.k8s.io/v1` ServiceCIDR object, by name.
    Object(String),
    /// `--service-cluster-ip-range` (the ServiceCIDR kind is not served).
    Flag,
}

/// One ServiceCIDR range.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceCidr {
    pub source: CidrSource,
    pub cidr: IpNet,
}

/// Which address of a node (`status.addresses[].type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeAddressKind {
    InternalIP,
    ExternalIP,
}

impl fmt::Display for NodeAddressKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeAddressKind::InternalIP => "InternalIP",
            NodeAddressKind::ExternalIP => "ExternalIP",
        })
    }
}

/// A node's own address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeAddress {
    pub node: String,
    pub kind: NodeAddressKind,
    pub ip: IpAddr,
}

/// What a node brings: its addresses and its Pod CIDRs (`spec.podCIDRs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeNetworks {
    pub name: String,
    pub addresses: Vec<NodeAddress>,
    pub pod_cidrs: Vec<IpNet>,
}

/// The cluster's own networks, as the API shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterNetworks {
    pub service_cidrs: Vec<ServiceCidr>,
    /// By node name.
    pub nodes: Vec<NodeNetworks>,
}

impl ClusterNetworks {
    /// Every node's own addresses, sorted.
    pub fn node_addresses(&self) -> Vec<NodeAddress> {
        let mut out: Vec<NodeAddress> = self
            .nodes
            .iter()
            .flat_map(|n| n.addresses.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// What a pool overlaps.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OverlapWith {
    ServiceCidr(ServiceCidr),
    NodeAddress(NodeAddress),
    PodCidr { node: String, cidr: IpNet },
}

/// One pool overlapping one of the cluster's networks, over `first..=last`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Overlap {
    pub pool: String,
    pub with: OverlapWith,
    pub first: IpAddr,
    pub last: IpAddr,
}

impl Overlap {
    /// The overlapping addresses, as one address or `first-last`.
    pub fn range(&self) -> String {
        if self.first == self.last {
            self.first.to_string()
        } else {
            format!("{}-{}", self.first, self.last)
        }
    }

    /// What is wrong, naming the pool, what it overlaps and the overlapping range.
    pub fn message(&self) -> String {
        let pool = &self.pool;
        let range = self.range();
        match &self.with {
            OverlapWith::ServiceCidr(c) => match &c.source {
                CidrSource::Object(name) => format!(
                    "pool {pool:?} overlaps ServiceCIDR {name} ({}) at {range}: those are \
                     ClusterIP addresses",
                    c.cidr
                ),
                CidrSource::Flag => format!(
                    "pool {pool:?} overlaps the service cluster IP range {} \
                     (--service-cluster-ip-range) at {range}: those are ClusterIP addresses",
                    c.cidr
                ),
            },
            OverlapWith::NodeAddress(a) => format!(
                "pool {pool:?} holds {range}, the {} of node {}: never handed out",
                a.kind, a.node
            ),
            OverlapWith::PodCidr { node, cidr } => format!(
                "pool {pool:?} overlaps the Pod CIDR {cidr} of node {node} at {range}: those are \
                 Pod addresses"
            ),
        }
    }

    /// How to fix it.
    pub fn fix(&self) -> String {
        let what = match &self.with {
            OverlapWith::ServiceCidr(_) => "the service cluster IP range",
            OverlapWith::NodeAddress(_) => "the node's address",
            OverlapWith::PodCidr { .. } => "the node's Pod CIDR",
        };
        format!(
            "change the addresses of pool {:?} so they leave out {} ({what}), e.g. kubectl edit \
             ipaddresspool {} (or the pool in the config ConfigMap)",
            self.pool,
            self.range(),
            self.pool
        )
    }
}

/// The intersection of two inclusive ranges of one family, if any.
fn intersect(a: (IpAddr, IpAddr), b: (IpAddr, IpAddr)) -> Option<(IpAddr, IpAddr)> {
    if a.0.is_ipv4() != b.0.is_ipv4() {
        return None;
    }
    let first = if ip_to_u128(a.0) >= ip_to_u128(b.0) {
        a.0
    } else {
        b.0
    };
    let last = if ip_to_u128(a.1) <= ip_to_u128(b.1) {
        a.1
    } else {
        b.1
    };
    (ip_to_u128(first) <= ip_to_u128(last)).then_some((first, last))
}

/// Every pool range overlapping one of `networks`, sorted (pool, then what it overlaps). A pool
/// with several ranges overlapping one network yields one entry per range.
pub fn find_overlaps(config: &Config, networks: &ClusterNetworks) -> Vec<Overlap> {
    let mut against: Vec<(OverlapWith, (IpAddr, IpAddr))> = Vec::new();
    for c in &networks.service_cidrs {
        against.push((
            OverlapWith::ServiceCidr(c.clone()),
            (c.cidr.network(), c.cidr.broadcast()),
        ));
    }
    for node in &networks.nodes {
        for a in &node.addresses {
            against.push((OverlapWith::NodeAddress(a.clone()), (a.ip, a.ip)));
        }
        for cidr in &node.pod_cidrs {
            against.push((
                OverlapWith::PodCidr {
                    node: node.name.clone(),
                    cidr: *cidr,
                },
                (cidr.network(), cidr.broadcast()),
            ));
        }
    }
    let mut out = Vec::new();
    for pool in &config.address_pools {
        for range in &pool.addresses {
            for (with, span) in &against {
                if let Some((first, last)) = intersect((range.start, range.end), *span) {
                    out.push(Overlap {
                        pool: pool.name.clone(),
                        with: with.clone(),
                        first,
                        last,
                    });
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Why `--service-cluster-ip-range` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--service-cluster-ip-range: {entry:?} is not a CIDR (expected e.g. 10.96.0.0/12,fd00::/108)"
)]
pub struct ServiceRangeError {
    pub entry: String,
}

/// `--service-cluster-ip-range` as kube-apiserver spells it: comma-separated CIDRs.
pub fn parse_service_range(text: &str) -> Result<Vec<ServiceCidr>, ServiceRangeError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .map(|cidr| ServiceCidr {
                    source: CidrSource::Flag,
                    cidr: cidr.trunc(),
                })
                .map_err(|_| ServiceRangeError {
                    entry: s.to_owned(),
                })
        })
        .collect()
}

#[cfg(test)]
#[path = "overlap_tests.rs"]
mod tests;
