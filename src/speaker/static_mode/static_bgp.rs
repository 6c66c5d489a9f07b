//! The static file's BGP mode: the `bgp:` section (peers, and the default announcement options)
//! and each `addresses` entry's own `bgp:` options, checked, and turned into the sessions this
//! node runs with the routes each peer should hold.
//!
//! BGP has no election: every node an address entry allows (`nodes`, absent = every node)
//! announces each of its addresses to each of its peers (a peer's `nodes`, absent = every node)
//! with its own next hop, and the routers spread traffic over them (ECMP).
//!
//! ```yaml
//! bgp:
//!   peers:
//!   - name: tor                     # unique; what `peers:` below refers to
//!     peer-address: 192.0.2.1
//!     peer-asn: 64512
//!     my-asn: 64513
//!     peer-port: 179                # optional, 179
//!     source-address: 192.0.2.11    # optional: bind the session to this local address
//!     hold-time: 90                 # optional, seconds: 0 or at least 3
//!     connect-time: 10              # optional, seconds: connect and OPEN deadline
//!     ebgp-multihop: false          # optional: send with TTL 255
//!     password: s3cret              # optional: TCP MD5 (RFC 2385), at most 80 bytes
//!     router-id: 192.0.2.11         # optional: else the session's local IPv4 address
//!     graceful-restart: false       # optional: graceful restart (RFC 4724, forwarding kept)
//!     nodes: [node-a, node-b]       # optional: the nodes that peer with it; absent = all
//!     bfd:                          # optional: BFD with the peer (single hop; multi-hop with ebgp-multihop)
//!       receive-interval: 300       # ms, 10-60000; unset = 300 (and the same below)
//!       transmit-interval: 300
//!       detect-multiplier: 3        # 2-255
//!       passive-mode: false         # send nothing until the router does
//!   defaults:                       # optional: announcement options of every address
//!     communities: ["65000:1", "large:64512:1:2"]
//!     local-pref: 100               # iBGP only; unset = 100
//!     aggregation-length: 32        # announce the address masked to this length (IPv4)
//!     aggregation-length-v6: 128
//!     peers: [tor]                  # only to these peers; absent = all
//! addresses:
//! - service: default/web
//!   ips: [192.0.2.100]
//!   bgp: {communities: ["65000:2"]} # field by field over `defaults` (this list, standard and
//!                                   # large, replaces the default list; the rest is inherited)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use thiserror::Error;

use crate::bgp::rib::{RouteAttrs, Routes};
use crate::bgp::session::PeerAs;
use crate::bgp::wire::{Community, LargeCommunity};
use crate::speaker::bfd;
use crate::speaker::bgp::{PeerSpec, SpecError};

/// One `addresses` entry as BGP reads it.
#[derive(Debug, Clone, Copy)]
pub struct BgpAddress<'a> {
    pub service: &'a str,
    pub ips: &'a [IpAddr],
    /// The nodes that announce it; `None` = every node.
    pub nodes: Option<&'a BTreeSet<String>>,
    pub bgp: Option<&'a Announce>,
}

/// The `bgp:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BgpSection {
    #[serde(default)]
    pub peers: Vec<StaticPeer>,
    /// The announcement options of every address, field by field under its own.
    #[serde(default)]
    pub defaults: Option<Announce>,
}

/// One router to peer with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StaticPeer {
    pub name: String,
    pub peer_address: IpAddr,
    pub peer_asn: u32,
    pub my_asn: u32,
    #[serde(default)]
    pub peer_port: Option<u16>,
    #[serde(default)]
    pub source_address: Option<IpAddr>,
    #[serde(default)]
    pub hold_time: Option<u16>,
    #[serde(default)]
    pub connect_time: Option<u16>,
    #[serde(default)]
    pub ebgp_multihop: bool,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub router_id: Option<Ipv4Addr>,
    #[serde(default)]
    pub graceful_restart: bool,
    #[serde(default)]
    pub nodes: Option<BTreeSet<String>>,
    /// Run BFD with the peer (RFC 5881 single hop; RFC 5883 multi-hop for an `ebgp-multihop` peer):
    /// a BFDProfile's supported fields.
    #[serde(default)]
    pub bfd: Option<StaticBfd>,
}

/// A static peer's `bfd:`: intervals in ms, MetalLB's defaults (300, 300, 3) when unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StaticBfd {
    #[serde(default)]
    pub receive_interval: Option<u32>,
    #[serde(default)]
    pub transmit_interval: Option<u32>,
    #[serde(default)]
    pub detect_multiplier: Option<u32>,
    #[serde(default)]
    pub passive_mode: bool,
}

