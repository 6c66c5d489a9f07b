//! The BGP edge of the speaker (shared by both modes): one task per peer drives a
//! [`crate::bgp::session::Session`] over a TCP connection it dials (`peer`, `dial`), sends the
//! routes this node wants the peer to have through the session's [`AdjRibOut`](crate::bgp::rib)
//! and reports its state; [`BgpAnnouncer`] starts, updates, restarts and stops those tasks as the
//! configuration changes, and on shutdown tells every router with a Cease (RFC 8203) so it
//! withdraws this node's routes at once instead of after the hold time. A peer with BFD runs a
//! BFD session next to its BGP session (`crate::speaker::bfd`); the BFD session failing closes
//! the BGP session at once (Cease / BFD Down), which then connects again as after any failure.

pub mod dial;
pub mod listen;
mod peer;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::bfd::{Config as BfdConfig, ConfigError as BfdConfigError};
use crate::bgp::rib::Routes;
use crate::bgp::session::{ConfigError, PeerAs, SessionConfig, State};
use crate::bgp::wire::{GracefulRestart, GracefulRestartFamily};
use crate::layer2::sys::TCP_MD5_MAX_KEY;
use crate::speaker::bfd::{BfdSockets, BfdStatus};

/// The shutdown communication sent to every router when the speaker stops.
pub const SHUTDOWN_MESSAGE: &str = "ferrolb speaker shutting down";
/// Sent to a peer taken out of the configuration.
pub const REMOVED_MESSAGE: &str = "peer removed from configuration";
/// Sent to a peer whose settings changed, before the session is opened again with the new ones.
pub const CHANGED_MESSAGE: &str = "peer configuration changed";
/// How long stopping may take in all: the Cease is written at once, so this only bounds a peer
/// that does not read.
pub const STOP_BOUND: Duration = Duration::from_secs(1);
/// How long a router keeps a restarting speaker's routes (FRR's default, which MetalLB keeps).
pub const GR_RESTART_TIME: u16 = 120;

/// How much longer than the connect deadline ConnectRetryTime is, so a dial that gets no
/// answer ends at its own deadline (a failure, reported) first.
const CONNECT_RETRY_MARGIN: Duration = Duration::from_secs(1);

/// One BGP peer as configured. Two specs that differ in anything are two sessions: a changed
/// spec restarts its session, and only that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    /// Bind the connection to this local address (it must be one of this host's).
    pub source: Option<IpAddr>,
    pub local_as: u32,
    pub peer_as: PeerAs,
    /// The BGP Identifier; else the connection's local IPv4 address, else (IPv6) the CRC-32 of
    /// the node name ([`dial::router_id`]).
    pub router_id: Option<Ipv4Addr>,
    /// The hold time offered, in seconds (0 or at least 3).
    pub hold_time: u16,
    /// The connect and OPEN deadline; [`dial::DEFAULT_CONNECT_TIME`] when `None`.
    pub connect_time: Option<Duration>,
    /// Send with TTL (hop limit) 255, for a peer more than one hop away.
    pub ebgp_multihop: bool,
    /// The TCP MD5 signature key (RFC 2385), at most 80 bytes.
    pub password: Option<String>,
    /// Graceful restart (RFC 4724) as MetalLB's FRR modes negotiate it: the capability with
    /// each family's forwarding state kept, so a router keeps this node's routes (marked stale)
    /// while the speaker restarts, for up to [`GR_RESTART_TIME`], and drops those the restarted
    /// speaker does not announce again once it sends End-of-RIB. A Cease still withdraws at once
    /// (the N bit of RFC 8538 is not sent).
    pub graceful_restart: bool,
    /// Run a BFD session (RFC 5881, single hop) to the peer with these timers; its failure
    /// closes the BGP session at once.
    pub bfd: Option<BfdConfig>,
    /// A multi-hop BFD session's lowest accepted TTL (`minimumTtl`; 254 when `None`).
    pub bfd_minimum_ttl: Option<u8>,
}

