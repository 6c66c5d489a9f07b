//! The edge of answer verification: a task that sends the ARP probes the pure checker
//! (`speaker::answer_check`) asks for, on packet sockets of its own, and hands it the replies.
//!
//! A probe is an RFC 5227 ARP probe (sender address 0.0.0.0), broadcast: it teaches no host's
//! ARP cache anything, and a responder, ferrolb's or a kernel's, answers it to this node's MAC.
//! IPv4 addresses only: IPv6 addresses are not checked yet.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::layer2::arp::{ArpOperation, ArpRepr};
use crate::layer2::iface::{ExcludePatterns, discover};
use crate::layer2::socket::{MAX_FRAME, PacketSocket};
use crate::layer2::wire::Mac;
use crate::runtime::sleep_until;

use super::announcer::Link;
use super::answer_check::{AnswerCheck, Findings, Probe, Target};

/// What the speaker's pass hands the checker: the addresses to check, and the other nodes'
/// own addresses (controls).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Work {
    pub targets: BTreeMap<IpAddr, Target>,
    pub controls: Vec<IpAddr>,
}

/// The running checker: hand it work, read its findings.
pub struct Checker {
    pub work: watch::Sender<Work>,
    pub findings: watch::Receiver<Findings>,
    task: JoinHandle<()>,
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the checker sending at most `rate` probes per second on the usable interfaces.
pub fn spawn(rate: u32, excludes: ExcludePatterns) -> Checker {
    let (work_tx, work_rx) = watch::channel(Work::default());
    let (findings_tx, findings_rx) = watch::channel(Findings::default());
    let task = tokio::spawn(run(rate, excludes, work_rx, findings_tx));
    Checker {
        work: work_tx,
        findings: findings_rx,
        task,
    }
}

async fn run(
    rate: u32,
    excludes: ExcludePatterns,
    mut work: watch::Receiver<Work>,
    findings: watch::Sender<Findings>,
) {
    let mut core = AnswerCheck::new(rate);
    let mut links: BTreeMap<u32, Link> = BTreeMap::new();
    let (heard_tx, mut heard_rx) = mpsc::channel::<(Ipv4Addr, Instant)>(1024);
    let mut targets: BTreeMap<IpAddr, Target> = BTreeMap::new();
    loop {
        let now = Instant::now();
        // A reader whose socket failed (it logged why) gets a fresh socket before the next
        // probes, as the announcer reopens its own.
        if !targets.is_empty() && links.values().any(|l| l.receiver.is_finished()) {
            open(&mut links, &excludes, &heard_tx);
        }
        for probe in core.poll(now) {
            send(&links, &targets, probe).await;
        }
        findings.send_if_modified(|f| {
            let next = core.findings(now);
            (*f != next).then(|| *f = next).is_some()
        });
        tokio::select! {
            changed = work.changed() => {
                if changed.is_err() {
                    return;
                }
                let next = work.borrow_and_update().clone();
                targets = next
                    .targets
                    .into_iter()
                    .filter(|(ip, _)| ip.is_ipv4())
                    .collect();
                core.set_targets(targets.clone(), Instant::now());
                core.set_controls(next.controls.into_iter().filter(IpAddr::is_ipv4).collect());
                if !targets.is_empty() {
                    open(&mut links, &excludes, &heard_tx);
                }
            }
            Some((ip, at)) = heard_rx.recv() => core.heard(IpAddr::V4(ip), at),
            () = sleep_until(core.next_deadline()) => {}
        }
    }
}

/// Opens a socket on each usable interface without one, and closes those gone.
fn open(
    links: &mut BTreeMap<u32, Link>,
    excludes: &ExcludePatterns,
    heard: &mpsc::Sender<(Ipv4Addr, Instant)>,
) {
    let found = match discover(excludes) {
        Ok(found) => found,
        Err(e) => {
            warn!(error = %e, "answer checks: cannot list network interfaces");
            return;
        }
    };
    links.retain(|index, link| {
        found.iter().any(|i| i.index == *index && *i == link.iface) && !link.receiver.is_finished()
    });
    for iface in found {
        if links.contains_key(&iface.index) {
            continue;
        }
        let socket = match PacketSocket::open(iface.index) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                warn!(interface = %iface.name, error = %e, "answer checks: cannot open packet socket");
                continue;
            }
        };
        let receiver = tokio::spawn(read_replies(iface.mac, socket.clone(), heard.clone()));
        links.insert(
            iface.index,
            Link {
                iface,
                socket,
                receiver,
            },
        );
    }
}

/// Hands every ARP reply addressed to `mac` to the checker (its sender's address).
async fn read_replies(
    mac: Mac,
    socket: Arc<PacketSocket>,
    heard: mpsc::Sender<(Ipv4Addr, Instant)>,
) {
    let mut buf = vec![0u8; MAX_FRAME];
    loop {
        let n = match socket.recv(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "answer checks: receive failed; the socket is reopened");
                return;
            }
        };
        let Ok(arp) = ArpRepr::parse(&buf[..n]) else {
            continue;
        };
        if arp.operation == ArpOperation::Reply
            && arp.target_mac == mac
            && heard.send((arp.sender_ip, Instant::now())).await.is_err()
        {
            return;
        }
    }
}

/// Sends `probe` on the interfaces its target allows (a control on every open one).
async fn send(links: &BTreeMap<u32, Link>, targets: &BTreeMap<IpAddr, Target>, probe: Probe) {
    let IpAddr::V4(ip) = probe.ip else {
        return;
    };
    let only: Option<&BTreeSet<String>> = if probe.control {
        None
    } else {
        targets.get(&probe.ip).and_then(|t| t.interfaces.as_ref())
    };
    for link in links.values() {
        if only.is_some_and(|names| !names.contains(&link.iface.name)) {
            continue;
        }
        let frame = probe_frame(link.iface.mac, ip).to_vec();
        if let Err(e) = link.socket.send(&frame).await {
            debug!(interface = %link.iface.name, error = %e, "answer checks: probe not sent");
        }
    }
}

/// An RFC 5227 ARP probe for `ip` from `mac`: broadcast, sender address 0.0.0.0.
pub fn probe_frame(mac: Mac, ip: Ipv4Addr) -> ArpRepr {
    ArpRepr {
        eth_dst: Mac::BROADCAST,
        eth_src: mac,
        operation: ArpOperation::Request,
        sender_mac: mac,
        sender_ip: Ipv4Addr::UNSPECIFIED,
        target_mac: Mac::ZERO,
        target_ip: ip,
    }
}
