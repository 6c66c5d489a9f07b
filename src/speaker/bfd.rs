//! The BFD edge, shared by both modes through the BGP peers: single hop (RFC 5881) and multi-hop
//! (RFC 5883). One listening socket per family and kind ([`BfdSockets`], bound when a first
//! session of them starts): single hop on port 3784, keeping only packets received with TTL /
//! hop limit 255 (§5: a packet from further away cannot be from a neighbour); multi-hop on port
//! 4784, keeping those received with at least the session's minimum TTL (254 by default, FRR's).
//! It parses them ([`crate::bfd::wire`]) and hands each to its session by Your Discriminator, or
//! by source address while that is 0 (§3); and one task per session ([`run`]) drives a
//! [`crate::bfd::Session`], sends from a port of its own in 49152–65535 with TTL 255 to the
//! peer's port, and reports a [`BfdStatus`].
//!
//! Which kind a peer gets follows FRR's rule, which MetalLB's FRR modes configure: multi-hop for
//! an `ebgpMultiHop` peer, single hop otherwise ([`hops`]). (FRR also runs multi-hop BFD with an
//! iBGP peer that shares no network with it; ferrolb runs single hop with every iBGP peer, the
//! router on the nodes' own subnet.)

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::bfd::{Config, ControlRepr, Diag, Event, Session, State};
use crate::layer2::sys;
use crate::runtime::{lock, sleep_until};

/// The destination port of single-hop Control packets (RFC 5881 §4).
pub const CONTROL_PORT: u16 = 3784;
/// The destination port of multi-hop Control packets (RFC 5883 §5).
pub const MULTIHOP_PORT: u16 = 4784;
/// The lowest TTL a multi-hop session accepts when its profile sets no `minimumTtl` (FRR's).
pub const MULTIHOP_MIN_TTL: u8 = 254;

/// Single hop, or multi-hop accepting packets received with at least `min_ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hops {
    Single,
    Multi { min_ttl: u8 },
}

impl Hops {
    fn port(self) -> u16 {
        match self {
            Hops::Single => CONTROL_PORT,
            Hops::Multi { .. } => MULTIHOP_PORT,
        }
    }

    fn min_ttl(self) -> u8 {
        match self {
            Hops::Single => TTL,
            Hops::Multi { min_ttl } => min_ttl,
        }
    }
}

/// The kind of BFD a BGP peer gets (FRR's rule for a peer on a shared network): multi-hop for
/// an eBGP multi-hop peer, with `minimum_ttl` (MetalLB's `minimumTtl`, 254 when unset); single
/// hop otherwise, iBGP included.
pub fn hops(ebgp_multihop: bool, minimum_ttl: Option<u8>) -> Hops {
    if ebgp_multihop {
        let min_ttl = minimum_ttl.unwrap_or(MULTIHOP_MIN_TTL);
        Hops::Multi { min_ttl }
    } else {
        Hops::Single
    }
}
/// The source ports a session sends from (RFC 5881 §4).
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// The TTL / hop limit sent, and the only one accepted (RFC 5881 §5).
pub const TTL: u8 = 255;
/// How long a stopping session may take to send its AdminDown packets.
const ADMIN_DOWN_BOUND: Duration = Duration::from_millis(200);

/// A BFDProfile's supported fields as a session's settings: intervals in milliseconds, MetalLB's
/// (FRR's) defaults for what is unset (300 ms, 300 ms, ×3). Ranges are the config's to check
/// ([`PROFILE_RANGES`]); a value that does not fit falls back to the default.
pub fn profile_config(
    receive_interval: Option<u32>,
    transmit_interval: Option<u32>,
    detect_multiplier: Option<u32>,
    passive: bool,
) -> Config {
    let d = Config::default();
    let ms =
        |v: Option<u32>, default: Duration| v.map_or(default, |v| Duration::from_millis(v.into()));
    Config {
        required_min_rx: ms(receive_interval, d.required_min_rx),
        desired_min_tx: ms(transmit_interval, d.desired_min_tx),
        detect_mult: detect_multiplier
            .and_then(|m| u8::try_from(m).ok())
            .filter(|m| *m > 0)
            .unwrap_or(d.detect_mult),
        passive,
    }
}

