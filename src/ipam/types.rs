//! The allocator's vocabulary: what a Service asks for, what pools offer, what it gets back.
//!
//! These are plain data types with no Kubernetes types inside (label selectors and
//! `serviceAllocation` are the config model's pure types), so the controller, `ferrolb plan` and
//! the tests all speak to the allocator the same way.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::config::Labels;
pub use crate::config::ServiceAllocation;

/// An IP family. Ordered so that `V4 < V6`, which gives dual-stack output a stable order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The other family (the secondary of a dual-stack service).
    pub fn other(self) -> Family {
        match self {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// Which families a Service wants, from `spec.ipFamilyPolicy` and `spec.ipFamilies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FamilyPolicy {
    /// `SingleStack` with the given family.
    Single(Family),
    /// `PreferDualStack`: both families when one pool can give both, otherwise the primary
    /// family alone (or the secondary when no pool has a free primary-family address).
    PreferDualStack { primary: Family },
    /// `RequireDualStack`: one address of each family, both from the same pool, or nothing.
    RequireDualStack { primary: Family },
}

impl FamilyPolicy {
    /// The family listed first in `spec.ipFamilies`; its address comes first in an [`Assignment`].
    pub fn primary(self) -> Family {
        match self {
            FamilyPolicy::Single(f)
            | FamilyPolicy::PreferDualStack { primary: f }
            | FamilyPolicy::RequireDualStack { primary: f } => f,
        }
    }

    /// Whether an address of `family` may be part of this service's assignment.
    pub fn allows(self, family: Family) -> bool {
        match self {
            FamilyPolicy::Single(f) => f == family,
            FamilyPolicy::PreferDualStack { .. } | FamilyPolicy::RequireDualStack { .. } => true,
        }
    }
}

impl fmt::Display for FamilyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FamilyPolicy::Single(fam) => write!(f, "SingleStack {fam}"),
            FamilyPolicy::PreferDualStack { primary } => {
                write!(f, "PreferDualStack ({primary} first)")
            }
            FamilyPolicy::RequireDualStack { primary } => {
                write!(f, "RequireDualStack ({primary} first)")
            }
        }
    }
}

/// A Service port's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// One `{protocol, port}` a Service exposes; two services sharing an IP must not both use one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    pub protocol: Protocol,
    pub port: u16,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol)
    }
}

/// `spec.externalTrafficPolicy`. Services sharing an IP must agree on it, and for `Local` also on
/// the pod selector, because one node announces the shared IP for all of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum TrafficPolicy {
    #[default]
    Cluster,
    Local {
        selector: BTreeMap<String, String>,
    },
}

/// What a Service asks of the allocator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub families: FamilyPolicy,
    /// `spec.loadBalancerIP` / the `loadBalancerIPs` annotation: at most one per family.
    pub requested: Vec<IpAddr>,
    /// The `address-pool` annotation: allocate from this pool only.
    pub pool: Option<String>,
    /// The `allow-shared-ip` annotation; `Some("")` counts as no key.
    pub sharing_key: Option<String>,
    pub ports: Vec<Port>,
    pub traffic: TrafficPolicy,
    /// The Service's labels, for pools' `serviceAllocation.serviceSelectors`.
    pub labels: Labels,
}

impl Request {
    /// A request for one address of `family` from any auto-assign pool, no sharing, no ports.
    pub fn single(family: Family) -> Request {
        Request {
            families: FamilyPolicy::Single(family),
            requested: Vec::new(),
            pool: None,
            sharing_key: None,
            ports: Vec::new(),
            traffic: TrafficPolicy::Cluster,
            labels: Labels::new(),
        }
    }

    /// The sharing key, with an empty annotation treated as none.
    pub fn effective_sharing_key(&self) -> Option<&str> {
        self.sharing_key.as_deref().filter(|k| !k.is_empty())
    }
}

/// A Service's identity, `"namespace/name"`. Clones share one allocation: the allocator keeps a
/// key per Service and one per address it holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey(Arc<str>);

impl ServiceKey {
    pub fn new(namespace: &str, name: &str) -> ServiceKey {
        ServiceKey(format!("{namespace}/{name}").into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The namespace part (empty for a key without one).
    pub fn namespace(&self) -> &str {
        self.0.split_once('/').map_or("", |(ns, _)| ns)
    }
}

impl From<&str> for ServiceKey {
    fn from(s: &str) -> ServiceKey {
        ServiceKey(s.into())
    }
}

impl From<String> for ServiceKey {
    fn from(s: String) -> ServiceKey {
        ServiceKey(s.into())
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One address pool as the allocator sees it (the controller converts config pools into these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    pub name: String,
    /// Inclusive `(start, end)` ranges, each within one family. Addresses are handed out range by
    /// range in this order, lowest first within a range, as MetalLB walks a pool's CIDRs.
    pub ranges: Vec<(IpAddr, IpAddr)>,
    pub auto_assign: bool,
    /// Never hand out IPv4 addresses ending in `.0` or `.255`.
    pub avoid_buggy_ips: bool,
    /// `serviceAllocation`: the Services the pool is pinned to and its priority among their
    /// pools. A pool with one is offered only to compatible Services, and never as a fallback.
    pub allocation: Option<ServiceAllocation>,
}

/// The addresses a Service holds and the pool they come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub pool: String,
    /// One address, or two (primary family first) for a dual-stack service.
    pub ips: Vec<IpAddr>,
}

/// Per-pool figures for the `ferrolb_allocator_addresses_*` metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    pub pool: String,
    /// Addresses the pool can hand out (`.0`/`.255` excluded when it avoids buggy IPs).
    pub total: u128,
    /// Distinct addresses held by at least one service (a shared IP counts once).
    pub in_use: u128,
    /// The IPv6 part of `total` and `in_use`.
    pub total_v6: u128,
    pub in_use_v6: u128,
}

/// What a config reload did to existing assignments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reload {
    /// Services whose addresses and pool are unchanged.
    pub kept: Vec<ServiceKey>,
    /// Services whose addresses stay but now belong to a differently named pool.
    pub moved: Vec<PoolMove>,
    /// Services that lost their addresses and need a new allocation.
    pub evicted: Vec<Eviction>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolMove {
    pub service: ServiceKey,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eviction {
    pub service: ServiceKey,
    /// The assignment the service held before the reload.
    pub previous: Assignment,
    pub reason: EvictionReason,
}

/// Why a reload took a service's addresses away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvictionReason {
    #[error("{ip} is no longer in any address pool")]
    LeftAllPools { ip: IpAddr },
    #[error("{ip} is in pool {pool:?}, which now avoids buggy IPs ending in .0 or .255")]
    NowBuggy { ip: IpAddr, pool: String },
    #[error("{first} is now in pool {first_pool:?} but {second} is in pool {second_pool:?}")]
    SplitAcrossPools {
        first: IpAddr,
        first_pool: String,
        second: IpAddr,
        second_pool: String,
    },
}
