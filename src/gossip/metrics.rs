//! Prometheus view of a member: `ferrolb_members{state}` and
//! `ferrolb_gossip_packets_dropped_total{reason}`, `ferrolb_gossip_keys` and
//! `ferrolb_gossip_icmp_suspicions_total`, read from the member's stats at scrape time.

use prometheus::core::{Collector, Desc};
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, proto};
use tokio::sync::watch;

use super::udp::{GossipHandle, GossipStats};
use crate::metrics as names;

/// Collector registered with [`register`].
pub struct GossipCollector {
    stats: watch::Receiver<GossipStats>,
    members: IntGaugeVec,
    dropped: IntCounterVec,
    keys: IntGauge,
    icmp_suspicions: IntCounter,
}

impl GossipCollector {
    pub fn new(stats: watch::Receiver<GossipStats>) -> Result<Self, prometheus::Error> {
        let (m, d) = (names::GOSSIP_MEMBERS, names::GOSSIP_DROPPED);
        let members = IntGaugeVec::new(Opts::new(m.ferrolb, m.help), &["state"])?;
        let dropped = IntCounterVec::new(Opts::new(d.ferrolb, d.help), &["reason"])?;
        let k = names::GOSSIP_KEYS;
        let keys = IntGauge::new(k.ferrolb, k.help)?;
        let i = names::GOSSIP_ICMP_SUSPICIONS;
        let icmp_suspicions = IntCounter::new(i.ferrolb, i.help)?;
        Ok(Self {
            stats,
            members,
            dropped,
            keys,
            icmp_suspicions,
        })
    }

    fn refresh(&self) {
        let stats = *self.stats.borrow();
        let counts = stats.members;
        for (state, value) in [
            ("alive", counts.alive),
            ("suspect", counts.suspect),
            ("down", counts.down),
        ] {
            self.members
                .with_label_values(&[state])
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
        self.keys.set(i64::try_from(stats.keys).unwrap_or(i64::MAX));
        let drops = stats.drops;
        for (reason, total) in [
            ("auth", drops.auth),
            ("decode", drops.decode),
            ("replay", drops.replay),
        ] {
            // The member owns the running totals; the counter catches up to them.
            let counter = self.dropped.with_label_values(&[reason]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        let icmp = &self.icmp_suspicions;
        icmp.inc_by(stats.icmp_suspicions.saturating_sub(icmp.get()));
    }
}

impl Collector for GossipCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.members.desc();
        descs.extend(self.dropped.desc());
        descs.extend(self.keys.desc());
        descs.extend(self.icmp_suspicions.desc());
        descs
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        self.refresh();
        let mut families = self.members.collect();
        families.extend(self.dropped.collect());
        families.extend(self.keys.collect());
        families.extend(self.icmp_suspicions.collect());
        families
    }
}

/// Registers the member's metrics with `registry`.
pub fn register(registry: &Registry, handle: &GossipHandle) -> Result<(), prometheus::Error> {
    registry.register(Box::new(GossipCollector::new(handle.stats_watch())?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::{DropCounts, MemberCounts};
    use prometheus::Encoder;

    #[test]
    fn scrape_reflects_the_latest_stats() {
        let (tx, rx) = watch::channel(GossipStats::default());
        let registry = Registry::new();
        registry
            .register(Box::new(GossipCollector::new(rx).unwrap()))
            .unwrap();
        let scrape = || {
            let mut out = Vec::new();
            prometheus::TextEncoder::new()
                .encode(&registry.gather(), &mut out)
                .unwrap();
            String::from_utf8(out).unwrap()
        };
        tx.send_replace(GossipStats {
            members: MemberCounts {
                alive: 3,
                suspect: 1,
                down: 2,
            },
            drops: DropCounts {
                auth: 5,
                decode: 1,
                replay: 0,
            },
            keys: 2,
            icmp_suspicions: 3,
            ..GossipStats::default()
        });
        let text = scrape();
        assert!(text.contains("ferrolb_gossip_keys 2"), "{text}");
        assert!(
            text.contains("ferrolb_gossip_icmp_suspicions_total 3"),
            "{text}"
        );
        assert!(
            text.contains("ferrolb_members{state=\"alive\"} 3"),
            "{text}"
        );
        assert!(text.contains("ferrolb_members{state=\"down\"} 2"), "{text}");
        assert!(
            text.contains("ferrolb_gossip_packets_dropped_total{reason=\"auth\"} 5"),
            "{text}"
        );

        tx.send_replace(GossipStats {
            members: MemberCounts {
                alive: 2,
                suspect: 0,
                down: 3,
            },
            drops: DropCounts {
                auth: 7,
                decode: 1,
                replay: 0,
            },
            ..GossipStats::default()
        });
        let text = scrape();
        assert!(
            text.contains("ferrolb_members{state=\"alive\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("ferrolb_gossip_packets_dropped_total{reason=\"auth\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("ferrolb_gossip_packets_dropped_total{reason=\"decode\"} 1"),
            "{text}"
        );
    }
}
