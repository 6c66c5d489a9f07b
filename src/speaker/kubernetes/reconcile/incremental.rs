//! The incremental bookkeeping behind [`Reconciler::pass`]: what the pass keeps between passes
//! and how a change reaches it. Each Service's EndpointSlices are indexed by the Service
//! (moved when a slice changes), each Service's part in the election ([`cluster::evaluate`]) and
//! its election result are kept, and a pass decides again only what it must: the marked
//! Services and every Service sharing an address with one ([`Reconciler::decide`]), every
//! Service when what they all read changed ([`Globals`]; [`Reconciler::decide_all`]), or, when
//! members only left, the groups the leavers owned ([`Reconciler::members_left`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use crate::election::Liveness;
use crate::placement::Claims;
use crate::speaker::ownership::{self, Steering, Withdrawn};

use super::Reconciler;
use crate::speaker::kubernetes::cache::{ServiceView, SliceView};
use crate::speaker::kubernetes::cluster::{self, Context, Evaluated};
use crate::speaker::kubernetes::holders::Holders;

/// What every Service's decision reads besides its own objects: when it changes, all are
/// decided again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Globals {
    pub(super) alive: BTreeSet<String>,
    pub(super) gossip: bool,
    pub(super) known: BTreeMap<String, BTreeSet<String>>,
    /// The addresses nodes withdrew from (they do not answer them).
    pub(super) withdrawn: Withdrawn,
    /// Counts the configs put in force.
    pub(super) config: u64,
    /// What every live node claims (empty under MetalLB's ranking, which reads none).
    pub(super) claims: Arc<Claims>,
}

impl Globals {
    /// Whether `next` differs from these inputs only in members that left.
    pub(super) fn lost_members_only(&self, next: &Globals) -> bool {
        next.alive.len() < self.alive.len()
            && next.alive.is_subset(&self.alive)
            && self.gossip == next.gossip
            && self.known == next.known
            && self.withdrawn == next.withdrawn
            && self.config == next.config
            && self.claims == next.claims
    }
}

