//! Choosing addresses for a fresh allocation without requested IPs: which pool, which family,
//! which address. Pools are tried pinned first, then the fallback list (only the requested one
//! when the request names one), ranges in config order within a pool, and within a range the
//! lowest usable address.

use super::addr::Addr;
use super::allocator::{Allocator, Pick};
use super::error::AllocError;
use super::holders::Holders;
use super::pool::Slot;
use super::sharing::SharingParams;
use super::types::{Family, FamilyPolicy, ServiceKey};

impl Allocator {
    pub(crate) fn pick_in_pool(
        &mut self,
        service: &ServiceKey,
        idx: usize,
        policy: FamilyPolicy,
        params: &SharingParams,
    ) -> Result<Vec<Pick>, AllocError> {
        let name = || self.pools.pools[idx].name.clone();
        let primary = policy.primary();
        let lacks = |family| AllocError::PoolLacksFamily {
            pool: name(),
            family,
        };
        let has_primary = self.pools.pools[idx].has_family(primary);
        let has_secondary = self.pools.pools[idx].has_family(primary.other());
        match policy {
            FamilyPolicy::Single(_) if !has_primary => return Err(lacks(primary)),
            FamilyPolicy::RequireDualStack { .. } if !has_primary => return Err(lacks(primary)),
            FamilyPolicy::RequireDualStack { .. } if !has_secondary => {
                return Err(lacks(primary.other()));
            }
            _ => {}
        }
        let first = self.candidate(service, idx, primary, params);
        let second = match policy {
            FamilyPolicy::Single(_) => None,
            _ => self.candidate(service, idx, primary.other(), params),
        };
        let exhausted = |family| AllocError::PoolExhausted {
            pool: self.pools.pools[idx].name.clone(),
            family,
        };
        match (policy, first, second) {
            (FamilyPolicy::Single(_), Some(a), _) => Ok(vec![a]),
            (FamilyPolicy::RequireDualStack { .. }, Some(a), Some(b)) => Ok(vec![a, b]),
            (FamilyPolicy::RequireDualStack { .. }, Some(_), None) => {
                Err(exhausted(primary.other()))
            }
            (FamilyPolicy::PreferDualStack { .. }, Some(a), Some(b)) => Ok(vec![a, b]),
            (FamilyPolicy::PreferDualStack { .. }, Some(a), None)
            | (FamilyPolicy::PreferDualStack { .. }, None, Some(a)) => Ok(vec![a]),
            (FamilyPolicy::PreferDualStack { .. }, None, None) if !has_primary => {
                Err(exhausted(primary.other()))
            }
            _ => Err(exhausted(primary)),
        }
    }

    /// Automatic allocation: the `pinned` pools first (already filtered and ordered), then the
    /// fallback pools; within each list MetalLB's family rules (a pool with both families for
    /// dual-stack, else for PreferDualStack one address of the primary family, else the other).
    pub(crate) fn pick_auto(
        &mut self,
        service: &ServiceKey,
        pinned: &[usize],
        policy: FamilyPolicy,
        params: &SharingParams,
    ) -> Result<Vec<Pick>, AllocError> {
        if !pinned.is_empty()
            && let Some(picks) = self.pick_from(service, pinned, policy, params)
        {
            return Ok(picks);
        }
        // Taken out for the call so `pick_from` can borrow the allocator mutably.
        let fallback = std::mem::take(&mut self.pools.fallback);
        let picks = self.pick_from(service, &fallback, policy, params);
        self.pools.fallback = fallback;
        picks.ok_or(AllocError::NoFreeAddress { policy })
    }

    fn pick_from(
        &mut self,
        service: &ServiceKey,
        order: &[usize],
        policy: FamilyPolicy,
        params: &SharingParams,
    ) -> Option<Vec<Pick>> {
        let primary = policy.primary();
        let first_with = |this: &mut Allocator, family: Family| {
            order
                .iter()
                .find_map(|&idx| this.candidate(service, idx, family, params))
        };
        match policy {
            FamilyPolicy::Single(f) => first_with(self, f).map(|a| vec![a]),
            FamilyPolicy::RequireDualStack { .. } | FamilyPolicy::PreferDualStack { .. } => {
                let pair = order.iter().find_map(|&idx| {
                    let a = self.candidate(service, idx, primary, params)?;
                    let b = self.candidate(service, idx, primary.other(), params)?;
                    Some(vec![a, b])
                });
                match (pair, policy) {
                    (Some(pair), _) => Some(pair),
                    (None, FamilyPolicy::PreferDualStack { .. }) => first_with(self, primary)
                        .or_else(|| first_with(self, primary.other()))
                        .map(|a| vec![a]),
                    (None, _) => None,
                }
            }
        }
    }

    /// The first usable address of `family` in pool `idx`: ranges in config order; within a
    /// range the lower of its lowest free address and its lowest address shareable under the
    /// request's sharing key.
    fn candidate(
        &mut self,
        service: &ServiceKey,
        idx: usize,
        family: Family,
        params: &SharingParams,
    ) -> Option<Pick> {
        let Allocator {
            pools,
            services,
            holders,
            shared,
            ..
        } = self;
        let shared_under_key = params.key.as_ref().and_then(|k| shared.get(k));
        for (range_idx, range) in pools.pools[idx].ranges.iter_mut().enumerate() {
            if range.family != family {
                continue;
            }
            let free = range.free.lowest();
            // Addresses already shared under this key, ascending; the first whose holders all
            // accept this service. Bounded by the size of the sharing group, not the pool.
            let shareable = shared_under_key.and_then(|set| {
                let lo = Addr {
                    family,
                    value: range.start,
                };
                let hi = Addr {
                    family,
                    value: range.end,
                };
                set.range(lo..=hi).find(|addr| {
                    holders
                        .get(addr)
                        .map_or(&[][..], Holders::as_slice)
                        .iter()
                        .all(|h| {
                            h == service || params.compatible_with(&services[h].params).is_ok()
                        })
                })
            });
            let best = match (free, shareable) {
                (Some(f), Some(s)) => Some(f.min(s.value)),
                (f, s) => f.or(s.map(|a| a.value)),
            };
            if let Some(value) = best {
                let slot = Slot {
                    pool: idx,
                    range: range_idx,
                };
                return Some((slot, Addr { family, value }));
            }
        }
        None
    }
}
