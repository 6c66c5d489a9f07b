//! One pass of the Kubernetes speaker's decisions, without sockets or gossip: from the watched
//! objects (reflector stores), the live member set and the election gate to "which IPs this node
//! owns now" and "which Services it has just started announcing" (the `nodeAssigned` events).
//!
//! Recording events is split off into [`EventWriter`] and runs on its own task, so a slow or
//! unreachable API server delays only the events, never a change of ownership.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ConfigMap, Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::DynamicObject;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Client, Resource};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::advertise::Cause;
use crate::config::{self, Config, L2Advertisement, LabelSelector, Protocol};
use crate::election::{self, Liveness};
use crate::k8s::metallb::{KINDS, L2, Objects, POOL};
use crate::k8s::pod::{published_interfaces, ready_pod_nodes};
use crate::metrics::ConfigMetrics;

use super::cluster::{self, ViewOptions};
use super::ownership::owned_by;

/// Pools of earlier configs kept to go on announcing addresses that left the pools (see
/// [`Reconciler::adopt`]).
const MAX_RETIRED_POOLS: usize = 64;

/// The label a retired pool carries (only inside this speaker), which its carried-over
/// advertisements select.
const RETIRED_LABEL: &str = "ferrolb.internal/retired-pool";

/// The reflector stores a speaker watches.
#[derive(Clone)]
pub struct Stores {
    pub services: Store<Service>,
    pub slices: Store<EndpointSlice>,
    pub nodes: Store<Node>,
    /// Holds at most the one ConfigMap (the watch selects it by name; `--config-source
    /// configmap`).
    pub configmaps: Store<ConfigMap>,
    /// The speaker pods (`--ml-labels` in the speaker's namespace).
    pub speakers: Store<Pod>,
    /// `--config-source crds`: the pools and layer-2 advertisements in the namespace.
    pub metallb: Option<MetallbStores>,
}

/// MetalLB's objects a speaker reads (`--config-source crds`): the BGP kinds are the
/// controller's to report, so a speaker reads only what layer 2 needs.
#[derive(Clone)]
pub struct MetallbStores {
    pub namespace: String,
    pub pools: Store<DynamicObject>,
    pub l2: Store<DynamicObject>,
}

impl MetallbStores {
    fn config(&self) -> Result<Config, String> {
        let mut objects = Objects::default();
        for kind in KINDS {
            objects.listed(kind);
        }
        for (kind, store) in [(POOL, &self.pools), (L2, &self.l2)] {
            for o in store.state() {
                objects.apply(kind, &o);
            }
        }
        objects
            .build(&self.namespace, &config::Namespaces::new())
            .map(|f| f.config)
            .map_err(|e| e.to_string())
    }
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
    /// `None`: the `nodeAssigned` event. Some: a Warning event (reason, note) instead.
    pub warning: Option<(&'static str, String)>,
}

/// What one pass decided.
#[derive(Debug, Default)]
pub struct Pass {
    /// The owned set before this pass, when the pass changed it; the caller hands
    /// `before -> Reconciler::owned()` to the announcer.
    pub changed_from: Option<BTreeMap<IpAddr, String>>,
    /// Services this node announces now and did not announce after the previous pass, then
    /// the Warning events due (see [`Reconciler::unannounced`]).
    pub assigned: Vec<Assigned>,
    /// Layer-2 Service IPs in this speaker's view, whichever node (if any) announces them.
    pub service_ips: usize,
}

/// What the ConfigMap store showed last, so each state is acted on (and logged) once.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ConfigSource {
    /// `--config-source crds`: the config the objects make, or why they were refused.
    Objects(Result<Config, String>),
    Absent,
    NoConfigKey,
    Text(String),
}

