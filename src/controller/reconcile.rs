//! The pure reconcile core shared by `ferrolb plan` and the live controller: given the config and
//! a Service, decide its status addresses, its pool annotation and the events to record.
//!
//! The core owns the allocator. It never talks to Kubernetes and never reads the clock; the edge
//! feeds it Services and config and carries its decisions out (status patch, annotation patch,
//! events). It reads a Service in the one form the controller holds it, [`CachedService`]: the
//! live watch decodes into it and `plan` converts into it alike. The status it asks for always
//! mirrors what the allocator holds, so a failed write is simply retried: nothing is ever
//! dropped from the allocator because the API said no.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use super::cached::CachedService;
use crate::config::Config;
use crate::ipam::{
    AllocError, Allocator, Assignment, Family, FamilyPolicy, PoolSpec, PoolSpecError, PoolStats,
    Request, ServiceKey, TrafficPolicy,
};
use crate::k8s::service::request_for;

pub use super::decision::{
    ConfigChange, Decision, Desired, EventType, Outcome, PlannedEvent, PoolEvent, Reason,
    RebuildIssue, WaitReason, overlap_warnings,
};

mod foreign;
mod node_holds;

/// The config pools in the shape the allocator takes (BGP pools allocate too: only their
/// announcement is missing).
pub fn pool_specs(config: &Config) -> Vec<PoolSpec> {
    config
        .address_pools
        .iter()
        .map(|p| PoolSpec {
            name: p.name.clone(),
            ranges: p.ranges(),
            auto_assign: p.auto_assign,
            avoid_buggy_ips: p.avoid_buggy_ips,
            allocation: p.allocation.clone(),
        })
        .collect()
}

fn show_ips(ips: &[IpAddr]) -> String {
    let parts: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
    parts.join(", ")
}

/// The reconcile core. See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Core {
    allocator: Allocator,
    lb_class: Option<String>,
    has_config: bool,
    synced: bool,
    /// Why a Service lost its addresses in a reload, reported on its next reconcile.
    evicted: HashMap<ServiceKey, String>,
    /// Services whose last allocation failed: worth retrying when addresses free up.
    failed: BTreeSet<ServiceKey>,
    /// Services not ours whose status shows addresses of our pools (see `foreign.rs`), by key:
    /// ordered, so holds are retaken in the same order by `plan` and the live controller.
    foreign: BTreeMap<ServiceKey, foreign::ForeignHolder>,
    /// The allocator keys holding those addresses, each with the Service it holds for.
    foreign_holds: HashMap<ServiceKey, ServiceKey>,
    /// Foreign Services with an address one of ours holds: held as soon as ours lets go.
    foreign_blocked: BTreeSet<ServiceKey>,
    /// The nodes' own addresses, held so they are never handed out (see `node_holds.rs`).
    nodes: node_holds::NodeHolds,
}

impl Core {
    /// A core handling the Services of `lb_class` (`None`: those without a load-balancer class).
    pub fn new(lb_class: Option<String>) -> Self {
        Self {
            lb_class,
            ..Self::default()
        }
    }

    pub fn has_config(&self) -> bool {
        self.has_config
    }

    /// Whether the startup gate is open (see [`Core::rebuild`]).
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    pub fn assignment(&self, key: &ServiceKey) -> Option<&Assignment> {
        self.allocator.assignment(key)
    }

    /// Services holding addresses: ours, and those not ours whose status shows addresses of
    /// our pools (held as in use).
    pub fn assigned(&self) -> impl Iterator<Item = &ServiceKey> {
        self.allocator
            .assignments()
            .map(|(k, _)| k)
            .filter(|k| !self.is_hold(k))
            .chain(self.foreign_services())
    }

    pub fn pool_stats(&self) -> Vec<PoolStats> {
        self.allocator.pool_stats()
    }

    /// Services whose last allocation failed.
    pub fn failed(&self) -> &BTreeSet<ServiceKey> {
        &self.failed
    }

    /// Tells the allocator the Namespaces' labels, for pools' `namespaceSelectors`.
    pub fn set_namespaces(&mut self, namespaces: crate::config::Namespaces) {
        self.allocator.set_namespaces(namespaces);
    }

