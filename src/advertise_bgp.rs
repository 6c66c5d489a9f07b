//! BGP advertisements applied to one node (pure): which prefix this node announces to which
//! peer, with which attributes, and why a Service's addresses are withheld. BGP has no
//! election: every node that passes these rules announces, each with its own next hop, and the
//! routers spread flows over them (ECMP).
//!
//! The rules, in MetalLB's order for a Service whose addresses are all in one pool:
//! 1. a BGPAdvertisement of the pool selects this node, else [`Withheld::NotSelected`];
//! 2. of those, some select the Service by its labels, else
//!    [`Withheld::NoMatchingAdvertisement`];
//! 3. they do not give one prefix to one peer with two local preferences, else
//!    [`Withheld::ConflictingLocalPref`];
//! 4. the node is not `NetworkUnavailable` and 5. not labelled
//!    `node.kubernetes.io/exclude-from-external-load-balancers` (unless that is ignored);
//! 6. `externalTrafficPolicy: Local`: a serving endpoint on this node; `Cluster`: one anywhere.
//!
//! Each address is announced as the prefix of the advertisement's aggregation length holding
//! it, to every peer that has a session on this node and that the advertisement names (all
//! when it names none); an IPv4 prefix goes to IPv4 peers and an IPv6 one to IPv6 peers, both
//! to a peer with `dualStackAddressFamily`. Advertisements that give one prefix to one peer
//! merge: their communities are joined. Services whose prefixes aggregate to one route share it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{BgpAd, Community, Config, Labels};

/// This node as the rules read it.
#[derive(Debug, Clone, Copy)]
pub struct BgpNode<'a> {
    pub name: &'a str,
    pub labels: &'a Labels,
    pub network_unavailable: bool,
    pub exclude_from_external_lb: bool,
}

/// One Service as the rules read it.
#[derive(Debug, Clone, Copy)]
pub struct BgpService<'a> {
    /// `namespace/name`.
    pub key: &'a str,
    /// Its status addresses.
    pub ips: &'a [IpAddr],
    pub labels: &'a Labels,
    /// `externalTrafficPolicy: Local`.
    pub local: bool,
    /// A ready or serving endpoint on this node.
    pub serving_here: bool,
    /// A ready or serving endpoint on any node.
    pub serving_anywhere: bool,
}

/// The attributes of one announced prefix (the session adds origin, path and next hop).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    /// LOCAL_PREF, sent to iBGP peers only.
    pub local_pref: Option<u32>,
    pub communities: BTreeSet<Community>,
}

/// Why a Service's addresses are not announced from this node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Withheld {
    /// Its addresses are not all in one pool of the config.
    OutsidePools,
    /// No BGPAdvertisement of its pool selects this node.
    NotSelected,
    /// The advertisements selecting this node select other Services.
    NoMatchingAdvertisement,
    /// Two advertisements give one prefix to one peer with different local preferences.
    ConflictingLocalPref {
        prefix: IpNet,
        peer: String,
    },
    NetworkUnavailable,
    ExcludedByLabel,
    /// `externalTrafficPolicy: Local` and no serving endpoint on this node.
    NoLocalEndpoints,
    /// No serving endpoint on any node.
    NoEndpoints,
    /// No peer has a session on this node for its advertisements (or its family).
    NoPeer,
}

impl Withheld {
    /// MetalLB's reason word for it (its `serviceWithdrawn` log), or ours where it has none.
    pub fn label(&self) -> &'static str {
        match self {
            Withheld::OutsidePools => "notInPool",
            Withheld::NotSelected => "notOwner",
            Withheld::NoMatchingAdvertisement => "noMatchingAdvertisement",
            Withheld::ConflictingLocalPref { .. } => "conflictingAdvertisements",
            Withheld::NetworkUnavailable => "nodeNetworkUnavailable",
            Withheld::ExcludedByLabel => "nodeLabeledExcludeBalancers",
            Withheld::NoLocalEndpoints => "noLocalEndpoints",
            Withheld::NoEndpoints => "noEndpoints",
            Withheld::NoPeer => "noPeer",
        }
    }
}