/// How an address is announced; each field unset here falls back to `bgp.defaults`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Announce {
    #[serde(default)]
    pub communities: Option<Vec<String>>,
    #[serde(default)]
    pub local_pref: Option<u32>,
    #[serde(default)]
    pub aggregation_length: Option<u8>,
    #[serde(default)]
    pub aggregation_length_v6: Option<u8>,
    #[serde(default)]
    pub peers: Option<BTreeSet<String>>,
}

impl Announce {
    /// `self` over `defaults`, field by field.
    fn over(&self, defaults: Option<&Announce>) -> Announce {
        let d = defaults.cloned().unwrap_or_default();
        Announce {
            communities: self.communities.clone().or(d.communities),
            local_pref: self.local_pref.or(d.local_pref),
            aggregation_length: self.aggregation_length.or(d.aggregation_length),
            aggregation_length_v6: self.aggregation_length_v6.or(d.aggregation_length_v6),
            peers: self.peers.clone().or(d.peers),
        }
    }
}

/// What is wrong with the BGP parts of the file, naming the peer or service and the field.
#[derive(Debug, Error)]
pub enum BgpConfigError {
    #[error("bgp.peers: a peer has an empty `name`")]
    EmptyPeerName,
    #[error("bgp.peers: peer {0:?} is listed twice")]
    DuplicatePeer(String),
    /// The peer's own message (no `source()`: it is all in the text).
    #[error("bgp.peers: {0}")]
    Peer(SpecError),
    #[error("bgp.peers: peer {0:?}: `ebgp-multihop` on an iBGP peer (peer-asn = my-asn)")]
    MultihopInternal(String),
    #[error("{place}: community {value:?} is neither `A:B` (16-bit numbers) nor `large:A:B:C`")]
    Community { place: String, value: String },
    #[error("{place}: `{field}` {value} is outside 1-{max}")]
    Aggregation {
        place: String,
        field: &'static str,
        value: u8,
        max: u8,
    },
    #[error("bgp.peers: peer {peer:?}: bfd `{field}` {value} is outside {min}-{max}")]
    Bfd {
        peer: String,
        field: &'static str,
        value: u32,
        min: u32,
        max: u32,
    },
    #[error("{place}: `peers` names {peer:?}, which is not in bgp.peers")]
    UnknownPeer { place: String, peer: String },
}

/// A standard (`A:B`) or large (`large:A:B:C`) community.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyCommunity {
    Standard(Community),
    Large(LargeCommunity),
}

