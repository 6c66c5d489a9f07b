//! One pass of the Kubernetes speaker's decisions, without sockets or gossip: from the watched
//! objects (the projected caches of [`super::cache`]), the live member set and the election gate
//! to "which IPs this node owns now" and "which Services it has just started announcing" (the
//! `nodeAssigned` events, recorded by [`super::events`]).
//!
//! A pass does work for what changed. It keeps each Service's part in the election
//! ([`super::cluster::evaluate`]) and its election result between passes, and decides again
//! only the Services the watches marked ([`super::cache::Changes`]), together with every Service
//! sharing an address with one of them (a group is elected as one). Only a change that every decision
//! reads — a Node, the config, the live members, the published interfaces, a re-list —
//! decides all of them again; when members only left (a takeover), every Service is worked out
//! again where it is kept, but only the groups the leavers owned are elected again
//! ([`Reconciler::members_left`]). Nothing is cloned from the caches but the `Arc`s. This file
//! is the pass and what it concludes (the owned set, the events, the unannounced report);
//! [`incremental`] is what it keeps between passes and how a change reaches it.

mod claims;
mod incremental;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::runtime::reflector::Store as ReflectorStore;
use tracing::{info, warn};

use crate::advertise::{self, Cause, Decision, Interfaces};
use crate::config::Config;
use crate::election;
use crate::k8s::pod::ready_pod_nodes;
use crate::metrics::ConfigMetrics;
use crate::placement::Claims;
use crate::speaker::answer_check::Target;
use crate::speaker::handover::{Claimed, Handover};
use crate::speaker::ownership::{self, Withdrawn};

use super::cache::{Changes, NodeView, ServiceView, SliceView};
use super::cluster::{Evaluated, Unannounced, ViewOptions};
use super::config_load::{ConfigLoader, MetallbStores};
use super::events::Assigned;
use super::holders::Holders;
use super::store::Store;
use incremental::Globals;

/// A list that is one element long for nearly every key: that element inline, the rare rest on
/// the heap.
type One<T> = smallvec::SmallVec<[T; 1]>;

/// The caches a speaker watches, and the log of what changed in them.
#[derive(Clone)]
pub struct Stores {
    pub services: Store<ServiceView>,
    pub slices: Store<SliceView>,
    pub nodes: Store<NodeView>,
    /// Holds at most the one ConfigMap (the watch selects it by name; `--config-source
    /// configmap`).
    pub configmaps: ReflectorStore<ConfigMap>,
    /// The speaker pods (`--ml-labels` in the speaker's namespace).
    pub speakers: ReflectorStore<Pod>,
    /// `--config-source crds`: the pools and layer-2 advertisements in the namespace.
    pub metallb: Option<MetallbStores>,
    pub changes: Changes,
}

impl Stores {
    /// Where each Node's speaker gossips (its InternalIP, else its first address).
    pub fn node_addresses(&self) -> Vec<IpAddr> {
        self.nodes
            .state()
            .iter()
            .filter_map(|n| n.address())
            .collect()
    }
}

/// What one pass decided.
#[derive(Debug, Default)]
pub struct Pass {
    /// The owned set before this pass, when the pass changed it; the caller hands
    /// `before -> Reconciler::owned()` to the announcer.
    pub changed_from: Option<BTreeMap<IpAddr, Arc<str>>>,
    /// Services this node announces now and did not announce after the previous pass, then
    /// the Warning events due (see [`Reconciler::unannounced`]).
    pub assigned: Vec<Assigned>,
    /// Layer-2 Service IPs in this speaker's view, whichever node (if any) announces them.
    pub service_ips: usize,
    /// The Services this node announces changed (one joined or left an address it already
    /// owned, or the owned set changed): their ServiceL2Status objects are made again.
    pub announced_changed: bool,
    /// The work done: Services whose part in the election was worked out again, and
    /// Services elected again (those offered, and whoever shares an address with one that
    /// changed).
    pub evaluated: usize,
    pub elected: usize,
    /// What this node claims changed ([`Reconciler::claimed`]): gossip it once the announcer
    /// has the owned set.
    pub claims_changed: bool,
    /// A Service, EndpointSlice, Node or the config changed (or a re-list): BGP's routes too.
    pub objects_changed: bool,
}

