//! The allocator: which Service holds which addresses, by the allocation rules of
//! docs/user-guide.md ("Define address pools", "Annotate Services").
//!
//! State is three maps kept in step by [`Allocator::install`] and [`Allocator::uninstall`]:
//! service → what it holds, address → who holds it, sharing key → addresses held under that key
//! (so a service with a key finds an address it may share without scanning every used address).
//! Free space lives in the pools' range sets; an address leaves its free set when its first holder
//! arrives and returns when its last holder leaves.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use super::addr::Addr;
use super::error::{AllocError, PoolSpecError};
use super::holders::Holders;
use super::pool::{PoolTable, Slot};
use super::sharing::SharingParams;
use super::types::{
    Assignment, Family, FamilyPolicy, PoolSpec, PoolStats, Reload, Request, ServiceKey,
};
use crate::config::Namespaces;

/// One address chosen for a service: where it lives and what it is.
pub(crate) type Pick = (Slot, Addr);

/// What a service holds.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub assignment: Assignment,
    /// Same order as `assignment.ips`.
    pub addrs: Vec<Pick>,
    pub params: SharingParams,
}

/// Decides which Service holds which address. Pure: no I/O, no clock, deterministic.
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    pub(crate) pools: PoolTable,
    pub(crate) services: HashMap<ServiceKey, Held>,
    pub(crate) holders: HashMap<Addr, Holders>,
    pub(crate) shared: HashMap<String, BTreeSet<Addr>>,
    /// Namespace labels, for pools' `namespaceSelectors` (see `pin.rs`).
    pub(crate) namespaces: Namespaces,
}

impl Allocator {
    /// An allocator with no pools (every allocation fails until [`Allocator::set_pools`]).
    pub fn new() -> Allocator {
        Allocator::default()
    }

    /// Replaces the pools (a config reload); see `reload.rs`.
    pub fn set_pools(&mut self, specs: Vec<PoolSpec>) -> Result<Reload, PoolSpecError> {
        self.reload(specs)
    }

    /// Gives `service` addresses for `request`, or confirms the ones it holds.
    ///
    /// An existing assignment is kept when it still fits the request: the requested addresses
    /// (if any) are exactly the ones held, the requested pool (if any) is the one they come from,
    /// the families match the policy (`PreferDualStack` is happy with either), and every
    /// co-holder still allows sharing with the request's key, ports and traffic policy.
    /// Otherwise the service gets a fresh allocation; if that fails, the old assignment stays
    /// (nothing is lost on a bad request) and the error says why.
    ///
    /// Fresh allocation: requested addresses come from whichever pool contains them, auto-assign
    /// or not. Without them, the `pool` is used alone, or else the pools the service is pinned to
    /// by `serviceAllocation` (by priority), then the auto-assign pools without one, in the
    /// order given to `set_pools` (ConfigMap order; by name for custom resources). Every pool used
    /// must admit the service by its `serviceAllocation` (namespace, labels); a held assignment
    /// whose pool no longer does is replaced. Within a pool, ranges are tried in config order
    /// and the lowest usable address of a range wins, where an address already held by services
    /// this one may share with counts as usable (as MetalLB does).
    pub fn allocate(
        &mut self,
        service: &ServiceKey,
        request: &Request,
    ) -> Result<Assignment, AllocError> {
        let requested = check_requested(request)?;
        if let Some(held) = self.services.get(service)
            && self.still_fits(service, held, request, &requested)
        {
            let params = SharingParams::of(request);
            if held.params != params {
                self.refresh_params(service, params);
            }
            if let Some(held) = self.services.get_mut(service) {
                put_primary_first(held, request.families.primary());
                return Ok(held.assignment.clone());
            }
        }
        let previous = if self.services.contains_key(service) {
            self.uninstall(service)
        } else {
            None
        };
        match self.fresh(service, request, &requested) {
            Ok(assignment) => Ok(assignment),
            Err(err) => {
                if let Some(previous) = previous {
                    self.install(service, previous);
                }
                Err(err)
            }
        }
    }

