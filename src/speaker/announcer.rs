//! The layer-2 edge of the speaker: opens a packet socket on every eligible interface, answers
//! ARP/NDP for the IPs this node owns through the pure responder, and sends the gratuitous
//! announcements the pure schedule asks for.
//!
//! Ownership arrives through a `watch` channel. Receive tasks read the current set for every
//! frame, so an IP that is lost stops being answered with the very next frame, without waiting
//! for this task's loop.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::layer2::arp;
use crate::layer2::iface::{self, ExcludePatterns, Interface, RESCAN_PERIOD};
use crate::layer2::ndp;
use crate::layer2::pacing::AnnouncePacer;
use crate::layer2::responder::{self, Decision, Reply};
use crate::layer2::schedule::AnnounceSchedule;
use crate::layer2::socket::{MAX_FRAME, MulticastGroups, PacketSocket};
use crate::layer2::wire::Mac;
use crate::runtime::sleep_until;

use super::metrics::{IpCounters, Layer2Metrics};

/// Room for one announcement frame: a padded ARP frame is 60 bytes, an unsolicited neighbor
/// advertisement with its link-layer option 86.
const ANNOUNCEMENT_MAX: usize = 128;

/// The IPs this node answers for, and where. Shared by pointer so a receive task's read is a
/// cheap borrow.
pub type OwnedSet = Arc<super::owned::Owned>;

#[derive(Debug, Clone, Default)]
pub struct AnnouncerOptions {
    pub excludes: ExcludePatterns,
    /// `--garp-interval`: keep re-announcing every owned IP at this period, forever.
    pub garp_interval: Option<Duration>,
    /// `--answer-checks-per-second` (0, the default here: no answer checks).
    pub answer_checks_per_second: u32,
}

/// An open interface: its socket and the task reading it (answering here; the answer checker's
/// reader in `speaker::checker`). Dropping it stops the task.
pub(super) struct Link {
    pub(super) iface: Interface,
    pub(super) socket: Arc<PacketSocket>,
    pub(super) receiver: JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

/// Runs until `owned` is closed (the speaker is shutting down). `ready` is true while every
/// eligible interface has an open socket with a live receive task (see [`links_ready`]). A
/// change of `heal` closes every socket and opens it again, announcing every owned address.
pub async fn run(
    options: AnnouncerOptions,
    mut owned: watch::Receiver<OwnedSet>,
    metrics: Layer2Metrics,
    ready: watch::Sender<bool>,
    mut heal: watch::Receiver<u64>,
) {
    let mut links: BTreeMap<u32, Link> = BTreeMap::new();
    let mut groups = MulticastGroups::new();
    let mut schedule = AnnounceSchedule::new(options.garp_interval);
    let mut pacer = AnnouncePacer::default();
    let mut current: BTreeSet<IpAddr> = BTreeSet::new();
    let mut current_owned: OwnedSet = owned.borrow().clone();
    let mut rescan = tokio::time::interval(RESCAN_PERIOD);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        let deadline = schedule.next_deadline();
        let paced = pacer.next_ready();
        tokio::select! {
            // An ownership change first: a heal must not announce an address just given up.
            biased;
            changed = owned.changed() => {
                if changed.is_err() {
                    break;
                }
                current_owned = owned.borrow_and_update().clone();
                let next: BTreeSet<IpAddr> = current_owned.iter().copied().collect();
                let now = Instant::now().into_std();
                for ip in next.difference(&current) {
                    info!(%ip, "taking ownership: answering and announcing");
                    for link in links.values() {
                        join_group(&mut groups, link, *ip);
                    }
                    schedule.on_owned(*ip, now);
                }
                for ip in current.difference(&next) {
                    info!(%ip, "lost ownership: no longer answering");
                    for link in links.values() {
                        leave_group(&mut groups, link, *ip);
                    }
                    schedule.on_lost(*ip);
                    pacer.forget_ip(*ip);
                    metrics.forget(*ip);
                }
                current = next;
            }
            Ok(()) = heal.changed() => {
                // Told its answers are not heard: fresh sockets (and group memberships), and
                // every owned address announced again on them.
                warn!("reopening every packet socket and announcing again");
                for (index, _) in std::mem::take(&mut links) {
                    groups.leave_interface(index);
                    pacer.forget_link(index);
                }
                let open = rescan_links(&options, &mut links, &mut groups, &current, &owned, &metrics, &mut pacer);
                ready.send_if_modified(|r| std::mem::replace(r, open) != open);
                send_paced(&mut pacer, &links, &current_owned, &metrics).await;
            }
            _ = rescan.tick() => {
                let open = rescan_links(&options, &mut links, &mut groups, &current, &owned, &metrics, &mut pacer);
                ready.send_if_modified(|r| std::mem::replace(r, open) != open);
                send_paced(&mut pacer, &links, &current_owned, &metrics).await;
            }
            _ = sleep_until(deadline) => {
                let now = Instant::now().into_std();
                for ip in schedule.poll(now) {
                    for link in links.values().filter(|l| current_owned.owns_on(ip, &l.iface.name)) {
                        pacer.enqueue(link.iface.index, ip, now);
                    }
                }
                send_paced(&mut pacer, &links, &current_owned, &metrics).await;
            }
            _ = sleep_until(paced) => {
                send_paced(&mut pacer, &links, &current_owned, &metrics).await;
            }
        }
    }
    for link in links.values() {
        for ip in &current {
            leave_group(&mut groups, link, *ip);
        }
    }
}

