//! One pass of the Kubernetes speaker's decisions, without sockets or gossip: from the watched
//! objects (reflector stores), the live member set and the election gate to "which IPs this node
//! owns now" and "which Services it has just started announcing" (the `nodeAssigned` events).
//!
//! Recording events is split off into [`EventWriter`] and runs on its own task, so a slow or
//! unreachable API server delays only the events, never a change of ownership.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ConfigMap, Node, ObjectReference, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Client, Resource};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::config::{self, Config};

use super::cluster::{self, ViewOptions};

/// The reflector stores a speaker watches.
#[derive(Clone)]
pub struct Stores {
    pub services: Store<Service>,
    pub slices: Store<EndpointSlice>,
    pub nodes: Store<Node>,
    /// Holds at most the one ConfigMap (the watch selects it by name).
    pub configmaps: Store<ConfigMap>,
}

fn all<K>(store: &Store<K>) -> Vec<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.state().iter().map(|o| (**o).clone()).collect()
}

impl Stores {
    pub fn nodes(&self) -> Vec<Node> {
        all(&self.nodes)
    }
}

/// This node has just become the announcer of `service`: a `nodeAssigned` event is due.
#[derive(Debug, Clone, PartialEq)]
pub struct Assigned {
    /// `namespace/name`.
    pub service: String,
    pub reference: ObjectReference,
}

/// What one pass decided.
#[derive(Debug, Default)]
pub struct Pass {
    /// The owned set before this pass, when the pass changed it; the caller hands
    /// `before -> Reconciler::owned()` to the announcer.
    pub changed_from: Option<BTreeMap<IpAddr, String>>,
    /// Services this node announces now and did not announce after the previous pass.
    pub assigned: Vec<Assigned>,
}

/// What the ConfigMap store showed last, so each state is acted on (and logged) once.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ConfigSource {
    Absent,
    NoConfigKey,
    Text(String),
}

pub struct Reconciler {
    me: String,
    view: ViewOptions,
    stores: Stores,
    /// The last good config; `None` until one has loaded (then nothing is announced).
    config: Option<Config>,
    seen: Option<ConfigSource>,
    owned: BTreeMap<IpAddr, String>,
    warned_bgp: BTreeSet<String>,
    /// Services this node announced after the previous pass.
    announcing: BTreeSet<String>,
}

impl Reconciler {
    pub fn new(me: String, view: ViewOptions, stores: Stores) -> Self {
        Self {
            me,
            view,
            stores,
            config: None,
            seen: None,
            owned: BTreeMap::new(),
            warned_bgp: BTreeSet::new(),
            announcing: BTreeSet::new(),
        }
    }

    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// The IPs this node owns after the last pass, each with its Service.
    pub fn owned(&self) -> &BTreeMap<IpAddr, String> {
        &self.owned
    }

    /// Decides ownership from the stores as they are now. `live` is the gossip member set
    /// (`None` with gossip off); `may_elect` is the election gate (false: own nothing yet).
    pub fn pass(&mut self, live: Option<&BTreeSet<String>>, may_elect: bool) -> Pass {
        self.reload_config();
        let (announcements, skipped) = match &self.config {
            Some(config) => cluster::announcements(
                config,
                &all(&self.stores.services),
                &all(&self.stores.slices),
                &self.stores.nodes(),
                live,
                &self.view,
            ),
            None => (Vec::new(), Default::default()),
        };
        for svc in skipped.bgp.difference(&self.warned_bgp) {
            warn!(service = %svc, "service IP is in a BGP pool; BGP announcement is not implemented, so it is not announced");
        }
        self.warned_bgp = skipped.bgp;
        let next = if may_elect {
            cluster::owned_by(&self.me, &announcements)
        } else {
            BTreeMap::new()
        };
        // Events follow what is actually announced: while the gate is closed this node may
        // elect itself on paper, but it announces nothing, so it records nothing either.
        let announcing: BTreeSet<String> = next.values().cloned().collect();
        let assigned = announcing
            .difference(&self.announcing)
            .filter_map(|key| self.reference(key))
            .collect();
        self.announcing = announcing;
        let changed_from = (next != self.owned).then(|| std::mem::replace(&mut self.owned, next));
        Pass {
            changed_from,
            assigned,
        }
    }

