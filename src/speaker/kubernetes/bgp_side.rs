//! The Kubernetes speaker's BGP side: the config's peers that have a session on this node
//! become [`PeerSpec`]s (a `passwordSecret` read from its Secret), this node's routes
//! ([`super::bgp_routes`]) become each session's table, and [`BgpAnnouncer`] runs them. It
//! also turns the sessions' states into the BGP metrics and says when one went down, and gives
//! the ServiceBGPStatus writer the peers each Service goes to.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use tokio::sync::watch;
use tracing::warn;

use crate::advertise_bgp::{NodeRoutes, Route};
use crate::bgp::rib::{RouteAttrs, Routes};
use crate::bgp::session::{PeerAs, State};
use crate::bgp::wire::{Community as WireCommunity, LargeCommunity};
use crate::config::{Community, Config, DynamicAsn, Peer};
use crate::speaker::bfd;
use crate::speaker::bgp::{BgpAnnouncer, PeerSpec, PeerStatus};
use crate::speaker::bgp_metrics::{BfdSample, BgpMetrics, PeerSample};
use crate::speaker::metrics::AnnouncedIps;

use super::bgp_events::{
    BgpEvents, PEER_NOT_STARTED, PeerNews, ROUTES_SKIPPED, SESSION_DOWN, ServiceNews,
};

/// A peer's session settings, with its TCP MD5 key (`password`, or the one its
/// `passwordSecret` names, looked up by `secret`). The error says which field and why.
pub fn peer_spec(peer: &Peer, secret: &dyn Fn(&str) -> Option<String>) -> Result<PeerSpec, String> {
    let router_id = match peer.router_id {
        None => None,
        Some(IpAddr::V4(v4)) => Some(v4),
        Some(IpAddr::V6(v6)) => {
            return Err(format!(
                "routerID {v6} is not an IPv4 address (a BGP Identifier is 4 octets)"
            ));
        }
    };
    let password = match (&peer.password, &peer.password_secret) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(name)) => Some(secret(name).ok_or_else(|| {
            format!(
                "passwordSecret {name:?}: no kubernetes.io/basic-auth Secret of that name with \
                 a password key in the speaker's namespace"
            )
        })?),
        (None, None) => None,
    };
    Ok(PeerSpec {
        name: peer.name.clone(),
        address: peer.peer_address,
        port: peer.peer_port,
        source: peer.source_address,
        local_as: peer.my_asn,
        peer_as: match peer.dynamic_asn {
            Some(DynamicAsn::Internal) => PeerAs::Internal,
            Some(DynamicAsn::External) => PeerAs::External,
            None => PeerAs::Exact(peer.peer_asn),
        },
        router_id,
        hold_time: u16::try_from(peer.hold_time.as_secs()).unwrap_or(u16::MAX),
        connect_time: peer.connect_time,
        ebgp_multihop: peer.ebgp_multihop,
        password,
        graceful_restart: peer.graceful_restart,
        bfd: None,
        bfd_minimum_ttl: None,
    })
}

/// One route's attributes as a session sends them.
pub fn attributes(route: &Route) -> RouteAttrs {
    let mut attrs = RouteAttrs {
        local_pref: route.local_pref,
        ..RouteAttrs::default()
    };
    for c in &route.communities {
        match *c {
            Community::Standard(v) => {
                attrs.communities.insert(WireCommunity(v));
            }
            Community::Large {
                global_admin,
                local_data1,
                local_data2,
            } => {
                attrs.large_communities.insert(LargeCommunity {
                    global: global_admin,
                    local1: local_data1,
                    local2: local_data2,
                });
            }
        }
    }
    attrs
}