    /// Loads a (validated) config. Services whose addresses left every pool are remembered, so
    /// their next reconcile says why they changed.
    pub fn set_config(&mut self, config: &Config) -> Result<ConfigChange, PoolSpecError> {
        let mut reload = self.allocator.set_pools(pool_specs(config))?;
        self.has_config = true;
        // Foreign Services' and nodes' holds are not ours to report: they are taken again below.
        reload.evicted.retain(|e| !self.is_hold(&e.service));
        for eviction in &reload.evicted {
            self.evicted.insert(
                eviction.service.clone(),
                format!(
                    "{} (pool {:?}) taken away after a config change: {}",
                    show_ips(&eviction.previous.ips),
                    eviction.previous.pool,
                    eviction.reason
                ),
            );
        }
        // What foreign Services show is held again in the new pools before anyone is placed.
        self.rehold_foreign(false);
        self.rehold_nodes();
        Ok(ConfigChange { reload })
    }

    /// The startup gate: re-registers the status addresses of every handled Service, those
    /// holding more addresses first (they are the hardest to fit, so they must not lose to a
    /// single-address Service sharing one of them), then opens the gate. Needs a config.
    ///
    /// Addresses that cannot be re-registered are returned; those Services get a new allocation
    /// (and a ClearAssignment event) on their next reconcile.
    pub fn rebuild<S: Borrow<CachedService>>(
        &mut self,
        services: impl IntoIterator<Item = S>,
    ) -> Result<Vec<RebuildIssue>, WaitReason> {
        if !self.has_config {
            return Err(WaitReason::NoConfig);
        }
        // Only the requests are kept, not the Services; the foreign ones are held after ours.
        let mut foreign = Vec::new();
        let mut holding: Vec<(ServiceKey, Vec<IpAddr>, Option<Request>)> = services
            .into_iter()
            .filter_map(|svc| {
                let svc = svc.borrow();
                if !svc.is_handled(self.lb_class.as_deref()) {
                    if self.is_foreign(&svc.key(), svc) && !svc.status_ips().is_empty() {
                        foreign.push(svc.clone());
                    }
                    return None;
                }
                let ips = svc.status_ips().to_vec();
                if ips.is_empty() {
                    return None;
                }
                Some((svc.key(), ips, request_for(svc).ok()))
            })
            .collect();
        holding.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
        let mut issues = Vec::new();
        for (key, ips, request) in holding {
            let registered = match &request {
                // An address whose pool no longer admits the Service (its `serviceAllocation`
                // changed while no controller ran) is freed now, before anyone is placed, so
                // the Services placed next get the lowest free addresses, as they would have
                // had the controller been running when the pool changed.
                Some(request) => self.register(&key, request, &ips),
                // A Service whose request is invalid still keeps its addresses, reserved
                // exclusively (no sharing key), so a bad annotation never lets its addresses
                // go to someone else.
                None => self.allocator.assign(&key, &reservation(&ips), &ips),
            };
            if let Err(error) = registered {
                self.evicted.insert(
                    key.clone(),
                    format!("{} can no longer be used: {error}", show_ips(&ips)),
                );
                issues.push(RebuildIssue { key, ips, error });
            }
        }
        for svc in &foreign {
            self.update_foreign(&svc.key(), svc);
        }
        self.synced = true;
        // The nodes' own addresses last: a Service of ours showing one keeps it.
        self.hold_nodes();
        Ok(issues)
    }

    /// Re-registers the status addresses `ips` of `key`, if its pool still admits it (see
    /// [`Allocator::check_admitted`]); otherwise it holds nothing.
    fn register(
        &mut self,
        key: &ServiceKey,
        request: &Request,
        ips: &[IpAddr],
    ) -> Result<Assignment, AllocError> {
        let assignment = self.allocator.assign(key, request, ips)?;
        if let Err(error) = self.allocator.check_admitted(key, request) {
            self.allocator.release(key);
            return Err(error);
        }
        Ok(assignment)
    }