    /// Re-registers addresses a service already holds (the controller's restart rebuild from
    /// `status.loadBalancer.ingress`).
    ///
    /// Checks what keeps the state sound: at least one address, at most one per family, all in
    /// one pool that may hand them out, and every other holder allows sharing with this request.
    /// Whether the addresses still fit the request's pool or requested IPs is left to the next
    /// [`Allocator::allocate`], which keeps or replaces them exactly as a never-restarted
    /// allocator would. Replaces whatever `service` held before.
    pub fn assign(
        &mut self,
        service: &ServiceKey,
        request: &Request,
        ips: &[IpAddr],
    ) -> Result<Assignment, AllocError> {
        if ips.is_empty() {
            return Err(AllocError::NoAddresses);
        }
        let ordered = order_by_family(ips, request.families.primary())?;
        let params = SharingParams::of(request);
        let picks = self.admit_all(service, &ordered, &params)?;
        self.uninstall(service);
        Ok(self.install_picks(service, picks, params))
    }

    /// Whether the pool `service`'s addresses come from still admits it by its
    /// `serviceAllocation` (namespace, labels); `Ok` when it holds nothing. A restarted
    /// controller frees what fails this before it places anyone ([`Allocator::allocate`] would
    /// replace it anyway, after others took the lower addresses).
    pub fn check_admitted(
        &self,
        service: &ServiceKey,
        request: &Request,
    ) -> Result<(), AllocError> {
        match self
            .services
            .get(service)
            .and_then(|held| held.addrs.first())
        {
            Some(&(slot, _)) => self.check_compatible(slot.pool, service, request),
            None => Ok(()),
        }
    }

    /// Frees what `service` holds (an address shared with others stays with them). Returns the
    /// released assignment, if there was one.
    pub fn release(&mut self, service: &ServiceKey) -> Option<Assignment> {
        self.uninstall(service).map(|held| held.assignment)
    }

    /// The pool whose ranges contain `ip`, whether or not it may hand it out.
    pub fn pool_containing(&self, ip: IpAddr) -> Option<&str> {
        let slot = self.pools.locate(Addr::from_ip(ip))?;
        Some(&self.pools.pools[slot.pool].name)
    }

    /// What `service` holds.
    pub fn assignment(&self, service: &ServiceKey) -> Option<&Assignment> {
        self.services.get(service).map(|held| &held.assignment)
    }

    /// Every assignment, in no particular order.
    pub fn assignments(&self) -> impl Iterator<Item = (&ServiceKey, &Assignment)> {
        self.services.iter().map(|(k, held)| (k, &held.assignment))
    }

    /// The services holding `ip`, sorted (more than one only for a shared address).
    pub fn holders(&self, ip: IpAddr) -> &[ServiceKey] {
        self.holders
            .get(&Addr::from_ip(ip))
            .map_or(&[][..], Holders::as_slice)
    }

