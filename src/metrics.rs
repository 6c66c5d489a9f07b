//! Every metric family's name, under ferrolb's naming and under MetalLB's, and the config-state
//! families both components export.
//!
//! `--metallb-metric-names` renames the families MetalLB also has to MetalLB's names (and gives
//! them MetalLB's labels), so dashboards and alerts written for MetalLB keep working; families
//! MetalLB has no counterpart for (gossip, takeovers, the speaker's service-IP count) keep their
//! `ferrolb_` names, since there is nothing they could be compatible with.

use prometheus::{IntCounter, IntGauge, Registry};

/// Which names the metrics are exported under.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Naming {
    /// `ferrolb_*` (the default).
    #[default]
    Ferrolb,
    /// MetalLB's `metallb_*` names and labels.
    Metallb,
}

impl Naming {
    /// The naming the `--metallb-metric-names` flag asks for.
    pub fn from_flag(metallb: bool) -> Self {
        if metallb {
            Naming::Metallb
        } else {
            Naming::Ferrolb
        }
    }
}

/// One metric family: its names and help text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Family {
    pub ferrolb: &'static str,
    /// MetalLB's name for the same measurement, where MetalLB has one.
    pub metallb: Option<&'static str>,
    pub help: &'static str,
}

impl Family {
    pub fn name(&self, naming: Naming) -> &'static str {
        match (naming, self.metallb) {
            (Naming::Metallb, Some(name)) => name,
            _ => self.ferrolb,
        }
    }
}

const fn family(ferrolb: &'static str, metallb: &'static str, help: &'static str) -> Family {
    Family {
        ferrolb,
        metallb: Some(metallb),
        help,
    }
}

const fn ours(ferrolb: &'static str, help: &'static str) -> Family {
    Family {
        ferrolb,
        metallb: None,
        help,
    }
}

// Controller: the allocator, per pool.
pub const ADDRESSES_TOTAL: Family = family(
    "ferrolb_allocator_addresses_total",
    "metallb_allocator_addresses_total",
    "Number of usable IP addresses, per pool",
);
pub const ADDRESSES_IN_USE: Family = family(
    "ferrolb_allocator_addresses_in_use_total",
    "metallb_allocator_addresses_in_use_total",
    "Number of IP addresses in use, per pool",
);
pub const IPV4_ADDRESSES_TOTAL: Family = family(
    "ferrolb_allocator_ipv4_addresses_total",
    "metallb_allocator_ipv4_addresses_total",
    "Number of usable IPv4 addresses, per pool",
);
pub const IPV4_ADDRESSES_IN_USE: Family = family(
    "ferrolb_allocator_ipv4_addresses_in_use_total",
    "metallb_allocator_ipv4_addresses_in_use_total",
    "Number of IPv4 addresses in use, per pool",
);
pub const IPV6_ADDRESSES_TOTAL: Family = family(
    "ferrolb_allocator_ipv6_addresses_total",
    "metallb_allocator_ipv6_addresses_total",
    "Number of usable IPv6 addresses, per pool",
);
pub const IPV6_ADDRESSES_IN_USE: Family = family(
    "ferrolb_allocator_ipv6_addresses_in_use_total",
    "metallb_allocator_ipv6_addresses_in_use_total",
    "Number of IPv6 addresses in use, per pool",
);

// Both components: the config.
pub const CONFIG_LOADED: Family = family(
    "ferrolb_config_loaded",
    "metallb_k8s_client_config_loaded_bool",
    "1 once a valid config has been loaded",
);
pub const CONFIG_STALE: Family = family(
    "ferrolb_config_stale",
    "metallb_k8s_client_config_stale_bool",
    "1 while the latest config is invalid and the last good one is still in force",
);
pub const CONFIG_UPDATES: Family = family(
    "ferrolb_config_updates_total",
    "metallb_k8s_client_updates_total",
    "Number of config object updates processed",
);
pub const CONFIG_UPDATE_ERRORS: Family = family(
    "ferrolb_config_update_errors_total",
    "metallb_k8s_client_update_errors_total",
    "Number of config object updates refused as invalid",
);

// Speaker: layer 2, per IP.
pub const LAYER2_REQUESTS: Family = family(
    "ferrolb_layer2_requests_received",
    "metallb_layer2_requests_received",
    "ARP requests and neighbor solicitations received for an IP this node announces",
);
pub const LAYER2_RESPONSES: Family = family(
    "ferrolb_layer2_responses_sent",
    "metallb_layer2_responses_sent",
    "ARP replies and solicited neighbor advertisements sent for an IP",
);
pub const LAYER2_GRATUITOUS: Family = family(
    "ferrolb_layer2_gratuitous_sent",
    "metallb_layer2_gratuitous_sent",
    "Gratuitous ARP packets and unsolicited neighbor advertisements sent for an IP",
);
pub const SPEAKER_ANNOUNCED: Family = family(
    "ferrolb_speaker_announced",
    "metallb_speaker_announced",
    "1 for each service IP this node announces",
);