/// Whether every eligible interface (by index) has a link whose receive task is still running,
/// and there is at least one: a speaker that cannot answer on an interface it should answer on
/// is not ready.
pub fn links_ready(eligible: &[u32], live: impl Fn(u32) -> bool) -> bool {
    !eligible.is_empty() && eligible.iter().all(|&index| live(index))
}

/// Opens sockets on new interfaces, closes those that went away or changed and reopens those
/// whose receive task ended, and queues (paced) an announcement of every owned IP on an
/// interface that just (re)appeared
/// (its LAN may never have heard of us, or forgot us while the link was down). Returns whether
/// every eligible interface can answer ([`links_ready`]); a failed scan keeps the links and
/// reports the last known state.
fn rescan_links(
    options: &AnnouncerOptions,
    links: &mut BTreeMap<u32, Link>,
    groups: &mut MulticastGroups,
    owned_now: &BTreeSet<IpAddr>,
    owned: &watch::Receiver<OwnedSet>,
    metrics: &Layer2Metrics,
    pacer: &mut AnnouncePacer,
) -> bool {
    let found = match iface::discover(&options.excludes) {
        Ok(found) => found,
        Err(e) => {
            warn!(error = %e, "cannot list network interfaces; keeping the current ones");
            return !links.is_empty() && links.values().all(|l| !l.receiver.is_finished());
        }
    };
    let eligible: Vec<u32> = found.iter().map(|i| i.index).collect();
    let wanted: HashMap<u32, &Interface> = found.iter().map(|i| (i.index, i)).collect();
    links.retain(|index, link| {
        let same = wanted.get(index).is_some_and(|i| **i == link.iface);
        if !same {
            info!(interface = %link.iface.name, "interface gone or changed; closing its socket");
        } else if link.receiver.is_finished() {
            // The interface is unchanged but its socket failed (its task logged why): a fresh
            // socket is the only way to answer on it again.
            warn!(interface = %link.iface.name, "receive task ended; reopening the socket");
        } else {
            return true;
        }
        groups.leave_interface(*index);
        pacer.forget_link(*index);
        false
    });
    for iface in found {
        if links.contains_key(&iface.index) {
            continue;
        }
        let socket = match PacketSocket::open(iface.index) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                warn!(interface = %iface.name, error = %e, "cannot open packet socket (needs CAP_NET_RAW)");
                continue;
            }
        };
        info!(interface = %iface.name, mac = %iface.mac, "answering ARP/NDP on interface");
        let receiver = tokio::spawn(answer_loop(
            iface.clone(),
            socket.clone(),
            owned.clone(),
            metrics.clone(),
        ));
        let link = Link {
            iface,
            socket,
            receiver,
        };
        for ip in owned_now {
            join_group(groups, &link, *ip);
        }
        let serving = owned.borrow().clone();
        let now = Instant::now().into_std();
        for ip in owned_now {
            if serving.owns_on(*ip, &link.iface.name) {
                pacer.enqueue(link.iface.index, *ip, now);
            }
        }
        links.insert(link.iface.index, link);
    }
    links_ready(&eligible, |index| {
        links.get(&index).is_some_and(|l| !l.receiver.is_finished())
    })
}

fn join_group(groups: &mut MulticastGroups, link: &Link, ip: IpAddr) {
    if let IpAddr::V6(v6) = ip
        && let Err(e) = groups.join(link.iface.index, v6)
    {
        warn!(interface = %link.iface.name, %ip, error = %e, "cannot join solicited-node group");
    }
}