pub fn parse_community(text: &str) -> Option<AnyCommunity> {
    if let Some(rest) = text.strip_prefix("large:") {
        let mut parts = rest.split(':').map(str::parse::<u32>);
        let (Some(Ok(global)), Some(Ok(local1)), Some(Ok(local2)), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        return Some(AnyCommunity::Large(LargeCommunity {
            global,
            local1,
            local2,
        }));
    }
    let (asn, value) = text.split_once(':')?;
    Some(AnyCommunity::Standard(Community::new(
        asn.parse().ok()?,
        value.parse().ok()?,
    )))
}

/// Checks the `bgp:` section and every address's `bgp:` options.
pub fn validate(
    section: Option<&BgpSection>,
    addresses: &[BgpAddress<'_>],
) -> Result<(), BgpConfigError> {
    let section = section.cloned().unwrap_or_default();
    let mut names = BTreeSet::new();
    for peer in &section.peers {
        if peer.name.trim().is_empty() {
            return Err(BgpConfigError::EmptyPeerName);
        }
        if !names.insert(peer.name.as_str()) {
            return Err(BgpConfigError::DuplicatePeer(peer.name.clone()));
        }
        if peer.ebgp_multihop && peer.peer_asn == peer.my_asn {
            return Err(BgpConfigError::MultihopInternal(peer.name.clone()));
        }
        if let Some(b) = &peer.bfd {
            let values = [b.receive_interval, b.transmit_interval, b.detect_multiplier];
            for ((field, min, max), value) in bfd::PROFILE_RANGES.into_iter().zip(values) {
                if let Some(value) = value.filter(|v| !(min..=max).contains(v)) {
                    let peer = peer.name.clone();
                    return Err(BgpConfigError::Bfd {
                        peer,
                        field,
                        value,
                        min,
                        max,
                    });
                }
            }
        }
        let spec = spec(peer);
        spec.session_config(spec.router_id.unwrap_or(Ipv4Addr::new(192, 0, 2, 1)))
            .map_err(BgpConfigError::Peer)?;
    }
    let check = |place: String, announce: &Announce| -> Result<(), BgpConfigError> {
        for value in announce.communities.iter().flatten() {
            if parse_community(value).is_none() {
                let value = value.clone();
                return Err(BgpConfigError::Community { place, value });
            }
        }
        for (field, value, max) in [
            ("aggregation-length", announce.aggregation_length, 32),
            ("aggregation-length-v6", announce.aggregation_length_v6, 128),
        ] {
            if let Some(value) = value.filter(|v| !(1..=max).contains(v)) {
                return Err(BgpConfigError::Aggregation {
                    place,
                    field,
                    value,
                    max,
                });
            }
        }
        if let Some(peer) = announce
            .peers
            .iter()
            .flatten()
            .find(|p| !names.contains(p.as_str()))
        {
            let peer = peer.clone();
            return Err(BgpConfigError::UnknownPeer { place, peer });
        }
        Ok(())
    };
    if let Some(defaults) = &section.defaults {
        check("bgp.defaults".to_string(), defaults)?;
    }
    for address in addresses {
        if let Some(announce) = address.bgp {
            check(format!("service {:?}: bgp", address.service), announce)?;
        }
    }
    Ok(())
}

fn spec(peer: &StaticPeer) -> PeerSpec {
    PeerSpec {
        name: peer.name.clone(),
        address: peer.peer_address,
        port: peer.peer_port.unwrap_or(179),
        source: peer.source_address,
        local_as: peer.my_asn,
        peer_as: PeerAs::Exact(peer.peer_asn),
        router_id: peer.router_id,
        hold_time: peer.hold_time.unwrap_or(90),
        connect_time: peer.connect_time.map(|s| Duration::from_secs(u64::from(s))),
        ebgp_multihop: peer.ebgp_multihop,
        password: peer.password.clone(),
        graceful_restart: peer.graceful_restart,
        bfd: peer.bfd.map(|b| {
            bfd::profile_config(
                b.receive_interval,
                b.transmit_interval,
                b.detect_multiplier,
                b.passive_mode,
            )
        }),
        bfd_minimum_ttl: None,
    }
}

fn applies(nodes: Option<&BTreeSet<String>>, me: &str) -> bool {
    nodes.is_none_or(|n| n.contains(me))
}

/// The sessions node `me` runs, each with the routes its peer should hold.
pub fn peers_for(
    me: &str,
    section: Option<&BgpSection>,
    addresses: &[BgpAddress<'_>],
) -> Vec<(PeerSpec, Routes)> {
    let Some(section) = section else {
        return Vec::new();
    };
    section
        .peers
        .iter()
        .filter(|p| applies(p.nodes.as_ref(), me))
        .map(|peer| {
            let routes = routes_for(&peer.name, addresses, section, me);
            (spec(peer), routes)
        })
        .collect()
}

fn routes_for(peer: &str, addresses: &[BgpAddress<'_>], section: &BgpSection, me: &str) -> Routes {
    let mut routes: BTreeMap<IpNet, RouteAttrs> = BTreeMap::new();
    for service in addresses.iter().filter(|s| applies(s.nodes, me)) {
        let announce = service
            .bgp
            .cloned()
            .unwrap_or_default()
            .over(section.defaults.as_ref());
        if !applies(announce.peers.as_ref(), peer) {
            continue;
        }
        let mut attrs = RouteAttrs {
            local_pref: announce.local_pref,
            ..RouteAttrs::default()
        };
        for c in announce.communities.iter().flatten() {
            match parse_community(c) {
                Some(AnyCommunity::Standard(c)) => attrs.communities.insert(c),
                Some(AnyCommunity::Large(c)) => attrs.large_communities.insert(c),
                None => false,
            };
        }
        for ip in service.ips {
            let len = match ip {
                IpAddr::V4(_) => announce.aggregation_length.unwrap_or(32),
                IpAddr::V6(_) => announce.aggregation_length_v6.unwrap_or(128),
            };
            let Ok(prefix) = IpNet::new(*ip, len).map(|p| p.trunc()) else {
                continue;
            };
            // One aggregate from several services: their communities merged, the first
            // local preference kept (MetalLB's native rule).
            let entry = routes.entry(prefix).or_insert_with(|| attrs.clone());
            entry.communities.extend(attrs.communities.iter().copied());
            entry
                .large_communities
                .extend(attrs.large_communities.iter().copied());
        }
    }
    routes
}

#[cfg(test)]
#[path = "static_bgp_tests.rs"]
mod tests;