impl PeerSpec {
    /// A spec with MetalLB's defaults: port 179, hold time 90 s, nothing else set.
    pub fn new(name: &str, address: IpAddr, local_as: u32, peer_as: u32) -> PeerSpec {
        PeerSpec {
            name: name.to_string(),
            address,
            port: 179,
            source: None,
            local_as,
            peer_as: PeerAs::Exact(peer_as),
            router_id: None,
            hold_time: 90,
            connect_time: None,
            ebgp_multihop: false,
            password: None,
            graceful_restart: false,
            bfd: None,
            bfd_minimum_ttl: None,
        }
    }

    pub fn with_port(mut self, port: u16) -> PeerSpec {
        self.port = port;
        self
    }

    fn connect_deadline(&self) -> Duration {
        self.connect_time.unwrap_or(dial::DEFAULT_CONNECT_TIME)
    }

    /// The session's settings with `router_id`; refuses what no session can start from.
    pub fn session_config(&self, router_id: Ipv4Addr) -> Result<SessionConfig, SpecError> {
        let peer = || self.name.clone();
        if let Some(password) = &self.password
            && password.len() > TCP_MD5_MAX_KEY
        {
            return Err(SpecError::Password {
                peer: peer(),
                len: password.len(),
            });
        }
        if let Some(source) = self.source
            && source.is_ipv4() != self.address.is_ipv4()
        {
            return Err(SpecError::SourceFamily {
                peer: peer(),
                source_address: source,
                address: self.address,
            });
        }
        if self
            .connect_time
            .is_some_and(|t| t < Duration::from_secs(1))
        {
            return Err(SpecError::ConnectTime { peer: peer() });
        }
        let mut config = SessionConfig::new(self.local_as, self.peer_as, router_id);
        config.hold_time = self.hold_time;
        // The dial, then the wait for the peer's OPEN, each get the deadline (MetalLB: one 10 s
        // deadline for both): a peer that accepts and stays silent is dropped as fast.
        config.open_hold = self.connect_deadline();
        // ConnectRetryTime, which RFC 4271 sets to 120 s: a peer that accepts the connection and
        // closes it before its OPEN (a router still starting, or one that does not know us yet)
        // is dialed again after it, from Active. The deadline (10 s) and a margin instead:
        // MetalLB's speaker dials again within seconds after any failure. Not the deadline
        // itself: ConnectRetry also runs in Connect, where it abandons the dial under way for a
        // new one, so expiring with the dial's own deadline it dropped a dial to a silent peer
        // (SYNs dropped: a firewall, an MD5 key the router does not share) before the dial
        // could time out and say so, again and again: no failure, no log, no backoff.
        config.connect_retry = self.connect_deadline() + CONNECT_RETRY_MARGIN;
        // Route refresh (RFC 2918), as FRR offers it: a router that asks gets the whole table.
        config.route_refresh = true;
        config.graceful_restart = self.graceful_restart.then(|| GracefulRestart {
            restarted: false,
            notification: false,
            restart_time: GR_RESTART_TIME,
            // `bgp graceful-restart preserve-fw-state`, which MetalLB's FRR config always has:
            // the node forwards to its Services while its speaker restarts.
            families: config
                .families
                .iter()
                .map(|&family| GracefulRestartFamily {
                    family,
                    forwarding_preserved: true,
                })
                .collect(),
        });
        config.check().map_err(|error| SpecError::Session {
            peer: peer(),
            error,
        })?;
        if let Some(bfd) = &self.bfd {
            bfd.check().map_err(|error| SpecError::Bfd {
                peer: peer(),
                error,
            })?;
        }
        Ok(config)
    }
}