/// The password of a `kubernetes.io/basic-auth` Secret (its `password` key).
pub fn secret_password(secret: &Secret) -> Option<String> {
    if secret.type_.as_deref() != Some("kubernetes.io/basic-auth") {
        return None;
    }
    let bytes = secret.data.as_ref()?.get("password")?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// The sessions of this node and what they report.
pub struct BgpSide {
    announcer: BgpAnnouncer,
    metrics: Arc<BgpMetrics>,
    /// What the sessions were last set to (skipped when it is the same again).
    applied: Vec<(PeerSpec, Routes)>,
    /// Peers refused (a bad routerID, a Secret missing), with their metric label: said once
    /// until it changes, and exported as down.
    refused: BTreeMap<String, (String, String)>,
    /// Why each session that is not Established last failed, as last logged.
    failures: BTreeMap<String, String>,
    /// Each session's last state seen.
    states: BTreeMap<String, State>,
    /// Each session's status, read (and marked seen) by [`Self::refresh`].
    receivers: BTreeMap<String, watch::Receiver<PeerStatus>>,
    /// Each Service this node announces over BGP, with the peers it goes to.
    services: Arc<BTreeMap<String, BTreeSet<String>>>,
    /// The (address, Service) pairs this node announces to some peer.
    addresses: AnnouncedIps,
    node: String,
    events: BgpEvents,
    /// Events due, taken by [`Self::take_news`].
    service_news: Vec<ServiceNews>,
    peer_news: Vec<PeerNews>,
}

impl BgpSide {
    /// `listen_port`: where the peers' own connections are taken (0: dial only).
    pub fn new(node: &str, metrics: Arc<BgpMetrics>, listen_port: u16) -> BgpSide {
        let announcer = BgpAnnouncer::new(node);
        BgpSide {
            announcer: match listen_port {
                0 => announcer,
                port => announcer.listening_on(port),
            },
            metrics,
            applied: Vec::new(),
            refused: BTreeMap::new(),
            failures: BTreeMap::new(),
            states: BTreeMap::new(),
            receivers: BTreeMap::new(),
            services: Arc::new(BTreeMap::new()),
            addresses: AnnouncedIps::new(),
            node: node.to_owned(),
            events: BgpEvents::default(),
            service_news: Vec::new(),
            peer_news: Vec::new(),
        }
    }

    /// The events due since the last call: about Services, and about peers.
    pub fn take_news(&mut self) -> (Vec<ServiceNews>, Vec<PeerNews>) {
        (
            std::mem::take(&mut self.service_news),
            std::mem::take(&mut self.peer_news),
        )
    }

    /// The (address, Service) pairs this node announces over BGP.
    pub fn addresses(&self) -> &AnnouncedIps {
        &self.addresses
    }

    /// Runs the sessions `routes` names (the config's peers with a session on this node),
    /// each with its table; `None` (no peer in the config) stops every session.
    pub async fn apply(
        &mut self,
        config: Option<&Config>,
        routes: Option<NodeRoutes>,
        secret: &dyn Fn(&str) -> Option<String>,
    ) {
        let routes = routes.unwrap_or_default();
        let mut wanted = Vec::new();
        let mut refused = BTreeMap::new();
        for peer in config.iter().flat_map(|c| &c.peers) {
            let Some(table) = routes.peers.get(&peer.name) else {
                continue;
            };
            match peer_spec(peer, secret) {
                Ok(mut spec) => {
                    let bfd = config.and_then(|c| bfd::peer_config(c, peer));
                    (spec.bfd, spec.bfd_minimum_ttl) = (bfd.map(|b| b.0), bfd.and_then(|b| b.1));
                    let table = table.iter().map(|(p, r)| (*p, attributes(r))).collect();
                    wanted.push((spec, table));
                }
                Err(why) => {
                    let label = address_label(peer.peer_address, peer.peer_port);
                    refused.insert(peer.name.clone(), (label, why));
                }
            }
        }
        for (peer, (_, why)) in &refused {
            if self.refused.get(peer).map(|(_, w)| w) != Some(why) {
                warn!(peer = %peer, "BGP peer not started: {why}");
            }
        }
        let refused_changed = refused != self.refused;
        self.refused = refused;
        let news = self.events.services(&self.node, &routes);
        self.service_news.extend(news);
        self.addresses = routes
            .addresses
            .iter()
            .flat_map(|(svc, ips)| {
                let svc: Arc<str> = Arc::from(svc.as_str());
                ips.iter().map(move |ip| (*ip, svc.clone()))
            })
            .collect();
        self.services = Arc::new(routes.services);
        if wanted == self.applied {
            if refused_changed {
                self.read_statuses();
            }
            return;
        }
        for e in self.announcer.set(wanted.clone()).await {
            warn!("BGP peer not started: {e}");
        }
        self.applied = wanted;
        self.receivers = self.announcer.statuses();
        self.read_statuses();
    }

    /// Each Service this node announces over BGP, with the peers it goes to.
    pub fn services(&self) -> &Arc<BTreeMap<String, BTreeSet<String>>> {
        &self.services
    }

    /// After a wake-up of the speaker's loop: reads the sessions' statuses if one changed (the
    /// loop wakes for many other reasons, and most wake-ups change no session).
    pub fn refresh(&mut self) {
        // A session whose task ended counts as changed: its last word may not be read yet.
        if self
            .receivers
            .values()
            .any(|rx| rx.has_changed().unwrap_or(true))
        {
            self.read_statuses();
        }
    }

    /// Reads every session's status into the metrics and the peer events, and logs why a
    /// session that is not established failed, once per reason.
    fn read_statuses(&mut self) {
        let statuses: BTreeMap<String, PeerStatus> = self
            .receivers
            .iter_mut()
            .map(|(name, rx)| (name.clone(), rx.borrow_and_update().clone()))
            .collect();
        let mut samples = BTreeMap::new();
        let mut problems = BTreeMap::new();
        for (spec, table) in &self.applied {
            let status = statuses.get(&spec.name).cloned().unwrap_or_default();
            let up = status.state == State::Established;
            // (The session's task logs "BGP session established" and "BGP session down".)
            self.states.insert(spec.name.clone(), status.state);
            // A session that does not come up says why, once per reason (a refused or timed
            // out connection, a NOTIFICATION: a wrong AS, an MD5 key the router does not share).
            match (&status.last_down, up) {
                (Some(why), false) if self.failures.get(&spec.name) != Some(why) => {
                    warn!(peer = %spec.name, reason = %why, "BGP session not established");
                    self.failures.insert(spec.name.clone(), why.clone());
                }
                (_, true) => {
                    self.failures.remove(&spec.name);
                }
                _ => {}
            }
            let label = peer_label(spec);
            if let (Some(why), false) = (&status.last_down, up) {
                let note = format!(
                    "BGP session from node {} to peer {} ({label}) is not established: {why}",
                    self.node, spec.name
                );
                problems.insert((spec.name.clone(), SESSION_DOWN), note);
            }
            if up && !status.skipped.is_empty() {
                let note = format!(
                    "routes from node {} not sent to peer {} ({label}): {}",
                    self.node,
                    spec.name,
                    status.skipped.join("; ")
                );
                problems.insert((spec.name.clone(), ROUTES_SKIPPED), note);
            }
            samples.insert(
                peer_label(spec),
                PeerSample {
                    up,
                    updates_sent: status.updates_sent,
                    announced: status.announced_prefixes,
                    pending: table.len(),
                    bfd: status.bfd.map(|b| BfdSample {
                        up: b.up,
                        up_events: b.up_events,
                        down_events: b.down_events,
                        packets_in: b.packets_in,
                        packets_out: b.packets_out,
                    }),
                },
            );
        }
        // A peer that could not start is down too, so the session-down alert sees it.
        for (name, (label, why)) in &self.refused {
            samples.insert(label.clone(), PeerSample::default());
            let note = format!(
                "BGP peer {name} ({label}) not started on node {}: {why}",
                self.node
            );
            problems.insert((name.clone(), PEER_NOT_STARTED), note);
        }
        let news = self.events.peers(problems);
        self.peer_news.extend(news);
        let applied = |name: &String| self.applied.iter().any(|(s, _)| s.name == *name);
        self.states.retain(|name, _| applied(name));
        self.failures.retain(|name, _| applied(name));
        self.metrics.set(samples);
    }

    /// Resolves when a session's status changed (never while there is none).
    pub fn changed(&self) -> impl Future<Output = ()> + use<> {
        // Clones remember what was seen; a session whose task ended changes no more.
        let mut receivers: Vec<watch::Receiver<PeerStatus>> = self
            .receivers
            .values()
            .filter(|rx| rx.has_changed().is_ok())
            .cloned()
            .collect();
        async move {
            if receivers.is_empty() {
                return std::future::pending().await;
            }
            let waits = receivers.iter_mut().map(|rx| Box::pin(rx.changed()));
            let _ = futures::future::select_all(waits).await;
        }
    }

    /// Cease to every router (so each withdraws this node's routes at once), within 1 s.
    pub async fn shutdown(self) {
        self.announcer.shutdown().await;
    }
}

/// MetalLB's `peer` label: `address:port` (an IPv6 address in brackets).
fn peer_label(spec: &PeerSpec) -> String {
    address_label(spec.address, spec.port)
}

fn address_label(address: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(address, port).to_string()
}

#[cfg(test)]
#[path = "bgp_side_tests.rs"]
mod tests;
