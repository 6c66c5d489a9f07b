//! The one path from "the IPs this node owns" to the announcer task and the
//! `ferrolb_speaker_announced` metric, shared by the Kubernetes and static speaker modes so the
//! two cannot drift apart in what they publish.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::announcer::{self, AnnouncerOptions, OwnedSet};
use super::metrics::{AnnouncedMetric, Layer2Metrics};
use super::owned::Owned;

/// The running announcer: the sender of the owned set, a receiver that turns `true` once its
/// sockets are open, the sender that makes it reopen them and announce again (a heal), and
/// the task.
pub struct Announcer {
    pub owned: watch::Sender<OwnedSet>,
    pub sockets: watch::Receiver<bool>,
    pub heal: watch::Sender<u64>,
    pub task: JoinHandle<()>,
}

/// Starts the announcer task with nothing owned.
pub fn spawn_announcer(options: AnnouncerOptions, metrics: Layer2Metrics) -> Announcer {
    let (owned_tx, owned_rx) = watch::channel::<OwnedSet>(Arc::new(Owned::default()));
    let (sockets_tx, sockets_rx) = watch::channel(false);
    let (heal_tx, heal_rx) = watch::channel(0u64);
    let task = tokio::spawn(announcer::run(
        options, owned_rx, metrics, sockets_tx, heal_rx,
    ));
    Announcer {
        owned: owned_tx,
        sockets: sockets_rx,
        heal: heal_tx,
        task,
    }
}

/// Moves `me` from owning `before` to owning `after`: hands the new set to the announcer, then
/// clears the metric for every IP dropped (or now belonging to another service) and sets it for
/// every IP newly owned.
pub fn publish<S: PartialEq + Clone + Into<Arc<str>>>(
    owned_tx: &watch::Sender<OwnedSet>,
    announced: &AnnouncedMetric,
    me: &str,
    before: &BTreeMap<IpAddr, S>,
    after: &BTreeMap<IpAddr, S>,
) {
    publish_scoped(owned_tx, announced, me, before, after, &BTreeMap::new());
}

/// [`publish`] where some IPs are served only on the interfaces `only_on` names for them (their
/// L2 advertisements' `interfaces`). The services are `String`s or the cache's shared keys.
pub fn publish_scoped<S: PartialEq + Clone + Into<Arc<str>>>(
    owned_tx: &watch::Sender<OwnedSet>,
    announced: &AnnouncedMetric,
    me: &str,
    before: &BTreeMap<IpAddr, S>,
    after: &BTreeMap<IpAddr, S>,
    only_on: &BTreeMap<IpAddr, BTreeSet<String>>,
) {
    // The announcer first: after a takeover every millisecond until it answers counts.
    owned_tx.send_replace(Arc::new(Owned::new(after.keys().copied(), only_on)));
    for (ip, service) in before {
        if after.get(ip) != Some(service) {
            announced.set(service.clone(), me, *ip, false);
        }
    }
    for (ip, service) in after {
        if before.get(ip) != Some(service) {
            announced.set(service.clone(), me, *ip, true);
        }
    }
}
