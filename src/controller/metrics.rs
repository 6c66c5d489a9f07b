//! The controller's Prometheus metrics: the allocator's per-pool gauges and the config state,
//! under ferrolb's or MetalLB's names ([`crate::metrics`]).

use prometheus::{IntGaugeVec, Opts, Registry};

use crate::ipam::PoolStats;
use crate::metrics::{self as names, ConfigMetrics, Family, Naming};

/// Gauges the controller keeps current.
#[derive(Clone, Debug)]
pub struct ControllerMetrics {
    pub addresses_total: IntGaugeVec,
    pub addresses_in_use: IntGaugeVec,
    ipv4_total: IntGaugeVec,
    ipv4_in_use: IntGaugeVec,
    ipv6_total: IntGaugeVec,
    ipv6_in_use: IntGaugeVec,
    pub config: ConfigMetrics,
}

impl ControllerMetrics {
    /// Creates the gauges under ferrolb's names and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        Self::register_named(registry, Naming::Ferrolb)
    }

    /// Creates the gauges under `naming` and registers them in `registry`.
    pub fn register_named(registry: &Registry, naming: Naming) -> Result<Self, prometheus::Error> {
        let per_pool = |f: Family| -> Result<IntGaugeVec, prometheus::Error> {
            let gauge = IntGaugeVec::new(Opts::new(f.name(naming), f.help), &["pool"])?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        Ok(Self {
            addresses_total: per_pool(names::ADDRESSES_TOTAL)?,
            addresses_in_use: per_pool(names::ADDRESSES_IN_USE)?,
            ipv4_total: per_pool(names::IPV4_ADDRESSES_TOTAL)?,
            ipv4_in_use: per_pool(names::IPV4_ADDRESSES_IN_USE)?,
            ipv6_total: per_pool(names::IPV6_ADDRESSES_TOTAL)?,
            ipv6_in_use: per_pool(names::IPV6_ADDRESSES_IN_USE)?,
            config: ConfigMetrics::register(registry, naming)?,
        })
    }

    /// Drops every per-pool series (this replica no longer keeps the figures).
    pub fn clear_pools(&self) {
        for g in self.per_pool() {
            g.reset();
        }
    }

    fn per_pool(&self) -> [&IntGaugeVec; 6] {
        [
            &self.addresses_total,
            &self.addresses_in_use,
            &self.ipv4_total,
            &self.ipv4_in_use,
            &self.ipv6_total,
            &self.ipv6_in_use,
        ]
    }

    /// Replaces the per-pool gauges (pools that left the config disappear).
    pub fn set_pools(&self, stats: &[PoolStats]) {
        self.clear_pools();
        let gauges = self.per_pool();
        for s in stats {
            let values = [
                s.total,
                s.in_use,
                s.ipv4_total(),
                s.ipv4_in_use(),
                s.ipv6_total,
                s.ipv6_in_use,
            ];
            for (g, v) in gauges.iter().zip(values) {
                g.with_label_values(&[s.pool.as_str()]).set(clamp(v));
            }
        }
    }
}

/// An IPv6 pool can hold more addresses than a gauge can count; show the largest value instead
/// of wrapping around.
fn clamp(n: u128) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_gauges_follow_stats_and_drop_removed_pools() {
        let registry = Registry::new();
        let m = ControllerMetrics::register(&registry).unwrap();
        m.set_pools(&[
            PoolStats {
                pool: "a".into(),
                total: 254,
                in_use: 3,
                ipv6_total: 0,
                ipv6_in_use: 0,
            },
            PoolStats {
                pool: "v6".into(),
                total: u128::MAX,
                in_use: 1,
                ipv6_total: u128::MAX,
                ipv6_in_use: 1,
            },
        ]);
        assert_eq!(m.addresses_total.with_label_values(&["a"]).get(), 254);
        assert_eq!(m.addresses_in_use.with_label_values(&["a"]).get(), 3);
        assert_eq!(m.addresses_total.with_label_values(&["v6"]).get(), i64::MAX);
        assert_eq!(m.ipv4_in_use.with_label_values(&["a"]).get(), 3);
        assert_eq!(m.ipv6_in_use.with_label_values(&["a"]).get(), 0);
        assert_eq!(m.ipv6_in_use.with_label_values(&["v6"]).get(), 1);
        assert_eq!(m.ipv4_total.with_label_values(&["v6"]).get(), 0);
        m.set_pools(&[PoolStats {
            pool: "b".into(),
            total: 4,
            in_use: 0,
            ipv6_total: 0,
            ipv6_in_use: 0,
        }]);
        let families = registry.gather();
        let total = families
            .iter()
            .find(|f| f.name() == "ferrolb_allocator_addresses_total")
            .unwrap();
        let pools: Vec<&str> = total
            .get_metric()
            .iter()
            .flat_map(|m| m.get_label().iter().map(|l| l.value()))
            .collect();
        assert_eq!(pools, ["b"]);
        // Registering twice in one registry is refused rather than silently duplicated.
        assert!(ControllerMetrics::register(&registry).is_err());
    }
}