    /// A Service is gone: free what it held. Returns what was released.
    pub fn delete(&mut self, key: &ServiceKey) -> Option<Assignment> {
        self.evicted.remove(key);
        self.failed.remove(key);
        if self.foreign.contains_key(key) {
            return self.drop_foreign(key);
        }
        let released = self.allocator.release(key);
        self.rehold_foreign(true);
        self.retry_blocked_nodes();
        released
    }

    /// Decides what `svc` should show. See [`Outcome`].
    pub fn reconcile(&mut self, svc: &CachedService) -> Decision {
        let key = svc.key();
        if self.is_foreign(&key, svc) {
            let pool_events = self.decide_foreign(&key, svc);
            return Decision {
                key,
                outcome: Outcome::NotOurs,
                events: Vec::new(),
                pool_events,
            };
        }
        // Ours now (its type changed to LoadBalancer of our class): what it shows is
        // registered as ours below.
        self.drop_foreign(&key);
        // An address one of ours held may have been freed since: hold what foreign Services
        // show before anyone is placed.
        self.rehold_foreign(true);
        self.retry_blocked_nodes();
        let mut events = Vec::new();
        let outcome = self.decide(&key, svc, &mut events);
        if events.iter().any(|e| e.reason == Reason::AllocationFailed) {
            self.failed.insert(key.clone());
        } else {
            self.failed.remove(&key);
        }
        Decision {
            key,
            outcome,
            events,
            pool_events: Vec::new(),
        }
    }

    fn decide(
        &mut self,
        key: &ServiceKey,
        svc: &CachedService,
        events: &mut Vec<PlannedEvent>,
    ) -> Outcome {
        if !svc.is_load_balancer() {
            return self.clear_non_load_balancer(key, svc, events);
        }
        if !svc.is_our_class(self.lb_class.as_deref()) {
            // The class is immutable while the type is LoadBalancer, so we can only hold
            // something here through a bug; free it rather than leak it.
            self.allocator.release(key);
            return Outcome::NotOurs;
        }
        if !self.has_config {
            return Outcome::Waiting(WaitReason::NoConfig);
        }
        let status = svc.status_ips();
        let request = match request_for(svc) {
            Ok(request) => request,
            Err(e) => {
                events.push(PlannedEvent::new(
                    Reason::LoadBalancerFailed,
                    format!("Service {key} is invalid: {e}"),
                ));
                if self.allocator.assignment(key).is_none() && !status.is_empty() {
                    // Keep what it shows reserved; losing it would be worse than the bad spec.
                    let _ = self.allocator.assign(key, &reservation(status), status);
                }
                return match self.allocator.assignment(key) {
                    Some(a) => Outcome::Apply(Desired::from_assignment(a)),
                    None => Outcome::Invalid,
                };
            }
        };

        let mut cleared = self.evicted.remove(key);
        if self.allocator.assignment(key).is_none()
            && !status.is_empty()
            && let Err(e) = self.register(key, &request, status)
        {
            cleared
                .get_or_insert_with(|| format!("{} can no longer be used: {e}", show_ips(status)));
        }
        let before = self.allocator.assignment(key).cloned();
        let not_admitted = self.allocator.check_admitted(key, &request).err();
        if !self.synced {
            // Only re-registration before the gate opens; a fresh allocation could hand out an
            // address some not-yet-seen Service still shows.
            if let Some(reason) = cleared {
                self.evicted.insert(key.clone(), reason);
            }
            return match before {
                Some(a) => Outcome::Apply(Desired::from_assignment(&a)),
                None => Outcome::Waiting(WaitReason::NotSynced),
            };
        }

        match self.allocator.allocate(key, &request) {
            Ok(assignment) => {
                if before.as_ref() != Some(&assignment) {
                    match (&before, cleared) {
                        (Some(prev), _) if prev.ips != assignment.ips => {
                            events.push(PlannedEvent::new(
                                Reason::ClearAssignment,
                                format!(
                                    "{} (pool {:?}) no longer fit Service {key}: {}; reassigning",
                                    show_ips(&prev.ips),
                                    prev.pool,
                                    misfit(prev, &request, not_admitted)
                                ),
                            ));
                        }
                        (None, Some(reason)) => events.push(PlannedEvent::new(
                            Reason::ClearAssignment,
                            format!("Service {key}: {reason}; reassigning"),
                        )),
                        _ => {}
                    }
                    if before.as_ref().map(|b| &b.ips) != Some(&assignment.ips) {
                        events.push(PlannedEvent::new(
                            Reason::IpAllocated,
                            format!(
                                "Assigned IP {} from pool {:?} to Service {key}",
                                show_ips(&assignment.ips),
                                assignment.pool
                            ),
                        ));
                    }
                }
                Outcome::Apply(Desired::from_assignment(&assignment))
            }
            Err(e) => {
                if let Some(reason) = cleared {
                    events.push(PlannedEvent::new(
                        Reason::ClearAssignment,
                        format!("Service {key}: {reason}"),
                    ));
                }
                events.push(PlannedEvent::new(
                    Reason::AllocationFailed,
                    format!(
                        "Failed to allocate IP for Service {key}: {}",
                        self.describe(&e)
                    ),
                ));
                // The allocator keeps a previous assignment when a new request cannot be met.
                match self.allocator.assignment(key) {
                    Some(kept) => Outcome::Apply(Desired::from_assignment(kept)),
                    None => Outcome::Apply(Desired::default()),
                }
            }
        }
    }

