//! The tokio edge: one UDP socket and one task driving [`GossipCore`], on a thread of its own.
//!
//! The member runs on its own OS thread with a single-threaded runtime, apart from the
//! speaker's: a pass over thousands of Services, a page of a re-list being decoded or a burst
//! of status writes keeps the speaker's workers busy for tens of milliseconds, and a probe
//! answered that late (50 ms `probe_rtt`) starts the indirect probes that end in a false
//! suspicion. The kernel wakes this thread for each datagram whatever the speaker does.
//!
//! The socket also asks for the ICMP errors about what it sends (`IP_RECVERR`): a port
//! unreachable from a member's host goes to the core at once, which suspects that member
//! (`GossipCore::handle_port_unreachable`).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::future::{AbortHandle, Abortable};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use super::config::{GossipConfig, GossipError};
use super::core::{DropCounts, GossipCore, GossipEvent, MemberCounts};
use super::identity::NodeId;
use super::key::{KeyFiles, KeyRing};
use super::node_state::NodeState;
use crate::layer2::sys::{self, QueuedError};

/// How often the key files are read again. The kubelet takes up to a minute or two to update a
/// mounted Secret, so a second more is nothing; reading two small files is cheap.
const KEY_POLL: Duration = Duration::from_secs(1);

/// A snapshot for metrics and readiness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GossipStats {
    pub members: MemberCounts,
    pub drops: DropCounts,
    /// At least one other member has acknowledged us at some point (for `/readyz`).
    pub joined: bool,
    pub left: bool,
    /// Keys accepted: 1, or 2 during a key rotation (`ferrolb_gossip_keys`).
    pub keys: usize,
    /// Members suspected because their host answered ICMP port unreachable
    /// (`ferrolb_gossip_icmp_suspicions_total`).
    pub icmp_suspicions: u64,
}

/// Resolves once `joined` differs from `seen`, or fails when gossip has stopped (the sender is
/// gone). A speaker's pass reads only `joined` from the stats; the counters change with every
/// probe and drop, and waking the pass for them would re-run the election for nothing.
pub async fn joined_differs(
    stats: &mut watch::Receiver<GossipStats>,
    seen: bool,
) -> Result<(), watch::error::RecvError> {
    stats.wait_for(|s| s.joined != seen).await.map(|_| ())
}

enum Command {
    Leave(oneshot::Sender<()>),
    SetSeeds(Vec<SocketAddr>),
    SetCandidate(bool),
    PublishState(NodeState),
}

/// What the member tells the speaker, each as a watch.
struct Outputs {
    members: watch::Sender<BTreeSet<String>>,
    stats: watch::Sender<GossipStats>,
    states: watch::Sender<BTreeMap<String, NodeState>>,
}

/// Entry point; see [`Gossip::start`].
pub struct Gossip;

/// A running member. Dropping it leaves the cluster gracefully (in the background); use
/// [`GossipHandle::leave`] to wait for the announcement to be sent.
pub struct GossipHandle {
    members: watch::Receiver<BTreeSet<String>>,
    states: watch::Receiver<BTreeMap<String, NodeState>>,
    stats: watch::Receiver<GossipStats>,
    commands: mpsc::Sender<Command>,
    task: AbortHandle,
    local_addr: SocketAddr,
    identity: NodeId,
}