pub struct Reconciler {
    me: String,
    view: ViewOptions,
    stores: Stores,
    loader: ConfigLoader,
    configs: u64,
    /// The inputs of the last pass's decisions; `None` before the first.
    globals: Option<Globals>,
    /// Each announced-or-skipped Service's part in the election, as of the last pass.
    evaluated: BTreeMap<Arc<str>, Evaluated>,
    /// The offered Services holding each address: who is elected together.
    holders: Holders,
    /// Each offered Service's election result (its key and IPs are its offer's, in
    /// `evaluated`: the same keys, in the same order).
    placed: BTreeMap<Arc<str>, Decision>,
    /// Each Service's EndpointSlices.
    slices: HashMap<Arc<str>, One<Arc<SliceView>>>,
    may_elect: bool,
    service_ips: usize,
    /// Each owned IP's Service (the cache's key).
    owned: BTreeMap<IpAddr, Arc<str>>,
    warned_bgp: BTreeSet<String>,
    /// Each Service this node announces, with its addresses this node answers for (every
    /// sharer of an owned address, not only the first by key).
    announced: BTreeMap<Arc<str>, Vec<IpAddr>>,
    /// Interfaces the owned IPs are restricted to by their advertisements.
    only_on: BTreeMap<IpAddr, BTreeSet<String>>,
    /// Services held but announced by nobody, with why, as of the last pass.
    unannounced: BTreeMap<String, Cause>,
    /// This node's usable interfaces with their link, when known (`None`: assume it has every
    /// interface).
    own_interfaces: Option<BTreeSet<String>>,
    /// The other nodes' usable interfaces with their link, as gossip carries them (a node
    /// absent: assume it has every interface).
    other_interfaces: BTreeMap<String, BTreeSet<String>>,
    /// The addresses nodes withdrew from (answer verification).
    withdrawn: Withdrawn,
    /// The addresses this node is next in line for, as of the last pass: it checks that
    /// their owner answers.
    targets: BTreeMap<IpAddr, Target>,
    /// Bumped whenever `targets` changes.
    targets_version: u64,
    /// Under a placement policy that reads claims: what this node claims and answers, and
    /// what the other live nodes claim (from gossip).
    handover: Handover,
    others_claim: BTreeMap<String, Claimed>,
    /// Bumped when any claim changes, and every node's claims as built for a version.
    claims: (u64, Option<(u64, Arc<Claims>)>),
}

impl Reconciler {
    pub fn new(me: String, view: ViewOptions, stores: Stores) -> Self {
        let handover = Handover::new(me.clone());
        Self {
            me,
            view,
            stores,
            loader: ConfigLoader::default(),
            configs: 0,
            globals: None,
            evaluated: BTreeMap::new(),
            holders: Holders::default(),
            placed: BTreeMap::new(),
            slices: HashMap::new(),
            may_elect: false,
            service_ips: 0,
            owned: BTreeMap::new(),
            warned_bgp: BTreeSet::new(),
            announced: BTreeMap::new(),
            only_on: BTreeMap::new(),
            unannounced: BTreeMap::new(),
            own_interfaces: None,
            other_interfaces: BTreeMap::new(),
            withdrawn: Withdrawn::new(),
            targets: BTreeMap::new(),
            targets_version: 0,
            handover,
            others_claim: BTreeMap::new(),
            claims: (0, None),
        }
    }

    /// Records the addresses nodes withdrew from, for the next passes.
    pub fn set_withdrawn(&mut self, withdrawn: Withdrawn) {
        self.withdrawn = withdrawn;
    }