/// MetalLB's ranges of the supported fields (its CRD's): intervals in ms, the multiplier.
pub const PROFILE_RANGES: [(&str, u32, u32); 3] = [
    ("receive-interval", 10, 60_000),
    ("transmit-interval", 10, 60_000),
    ("detect-multiplier", 2, 255),
];

/// The BFD session settings of a config peer: those of the profile it names, if it names one
/// that exists, with the profile's `minimumTtl` (for a multi-hop session).
pub fn peer_config(
    config: &crate::config::Config,
    peer: &crate::config::Peer,
) -> Option<(Config, Option<u8>)> {
    let name = peer.bfd_profile.as_deref()?;
    let p = config.bfd_profiles.iter().find(|p| p.name == name)?;
    let session = profile_config(
        p.receive_interval,
        p.transmit_interval,
        p.detect_multiplier,
        p.passive_mode,
    );
    Some((session, p.minimum_ttl.and_then(|t| u8::try_from(t).ok())))
}

/// What a session's task reports (for the BGP peer and the `bfd_*` metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BfdStatus {
    pub up: bool,
    pub up_events: u64,
    pub down_events: u64,
    /// Up → Down changes that are failures (not the peer's AdminDown): each tears the BGP
    /// session down.
    pub failures: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    /// Why the session last left Up.
    pub last_down: Option<String>,
}

impl BfdStatus {
    /// The same session state and events, whatever the packet counters say.
    pub fn same_state(&self, other: &BfdStatus) -> bool {
        (
            self.up,
            self.up_events,
            self.down_events,
            self.failures,
            &self.last_down,
        ) == (
            other.up,
            other.up_events,
            other.down_events,
            other.failures,
            &other.last_down,
        )
    }
}

type Inbox = mpsc::Sender<ControlRepr>;

/// Each session's inbox and the lowest TTL it accepts, by discriminator; each by its peer and
/// kind (multi-hop or not) for the first packets.
#[derive(Default)]
struct Demux {
    by_discr: HashMap<u32, (Inbox, u8)>,
    by_peer: HashMap<(IpAddr, bool), u32>,
}

/// The listening sockets and the sessions they feed.
pub struct BfdSockets {
    demux: Arc<Mutex<Demux>>,
    /// By (IPv6, multi-hop).
    listeners: Mutex<HashMap<(bool, bool), JoinHandle<()>>>,
}

impl Default for BfdSockets {
    fn default() -> Self {
        BfdSockets {
            demux: Arc::new(Mutex::new(Demux::default())),
            listeners: Mutex::new(HashMap::new()),
        }
    }
}

impl Drop for BfdSockets {
    fn drop(&mut self) {
        for (_, task) in lock(&self.listeners).drain() {
            task.abort();
        }
    }
}

/// A session's place in the demultiplexer, given back when dropped.
struct Registration {
    demux: Arc<Mutex<Demux>>,
    discr: u32,
    peer: (IpAddr, bool),
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut d = lock(&self.demux);
        d.by_discr.remove(&self.discr);
        if d.by_peer.get(&self.peer) == Some(&self.discr) {
            d.by_peer.remove(&self.peer);
        }
    }
}