    fn reference(&self, key: &str) -> Option<Assigned> {
        let (ns, name) = key.split_once('/')?;
        let svc = self.stores.services.state().into_iter().find(|s| {
            s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(name)
        })?;
        Some(Assigned {
            service: key.to_owned(),
            reference: svc.object_ref(&()),
        })
    }

    /// Applies a changed, valid ConfigMap. An invalid one, a ConfigMap without the `config`
    /// key, or none at all is logged once and the last good config stays in force (as in the
    /// controller), so a slip in the ConfigMap never takes every IP off the LAN.
    fn reload_config(&mut self) {
        let source = match self.stores.configmaps.state().first() {
            None => ConfigSource::Absent,
            Some(cm) => match cm.data.as_ref().and_then(|d| d.get("config")) {
                None => ConfigSource::NoConfigKey,
                Some(text) => ConfigSource::Text(text.clone()),
            },
        };
        if self.seen.as_ref() == Some(&source) {
            return;
        }
        self.seen = Some(source.clone());
        match source {
            ConfigSource::Absent => {
                warn!("the config ConfigMap is absent; keeping the last good config")
            }
            ConfigSource::NoConfigKey => error!(
                "the config ConfigMap has no data.config (the config is read from the key \"config\"); keeping the last good config"
            ),
            ConfigSource::Text(text) => match config::parse(&text) {
                Ok(c) => {
                    info!(pools = c.address_pools.len(), "config loaded");
                    self.config = Some(c);
                }
                Err(e) => error!(error = %e, "config rejected; keeping the last good one"),
            },
        }
    }
}

/// Records `nodeAssigned` events for this node.
#[derive(Clone)]
pub struct EventWriter {
    client: Client,
    reporter: Reporter,
    me: String,
}

/// Event batches waiting beyond this are dropped (with a warning) rather than queued without
/// bound while the API server does not answer.
const EVENT_QUEUE: usize = 64;

impl EventWriter {
    pub fn new(client: Client, me: String) -> Self {
        let reporter = Reporter {
            controller: "ferrolb-speaker".into(),
            instance: Some(me.clone()),
        };
        Self {
            client,
            reporter,
            me,
        }
    }

    /// Posts one event per Service. A failure is logged and not retried: the event is a
    /// record for humans, and retrying against a refusing API server would only add load.
    pub async fn record(&self, assigned: &[Assigned]) {
        if assigned.is_empty() {
            return;
        }
        // A fresh recorder each time: its cache would turn a repeat of the same event (the
        // node regaining a Service later) into a PATCH of the old one, hiding the new change.
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        let event = Event {
            type_: EventType::Normal,
            reason: "nodeAssigned".into(),
            note: Some(format!(
                "announcing from node {:?} with protocol \"layer2\"",
                self.me
            )),
            action: "Announce".into(),
            secondary: None,
        };
        for a in assigned {
            if let Err(e) = recorder.publish(&event, &a.reference).await {
                warn!(service = %a.service, error = %crate::telemetry::error_chain(&e), "cannot record nodeAssigned event");
            }
        }
    }

    /// Runs the writer on its own task; the sender queues each pass's events.
    pub fn spawn(self) -> EventQueue {
        let (tx, mut rx) = mpsc::channel::<Vec<Assigned>>(EVENT_QUEUE);
        tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                self.record(&batch).await;
            }
        });
        EventQueue(tx)
    }
}

pub struct EventQueue(mpsc::Sender<Vec<Assigned>>);

impl EventQueue {
    pub fn send(&self, assigned: Vec<Assigned>) {
        if assigned.is_empty() {
            return;
        }
        if let Err(e) = self.0.try_send(assigned) {
            let dropped: Vec<String> = match e {
                mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b) => {
                    b.into_iter().map(|a| a.service).collect()
                }
            };
            warn!(services = ?dropped, "event queue full; nodeAssigned events dropped");
        }
    }
}

/// `/readyz`: the announcer's sockets are open and, with gossip on in a cluster of more than
/// one node, this speaker has joined.
pub fn ready(sockets_open: bool, gossip: bool, joined: bool, nodes: usize) -> bool {
    sockets_open && (!gossip || joined || nodes <= 1)
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