impl Gossip {
    /// Binds the gossip socket, announces to the seeds and runs SWIM until left or aborted, on
    /// the member's own thread.
    pub async fn start(config: GossipConfig) -> Result<GossipHandle, GossipError> {
        // Check what needs no socket first, so a bad config does not hold the port.
        config.validate()?;
        let bind_error = |source| GossipError::Bind {
            addr: config.bind_addr,
            source,
        };
        let socket = std::net::UdpSocket::bind(config.bind_addr).map_err(bind_error)?;
        socket.set_nonblocking(true).map_err(bind_error)?;
        let local_addr = socket.local_addr().map_err(bind_error)?;
        if let Err(error) = sys::enable_recv_err(&socket, local_addr.is_ipv6()) {
            // Failure detection still works, by probe timeouts alone.
            tracing::warn!(%error, "gossip: ICMP errors not enabled; a crashed speaker is found by probe timeouts only");
        }
        let advertise = config.advertise_addr_for(local_addr)?;
        let mut runtime = MemberRuntime(Some(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(GossipError::Thread)?,
        ));
        // Registered with the member's own runtime, whose thread polls it.
        let socket = {
            let _in_member_runtime = runtime.0.as_ref().map(tokio::runtime::Runtime::enter);
            UdpSocket::from_std(socket).map_err(bind_error)?
        };

        // A fresh random incarnation per process, never a clock reading (see `NodeId`).
        let identity = NodeId {
            name: config.node_name.clone(),
            addr: advertise,
            incarnation: rand::random::<u64>().max(1),
            generation: 0,
        };
        let mut core = GossipCore::new(
            identity.clone(),
            &config.keys,
            &config.seeds,
            &config.timing,
            rand::random(),
            Instant::now(),
        );
        if config.withdrawn {
            core.withdraw(Instant::now());
        }
        let (members_tx, members) = watch::channel(core.live_members());
        let (stats_tx, stats) = watch::channel(GossipStats {
            members: core.member_counts(),
            keys: core.key_count(),
            ..GossipStats::default()
        });
        let (states_tx, states) = watch::channel(BTreeMap::new());
        let (commands, command_rx) = mpsc::channel(4);
        let outputs = Outputs {
            members: members_tx,
            stats: stats_tx,
            states: states_tx,
        };
        let keys = KeyReload {
            files: config.reload.clone(),
            current: config.keys.clone(),
            last_error: None,
        };
        let (task, registration) = AbortHandle::new_pair();
        let member = Abortable::new(run(socket, core, keys, command_rx, outputs), registration);
        // Ends when the member stops (left, aborted, or every handle gone), dropping the
        // watch senders: the speaker sees gossip stopped.
        std::thread::Builder::new()
            .name("gossip".to_owned())
            .spawn(move || {
                if let Some(runtime) = runtime.0.take() {
                    let _ = runtime.block_on(member);
                }
            })
            .map_err(GossipError::Thread)?;
        tracing::info!(node = %identity.name, addr = %advertise, seeds = ?config.seeds, "gossip started");
        Ok(GossipHandle {
            members,
            states,
            stats,
            commands,
            task,
            local_addr,
            identity,
        })
    }
}

impl GossipHandle {
    /// Live member names (alive or suspect), this speaker included.
    pub fn members(&self) -> watch::Receiver<BTreeSet<String>> {
        self.members.clone()
    }

    /// Every node's newest interface state heard (this speaker's own included, once published).
    pub fn node_states(&self) -> watch::Receiver<BTreeMap<String, NodeState>> {
        self.states.clone()
    }

    /// Publishes this node's interface state to the others (see [`super::node_state`]); an
    /// unchanged state is not sent again before its periodic refresh.
    pub async fn publish_state(&self, state: NodeState) {
        // An error means the member stopped; nobody is left to tell.
        let _ = self.commands.send(Command::PublishState(state)).await;
    }

    pub fn stats(&self) -> GossipStats {
        *self.stats.borrow()
    }

    /// Watch of [`GossipStats`], e.g. for a metrics collector.
    pub fn stats_watch(&self) -> watch::Receiver<GossipStats> {
        self.stats.clone()
    }

    /// The bound socket (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn identity(&self) -> &NodeId {
        &self.identity
    }

    /// Announces our departure and waits until it is handed to the socket (on SIGTERM). The other
    /// members drop us at once. Afterwards the member is stopped; calling again is a no-op.
    pub async fn leave(&self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Leave(done)).await.is_ok() {
            // An error means the task already stopped, which is what we want anyway.
            let _ = wait.await;
        }
    }

    /// Replaces the seed list (e.g. speaker pods found through the API); new seeds are announced
    /// to at once. Ignored after leave.
    pub async fn set_seeds(&self, seeds: Vec<SocketAddr>) {
        // An error means the member stopped; there is nobody left to seed.
        let _ = self.commands.send(Command::SetSeeds(seeds)).await;
    }

    /// Takes part in the cluster (`true`), or withdraws from it while running (`false`): the
    /// others mark us down at once, as for a leave, and elect again; coming back renews our
    /// identity. A speaker that cannot announce withdraws so it is never elected.
    pub async fn set_candidate(&self, candidate: bool) {
        // An error means the member stopped; nobody is left to tell.
        let _ = self.commands.send(Command::SetCandidate(candidate)).await;
    }

    /// Stops at once without telling anyone, as a crash would (tests, and a last resort).
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// The member's runtime until its thread runs it. Dropped unrun (an error before the thread
/// started), it shuts down without blocking: the caller may be on a runtime's worker, where
/// dropping a runtime panics.
struct MemberRuntime(Option<tokio::runtime::Runtime>);

