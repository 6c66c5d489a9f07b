//! Config reload: swap in new pools while keeping every address that is still in one.
//!
//! A service keeps its addresses when each is still admitted by some pool (inside a range and not
//! a `.0`/`.255` of a pool avoiding those) and all of them land in the same pool. If that pool's
//! name changed (a rename, or the range moved to another pool) the service is reported as moved.
//! Anyone else is evicted and reported with the reason, for the controller to reallocate.

use super::addr::Addr;
use super::allocator::{Allocator, Held, Pick};
use super::error::{AllocError, PoolSpecError};
use super::pool::PoolTable;
use super::types::{Eviction, EvictionReason, PoolMove, PoolSpec, Reload, ServiceKey};

impl Allocator {
    pub(crate) fn reload(&mut self, specs: Vec<PoolSpec>) -> Result<Reload, PoolSpecError> {
        // Build first: a bad pool set changes nothing.
        let table = PoolTable::build(&specs)?;
        let mut services: Vec<(ServiceKey, Held)> = self.services.drain().collect();
        // Sorted so the report, and the order addresses are re-taken in, are deterministic.
        services.sort_by(|a, b| a.0.cmp(&b.0));
        *self = Allocator {
            pools: table,
            namespaces: std::mem::take(&mut self.namespaces),
            ..Allocator::default()
        };
        self.resolve_all();
        let mut report = Reload::default();
        for (service, mut held) in services {
            match self.relocate(&held) {
                Ok(addrs) => {
                    let new_pool = self.pools.pools[addrs[0].0.pool].name.clone();
                    if new_pool == held.assignment.pool {
                        report.kept.push(service.clone());
                    } else {
                        report.moved.push(PoolMove {
                            service: service.clone(),
                            from: std::mem::replace(&mut held.assignment.pool, new_pool.clone()),
                            to: new_pool,
                        });
                    }
                    held.addrs = addrs;
                    self.install(&service, held);
                }
                Err(reason) => report.evicted.push(Eviction {
                    service,
                    previous: held.assignment,
                    reason,
                }),
            }
        }
        Ok(report)
    }

    /// Where `held`'s addresses live in the new pools, or why they cannot stay. Sharing needs no
    /// re-check: sharers were compatible before and their parameters did not change.
    fn relocate(&self, held: &Held) -> Result<Vec<Pick>, EvictionReason> {
        let mut picks: Vec<Pick> = Vec::with_capacity(held.addrs.len());
        for &(_, addr) in &held.addrs {
            let ip = addr.to_ip();
            let slot = self.pools.admit(ip).map_err(|err| match err {
                AllocError::BuggyIp { pool, .. } => EvictionReason::NowBuggy { ip, pool },
                _ => EvictionReason::LeftAllPools { ip },
            })?;
            if let Some(&(first_slot, first)) = picks.first()
                && first_slot.pool != slot.pool
            {
                return Err(EvictionReason::SplitAcrossPools {
                    first: first.to_ip(),
                    first_pool: self.pools.pools[first_slot.pool].name.clone(),
                    second: ip,
                    second_pool: self.pools.pools[slot.pool].name.clone(),
                });
            }
            picks.push((slot, Addr::from_ip(ip)));
        }
        Ok(picks)
    }
}