impl BfdSockets {
    /// A new discriminator for a session with `peer`, its inbox, and the listener of its family
    /// and kind (started now if it is not running).
    fn register(&self, peer: IpAddr, hops: Hops) -> (Registration, mpsc::Receiver<ControlRepr>) {
        let (tx, rx) = mpsc::channel(64);
        let multi = hops != Hops::Single;
        let peer = (peer, multi);
        let discr = {
            let mut d = lock(&self.demux);
            let mut discr = rand::random::<u32>().max(1);
            while d.by_discr.contains_key(&discr) {
                discr = rand::random::<u32>().max(1);
            }
            d.by_discr.insert(discr, (tx, hops.min_ttl()));
            d.by_peer.insert(peer, discr);
            discr
        };
        let key = (peer.0.is_ipv6(), multi);
        let mut listeners = lock(&self.listeners);
        if listeners.get(&key).is_none_or(JoinHandle::is_finished) {
            let demux = self.demux.clone();
            listeners.insert(key, tokio::spawn(listen(key.0, hops.port(), demux)));
        }
        let registration = Registration {
            demux: self.demux.clone(),
            discr,
            peer,
        };
        (registration, rx)
    }
}

fn listening_socket(ipv6: bool, port: u16) -> io::Result<Socket> {
    let (domain, any) = if ipv6 {
        (Domain::IPV6, IpAddr::V6(Ipv6Addr::UNSPECIFIED))
    } else {
        (Domain::IPV4, IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if ipv6 {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    sys::enable_recv_ttl(&socket, ipv6)?;
    socket.bind(&SocketAddr::new(any, port).into())?;
    Ok(socket)
}

/// Reads the family's `port` (3784 or 4784) for as long as the sockets live.
async fn listen(ipv6: bool, port: u16, demux: Arc<Mutex<Demux>>) {
    let family = if ipv6 { "IPv6" } else { "IPv4" };
    let multi = port == MULTIHOP_PORT;
    let socket = match listening_socket(ipv6, port).and_then(sys::register) {
        Ok(s) => s,
        Err(e) => {
            return warn!(
                "BFD: cannot listen on {family} port {port}: {e}; BFD sessions of this family \
                 and kind never come up (their BGP sessions run without BFD)"
            );
        }
    };
    let mut buf = [0u8; 512];
    loop {
        let read = match socket.readable().await {
            Ok(mut guard) => match guard.try_io(|s| sys::recv_with_ttl(s.get_ref(), &mut buf)) {
                Ok(read) => read,
                Err(_would_block) => continue,
            },
            Err(e) => return warn!("BFD: {family} listener failed: {e}"),
        };
        let (len, from, ttl) = match read {
            Ok(r) => r,
            Err(e) => {
                debug!("BFD: read: {e}");
                continue;
            }
        };
        let packet = match ControlRepr::parse(buf.get(..len).unwrap_or_default()) {
            Ok(p) => p,
            Err(e) => {
                debug!(%from, "BFD packet discarded: {e}");
                continue;
            }
        };
        let inbox = {
            let d = lock(&demux);
            let discr = match packet.your_discriminator {
                0 => d.by_peer.get(&(from.ip(), multi)).copied(),
                discr => Some(discr),
            };
            discr.and_then(|discr| d.by_discr.get(&discr).cloned())
        };
        match inbox {
            // Single hop: TTL 255 only (RFC 5881 §5); multi-hop: at least the session's minimum.
            Some((_, min_ttl)) if ttl.is_none_or(|t| t < min_ttl) => {
                debug!(%from, ?ttl, min_ttl, "BFD packet discarded: TTL too low");
            }
            Some((inbox, _)) => {
                let _ = inbox.try_send(packet);
            }
            None => debug!(%from, "BFD packet discarded: no session for it"),
        }
    }
}

/// The socket a session sends from: `source` (or any address) and a free port in
/// [`SOURCE_PORTS`], TTL / hop limit 255.
fn sending_socket(peer: IpAddr, source: Option<IpAddr>) -> io::Result<UdpSocket> {
    let ipv6 = peer.is_ipv6();
    let local = source.unwrap_or(if ipv6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    });
    let domain = if ipv6 { Domain::IPV6 } else { Domain::IPV4 };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if ipv6 {
        socket.set_only_v6(true)?;
        socket.set_unicast_hops_v6(u32::from(TTL))?;
    } else {
        socket.set_ttl_v4(u32::from(TTL))?;
    }
    socket.set_nonblocking(true)?;
    let span = u32::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
    let first = rand::random::<u32>() % span;
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free source port");
    for i in 0..64 {
        let offset = u16::try_from((first + i * 7919) % span).unwrap_or(0);
        let port = SOURCE_PORTS.start() + offset;
        match socket.bind(&SocketAddr::new(local, port).into()) {
            Ok(()) => return UdpSocket::from_std(socket.into()),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// The task of one BFD session with `peer` (`name` for the logs), sending from `source` when
/// set, until `stop` fires (or its sender is dropped); then a few AdminDown packets.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    name: String,
    config: Config,
    peer: IpAddr,
    hops: Hops,
    source: Option<IpAddr>,
    sockets: Arc<BfdSockets>,
    status: watch::Sender<BfdStatus>,
    mut stop: oneshot::Receiver<()>,
) {
    let socket = match sending_socket(peer, source) {
        Ok(s) => s,
        Err(e) => return warn!(peer = %name, "BFD session not started: {e}"),
    };
    let (registration, mut inbox) = sockets.register(peer, hops);
    let jitter = Box::new(rand::random::<u16>);
    let mut session = match Session::new(config, registration.discr, jitter, Instant::now()) {
        Ok(s) => s,
        Err(e) => return warn!(peer = %name, "BFD session not started: {e}"),
    };
    let dest = SocketAddr::new(peer, hops.port());
    let multihop = hops != Hops::Single;
    info!(peer = %name, address = %peer, discriminator = registration.discr, multihop, "starting BFD session");
    loop {
        transmit(&mut session, &socket, dest, &status).await;
        report(&name, &mut session, &status);
        tokio::select! {
            packet = inbox.recv() => if let Some(packet) = packet {
                status.send_modify(|s| s.packets_in += 1);
                session.handle_packet(&packet, Instant::now());
            },
            () = sleep_until(session.poll_timeout()) => session.handle_timeout(Instant::now()),
            _ = &mut stop => break,
        }
    }
    session.shutdown(Instant::now());
    let bounded = async {
        while !session.is_finished() {
            transmit(&mut session, &socket, dest, &status).await;
            sleep_until(session.poll_timeout()).await;
        }
    };
    let _ = tokio::time::timeout(ADMIN_DOWN_BOUND, bounded).await;
    report(&name, &mut session, &status);
    debug!(peer = %name, "BFD session stopped");
}

async fn transmit(
    session: &mut Session,
    socket: &UdpSocket,
    dest: SocketAddr,
    status: &watch::Sender<BfdStatus>,
) {
    while let Some(packet) = session.poll_transmit(Instant::now()) {
        match socket.send_to(&packet.to_bytes(), dest).await {
            Ok(_) => status.send_modify(|s| s.packets_out += 1),
            Err(e) => debug!(%dest, "BFD send: {e}"),
        }
    }
}

fn report(name: &str, session: &mut Session, status: &watch::Sender<BfdStatus>) {
    while let Some(event) = session.poll_event() {
        match event {
            Event::Up => {
                info!(peer = %name, "BFD session up");
                status.send_modify(|s| {
                    s.up = true;
                    s.up_events += 1;
                });
            }
            Event::Down { diag, remote_admin } => {
                let why = match (remote_admin, diag) {
                    (true, _) => "the peer took it down administratively".to_string(),
                    (false, Diag::AdministrativelyDown) => "stopped".to_string(),
                    (false, diag) => diag.to_string(),
                };
                let failure = !remote_admin && diag != Diag::AdministrativelyDown;
                if failure {
                    warn!(peer = %name, reason = %why, "BFD session down");
                } else {
                    info!(peer = %name, reason = %why, "BFD session down");
                }
                status.send_modify(|s| {
                    s.up = false;
                    s.down_events += 1;
                    s.failures += u64::from(failure);
                    s.last_down = Some(why);
                });
            }
        }
    }
    let up = session.state() == State::Up;
    status.send_if_modified(|s| std::mem::replace(&mut s.up, up) != up);
}

#[cfg(test)]
#[path = "bfd_tests.rs"]
mod tests;