// Speaker, BGP: MetalLB's native speaker's families, `peer` = "address:port".
pub const BGP_SESSION_UP: Family = family(
    "ferrolb_bgp_session_up",
    "metallb_bgp_session_up",
    "1 while the BGP session with the peer is Established, 0 otherwise",
);
pub const BGP_UPDATES: Family = family(
    "ferrolb_bgp_updates_total",
    "metallb_bgp_updates_total",
    "BGP UPDATE messages sent to the peer",
);
pub const BGP_ANNOUNCED_PREFIXES: Family = family(
    "ferrolb_bgp_announced_prefixes_total",
    "metallb_bgp_announced_prefixes_total",
    "Prefixes the peer was sent and holds (0 while the session is down)",
);
pub const BGP_PENDING_PREFIXES: Family = family(
    "ferrolb_bgp_pending_prefixes_total",
    "metallb_bgp_pending_prefixes_total",
    "Prefixes this node wants the peer to hold",
);

// Speaker, BFD: MetalLB's FRR mode's families (its frr-metrics sidecar), `peer` = the address.
pub const BFD_SESSION_UP: Family = family(
    "ferrolb_bfd_session_up",
    "metallb_bfd_session_up",
    "1 while the BFD session with the peer is Up, 0 otherwise",
);
pub const BFD_SESSION_UP_EVENTS: Family = family(
    "ferrolb_bfd_session_up_events",
    "metallb_bfd_session_up_events",
    "Times the BFD session with the peer came Up",
);
pub const BFD_SESSION_DOWN_EVENTS: Family = family(
    "ferrolb_bfd_session_down_events",
    "metallb_bfd_session_down_events",
    "Times the BFD session with the peer left Up",
);
pub const BFD_CONTROL_PACKET_INPUT: Family = family(
    "ferrolb_bfd_control_packet_input",
    "metallb_bfd_control_packet_input",
    "BFD Control packets received from the peer (accepted: TTL 255, well formed, this session's)",
);
pub const BFD_CONTROL_PACKET_OUTPUT: Family = family(
    "ferrolb_bfd_control_packet_output",
    "metallb_bfd_control_packet_output",
    "BFD Control packets sent to the peer",
);

// Speaker: ferrolb's own.
pub const SPEAKER_TAKEOVERS: Family = ours(
    "ferrolb_speaker_takeovers_total",
    "IPs this node started announcing (a failover, a rebalance or a new Service)",
);
pub const SPEAKER_SERVICE_IPS: Family = ours(
    "ferrolb_speaker_service_ips",
    "Layer-2 Service IPs this speaker sees assigned; each should be announced by exactly one node",
);
pub const SPEAKER_CANDIDATE: Family = ours(
    "ferrolb_speaker_election_candidate",
    "1 while this speaker takes part in the elections; 0 while it holds no config with address pools and has withdrawn from them",
);
pub const SPEAKER_SILENT_OWNER: Family = ours(
    "ferrolb_speaker_silent_owner_addresses",
    "Addresses this speaker checks (it is next in line) whose owner, alive in gossip, did not \
     answer its ARP probes several times in a row",
);
pub const SPEAKER_CHECKS_DEAF: Family = ours(
    "ferrolb_speaker_answer_checks_deaf",
    "1 while this speaker hears no reply to any of its answer checks (its own receive path is \
     broken; it moves nothing)",
);
pub const SPEAKER_WITHDRAWN: Family = ours(
    "ferrolb_speaker_withdrawn_addresses",
    "Addresses this speaker withdrew from after the next node found them unanswered; -1 while \
     it withdrew from every election for that reason",
);
pub const SPEAKER_UNANNOUNCED: Family = ours(
    "ferrolb_speaker_unannounced",
    "1 for each service that holds an IP announced by no node, labelled with the cause",
);
pub const GOSSIP_MEMBERS: Family = ours(
    "ferrolb_members",
    "Gossip members by SWIM state (this speaker included)",
);
pub const GOSSIP_DROPPED: Family = ours(
    "ferrolb_gossip_packets_dropped_total",
    "Gossip datagrams dropped before reaching SWIM: auth (wrong key or tampered), \
     decode (malformed), replay (already seen)",
);
pub const GOSSIP_KEYS: Family = ours(
    "ferrolb_gossip_keys",
    "Gossip keys this speaker accepts: 1, or 2 during a key rotation",
);
pub const GOSSIP_ICMP_SUSPICIONS: Family = ours(
    "ferrolb_gossip_icmp_suspicions_total",
    "Gossip members suspected at once because their host answered a gossip datagram with ICMP \
     port unreachable (their speaker is gone, the host up)",
);

