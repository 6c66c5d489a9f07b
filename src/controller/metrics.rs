//! The controller's Prometheus metrics (names mirror MetalLB's under `ferrolb_`).

use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};

use crate::ipam::PoolStats;

/// Gauges the controller keeps current.
#[derive(Clone, Debug)]
pub struct ControllerMetrics {
    pub addresses_total: IntGaugeVec,
    pub addresses_in_use: IntGaugeVec,
    pub config_loaded: IntGauge,
    pub config_stale: IntGauge,
}

impl ControllerMetrics {
    /// Creates the gauges and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            addresses_total: IntGaugeVec::new(
                Opts::new(
                    "ferrolb_allocator_addresses_total",
                    "Number of usable IP addresses, per pool",
                ),
                &["pool"],
            )?,
            addresses_in_use: IntGaugeVec::new(
                Opts::new(
                    "ferrolb_allocator_addresses_in_use_total",
                    "Number of IP addresses in use, per pool",
                ),
                &["pool"],
            )?,
            config_loaded: IntGauge::new(
                "ferrolb_config_loaded",
                "1 once a valid config has been loaded",
            )?,
            config_stale: IntGauge::new(
                "ferrolb_config_stale",
                "1 while the latest config is invalid and the last good one is still in force",
            )?,
        };
        registry.register(Box::new(metrics.addresses_total.clone()))?;
        registry.register(Box::new(metrics.addresses_in_use.clone()))?;
        registry.register(Box::new(metrics.config_loaded.clone()))?;
        registry.register(Box::new(metrics.config_stale.clone()))?;
        Ok(metrics)
    }

    /// Replaces the per-pool gauges (pools that left the config disappear).
    pub fn set_pools(&self, stats: &[PoolStats]) {
        self.addresses_total.reset();
        self.addresses_in_use.reset();
        for s in stats {
            self.addresses_total
                .with_label_values(&[s.pool.as_str()])
                .set(clamp(s.total));
            self.addresses_in_use
                .with_label_values(&[s.pool.as_str()])
                .set(clamp(s.in_use));
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
                total_v6: 0,
                in_use_v6: 0,
            },
            PoolStats {
                pool: "v6".into(),
                total: u128::MAX,
                in_use: 1,
                total_v6: u128::MAX,
                in_use_v6: 1,
            },
        ]);
        assert_eq!(m.addresses_total.with_label_values(&["a"]).get(), 254);
        assert_eq!(m.addresses_in_use.with_label_values(&["a"]).get(), 3);
        assert_eq!(m.addresses_total.with_label_values(&["v6"]).get(), i64::MAX);
        m.set_pools(&[PoolStats {
            pool: "b".into(),
            total: 4,
            in_use: 0,
            total_v6: 0,
            in_use_v6: 0,
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