/// A spec no session can start from, naming the peer and the field (the whole message: no
/// `source()`, so a report prints each part once).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("BGP peer {peer:?}: {error}")]
    Session { peer: String, error: ConfigError },
    #[error("BGP peer {peer:?}: password of {len} bytes; TCP MD5 takes at most 80")]
    Password { peer: String, len: usize },
    #[error(
        "BGP peer {peer:?}: source address {source_address} is not of the peer address's family \
         ({address})"
    )]
    SourceFamily {
        peer: String,
        source_address: IpAddr,
        address: IpAddr,
    },
    #[error("BGP peer {peer:?}: connect time must be at least 1 s")]
    ConnectTime { peer: String },
    #[error("BGP peer {peer:?}: {error}")]
    Bfd { peer: String, error: BfdConfigError },
    #[error("BGP peer {peer:?} is listed twice")]
    Duplicate { peer: String },
}

/// What one peer's task reports (enough for `session_up`, `updates_total`,
/// `announced_prefixes_total`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub state: State,
    /// Prefixes the peer holds from us (sent and not withdrawn).
    pub announced_prefixes: usize,
    /// UPDATE messages sent since the task started (End-of-RIB markers included).
    pub updates_sent: u64,
    /// Why the session (or its last attempt) last went down.
    pub last_down: Option<String>,
    /// Families of the desired routes this session cannot carry, said once per session.
    pub skipped: Vec<String>,
    /// The BFD session's, for a peer with one.
    pub bfd: Option<BfdStatus>,
}

impl Default for PeerStatus {
    fn default() -> Self {
        PeerStatus {
            state: State::Idle,
            announced_prefixes: 0,
            updates_sent: 0,
            last_down: None,
            skipped: Vec::new(),
            bfd: None,
        }
    }
}

struct Running {
    spec: PeerSpec,
    /// Registered with the listener (unregistered when it stops).
    listening: bool,
    routes: watch::Sender<Arc<Routes>>,
    stop: oneshot::Sender<String>,
    status: watch::Receiver<PeerStatus>,
    task: JoinHandle<()>,
}

/// Every peer session of this node; see the module documentation.
pub struct BgpAnnouncer {
    node: String,
    peers: BTreeMap<String, Running>,
    /// The port to listen on for the peers' own connections (`None`: dial only).
    listen_port: Option<u16>,
    listener: Option<listen::Listener>,
    /// The bind failed, and that was said.
    listen_failed: bool,
    /// BFD's listening sockets, bound when a first peer with BFD starts.
    bfd: Arc<BfdSockets>,
}

impl BgpAnnouncer {
    /// `node` names this node (its CRC-32 is the router ID of an IPv6 session without one).
    pub fn new(node: &str) -> BgpAnnouncer {
        BgpAnnouncer {
            node: node.to_string(),
            peers: BTreeMap::new(),
            listen_port: None,
            listener: None,
            listen_failed: false,
            bfd: Arc::new(BfdSockets::default()),
        }
    }

    /// Also takes the connections the peers open to `port` on this node (passive connects),
    /// from the first peer on.
    pub fn listening_on(mut self, port: u16) -> BgpAnnouncer {
        self.listen_port = Some(port);
        self
    }

    /// The listener, bound the first time a peer needs it; `None` if listening is off or the
    /// port cannot be bound (said once).
    fn listener(&mut self) -> Option<&listen::Listener> {
        if self.listener.is_none()
            && !self.listen_failed
            && let Some(port) = self.listen_port
        {
            match listen::Listener::bind(port) {
                Ok(l) => {
                    info!(port, "listening for BGP connections from the peers");
                    self.listener = Some(l);
                }
                Err(e) => {
                    self.listen_failed = true;
                    warn!(port, error = %e, "cannot listen for BGP connections (another BGP daemon on the node?); the sessions are dialed only");
                }
            }
        }
        self.listener.as_ref()
    }