/// Every family either component can export.
pub const ALL: &[Family] = &[
    ADDRESSES_TOTAL,
    ADDRESSES_IN_USE,
    IPV4_ADDRESSES_TOTAL,
    IPV4_ADDRESSES_IN_USE,
    IPV6_ADDRESSES_TOTAL,
    IPV6_ADDRESSES_IN_USE,
    CONFIG_LOADED,
    CONFIG_STALE,
    CONFIG_UPDATES,
    CONFIG_UPDATE_ERRORS,
    LAYER2_REQUESTS,
    LAYER2_RESPONSES,
    LAYER2_GRATUITOUS,
    SPEAKER_ANNOUNCED,
    BGP_SESSION_UP,
    BGP_UPDATES,
    BGP_ANNOUNCED_PREFIXES,
    BGP_PENDING_PREFIXES,
    BFD_SESSION_UP,
    BFD_SESSION_UP_EVENTS,
    BFD_SESSION_DOWN_EVENTS,
    BFD_CONTROL_PACKET_INPUT,
    BFD_CONTROL_PACKET_OUTPUT,
    SPEAKER_TAKEOVERS,
    SPEAKER_SERVICE_IPS,
    SPEAKER_CANDIDATE,
    SPEAKER_SILENT_OWNER,
    SPEAKER_CHECKS_DEAF,
    SPEAKER_WITHDRAWN,
    SPEAKER_UNANNOUNCED,
    GOSSIP_MEMBERS,
    GOSSIP_DROPPED,
    GOSSIP_KEYS,
    GOSSIP_ICMP_SUSPICIONS,
];

/// Whether a config update was applied or refused, as both components count them.
#[derive(Clone, Debug)]
pub struct ConfigMetrics {
    loaded: IntGauge,
    stale: IntGauge,
    updates: IntCounter,
    errors: IntCounter,
}

impl ConfigMetrics {
    /// Creates the four families and registers them in `registry`.
    pub fn register(registry: &Registry, naming: Naming) -> Result<Self, prometheus::Error> {
        let gauge = |f: Family| IntGauge::new(f.name(naming), f.help);
        let counter = |f: Family| IntCounter::new(f.name(naming), f.help);
        let metrics = Self {
            loaded: gauge(CONFIG_LOADED)?,
            stale: gauge(CONFIG_STALE)?,
            updates: counter(CONFIG_UPDATES)?,
            errors: counter(CONFIG_UPDATE_ERRORS)?,
        };
        registry.register(Box::new(metrics.loaded.clone()))?;
        registry.register(Box::new(metrics.stale.clone()))?;
        registry.register(Box::new(metrics.updates.clone()))?;
        registry.register(Box::new(metrics.errors.clone()))?;
        Ok(metrics)
    }

    /// A config update was applied: loaded from now on, no longer stale.
    pub fn applied(&self) {
        self.updates.inc();
        self.loaded.set(1);
        self.stale.set(0);
    }

    /// A config update was refused: whatever was loaded before stays, now stale.
    pub fn refused(&self) {
        self.updates.inc();
        self.errors.inc();
        self.stale.set(1);
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.get() == 1
    }

    pub fn is_stale(&self) -> bool {
        self.stale.get() == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_prefixed_and_renamed_only_where_metallb_has_the_family() {
        let mut seen = std::collections::BTreeSet::new();
        for f in ALL {
            assert!(f.ferrolb.starts_with("ferrolb_"), "{f:?}");
            assert_eq!(f.name(Naming::Ferrolb), f.ferrolb);
            match f.metallb {
                Some(m) => {
                    assert!(m.starts_with("metallb_"), "{f:?}");
                    assert_eq!(f.name(Naming::Metallb), m);
                }
                None => assert_eq!(f.name(Naming::Metallb), f.ferrolb),
            }
            assert!(seen.insert(f.ferrolb), "duplicate {}", f.ferrolb);
            if let Some(m) = f.metallb {
                assert!(seen.insert(m), "duplicate {m}");
            }
        }
    }

    #[test]
    fn config_state_follows_applied_and_refused_updates() {
        let registry = Registry::new();
        let m = ConfigMetrics::register(&registry, Naming::Metallb).unwrap();
        assert!(!m.is_loaded() && !m.is_stale());
        m.refused();
        assert!(!m.is_loaded() && m.is_stale(), "refused before any load");
        m.applied();
        assert!(m.is_loaded() && !m.is_stale());
        m.refused();
        assert!(m.is_loaded() && m.is_stale(), "the last good config stays");
        let mut text = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&registry.gather(), &mut text)
            .unwrap();
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("{name} in {text}"))
        };
        assert_eq!(value("metallb_k8s_client_updates_total"), 3.0);
        assert_eq!(value("metallb_k8s_client_update_errors_total"), 2.0);
        assert_eq!(value("metallb_k8s_client_config_stale_bool"), 1.0);
        assert_eq!(value("metallb_k8s_client_config_loaded_bool"), 1.0);
    }
}