impl Reconciler {
    /// The placement policy and the claims it reads.
    fn steering<'g>(&self, globals: &'g Globals) -> Steering<'g> {
        Steering {
            policy: self.view.placement,
            claims: &globals.claims,
        }
    }

    /// Every Service's slices, from the whole cache (after a re-list).
    pub(super) fn index_slices(&mut self) {
        self.slices.clear();
        for slice in self.stores.slices.state() {
            self.index_slice(slice);
        }
    }

    fn index_slice(&mut self, slice: Arc<SliceView>) {
        if let Some(svc) = slice.shared_service().cloned() {
            // Most Services have one slice: kept inline, not a map per Service.
            self.slices.entry(svc).or_default().push(slice);
        }
    }

    /// Moves the slices that changed to where the cache has them now. A slice's Service
    /// before the change is among the `marked` ones (its old object marked it), so the slice
    /// is taken out of theirs, then put where the cache has it.
    pub(super) fn reindex_slices(&mut self, changed: &[Arc<str>], marked: &BTreeSet<String>) {
        if changed.is_empty() {
            return;
        }
        let changed: HashSet<&str> = changed.iter().map(|k| &**k).collect();
        for svc in marked {
            if let Some(of) = self.slices.get_mut(svc.as_str()) {
                of.retain(|s| !changed.contains(&**s.key()));
                if of.is_empty() {
                    self.slices.remove(svc.as_str());
                }
            }
        }
        for key in changed {
            if let Some(slice) = self.stores.slices.get(key) {
                self.index_slice(slice);
            }
        }
    }

    /// What every decision reads this pass, or `None` before a config is in force.
    fn with_context<T>(&self, globals: &Globals, f: impl FnOnce(&Context<'_>) -> T) -> Option<T> {
        let config = self.loader.config()?;
        let nodes = self.stores.nodes.state();
        let (statuses, node_labels) = cluster::node_inputs(&nodes);
        let liveness = if globals.gossip {
            Liveness::Gossip(&globals.alive)
        } else {
            Liveness::NodeReady(&globals.alive)
        };
        let ctx = Context::new(
            config,
            &statuses,
            &node_labels,
            liveness,
            &globals.known,
            &self.view,
        );
        Some(f(&ctx))
    }

    fn evaluate(&self, ctx: &Context<'_>, svc: &ServiceView) -> Option<Evaluated> {
        let slices = self.slices.get(svc.key()).into_iter().flatten();
        cluster::evaluate(ctx, svc, slices.map(|s| &**s))
    }

    /// Decides every Service from scratch (what they all read changed); returns how many were
    /// worked out and elected.
    pub(super) fn decide_all(&mut self, globals: &Globals) -> (usize, Option<usize>) {
        let services = self.stores.services.state();
        let evaluated: BTreeMap<Arc<str>, Evaluated> = self
            .with_context(globals, |ctx| {
                services
                    .iter()
                    .filter_map(|svc| Some((svc.shared_key().clone(), self.evaluate(ctx, svc)?)))
                    .collect()
            })
            .unwrap_or_default();
        self.holders = Holders::from_pairs(
            evaluated
                .iter()
                .filter_map(|(key, e)| Some((key, e.offer()?)))
                .flat_map(|(key, o)| o.ips.iter().map(|ip| (*ip, key.clone())))
                .collect(),
        );
        let placed = ownership::place(
            evaluated.values().filter_map(Evaluated::offer),
            &globals.known,
            &globals.withdrawn,
            self.steering(globals),
        );
        self.placed = placed
            .into_iter()
            .map(|p| (p.service, p.decision))
            .collect();
        self.evaluated = evaluated;
        (services.len(), Some(self.placed.len()))
    }

    /// Decides `dirty` again, and elects again every group whose members changed; returns how
    /// many Services were worked out and elected again (`None`: no decision changed).
    pub(super) fn decide(
        &mut self,
        dirty: BTreeSet<String>,
        globals: &Globals,
    ) -> (usize, Option<usize>) {
        let count = dirty.len();
        let fresh: Vec<(Arc<str>, Option<Evaluated>)> = self
            .with_context(globals, |ctx| {
                dirty
                    .into_iter()
                    .map(|key| {
                        let svc = self.lookup(&key);
                        let new = svc.as_ref().and_then(|svc| self.evaluate(ctx, svc));
                        // The cache's key while it still holds the Service.
                        let key =
                            svc.map_or_else(|| Arc::from(key.as_str()), |s| s.shared_key().clone());
                        (key, new)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut regroup = BTreeSet::new();
        let mut touched: Vec<IpAddr> = Vec::new();
        for (key, new) in fresh {
            let old = self.evaluated.remove(&key);
            if old == new {
                if let Some(new) = new {
                    self.evaluated.insert(key, new);
                }
                continue;
            }
            if let Some(o) = old.as_ref().and_then(Evaluated::offer) {
                for ip in o.ips.iter() {
                    self.holders.release(*ip, &key);
                    touched.push(*ip);
                }
            }
            if let Some(o) = new.as_ref().and_then(Evaluated::offer) {
                for ip in o.ips.iter() {
                    self.holders.hold(*ip, &key);
                    touched.push(*ip);
                }
            }
            self.placed.remove(&key);
            if let Some(new) = new {
                self.evaluated.insert(key.clone(), new);
            }
            regroup.insert(key);
        }
        if regroup.is_empty() {
            return (count, None);
        }
        let elected = self.elect_again(regroup, touched, globals);
        (count, Some(elected))
    }

    /// Decides every Service again after members left (and nothing else changed), and elects
    /// again only the groups whose owner or next node left, or that had no owner; returns how many Services were
    /// worked out and elected again (`None`: a Service is not as the last pass left it, so the
    /// caller decides everything).
    ///
    /// Members leaving only take nodes out of each Service's eligible nodes (the same Nodes,
    /// config and interfaces are read). Under rendezvous ranking a group's owner is the
    /// first-ranked node every member allows, so a group whose owner stays eligible for every
    /// member keeps it: its nodes in common only shrank around the owner. A takeover thus
    /// elects the dead node's groups alone, and rebuilds no map: each Service's offer is
    /// replaced where it is. (A member joining may outrank any owner, so that decides all.)
    pub(super) fn members_left(&mut self, globals: &Globals) -> Option<(usize, Option<usize>)> {
        if !self.view.placement.is_ranked() {
            // Under a policy that reads claims, which groups move is not local.
            return None;
        }
        let mut evaluated = std::mem::take(&mut self.evaluated);
        let mut regroup = BTreeSet::new();
        let mut touched: Vec<IpAddr> = Vec::new();
        let consistent = self.with_context(globals, |ctx| {
            let mut placed = self.placed.iter().peekable();
            for (key, old) in evaluated.iter_mut() {
                let Some(new) = self.lookup(key).and_then(|svc| self.evaluate(ctx, &svc)) else {
                    return false;
                };
                if new.ips() != old.ips() {
                    return false;
                }
                match (&*old, &new) {
                    // Why a Service is skipped reads no member.
                    (Evaluated::Skipped { .. }, Evaluated::Skipped { .. }) => {}
                    (Evaluated::Offered(_), Evaluated::Offered(offer)) => {
                        while placed.next_if(|(k, _)| *k < key).is_some() {}
                        let Some((_, decision)) = placed.next_if(|(k, _)| *k == key) else {
                            return false;
                        };
                        // The node after the owner stays second too (it checks the owner).
                        let stays = match (&decision.node, &offer.eligible) {
                            (Some(owner), Ok(nodes)) => {
                                nodes.contains(&**owner)
                                    && decision.next.as_ref().is_none_or(|n| nodes.contains(&**n))
                            }
                            _ => false,
                        };
                        if !stays {
                            regroup.insert(key.clone());
                            touched.extend_from_slice(&offer.ips);
                        }
                    }
                    _ => return false,
                }
                *old = new;
            }
            true
        });
        self.evaluated = evaluated;
        if consistent != Some(true) {
            return None;
        }
        let elected = self.elect_again(regroup, touched, globals);
        Some((self.evaluated.len(), Some(elected)))
    }

    /// Elects again the Services in `regroup` (`touched`: their addresses) together with every
    /// Service sharing an address with one of them; returns how many were elected.
    fn elect_again(
        &mut self,
        mut regroup: BTreeSet<Arc<str>>,
        mut touched: Vec<IpAddr>,
        globals: &Globals,
    ) -> usize {
        if !self.view.placement.is_ranked() {
            // Sticky ownership and even spread place every group from every claim and count:
            // all are placed again.
            regroup.extend(
                self.evaluated
                    .iter()
                    .filter(|(_, e)| e.offer().is_some())
                    .map(|(k, _)| k.clone()),
            );
        }
        // Whoever shares an address with a changed Service, before or after the change, is
        // elected with it again (its group may have grown, split or changed its rank).
        let mut seen = HashSet::new();
        while let Some(ip) = touched.pop() {
            if !seen.insert(ip) {
                continue;
            }
            for svc in self.holders.of(ip) {
                if regroup.insert(svc.clone())
                    && let Some(e) = self.evaluated.get(svc)
                {
                    touched.extend_from_slice(e.ips());
                }
            }
        }
        let offered = regroup
            .iter()
            .filter_map(|k| self.evaluated.get(k)?.offer());
        let placed = ownership::place(
            offered,
            &globals.known,
            &globals.withdrawn,
            self.steering(globals),
        );
        let elected = placed.len();
        for key in &regroup {
            self.placed.remove(key);
        }
        for p in placed {
            self.placed.insert(p.service, p.decision);
        }
        elected
    }
}