impl fmt::Display for Withheld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Withheld::OutsidePools => f.write_str("its addresses are not all in one pool"),
            Withheld::NotSelected => {
                f.write_str("no BGPAdvertisement of its pool selects this node")
            }
            Withheld::NoMatchingAdvertisement => f.write_str(
                "the BGPAdvertisements that select this node do not select this Service",
            ),
            Withheld::ConflictingLocalPref { prefix, peer } => write!(
                f,
                "BGPAdvertisements give {prefix} to peer {peer} with different localPref"
            ),
            Withheld::NetworkUnavailable => f.write_str("this node is NetworkUnavailable"),
            Withheld::ExcludedByLabel => f.write_str(
                "this node is labelled node.kubernetes.io/exclude-from-external-load-balancers",
            ),
            Withheld::NoLocalEndpoints => f.write_str(
                "externalTrafficPolicy is Local and no serving endpoint is on this node",
            ),
            Withheld::NoEndpoints => f.write_str("no serving endpoint"),
            Withheld::NoPeer => {
                f.write_str("no peer of its advertisements has a session on this node")
            }
        }
    }
}

/// What one node announces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeRoutes {
    /// Peer name → prefix → attributes. Every peer with a session on this node has an entry,
    /// empty when nothing goes to it.
    pub peers: BTreeMap<String, BTreeMap<IpNet, Route>>,
    /// Service → the peers its prefixes go to (what ServiceBGPStatus lists).
    pub services: BTreeMap<String, BTreeSet<String>>,
    /// Services of pools announced over BGP whose addresses this node does not announce.
    pub withheld: BTreeMap<String, Withheld>,
    /// Addresses of Services this node would announce that no peer of their advertisements on
    /// this node can carry: each such peer is of the other family, without
    /// `dualStackAddressFamily` (an IPv6 address with IPv4 sessions only).
    pub unreachable: BTreeMap<String, BTreeSet<IpAddr>>,
    /// Service → its addresses this node announces to at least one peer.
    pub addresses: BTreeMap<String, BTreeSet<IpAddr>>,
}

/// The prefix of `len` bits holding `ip`.
pub fn prefix_of(ip: IpAddr, len: u8) -> Option<IpNet> {
    IpNet::new(ip, len).ok().map(|n| n.trunc())
}

/// What `node` announces for `services` under `config`.
pub fn node_routes<'a>(
    config: &Config,
    node: BgpNode<'_>,
    services: impl IntoIterator<Item = BgpService<'a>>,
    ignore_exclude_lb: bool,
) -> NodeRoutes {
    let mut out = NodeRoutes::default();
    let peers: Vec<_> = config
        .peers
        .iter()
        .filter(|p| p.selects_node(node.labels))
        .collect();
    for p in &peers {
        out.peers.entry(p.name.clone()).or_default();
    }
    // Per pool: its advertisements that select this node (empty when it has none at all: not
    // a BGP pool, so its Services are not reported here).
    let per_pool: Vec<(Vec<&BgpAd>, bool)> = config
        .address_pools
        .iter()
        .map(|pool| {
            let all = config.bgp_advertisements_for(pool);
            let any = !all.is_empty();
            let here = all.into_iter().filter(|a| a.selects_node(node.labels));
            (here.collect(), any)
        })
        .collect();
    for svc in services {
        let Some(first) = svc.ips.first() else {
            continue;
        };
        let Some(index) = config.address_pools.iter().position(|p| p.contains(*first)) else {
            continue;
        };
        let (ads, is_bgp) = &per_pool[index];
        if !*is_bgp {
            continue;
        }
        let pool = &config.address_pools[index];
        let verdict = if !svc.ips.iter().all(|ip| pool.contains(*ip)) {
            Err(Withheld::OutsidePools)
        } else {
            service_routes(ads, &peers, node, &svc, ignore_exclude_lb)
        };
        let verdict = verdict.map(|(routes, carried, gaps)| {
            if !gaps.is_empty() {
                out.unreachable.insert(svc.key.to_owned(), gaps);
            }
            if !carried.is_empty() {
                out.addresses.insert(svc.key.to_owned(), carried);
            }
            routes
        });
        match verdict {
            Ok(routes) if routes.is_empty() => {
                out.withheld.insert(svc.key.to_owned(), Withheld::NoPeer);
            }
            Ok(routes) => {
                let mut to = BTreeSet::new();
                for ((peer, prefix), route) in routes {
                    let entry = out.peers.entry(peer.clone()).or_default();
                    let merged = entry.entry(prefix).or_insert_with(|| Route {
                        local_pref: route.local_pref,
                        communities: BTreeSet::new(),
                    });
                    merged.communities.extend(route.communities);
                    to.insert(peer);
                }
                out.services.insert(svc.key.to_owned(), to);
            }
            Err(why) => {
                out.withheld.insert(svc.key.to_owned(), why);
            }
        }
    }
    out
}

