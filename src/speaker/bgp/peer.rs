//! One peer's task: dials when the session asks, feeds it the bytes read and the expired timers,
//! writes what it sends, and on Established sends the whole table, then each change of the
//! desired routes, through the session's [`AdjRibOut`]. A peer with BFD also runs its BFD
//! session's task ([`crate::speaker::bfd::run`]) and closes the BGP session at once when it
//! reports a failure.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use tokio::task::JoinHandle;

use super::dial::{self, DialError};
use super::{PeerSpec, PeerStatus, SHUTDOWN_MESSAGE};
use crate::bgp::rib::{self, AdjRibOut, PathContext, Routes};
use crate::bgp::session::{Input, Negotiated, Output, Session, SessionEvent, State};
use crate::bgp::wire::UpdateRepr;
use crate::runtime::sleep_until;
use crate::speaker::bfd::{self, BfdSockets, BfdStatus};

/// How often a BFD session's packet counters alone wake the peer's status watchers.
const COUNTERS_EVERY: Duration = Duration::from_secs(10);

/// A write the peer does not take within this long ends the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

type Dialing = Pin<Box<dyn Future<Output = Result<TcpStream, DialError>> + Send>>;

struct Connection {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    local: SocketAddr,
}

struct Peer {
    spec: PeerSpec,
    node: String,
    session: Session,
    rib: AdjRibOut,
    routes: watch::Receiver<Arc<Routes>>,
    status: watch::Sender<PeerStatus>,
    conn: Option<Connection>,
    dialing: Option<Dialing>,
    /// The context of the Established session.
    context: Option<PathContext>,
}

/// Runs the session of `spec` until `stop` says why to end it (or its sender is dropped).
pub(super) async fn run(
    spec: PeerSpec,
    node: String,
    bfd_sockets: Arc<BfdSockets>,
    routes: watch::Receiver<Arc<Routes>>,
    status: watch::Sender<PeerStatus>,
    mut stop: oneshot::Receiver<String>,
    mut incoming: mpsc::Receiver<TcpStream>,
) {
    let placeholder = spec
        .router_id
        .unwrap_or_else(|| dial::router_id(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), &node));
    let session = match spec.session_config(placeholder).map(Session::new) {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => return warn!(peer = %spec.name, error = %e, "BGP session not started"),
        Err(e) => return warn!(peer = %spec.name, error = %e, "BGP session not started"),
    };
    let mut peer = Peer {
        spec,
        node,
        session,
        rib: AdjRibOut::new(),
        routes,
        status,
        conn: None,
        dialing: None,
        context: None,
    };
    let mut bfd = peer
        .spec
        .bfd
        .map(|config| Bfd::start(&peer.spec, config, bfd_sockets));
    peer.session.handle(Input::ManualStart, Instant::now());
    let mut buf = vec![0u8; 64 * 1024];
    let mut routes_open = true;
    let message = loop {
        peer.flush().await;
        peer.publish();
        tokio::select! {
            dialed = finish(&mut peer.dialing) => peer.dialed(dialed),
            Some(stream) = incoming.recv() => peer.accepted(stream),
            read = read(&mut peer.conn, &mut buf) => {
                let now = Instant::now();
                match read {
                    Ok(n) if n > 0 => peer.session.handle(Input::Received(buf.get(..n).unwrap_or_default()), now),
                    Ok(_) => peer.lost("the peer closed the connection", now),
                    Err(e) => peer.lost(&format!("read: {e}"), now),
                }
            }
            () = sleep_until(peer.session.poll_timeout()) => peer.session.handle_timeout(Instant::now()),
            () = bfd_changed(&mut bfd) => peer.bfd_changed(&mut bfd),
            changed = peer.routes.changed(), if routes_open => match changed {
                Ok(()) => peer.send_changes(),
                Err(_) => routes_open = false,
            },
            message = &mut stop => break message.unwrap_or_else(|_| SHUTDOWN_MESSAGE.to_string()),
        }
    };
    info!(peer = %peer.spec.name, "stopping BGP session: {message}");
    peer.session.shutdown(&message, Instant::now());
    peer.dialing = None;
    peer.flush().await;
    peer.publish();
    // After the Cease: the BFD session says AdminDown, which the router does not take for a
    // failure (RFC 5882 §3.2).
    if let Some(bfd) = bfd.take() {
        bfd.stop().await;
    }
}

/// A peer's BFD session task; aborted if dropped while running.
struct Bfd {
    status: watch::Receiver<BfdStatus>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    /// The failures already acted on.
    failures_seen: u64,
    /// When the packet counters last reached the peer's status watchers.
    counters_told: Instant,
}