    fn clear_non_load_balancer(
        &mut self,
        key: &ServiceKey,
        svc: &CachedService,
        events: &mut Vec<PlannedEvent>,
    ) -> Outcome {
        self.evicted.remove(key);
        let released = self.allocator.release(key);
        let ips = match &released {
            Some(a) => a.ips.clone(),
            None => svc.status_ips().to_vec(),
        };
        // Only what our allocator or our pool annotation says we hold is ours to clear: a
        // status another implementation wrote on a Service we never served stays as it is.
        if released.is_none() && svc.allocated_pool().is_none() {
            return Outcome::NotOurs;
        }
        if !ips.is_empty() {
            events.push(PlannedEvent::new(
                Reason::ClearAssignment,
                format!(
                    "Service {key} is no longer of type LoadBalancer; released {}",
                    show_ips(&ips)
                ),
            ));
        }
        Outcome::Apply(Desired::default())
    }
}

/// A request that holds `ips` exclusively: used to keep the addresses of a Service whose own
/// request cannot be understood.
fn reservation(ips: &[IpAddr]) -> Request {
    let families = match ips {
        [first, second, ..] if Family::of(first) != Family::of(second) => {
            FamilyPolicy::RequireDualStack {
                primary: Family::of(first),
            }
        }
        [first, ..] => FamilyPolicy::Single(Family::of(first)),
        [] => FamilyPolicy::Single(Family::V4),
    };
    Request {
        families,
        requested: Vec::new(),
        pool: None,
        sharing_key: None,
        ports: Vec::new(),
        traffic: TrafficPolicy::Cluster,
        labels: Default::default(),
    }
}

/// Why a held assignment no longer fits the request, for the ClearAssignment message.
fn misfit(prev: &Assignment, request: &Request, not_admitted: Option<AllocError>) -> String {
    if let Some(pool) = request.pool.as_deref()
        && pool != prev.pool
    {
        return format!("the address-pool annotation now asks for pool {pool:?}");
    }
    if !request.requested.is_empty() {
        let mut want = request.requested.clone();
        let mut have = prev.ips.clone();
        want.sort();
        have.sort();
        if want != have {
            return format!("the Service now requests {}", show_ips(&request.requested));
        }
    }
    if let Some(error) = not_admitted {
        return error.to_string();
    }
    let families: Vec<Family> = prev.ips.iter().map(Family::of).collect();
    if families.iter().any(|f| !request.families.allows(*f))
        || (matches!(request.families, FamilyPolicy::RequireDualStack { .. }) && families.len() < 2)
    {
        return format!("its IP family policy is now {}", request.families);
    }
    "sharing its address with the other holders is no longer allowed".to_owned()
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