impl Drop for MemberRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The key files and what was last loaded from them.
struct KeyReload {
    files: Option<KeyFiles>,
    current: KeyRing,
    last_error: Option<String>,
}

impl KeyReload {
    /// Reads the files; returns the keys if they changed. A file that cannot be read or holds a
    /// bad key keeps the keys in force (logged once per distinct problem): a half-written or
    /// deleted Secret must not cut this speaker off.
    fn poll(&mut self) -> Option<KeyRing> {
        let files = self.files.as_ref()?;
        match files.load() {
            Ok(ring) => {
                if self.last_error.take().is_some() {
                    tracing::info!("gossip keys readable again");
                }
                if ring == self.current {
                    return None;
                }
                tracing::info!(
                    accepted = ring.all().count(),
                    send_key_changed = ring.send != self.current.send,
                    "gossip keys reloaded"
                );
                self.current = ring.clone();
                Some(ring)
            }
            Err(error) => {
                let text = error.to_string();
                if self.last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(%error, "gossip keys not reloaded; the keys in force stay");
                    self.last_error = Some(text);
                }
                None
            }
        }
    }
}

async fn run(
    socket: UdpSocket,
    mut core: GossipCore,
    mut keys: KeyReload,
    mut commands: mpsc::Receiver<Command>,
    outputs: Outputs,
) {
    let mut buf = vec![0u8; 65_536];
    let mut joined = false;
    let mut key_poll = tokio::time::interval(KEY_POLL);
    key_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let deadline = core.poll_timeout();
        let mut reply = None;
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::SetSeeds(seeds)) => core.set_seeds(&seeds, Instant::now()),
                Some(Command::SetCandidate(true)) => core.rejoin(Instant::now()),
                Some(Command::PublishState(state)) => core.publish_state(state, Instant::now()),
                Some(Command::SetCandidate(false)) => {
                    // Joined again only once the others take us back after a rejoin.
                    joined = false;
                    core.withdraw(Instant::now());
                }
                Some(Command::Leave(done)) => {
                    reply = Some(done);
                    core.leave(Instant::now());
                }
                // A dropped handle leaves too: nobody can tell us to stop any other way.
                None => core.leave(Instant::now()),
            },
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, _from)) => core.handle_datagram(&buf[..len], Instant::now()),
                // ECONNREFUSED here is a queued ICMP error, read below from the error queue.
                Err(error) => tracing::debug!(%error, "gossip: receive"),
            },
            queued = socket.async_io(Interest::ERROR, || sys::recv_queued_error(&socket)) => match queued {
                Ok(Some(error)) if is_port_unreachable(&error) => {
                    core.handle_port_unreachable(error.dest, Instant::now());
                }
                Ok(other) => tracing::debug!(?other, "gossip: queued socket error"),
                Err(error) => tracing::debug!(%error, "gossip: error queue"),
            },
            () = crate::runtime::sleep_until(deadline), if deadline.is_some() => core.handle_timeout(Instant::now()),
            _ = key_poll.tick(), if keys.files.is_some() => {
                if let Some(ring) = keys.poll() {
                    core.set_keys(&ring);
                }
            }
        }
        while let Some((to, packet)) = core.poll_transmit() {
            let mut sent = socket.send_to(&packet, to).await;
            if matches!(&sent, Err(e) if e.kind() == io::ErrorKind::ConnectionRefused) {
                // An ICMP error about an earlier datagram surfaced on this send, which was not
                // sent: send it again (the error is cleared by being reported).
                sent = socket.send_to(&packet, to).await;
            }
            if let Err(error) = sent {
                tracing::debug!(%to, %error, "gossip: send");
            }
        }
        while let Some(event) = core.poll_event() {
            joined |= event == GossipEvent::Joined;
            log_event(&event);
        }
        // Stats first: whoever wakes on a membership change then reads matching counts.
        let snapshot = GossipStats {
            members: core.member_counts(),
            drops: core.drops(),
            joined,
            left: core.has_left(),
            keys: core.key_count(),
            icmp_suspicions: core.icmp_suspicions(),
        };
        outputs.stats.send_if_modified(|current| {
            let changed = *current != snapshot;
            *current = snapshot;
            changed
        });
        outputs.members.send_if_modified(|current| {
            let live = core.live_members();
            let changed = *current != live;
            *current = live;
            changed
        });
        if let Some(states) = core.take_node_states() {
            outputs.states.send_replace(states);
        }
        if let Some(done) = reply {
            let _ = done.send(());
        }
        if core.has_left() {
            tracing::info!("gossip: left the cluster");
            return;
        }
    }
}