impl Bfd {
    fn start(spec: &PeerSpec, config: crate::bfd::Config, sockets: Arc<BfdSockets>) -> Bfd {
        let (status_tx, status) = watch::channel(BfdStatus::default());
        let (stop, stop_rx) = oneshot::channel();
        let task = tokio::spawn(bfd::run(
            spec.name.clone(),
            config,
            spec.address,
            bfd::hops(spec.ebgp_multihop, spec.bfd_minimum_ttl),
            spec.source,
            sockets,
            status_tx,
            stop_rx,
        ));
        Bfd {
            status,
            stop: Some(stop),
            task,
            failures_seen: 0,
            counters_told: Instant::now(),
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_millis(300), &mut self.task).await;
    }
}

impl Drop for Bfd {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Resolves when the BFD session's status changed (never without one, or once its task ended).
async fn bfd_changed(bfd: &mut Option<Bfd>) {
    let ended = match bfd {
        Some(b) => b.status.changed().await.is_err(),
        None => true,
    };
    if ended {
        std::future::pending::<()>().await;
    }
}

/// The dial under way, or never.
async fn finish(dialing: &mut Option<Dialing>) -> Result<TcpStream, DialError> {
    match dialing {
        Some(future) => {
            let result = future.await;
            *dialing = None;
            result
        }
        None => std::future::pending().await,
    }
}

async fn read(conn: &mut Option<Connection>, buf: &mut [u8]) -> io::Result<usize> {
    match conn {
        Some(c) => c.reader.read(buf).await,
        None => std::future::pending().await,
    }
}

impl Peer {
    /// Carries out everything the session asked for, in order.
    async fn flush(&mut self) {
        while let Some(output) = self.session.poll_output() {
            match output {
                Output::Send(bytes) => {
                    let Some(conn) = self.conn.as_mut() else {
                        continue;
                    };
                    let write = tokio::time::timeout(WRITE_TIMEOUT, conn.writer.write_all(&bytes));
                    match write.await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => self.lost(&format!("write: {e}"), Instant::now()),
                        Err(_) => self.lost("write timed out", Instant::now()),
                    }
                }
                Output::Connect => {
                    self.conn = None;
                    let spec = self.spec.clone();
                    let deadline = spec.connect_deadline();
                    self.dialing = Some(Box::pin(
                        async move { dial::connect(&spec, deadline).await },
                    ));
                }
                Output::Close => {
                    self.dialing = None;
                    if let Some(mut conn) = self.conn.take() {
                        let _ = conn.writer.shutdown().await;
                    }
                }
                Output::Event(event) => self.event(event),
            }
        }
    }

    /// The BFD session's news: a failure closes the BGP session at once (RFC 5882 §4.3).
    fn bfd_changed(&mut self, bfd: &mut Option<Bfd>) {
        let Some(b) = bfd.as_mut() else {
            return;
        };
        let status = b.status.borrow_and_update().clone();
        if status.failures > b.failures_seen {
            b.failures_seen = status.failures;
            if self.session.state() != State::Idle {
                warn!(peer = %self.spec.name, "BFD session down: closing the BGP session");
            }
            self.session.handle(Input::BfdDown, Instant::now());
        }
        // Every packet changes the counters: the watchers (the Kubernetes loop, which works
        // out a pass on each wake) hear of a change of state at once and of the counters alone
        // at most every COUNTERS_EVERY, not ten times a second.
        let now = Instant::now();
        let counters_due = now.duration_since(b.counters_told) >= COUNTERS_EVERY;
        self.status.send_if_modified(|s| {
            let news = s.bfd.as_ref().is_none_or(|old| !status.same_state(old)) || counters_due;
            s.bfd = Some(status);
            news
        });
        if counters_due {
            b.counters_told = now;
        }
    }

    fn lost(&mut self, why: &str, now: Instant) {
        debug!(peer = %self.spec.name, "connection lost: {why}");
        self.session.handle(Input::ConnectionFailed, now);
    }

    fn dialed(&mut self, dialed: Result<TcpStream, DialError>) {
        let now = Instant::now();
        let stream = match dialed.and_then(|s| {
            let local = s.local_addr().map_err(DialError::Connect)?;
            Ok((s, local))
        }) {
            Ok(s) => s,
            Err(e) => {
                match e {
                    // The peer is down or unreachable: retried with the backoff.
                    DialError::Connect(_) | DialError::Timeout(_) => {
                        debug!(peer = %self.spec.name, error = %e, "BGP connection attempt failed")
                    }
                    // This host cannot dial as configured (source address, MD5): say so.
                    _ => warn!(peer = %self.spec.name, error = %e, "BGP connection attempt failed"),
                }
                self.status
                    .send_modify(|s| s.last_down = Some(format!("connection attempt: {e}")));
                return self.session.handle(Input::ConnectionFailed, now);
            }
        };
        let (stream, local) = stream;
        self.adopt(stream, local, now);
    }