fn leave_group(groups: &mut MulticastGroups, link: &Link, ip: IpAddr) {
    if let IpAddr::V6(v6) = ip
        && let Err(e) = groups.leave(link.iface.index, v6)
    {
        debug!(interface = %link.iface.name, %ip, error = %e, "cannot leave solicited-node group");
    }
}

/// Sends what the per-interface buckets allow now; the rest waits for `pacer.next_ready()`.
/// Ownership is checked again at send time, as it may have moved between interfaces while the
/// announcement waited.
async fn send_paced(
    pacer: &mut AnnouncePacer,
    links: &BTreeMap<u32, Link>,
    owned: &OwnedSet,
    metrics: &Layer2Metrics,
) {
    let now = Instant::now().into_std();
    for (index, ip) in pacer.take(now) {
        if let Some(link) = links.get(&index)
            && owned.owns_on(ip, &link.iface.name)
        {
            send_announcement(&link.socket, link.iface.mac, ip, metrics).await;
        }
    }
}

/// Gratuitous ARP (request and reply forms) for IPv4, unsolicited NA with Override for IPv6.
async fn send_announcement(socket: &PacketSocket, mac: Mac, ip: IpAddr, metrics: &Layer2Metrics) {
    let counters = metrics.counters(ip);
    let frames: [Option<Reply>; 2] = match ip {
        IpAddr::V4(v4) => [
            Some(Reply::Arp(arp::gratuitous_request(mac, v4))),
            Some(Reply::Arp(arp::gratuitous_reply(mac, v4))),
        ],
        IpAddr::V6(v6) => [Some(Reply::Ndp(ndp::unsolicited_advert(mac, v6))), None],
    };
    let mut buf = [0u8; ANNOUNCEMENT_MAX];
    for frame in frames.into_iter().flatten() {
        let Ok(len) = frame.emit(&mut buf) else {
            continue;
        };
        match socket.send(&buf[..len]).await {
            Ok(()) => counters.gratuitous(),
            Err(e) => debug!(%ip, error = %e, "gratuitous send failed"),
        }
    }
}

/// `ENETDOWN` from <errno.h>.
const ENETDOWN: i32 = 100;

/// Answers frames on one interface for as long as the socket lives.
async fn answer_loop(
    iface: Interface,
    socket: Arc<PacketSocket>,
    owned: watch::Receiver<OwnedSet>,
    metrics: Layer2Metrics,
) {
    let responder_iface = responder::Interface {
        name: iface.name.clone(),
        index: iface.index,
        mac: iface.mac,
    };
    let mut buf = vec![0u8; MAX_FRAME];
    let mut out = vec![0u8; MAX_FRAME];
    // Per-IP counter handles, so the hot path takes no lock once an IP has been seen.
    let mut counters: HashMap<IpAddr, Arc<IpCounters>> = HashMap::new();
    let mut counters_for: OwnedSet = owned.borrow().clone();
    loop {
        let len = match socket.recv(&mut buf).await {
            Ok(len) => len,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The link went down: the kernel reports it once on the socket, which stays bound
            // and delivers frames again when the link comes back, so keep reading.
            Err(e) if e.raw_os_error() == Some(ENETDOWN) => {
                info!(interface = %iface.name, "link went down; answering again when it is back");
                continue;
            }
            Err(e) => {
                warn!(interface = %iface.name, error = %e, "receive failed; the next rescan reopens the socket");
                return;
            }
        };
        let decision = {
            let set = owned.borrow();
            if !Arc::ptr_eq(&set, &counters_for) {
                // Ownership changed: series of released IPs were removed from the registry, so
                // cached handles to them must not be reused if the IP comes back.
                counters.clear();
                counters_for = set.clone();
            }
            let on_this = |ip: IpAddr| set.owns_on(ip, &iface.name);
            responder::decide(&buf[..len], &responder_iface, &on_this)
        };
        let Decision::Reply { ip, reply } = decision else {
            continue;
        };
        let ip_counters = counters.entry(ip).or_insert_with(|| metrics.counters(ip));
        ip_counters.request();
        let Ok(n) = reply.emit(&mut out) else {
            continue;
        };
        match socket.send(&out[..n]).await {
            Ok(()) => ip_counters.response(),
            Err(e) => debug!(interface = %iface.name, %ip, error = %e, "reply send failed"),
        }
    }
}