pub struct Reconciler {
    me: String,
    view: ViewOptions,
    stores: Stores,
    /// The last good config, with the layer-2 pools of earlier configs appended after its own
    /// (see [`Reconciler::adopt`]); `None` until one has loaded (then nothing is
    /// announced).
    config: Option<Config>,
    seen: Option<ConfigSource>,
    owned: BTreeMap<IpAddr, String>,
    warned_bgp: BTreeSet<String>,
    /// Services this node announced after the previous pass.
    announcing: BTreeSet<String>,
    config_metrics: Option<ConfigMetrics>,
    /// Interfaces the owned IPs are restricted to by their advertisements.
    only_on: BTreeMap<IpAddr, BTreeSet<String>>,
    /// Services held but announced by nobody, with why, as of the last pass.
    unannounced: BTreeMap<String, Cause>,
    /// This node's usable interfaces, when known (`None`: assume it has every interface).
    own_interfaces: Option<BTreeSet<String>>,
    /// The last config load: valid (`None`) or refused with why; `None` until one was seen.
    config_state: Option<Option<String>>,
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
            config_metrics: None,
            only_on: BTreeMap::new(),
            unannounced: BTreeMap::new(),
            own_interfaces: None,
            config_state: None,
        }
    }

    /// Counts config updates (applied or refused) in `metrics`.
    pub fn with_config_metrics(mut self, metrics: ConfigMetrics) -> Self {
        self.config_metrics = Some(metrics);
        self
    }

    /// Records this node's usable interfaces (after exclusions), for the next passes.
    pub fn set_own_interfaces(&mut self, interfaces: BTreeSet<String>) {
        self.own_interfaces = Some(interfaces);
    }

    /// The interfaces owned IPs are restricted to (IPs absent: every interface).
    pub fn only_on(&self) -> &BTreeMap<IpAddr, BTreeSet<String>> {
        &self.only_on
    }

    /// Services holding an IP that no node announces, with the cause (the
    /// `ferrolb_speaker_unannounced` gauge).
    pub fn unannounced(&self) -> &BTreeMap<String, Cause> {
        &self.unannounced
    }

    /// The last config load for the ConfigurationState: `Some(None)` valid, `Some(Some(why))`
    /// refused, `None` before any config was seen.
    pub fn config_state(&self) -> Option<Option<String>> {
        self.config_state.clone()
    }

    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// The IPs this node owns after the last pass, each with its Service.
    pub fn owned(&self) -> &BTreeMap<IpAddr, String> {
        &self.owned
    }

    /// The nodes running a ready speaker, this one always included (it is running, whatever
    /// its pod's readiness says yet).
    pub fn speaker_nodes(&self) -> BTreeSet<String> {
        let mut nodes = ready_pod_nodes(self.stores.speakers.state().iter().map(|p| &**p));
        nodes.insert(self.me.clone());
        nodes
    }

    /// The usable interfaces each node's speaker published on its pod, this node's own as it
    /// knows them now.
    fn known_interfaces(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut known = published_interfaces(self.stores.speakers.state().iter().map(|p| &**p));
        match &self.own_interfaces {
            Some(own) => {
                known.insert(self.me.clone(), own.clone());
            }
            None => {
                known.remove(&self.me);
            }
        }
        known
    }

    /// Whether a ready speaker runs on another node: only then is there a cluster to join
    /// before electing. A lone speaker (a `nodeSelector` picking one node, a cluster whose
    /// other nodes run no speaker, a restart while the others are down) elects at once.
    pub fn others_expected(&self) -> bool {
        self.speaker_nodes().iter().any(|n| *n != self.me)
    }

    /// Decides ownership from the stores as they are now. `live` is the gossip member set
    /// (`None` with gossip off: then the Ready nodes running a speaker are alive); this node
    /// always counts itself alive. `may_elect` is the election gate (false: own nothing yet).
    pub fn pass(&mut self, live: Option<&BTreeSet<String>>, may_elect: bool) -> Pass {
        self.reload_config();
        let alive = match live {
            Some(live) => {
                let mut alive = live.clone();
                alive.insert(self.me.clone());
                alive
            }
            None => self.speaker_nodes(),
        };
        let liveness = match live {
            Some(_) => Liveness::Gossip(&alive),
            None => Liveness::NodeReady(&alive),
        };
        let (announcements, skipped) = match &self.config {
            Some(config) => cluster::announcements(
                config,
                &all(&self.stores.services),
                &all(&self.stores.slices),
                &self.stores.nodes(),
                liveness,
                &self.known_interfaces(),
                &self.view,
            ),
            None => (Vec::new(), Default::default()),
        };
        for svc in skipped.bgp.difference(&self.warned_bgp) {
            warn!(service = %svc, "service IP is in a BGP pool; BGP announcement is not implemented, so it is not announced");
        }
        self.warned_bgp = skipped.bgp;
        let service_ips = announcements.iter().map(|a| a.ips.len()).sum();
        let mut next = if may_elect {
            owned_by(&self.me, &announcements)
        } else {
            BTreeMap::new()
        };
        let mut causes = skipped.causes;
        if let Some(own) = &self.own_interfaces {
            // Elected, but none of the advertised interfaces is here: announce nothing (and
            // say so) rather than claim an address nobody can reach through this node.
            next.retain(|ip, svc| {
                let lacking = skipped
                    .interfaces
                    .get(svc)
                    .is_some_and(|names| names.is_disjoint(own));
                if lacking {
                    let cause = Cause::NoInterface {
                        node: self.me.clone(),
                    };
                    causes.entry(svc.clone()).or_insert((*ip, cause));
                }
                !lacking
            });
        }
        self.only_on = next
            .iter()
            .filter_map(|(ip, svc)| Some((*ip, skipped.interfaces.get(svc)?.clone())))
            .collect();
        let warnings = self.report_unannounced(causes, live);
        // Events follow what is actually announced: while the gate is closed this node may
        // elect itself on paper, but it announces nothing, so it records nothing either.
        let announcing: BTreeSet<String> = next.values().cloned().collect();
        let mut assigned: Vec<Assigned> = announcing
            .difference(&self.announcing)
            .filter_map(|key| self.reference(key))
            .collect();
        assigned.extend(warnings);
        self.announcing = announcing;
        let changed_from = (next != self.owned).then(|| std::mem::replace(&mut self.owned, next));
        Pass {
            changed_from,
            assigned,
            service_ips,
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
            warning: None,
        })
    }

    /// Keeps the unannounced set and returns the Warning events for causes that are new or
    /// changed since the last pass. Only the node ranked first for the Service's IP among every
    /// known node records them, so one cause gives one event, not one per speaker.
    fn report_unannounced(
        &mut self,
        causes: BTreeMap<String, (IpAddr, Cause)>,
        live: Option<&BTreeSet<String>>,
    ) -> Vec<Assigned> {
        let nodes = self.stores.nodes();
        let mut names: Vec<&str> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.as_deref())
            .filter(|n| live.is_none_or(|l| l.contains(*n)))
            .collect();
        if names.is_empty() {
            names.push(self.me.as_str());
        }
        let mut due = Vec::new();
        let mut next = BTreeMap::new();
        for (service, (ip, cause)) in causes {
            let changed = self.unannounced.get(&service) != Some(&cause);
            let reporter = match &cause {
                // Only the elected node knows it lacks the interface.
                Cause::NoInterface { node } => *node == self.me,
                _ => election::owner(ip, names.iter().copied()) == Some(self.me.as_str()),
            };
            if changed && reporter {
                info!(%service, reason = cause.label(), "recording why no node announces the service");
                let reason = match cause {
                    Cause::NoInterface { .. } => "announceFailed",
                    _ => "notAnnounced",
                };
                if let Some(mut a) = self.reference(&service) {
                    a.warning = Some((reason, cause.to_string()));
                    due.push(a);
                }
            }
            next.insert(service, cause);
        }
        self.unannounced = next;
        due
    }

    /// Applies a changed, valid ConfigMap. An invalid one, a ConfigMap without the `config`
    /// key, or none at all is logged once and the last good config stays in force (as in the
    /// controller), so a slip in the ConfigMap never takes every IP off the LAN.
    fn reload_config(&mut self) {
        let source = match (&self.stores.metallb, self.stores.configmaps.state().first()) {
            (Some(m), _) => ConfigSource::Objects(m.config()),
            (None, None) => ConfigSource::Absent,
            (None, Some(cm)) => match cm.data.as_ref().and_then(|d| d.get("config")) {
                None => ConfigSource::NoConfigKey,
                Some(text) => ConfigSource::Text(text.clone()),
            },
        };
        if self.seen.as_ref() == Some(&source) {
            return;
        }
        self.seen = Some(source.clone());
        let applied = match source {
            ConfigSource::Objects(Ok(c)) => {
                info!(
                    pools = c.address_pools.len(),
                    "config loaded from the custom resources"
                );
                self.adopt(c);
                true
            }
            ConfigSource::Objects(Err(e)) => {
                error!(error = %e, "custom resources refused; keeping the last good config");
                self.config_state = Some(Some(e));
                false
            }
            ConfigSource::Absent => {
                warn!("the config ConfigMap is absent; keeping the last good config");
                return;
            }
            ConfigSource::NoConfigKey => {
                error!(
                    "the config ConfigMap has no data.config (the config is read from the key \"config\"); keeping the last good config"
                );
                self.config_state =
                    Some(Some("the config ConfigMap has no data.config".to_owned()));
                false
            }
            ConfigSource::Text(text) => match config::parse(&text) {
                Ok(c) => {
                    info!(pools = c.address_pools.len(), "config loaded");
                    self.adopt(c);
                    true
                }
                Err(e) => {
                    error!(error = %e, "config rejected; keeping the last good one");
                    self.config_state = Some(Some(crate::telemetry::error_chain(&e)));
                    false
                }
            },
        };
        match (&self.config_metrics, applied) {
            (Some(m), true) => m.applied(),
            (Some(m), false) => m.refused(),
            (None, _) => {}
        }
    }

    /// Puts a valid config in force. An address whose pool left the config is still in some
    /// Service's status until the controller moves that Service, and its clients still use it:
    /// it stays announced until then. So the layer-2 pools of earlier configs are kept behind
    /// the current ones; an address in a current pool follows that pool, one in none of the
    /// current pools falls back to its old pool.
    fn adopt(&mut self, mut c: Config) {
        self.config_state = Some(None);
        let current = c.address_pools.len();
        let (old_pools, old_ads) = self
            .config
            .take()
            .map(|o| (o.address_pools, o.l2_advertisements))
            .unwrap_or_default();
        let mut retired = 0;
        for mut pool in old_pools {
            if retired == MAX_RETIRED_POOLS {
                // Newest first; a speaker edited many times keeps only the recent past.
                break;
            }
            if pool.protocol != Protocol::Layer2 || c.address_pools.contains(&pool) {
                continue;
            }
            // The advertisements that announced it go on doing so, for it alone: each is
            // narrowed to a label only the retired pool carries, so a current pool of the same
            // name keeps only its current advertisements.
            let ads: Vec<L2Advertisement> = old_ads
                .iter()
                .filter(|ad| ad.selects_pool(&pool))
                .cloned()
                .collect();
            let tag = format!("{}#{retired}", pool.name);
            pool.labels = [(RETIRED_LABEL.to_owned(), tag.clone())].into();
            for mut ad in ads {
                ad.pools.clear();
                ad.pool_selectors = vec![LabelSelector {
                    match_labels: [(RETIRED_LABEL.to_owned(), tag.clone())].into(),
                    match_expressions: Vec::new(),
                }];
                c.l2_advertisements.push(ad);
            }
            c.address_pools.push(pool);
            retired += 1;
        }
        debug_assert!(c.address_pools.len() <= current + MAX_RETIRED_POOLS);
        self.config = Some(c);
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
        let assigned_event = Event {
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
            let warning;
            let event = match &a.warning {
                None => &assigned_event,
                Some((reason, note)) => {
                    warning = Event {
                        type_: EventType::Warning,
                        reason: (*reason).into(),
                        note: Some(note.clone()),
                        action: "Announce".into(),
                        secondary: None,
                    };
                    &warning
                }
            };
            if let Err(e) = recorder.publish(event, &a.reference).await {
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

/// `/readyz`: the announcer can answer on every interface and, with gossip on while other
/// speakers are expected ([`Reconciler::others_expected`]), this speaker has joined them.
pub fn ready(sockets_open: bool, gossip: bool, joined: bool, others_expected: bool) -> bool {
    sockets_open && (!gossip || joined || !others_expected)
}

#[cfg(test)]
#[path = "reconcile_tests/mod.rs"]
mod tests;