/// ICMP (or ICMPv6) port unreachable: `ECONNREFUSED` reported by an ICMP message.
fn is_port_unreachable(error: &QueuedError) -> bool {
    error.from_icmp
        && io::Error::from_raw_os_error(error.errno).kind() == io::ErrorKind::ConnectionRefused
}

fn log_event(event: &GossipEvent) {
    match event {
        GossipEvent::Up(id) => tracing::info!(
            member = %id.name, addr = %id.addr, incarnation = id.incarnation, "gossip: member up"
        ),
        GossipEvent::Down(id) => tracing::warn!(
            member = %id.name, addr = %id.addr, incarnation = id.incarnation, "gossip: member down"
        ),
        GossipEvent::Renamed { from, to } => tracing::info!(
            member = %to.name, addr = %to.addr, from = %from.name, "gossip: member restarted or renamed"
        ),
        GossipEvent::Joined => tracing::info!("gossip: joined the cluster"),
        GossipEvent::Alone => tracing::warn!("gossip: no other member is alive"),
        GossipEvent::Rejoined(id) => tracing::warn!(
            generation = id.generation,
            "gossip: we were declared down; rejoined under a new generation"
        ),
        GossipEvent::SuspectedUnreachable { id, down_after } => tracing::warn!(
            member = %id.name, addr = %id.addr, incarnation = id.incarnation,
            down_after_ms = down_after.as_millis(),
            "gossip: member suspected: port unreachable (its host answered ICMP port unreachable)"
        ),
        GossipEvent::UnreachableConfirmed(id) => tracing::warn!(
            member = %id.name, addr = %id.addr, incarnation = id.incarnation,
            "gossip: port-unreachable suspicion not refuted; declaring the member down"
        ),
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    #[test]
    fn joined_differs_ignores_counters_and_wakes_on_joining() {
        let (tx, mut rx) = watch::channel(GossipStats::default());
        let mut busy = GossipStats::default();
        busy.members.alive = 3;
        busy.drops.auth = 7;
        tx.send_replace(busy);
        assert!(joined_differs(&mut rx, false).now_or_never().is_none());

        busy.joined = true;
        tx.send_replace(busy);
        assert!(matches!(
            joined_differs(&mut rx, false).now_or_never(),
            Some(Ok(()))
        ));
        // Joined for good: more counter changes never wake a waiter that has seen it.
        busy.drops.replay = 1;
        tx.send_replace(busy);
        assert!(joined_differs(&mut rx, true).now_or_never().is_none());
    }

    /// The error queue wakes the member on its own, with no datagram arriving to wake it.
    #[tokio::test]
    async fn a_port_unreachable_is_read_without_other_traffic() {
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dest = closed.local_addr().unwrap();
        drop(closed);
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sys::enable_recv_err(&socket, false).unwrap();
        socket.send_to(b"anyone?", dest).await.unwrap();
        let read = socket.async_io(Interest::ERROR, || sys::recv_queued_error(&socket));
        let queued = tokio::time::timeout(Duration::from_secs(10), read).await;
        let error = queued.expect("woken").unwrap().expect("an ICMP error");
        assert!(is_port_unreachable(&error), "{error:?}");
        assert_eq!(error.dest, dest);
    }

    #[test]
    fn joined_differs_reports_stopped_gossip() {
        let (tx, mut rx) = watch::channel(GossipStats::default());
        drop(tx);
        assert!(matches!(
            joined_differs(&mut rx, false).now_or_never(),
            Some(Err(_))
        ));
    }
}