    /// Per pool, in config order: addresses it can hand out and distinct addresses in use.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        self.pools
            .pools
            .iter()
            .map(|pool| PoolStats {
                pool: pool.name.clone(),
                total: pool.total,
                in_use: pool.in_use,
                ipv6_total: pool.v6_total,
                ipv6_in_use: pool.v6_in_use,
            })
            .collect()
    }

    fn still_fits(
        &self,
        service: &ServiceKey,
        held: &Held,
        request: &Request,
        requested: &[IpAddr],
    ) -> bool {
        let ips = &held.assignment.ips;
        if !requested.is_empty() {
            let mut want = requested.to_vec();
            let mut have = ips.clone();
            want.sort_unstable();
            have.sort_unstable();
            if want != have {
                return false;
            }
        } else if let Some(pool) = &request.pool
            && *pool != held.assignment.pool
        {
            return false;
        }
        let Some(&(slot, _)) = held.addrs.first() else {
            return false;
        };
        if !self.compatible(slot.pool, service, request) {
            return false;
        }
        let families_fit = match request.families {
            FamilyPolicy::Single(f) => ips.len() == 1 && Family::of(&ips[0]) == f,
            FamilyPolicy::RequireDualStack { .. } => ips.len() == 2,
            FamilyPolicy::PreferDualStack { .. } => true,
        };
        let params = SharingParams::of(request);
        families_fit
            && held
                .addrs
                .iter()
                .all(|(_, addr)| self.sharing_conflict(service, *addr, &params).is_ok())
    }

    fn refresh_params(&mut self, service: &ServiceKey, params: SharingParams) {
        if let Some(mut held) = self.uninstall(service) {
            held.params = params;
            self.install(service, held);
        }
    }

    fn fresh(
        &mut self,
        service: &ServiceKey,
        request: &Request,
        requested: &[IpAddr],
    ) -> Result<Assignment, AllocError> {
        let params = SharingParams::of(request);
        let wanted_pool = match &request.pool {
            Some(name) => Some(
                self.pools
                    .pool_index(name)
                    .ok_or_else(|| AllocError::UnknownPool { pool: name.clone() })?,
            ),
            None => None,
        };
        let picks = if !requested.is_empty() {
            let picks = self.admit_all(service, requested, &params)?;
            if let Some(idx) = wanted_pool
                && picks[0].0.pool != idx
            {
                return Err(AllocError::NotInRequestedPool {
                    ip: requested[0],
                    requested: self.pools.pools[idx].name.clone(),
                    actual: self.pools.pools[picks[0].0.pool].name.clone(),
                });
            }
            self.check_compatible(picks[0].0.pool, service, request)?;
            picks
        } else if let Some(idx) = wanted_pool {
            self.check_compatible(idx, service, request)?;
            self.pick_in_pool(service, idx, request.families, &params)?
        } else {
            let pinned = if self.pools.pinned.is_empty() {
                Vec::new()
            } else {
                self.pinned_for(service, request)
            };
            self.pick_auto(service, &pinned, request.families, &params)?
        };
        Ok(self.install_picks(service, picks, params))
    }

    fn check_compatible(
        &self,
        idx: usize,
        service: &ServiceKey,
        request: &Request,
    ) -> Result<(), AllocError> {
        if self.compatible(idx, service, request) {
            Ok(())
        } else {
            Err(AllocError::PoolNotAllowed {
                pool: self.pools.pools[idx].name.clone(),
                admits: self.describe_admits(idx),
            })
        }
    }

    /// Checks that `ips` (one per family) can be held by `service`: admitted by one pool and
    /// shareable with their current holders.
    fn admit_all(
        &self,
        service: &ServiceKey,
        ips: &[IpAddr],
        params: &SharingParams,
    ) -> Result<Vec<Pick>, AllocError> {
        let mut picks: Vec<Pick> = Vec::with_capacity(ips.len());
        for &ip in ips {
            let slot = self.pools.admit(ip)?;
            if let Some(&(first_slot, first)) = picks.first()
                && first_slot.pool != slot.pool
            {
                return Err(AllocError::DifferentPools {
                    first: first.to_ip(),
                    first_pool: self.pools.pools[first_slot.pool].name.clone(),
                    second: ip,
                    second_pool: self.pools.pools[slot.pool].name.clone(),
                });
            }
            let addr = Addr::from_ip(ip);
            self.sharing_conflict(service, addr, params)?;
            picks.push((slot, addr));
        }
        Ok(picks)
    }

    /// Whether `service` with `params` may hold `addr` next to its current holders.
    fn sharing_conflict(
        &self,
        service: &ServiceKey,
        addr: Addr,
        params: &SharingParams,
    ) -> Result<(), AllocError> {
        for holder in self.holders.get(&addr).map_or(&[][..], Holders::as_slice) {
            if holder == service {
                continue;
            }
            params
                .compatible_with(&self.services[holder].params)
                .map_err(|reason| AllocError::Conflict {
                    ip: addr.to_ip(),
                    holder: holder.clone(),
                    reason,
                })?;
        }
        Ok(())
    }

    fn install_picks(
        &mut self,
        service: &ServiceKey,
        picks: Vec<Pick>,
        params: SharingParams,
    ) -> Assignment {
        let pool = picks
            .first()
            .map(|(slot, _)| self.pools.pools[slot.pool].name.clone())
            .unwrap_or_default();
        let assignment = Assignment {
            pool,
            ips: picks.iter().map(|(_, addr)| addr.to_ip()).collect(),
        };
        self.install(
            service,
            Held {
                assignment: assignment.clone(),
                addrs: picks,
                params,
            },
        );
        assignment
    }

    /// Records `held` for `service`. Its addresses must be admitted and shareable (checked by
    /// the caller), and `service` must hold nothing.
    pub(crate) fn install(&mut self, service: &ServiceKey, held: Held) {
        for &(slot, addr) in &held.addrs {
            match self.holders.entry(addr) {
                Entry::Occupied(mut holders) => holders.get_mut().add(service),
                Entry::Vacant(slot_entry) => {
                    slot_entry.insert(Holders::One(service.clone()));
                    let taken = self.pools.take(slot, addr.value);
                    debug_assert!(taken, "{addr:?} was held by nobody yet not free");
                    if let Some(key) = &held.params.key {
                        self.shared.entry(key.clone()).or_default().insert(addr);
                    }
                }
            }
        }
        self.services.insert(service.clone(), held);
    }

    /// Forgets what `service` holds, freeing addresses nobody else holds.
    pub(crate) fn uninstall(&mut self, service: &ServiceKey) -> Option<Held> {
        let held = self.services.remove(service)?;
        for &(slot, addr) in &held.addrs {
            let Some(holders) = self.holders.get_mut(&addr) else {
                continue;
            };
            if holders.remove(service) {
                self.holders.remove(&addr);
                self.pools.put(slot, addr.value);
                // Every holder of an address carries the same key, so this one's key is the
                // address's key.
                if let Some(key) = &held.params.key
                    && let Some(set) = self.shared.get_mut(key)
                {
                    set.remove(&addr);
                    if set.is_empty() {
                        self.shared.remove(key);
                    }
                }
            }
        }
        Some(held)
    }
}