    /// The addresses this node is next in line for after the last pass (while it may elect),
    /// each with its owner, Service and the interfaces this node would answer it on.
    pub fn targets(&self) -> &BTreeMap<IpAddr, Target> {
        &self.targets
    }

    /// Changes whenever [`Self::targets`] does.
    pub fn targets_version(&self) -> u64 {
        self.targets_version
    }

    /// A Warning on Service `key`, while the cache holds it.
    pub fn service_warning(&self, key: &str, why: (&'static str, String)) -> Option<Assigned> {
        let mut event = self.reference(key)?;
        event.warning = Some(why);
        Some(event)
    }

    /// Counts config updates (applied or refused) in `metrics`.
    pub fn with_config_metrics(mut self, metrics: ConfigMetrics) -> Self {
        self.loader = ConfigLoader::with_metrics(metrics);
        self
    }

    /// Records this node's usable interfaces (after exclusions) whose link counts as up, for
    /// the next passes.
    pub fn set_own_interfaces(&mut self, interfaces: BTreeSet<String>) {
        self.own_interfaces = Some(interfaces);
    }

    /// Records the other nodes' usable interfaces whose link counts as up (from gossip).
    pub fn set_other_interfaces(&mut self, interfaces: BTreeMap<String, BTreeSet<String>>) {
        self.other_interfaces = interfaces;
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

    /// Whether this speaker can announce: it holds a config with address pools (the one it
    /// loaded, or the last good one). A speaker that cannot takes no part in any election.
    pub fn can_announce(&self) -> bool {
        self.loader
            .config()
            .is_some_and(|c| !c.address_pools.is_empty())
    }

    /// The last config load for the ConfigurationState: `Some(None)` valid, `Some(Some(why))`
    /// refused, `None` before any config was seen.
    pub fn config_state(&self) -> Option<Option<String>> {
        self.loader.state()
    }

    /// The config in force (the last good one), if any loaded.
    pub fn config(&self) -> Option<&Config> {
        self.loader.config()
    }

    /// This node's name.
    pub fn me(&self) -> &str {
        &self.me
    }

    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// The IPs this node owns after the last pass, each with its Service.
    pub fn owned(&self) -> &BTreeMap<IpAddr, Arc<str>> {
        &self.owned
    }

    /// Each Service this node announces, with its addresses it answers for.
    pub fn announced(&self) -> &BTreeMap<Arc<str>, Vec<IpAddr>> {
        &self.announced
    }

    /// The nodes running a ready speaker, this one always included (it is running, whatever
    /// its pod's readiness says yet).
    pub fn speaker_nodes(&self) -> BTreeSet<String> {
        let mut nodes = ready_pod_nodes(self.stores.speakers.state().iter().map(|p| &**p));
        nodes.insert(self.me.clone());
        nodes
    }

    /// The usable interfaces with their link of each node whose speaker said so through
    /// gossip, this node's own as it knows them now.
    fn known_interfaces(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut known = self.other_interfaces.clone();
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

    /// Decides ownership from the caches as they are now. `live` is the gossip member set
    /// (`None` with gossip off: then the Ready nodes running a speaker are alive); this node
    /// always counts itself alive. `may_elect` is the election gate (false: own nothing yet).
    pub fn pass(&mut self, live: Option<&BTreeSet<String>>, may_elect: bool) -> Pass {
        self.pass_at(live, may_elect, std::time::Instant::now())
    }

    /// [`Self::pass`] at `now` (a pending claim is answered once its hold is over).
    pub fn pass_at(
        &mut self,
        live: Option<&BTreeSet<String>>,
        may_elect: bool,
        now: std::time::Instant,
    ) -> Pass {
        let pending = self.stores.changes.take();
        let objects_changed = pending.all
            || pending.config
            || !pending.services.is_empty()
            || !pending.slices.is_empty();
        let services = &self.stores.services;
        let lb_class = self.view.lb_class.as_deref();
        // The Services of ours showing an address (the empty-set guard's holders).
        let holders = || {
            services
                .state()
                .iter()
                .filter(|s| s.is_handled(lb_class) && !s.ips().is_empty())
                .map(|s| s.key().to_owned())
                .collect::<Vec<String>>()
        };
        if pending.config
            && self.loader.reload(
                self.stores.metallb.as_ref(),
                &self.stores.configmaps,
                &holders,
            )
        {
            self.configs += 1;
        }
        let alive = match live {
            Some(live) => {
                let mut alive = live.clone();
                alive.insert(self.me.clone());
                alive
            }
            None => self.speaker_nodes(),
        };
        let globals = Globals {
            alive,
            gossip: live.is_some(),
            known: self.known_interfaces(),
            withdrawn: self.withdrawn.clone(),
            config: self.configs,
            claims: self.claims(),
        };
        if pending.all {
            self.index_slices();
        } else {
            self.reindex_slices(&pending.slices, &pending.services);
        }
        let (evaluated, elected) = if pending.all {
            self.decide_all(&globals)
        } else if self.globals.as_ref() == Some(&globals) {
            self.decide(pending.services, &globals)
        } else if pending.services.is_empty()
            && self
                .globals
                .as_ref()
                .is_some_and(|old| old.lost_members_only(&globals))
            && let Some(done) = self.members_left(&globals)
        {
            // A takeover's pass: members left, no Service's own objects changed.
            done
        } else {
            self.decide_all(&globals)
        };
        self.globals = Some(globals);
        let due = self.handover.next_deadline().is_some_and(|d| d <= now);
        if elected.is_none() && may_elect == self.may_elect && !due {
            return Pass {
                service_ips: self.service_ips,
                evaluated,
                objects_changed,
                ..Pass::default()
            };
        }
        self.may_elect = may_elect;
        Pass {
            evaluated,
            elected: elected.unwrap_or(0),
            objects_changed,
            ..self.conclude(live, may_elect, now)
        }
    }

    /// Puts `config` in force as if it had loaded.
    #[cfg(test)]
    fn stand_in_config(&mut self, config: crate::config::Config) {
        self.loader.stand_in(config);
        self.configs += 1;
    }

    /// This node's owned set, the unannounced causes and the events, from the decisions.
    fn conclude(
        &mut self,
        live: Option<&BTreeSet<String>>,
        may_elect: bool,
        now: std::time::Instant,
    ) -> Pass {
        let mut skipped = Unannounced::default();
        let mut targets = BTreeMap::new();
        let mut service_ips = 0;
        let mut next = BTreeMap::new();
        // This node's decisions, for the interfaces of each address it announces.
        let mut mine: Vec<(&[IpAddr], &Decision)> = Vec::new();
        // The Services of those decisions, each with its addresses.
        let mut mine_services: Vec<(&Arc<str>, &[IpAddr])> = Vec::new();
        // Both maps hold their keys in the same order, so one walk pairs each offer with its
        // result.
        let mut placed = self.placed.iter().peekable();
        for (key, e) in &self.evaluated {
            let (service, ips): (&Arc<str>, _) = match e {
                Evaluated::Skipped { service, ips, skip } => {
                    skipped.skipped(service, ips, skip);
                    continue;
                }
                Evaluated::Offered(o) => (&o.service, &o.ips),
            };
            while placed.next_if(|(k, _)| *k < key).is_some() {}
            let Some((_, decision)) = placed.next_if(|(k, _)| *k == key) else {
                continue;
            };
            skipped.placed(service, ips, decision);
            service_ips += ips.len();
            if may_elect
                && decision.next.as_deref() == Some(self.me.as_str())
                && let (Some(owner), Evaluated::Offered(o)) = (&decision.node, e)
            {
                let known = self.globals.as_ref().map(|g| &g.known);
                let here = match known.map(|k| advertise::placement(&o.reach, &self.me, k).0) {
                    Some(Interfaces::Named(names)) => Some(names),
                    _ => None,
                };
                for ip in ips.iter() {
                    let t = targets.entry(*ip).or_insert_with(|| Target {
                        owner: owner.clone(),
                        service: service.clone(),
                        interfaces: here.clone(),
                    });
                    // A shared address: the interfaces every sharer allows.
                    if let (Some(held), Some(more)) = (&mut t.interfaces, &here) {
                        held.retain(|n| more.contains(n));
                    } else if t.interfaces.is_none() {
                        t.interfaces = here.clone();
                    }
                }
            }
            if may_elect && decision.node.as_deref() == Some(self.me.as_str()) {
                mine.push((ips, decision));
                mine_services.push((service, ips));
                for ip in ips.iter() {
                    next.entry(*ip).or_insert_with(|| service.clone());
                }
            }
        }
        self.service_ips = service_ips;
        if targets != self.targets {
            self.targets = targets;
            self.targets_version += 1;
        }
        for svc in skipped.bgp.difference(&self.warned_bgp) {
            warn!(service = %svc, "service IP is in a BGP pool and the config has no BGP peer, so it is not announced");
        }
        self.warned_bgp = skipped.bgp;
        let mut causes = skipped.causes;
        // A shared address takes the interfaces every sharer allows, not its first sharer's.
        let mut only_on = ownership::address_interfaces(&self.me, mine);
        if let Some(own) = &self.own_interfaces {
            // Elected, but none of the advertised interfaces is here: announce nothing (and
            // say so) rather than claim an address nobody can reach through this node.
            next.retain(|ip, svc| {
                let lacking = only_on.get(ip).is_some_and(|names| names.is_disjoint(own));
                if lacking {
                    let cause = Cause::NoInterface {
                        node: self.me.clone(),
                    };
                    causes.entry(svc.to_string()).or_insert((*ip, cause));
                }
                !lacking
            });
        }
        let mut claims_changed = false;
        if !self.view.placement.is_ranked() {
            // Claim first, answer once nobody else does (see `speaker::handover`).
            let elected: BTreeSet<IpAddr> = next.keys().copied().collect();
            claims_changed = self.handover.step(&elected, &self.others_claim, now);
            self.claims.0 += u64::from(claims_changed);
            next.retain(|ip, _| self.handover.answering().contains(ip));
        }
        only_on.retain(|ip, _| next.contains_key(ip));
        self.only_on = only_on;
        let announced: BTreeMap<Arc<str>, Vec<IpAddr>> = mine_services
            .into_iter()
            .filter_map(|(service, ips)| {
                let here: Vec<IpAddr> = ips
                    .iter()
                    .copied()
                    .filter(|ip| next.contains_key(ip))
                    .collect();
                (!here.is_empty()).then(|| (service.clone(), here))
            })
            .collect();
        let warnings = self.report_unannounced(causes, live);
        // Events follow what is actually announced: while the gate is closed this node may
        // elect itself on paper, but it announces nothing, so it records nothing either.
        let mut assigned: Vec<Assigned> = announced
            .keys()
            .filter(|key| !self.announced.contains_key(*key))
            .filter_map(|key| self.reference(key))
            .collect();
        assigned.extend(warnings);
        let announced_changed = announced != self.announced;
        self.announced = announced;
        let changed_from = (next != self.owned).then(|| std::mem::replace(&mut self.owned, next));
        Pass {
            changed_from,
            assigned,
            service_ips,
            announced_changed,
            claims_changed,
            ..Pass::default()
        }
    }

    fn lookup(&self, key: &str) -> Option<Arc<ServiceView>> {
        self.stores.services.get(key)
    }

    fn reference(&self, key: &str) -> Option<Assigned> {
        let svc = self.lookup(key)?;
        Some(Assigned {
            service: key.to_owned(),
            reference: svc.object_ref(),
            warning: None,
            protocol: Default::default(),
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
        let nodes = self.stores.nodes.state();
        let mut names: Vec<&str> = nodes
            .iter()
            .filter_map(|n| n.name())
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
}

#[cfg(test)]
#[path = "reconcile_tests/mod.rs"]
mod tests;