    /// Makes the running sessions those of `peers`, each with the routes it should hold: starts
    /// new peers, stops removed ones (Cease, "peer removed from configuration"), restarts only
    /// the peers whose spec changed and hands the others their routes. A spec that cannot start
    /// is left out and returned; the others go ahead.
    pub async fn set(&mut self, peers: Vec<(PeerSpec, Routes)>) -> Vec<SpecError> {
        let mut errors = Vec::new();
        let mut wanted: BTreeMap<String, (PeerSpec, Routes)> = BTreeMap::new();
        for (spec, routes) in peers {
            let placeholder = spec.router_id.unwrap_or(Ipv4Addr::new(192, 0, 2, 1));
            if let Err(e) = spec.session_config(placeholder) {
                errors.push(e);
            } else if wanted.contains_key(&spec.name) {
                errors.push(SpecError::Duplicate { peer: spec.name });
            } else {
                wanted.insert(spec.name.clone(), (spec, routes));
            }
        }
        let mut stopping = Vec::new();
        let names: Vec<String> = self.peers.keys().cloned().collect();
        for name in names {
            let message = match wanted.get(&name) {
                None => REMOVED_MESSAGE,
                Some((spec, _)) if self.peers.get(&name).is_some_and(|r| r.spec != *spec) => {
                    CHANGED_MESSAGE
                }
                Some(_) => continue,
            };
            if let Some(running) = self.peers.remove(&name) {
                info!(peer = %name, "stopping BGP session: {message}");
                if running.listening
                    && let Some(listener) = &self.listener
                {
                    listener.unregister(running.spec.address, running.spec.password.is_some());
                }
                stopping.push((running, message));
            }
        }
        stop_all(stopping).await;
        for (name, (spec, routes)) in wanted {
            match self.peers.get(&name) {
                Some(running) => {
                    running.routes.send_if_modified(|current| {
                        let changed = **current != routes;
                        if changed {
                            *current = Arc::new(routes);
                        }
                        changed
                    });
                }
                None => {
                    let running = self.start(spec, routes);
                    self.peers.insert(name, running);
                }
            }
        }
        errors
    }

    fn start(&mut self, spec: PeerSpec, routes: Routes) -> Running {
        info!(peer = %spec.name, address = %spec.address, port = spec.port, "starting BGP session");
        let (routes_tx, routes_rx) = watch::channel(Arc::new(routes));
        let (stop_tx, stop_rx) = oneshot::channel();
        let (status_tx, status_rx) = watch::channel(PeerStatus::default());
        let (incoming_tx, incoming_rx) = tokio::sync::mpsc::channel(1);
        // Two peers at one address (other ports): the first one's connections.
        let taken = self
            .peers
            .values()
            .any(|r| r.listening && r.spec.address == spec.address);
        let listening = !taken
            && self.listener().is_some_and(|l| {
                l.register(spec.address, spec.password.as_deref(), incoming_tx);
                true
            });
        let task = tokio::spawn(peer::run(
            spec.clone(),
            self.node.clone(),
            self.bfd.clone(),
            routes_rx,
            status_tx,
            stop_rx,
            incoming_rx,
        ));
        Running {
            listening,
            spec,
            routes: routes_tx,
            stop: stop_tx,
            status: status_rx,
            task,
        }
    }

    /// Each peer's status, by name.
    pub fn statuses(&self) -> BTreeMap<String, watch::Receiver<PeerStatus>> {
        self.peers
            .iter()
            .map(|(name, r)| (name.clone(), r.status.clone()))
            .collect()
    }

    /// Sends Cease "ferrolb speaker shutting down" on every Established session and closes them
    /// all, within [`STOP_BOUND`] in all.
    pub async fn shutdown(self) {
        let all = self
            .peers
            .into_values()
            .map(|r| (r, SHUTDOWN_MESSAGE))
            .collect();
        stop_all(all).await;
    }
}

/// Asks every task to stop with its message and waits for all of them, at most [`STOP_BOUND`];
/// a task still running then is aborted (its socket closes with it).
async fn stop_all(peers: Vec<(Running, &'static str)>) {
    if peers.is_empty() {
        return;
    }
    let mut tasks = Vec::new();
    for (running, message) in peers {
        let _ = running.stop.send(message.to_string());
        tasks.push((running.spec.name, running.task));
    }
    let deadline = tokio::time::Instant::now() + STOP_BOUND;
    for (name, mut task) in tasks {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            warn!(peer = %name, "BGP session did not stop within {STOP_BOUND:?}; closing it");
            task.abort();
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