    /// A connection the peer opened: taken while the session has none of its own up (the dial
    /// under way is dropped), closed otherwise.
    fn accepted(&mut self, stream: TcpStream) {
        let now = Instant::now();
        let local = match stream.local_addr() {
            Ok(local) => local,
            Err(e) => {
                return debug!(peer = %self.spec.name, error = %e, "incoming BGP connection lost");
            }
        };
        if !self.session.accept(now) {
            return debug!(peer = %self.spec.name, state = ?self.session.state(), "incoming BGP connection refused: the session has one");
        }
        self.dialing = None;
        if self.spec.ebgp_multihop {
            let socket = socket2::SockRef::from(&stream);
            let _ = match local {
                SocketAddr::V4(_) => socket.set_ttl_v4(255),
                SocketAddr::V6(_) => socket.set_unicast_hops_v6(255),
            };
        }
        info!(peer = %self.spec.name, "BGP connection from the peer taken");
        self.adopt(stream, local, now);
    }

    /// The session's connection from now on (dialed or accepted).
    fn adopt(&mut self, stream: TcpStream, local: SocketAddr, now: Instant) {
        let _ = stream.set_nodelay(true);
        if self.spec.router_id.is_none() {
            let id = dial::router_id(local.ip(), &self.node);
            if let Err(e) = self.session.set_router_id(id) {
                warn!(peer = %self.spec.name, error = %e, "cannot use router ID {id}");
            }
        }
        let (reader, writer) = stream.into_split();
        self.conn = Some(Connection {
            reader,
            writer,
            local,
        });
        self.session.handle(Input::Connected, now);
    }

    fn event(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Established(negotiated) => self.established(&negotiated),
            SessionEvent::Down(reason) => {
                if self.context.take().is_some() {
                    warn!(peer = %self.spec.name, reason = %reason, "BGP session down");
                }
                self.rib.reset();
                let why = reason.to_string();
                self.status.send_modify(|s| {
                    s.last_down = Some(why);
                    s.announced_prefixes = 0;
                });
            }
            SessionEvent::RouteRefreshRequested(refresh) => {
                info!(peer = %self.spec.name, family = ?refresh.family, "route refresh: sending every route again");
                self.rib.reset();
                self.send_changes();
            }
            // Routes from the peer are not used (MetalLB's native speaker discards them too).
            SessionEvent::Update(_) => {}
        }
    }

    fn established(&mut self, negotiated: &Negotiated) {
        let Some(local) = self.conn.as_ref().map(|c| c.local.ip()) else {
            return;
        };
        let other = dial::other_family_address(local);
        let (v4, v6) = match (local, other) {
            (IpAddr::V4(a), Some(IpAddr::V6(b))) => (Some(a), Some(b)),
            (IpAddr::V4(a), _) => (Some(a), None),
            (IpAddr::V6(b), Some(IpAddr::V4(a))) => (Some(a), Some(b)),
            (IpAddr::V6(b), _) => (None, Some(b)),
        };
        let ctx = PathContext::new(self.spec.local_as, negotiated, v4, v6);
        info!(peer = %self.spec.name, peer_as = negotiated.peer_as, local = %local, "BGP session established");
        let skipped: Vec<String> = rib::skipped(&self.routes.borrow(), &ctx)
            .iter()
            .map(|s| s.to_string())
            .collect();
        for s in &skipped {
            warn!(peer = %self.spec.name, "routes not announced to this peer: {s}");
        }
        self.status.send_modify(|s| s.skipped = skipped);
        self.context = Some(ctx.clone());
        self.rib.reset();
        self.send_changes();
        self.send_all(rib::end_of_rib(&ctx));
    }

    /// Sends what changed since the last UPDATEs (everything, after a reset).
    fn send_changes(&mut self) {
        let Some(ctx) = &self.context else {
            return;
        };
        let routes = Arc::clone(&self.routes.borrow_and_update());
        let updates = self.rib.updates(&routes, ctx);
        self.send_all(updates);
    }

    fn send_all(&mut self, updates: Vec<UpdateRepr>) {
        let now = Instant::now();
        let mut sent = 0;
        for update in &updates {
            match self.session.send_update(update, now) {
                Ok(()) => sent += 1,
                Err(e) => warn!(peer = %self.spec.name, error = %e, "UPDATE not sent"),
            }
        }
        let announced = self.rib.sent().len();
        self.status.send_modify(|s| {
            s.updates_sent += sent;
            s.announced_prefixes = announced;
        });
    }

    fn publish(&self) {
        let state = self.session.state();
        self.status.send_if_modified(|s| {
            let changed = s.state != state;
            s.state = state;
            if state != State::Established {
                s.announced_prefixes = 0;
            }
            changed
        });
    }
}