/// (routes by (peer, prefix), addresses announced, addresses no peer here can carry).
type ServiceRoutes = (
    BTreeMap<(String, IpNet), Route>,
    BTreeSet<IpAddr>,
    BTreeSet<IpAddr>,
);

/// One Service's routes from this node, by (peer, prefix), with its addresses some peer gets
/// and those only peers of the other family would get; or why none.
fn service_routes(
    ads: &[&BgpAd],
    peers: &[&crate::config::Peer],
    node: BgpNode<'_>,
    svc: &BgpService<'_>,
    ignore_exclude_lb: bool,
) -> Result<ServiceRoutes, Withheld> {
    if ads.is_empty() {
        return Err(Withheld::NotSelected);
    }
    let matching: Vec<&BgpAd> = ads
        .iter()
        .copied()
        .filter(|a| a.selects_service(svc.labels))
        .collect();
    if matching.is_empty() {
        return Err(Withheld::NoMatchingAdvertisement);
    }
    let mut routes: BTreeMap<(String, IpNet), Route> = BTreeMap::new();
    // Addresses some advertisement names a peer of this node for, and those a peer carries.
    let (mut named, mut carried) = (BTreeSet::new(), BTreeSet::new());
    for ad in &matching {
        for ip in svc.ips {
            let len = if ip.is_ipv4() {
                ad.aggregation_length
            } else {
                ad.aggregation_length_v6
            };
            let Some(prefix) = prefix_of(*ip, len) else {
                continue;
            };
            let mut to = peers.iter().filter(|p| ad.selects_peer(&p.name)).peekable();
            if to.peek().is_some() {
                named.insert(*ip);
            }
            let to = to.filter(|p| p.dual_stack || p.peer_address.is_ipv4() == ip.is_ipv4());
            for peer in to {
                carried.insert(*ip);
                let key = (peer.name.clone(), prefix);
                match routes.get_mut(&key) {
                    Some(r) if r.local_pref != ad.local_pref => {
                        return Err(Withheld::ConflictingLocalPref {
                            prefix,
                            peer: peer.name.clone(),
                        });
                    }
                    Some(r) => r.communities.extend(ad.communities.iter().copied()),
                    None => {
                        routes.insert(
                            key,
                            Route {
                                local_pref: ad.local_pref,
                                communities: ad.communities.iter().copied().collect(),
                            },
                        );
                    }
                }
            }
        }
    }
    if node.network_unavailable {
        return Err(Withheld::NetworkUnavailable);
    }
    if node.exclude_from_external_lb && !ignore_exclude_lb {
        return Err(Withheld::ExcludedByLabel);
    }
    if svc.local && !svc.serving_here {
        return Err(Withheld::NoLocalEndpoints);
    }
    if !svc.serving_anywhere {
        return Err(Withheld::NoEndpoints);
    }
    let gaps = named.difference(&carried).copied().collect();
    Ok((routes, carried, gaps))
}

#[cfg(test)]
#[path = "advertise_bgp_tests.rs"]
mod tests;