/// A kept dual-stack assignment lists the request's primary family first, as a fresh one (and
/// `assign`) would, so the order never depends on history.
fn put_primary_first(held: &mut Held, primary: Family) {
    if held.addrs.len() == 2 && held.addrs[0].1.family != primary {
        held.addrs.swap(0, 1);
        held.assignment.ips.swap(0, 1);
    }
}

/// The requested addresses, primary family first, after checking there is at most one per
/// family, each allowed by the policy, and both for `RequireDualStack`.
fn check_requested(request: &Request) -> Result<Vec<IpAddr>, AllocError> {
    if request.requested.is_empty() {
        return Ok(Vec::new());
    }
    let policy = request.families;
    let ordered = order_by_family(&request.requested, policy.primary())?;
    for &ip in &ordered {
        let family = Family::of(&ip);
        if !policy.allows(family) {
            return Err(AllocError::FamilyNotAllowed { ip, family, policy });
        }
    }
    if let FamilyPolicy::RequireDualStack { .. } = policy
        && ordered.len() == 1
    {
        return Err(AllocError::MissingFamily {
            missing: Family::of(&ordered[0]).other(),
        });
    }
    Ok(ordered)
}

/// `ips` with the `primary` family first, refusing two of one family.
fn order_by_family(ips: &[IpAddr], primary: Family) -> Result<Vec<IpAddr>, AllocError> {
    let mut slots: [Option<IpAddr>; 2] = [None, None];
    for &ip in ips {
        let family = Family::of(&ip);
        let slot = &mut slots[usize::from(family != primary)];
        if let Some(first) = *slot {
            if first == ip {
                continue;
            }
            return Err(AllocError::DuplicateFamily {
                family,
                first,
                second: ip,
            });
        }
        *slot = Some(ip);
    }
    Ok(slots.into_iter().flatten().collect())
}
