//! Gossip settings and SWIM timing.

use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

use thiserror::Error;

use super::envelope::{MAX_NAME_LEN, MAX_OVERHEAD};
use super::key::{KeyFiles, KeyRing};

/// Default gossip port, memberlist's (and so MetalLB's).
pub const DEFAULT_PORT: u16 = 7946;

/// SWIM timing. The defaults aim at a crashed speaker being declared down in under a second
/// on a LAN, without false suspicion when idle:
///
/// - every member probes one other member each `probe_period` (200 ms), going through the others
///   in shuffled rounds, so a crashed member waits for its turn in some survivor's round (up to
///   about two rounds after its last probe; the earliest survivor's probe counts);
/// - a direct ack is expected within `probe_rtt` (50 ms: LAN round trips are well under 1 ms, the
///   rest absorbs scheduling hiccups on a busy node), otherwise `num_indirect_probes` (3) members
///   ping it on our behalf until the period ends, so one lost packet or one slow path is not enough
///   to suspect anyone;
/// - a suspect that does not refute within `suspect_to_down_after` (300 ms, i.e. more than a full
///   probe period for the suspect to hear about it and answer) is declared down;
/// - updates ride on probes and on a gossip round every `gossip_interval` (50 ms, only sent when
///   there is news), so everyone learns of the death within tens of milliseconds.
///
/// - a member whose host answers one of our datagrams with ICMP port unreachable (its speaker is
///   gone but the host is up: nothing listens on the gossip port) is suspected at once, without
///   waiting for the probe to time out, and declared down if it does not refute within
///   `icmp_suspect_to_down_after` (100 ms) — when the suspicion went straight to it — or
///   `suspect_to_down_after` otherwise (see [`crate::gossip::core`], "Port unreachable").
///
/// Crash to "down": probe wait + probe period (200 ms) + suspicion (300 ms); 0.54–0.86 s measured
/// with three members (BENCHMARKS.md, "Takeover at scale"). memberlist's LAN profile (MetalLB) takes
/// 1 s periods and 4–5 s suspicion. Traffic stays tiny: one ping and one ack per member per
/// period (a few KB/s for a 10-node cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwimTiming {
    pub probe_period: Duration,
    pub probe_rtt: Duration,
    pub num_indirect_probes: NonZeroUsize,
    pub suspect_to_down_after: Duration,
    /// How long a member suspected because its host answered ICMP port unreachable has to refute,
    /// when the suspicion was sent to it directly (clusters where our gossip round reaches every
    /// member); twice `probe_rtt` by default, the round trip a live member is given to answer a
    /// ping.
    pub icmp_suspect_to_down_after: Duration,
    /// How often each update is retransmitted; 6 reaches every member of clusters up to ~30 nodes
    /// with a wide margin (memberlist uses 4·log10(N+1)).
    pub max_transmissions: NonZeroU8,
    /// Gossip round period (only sent when there are updates).
    pub gossip_interval: Duration,
    /// Members contacted per gossip round.
    pub gossip_fanout: NonZeroUsize,
    /// Periodic announce to one random member, so a member learns the whole roster even if it
    /// joined through a seed that knew only part of it.
    pub announce_interval: Duration,
    /// Periodic announce to members believed down, so a healed partition merges back.
    pub announce_to_down_interval: Duration,
    /// While no other member is alive, the seeds are announced to this often.
    pub seed_retry_interval: Duration,
    /// How long a down identity is remembered (a restarted node is a new incarnation and is not
    /// affected; this only bounds memory).
    pub remove_down_after: Duration,
    /// Largest UDP payload sent or accepted, envelope included; below a 1500-byte MTU so
    /// datagrams are never fragmented.
    pub max_datagram: usize,
}

impl Default for SwimTiming {
    fn default() -> Self {
        Self {
            probe_period: Duration::from_millis(200),
            probe_rtt: Duration::from_millis(50),
            num_indirect_probes: NonZeroUsize::MIN.saturating_add(2),
            suspect_to_down_after: Duration::from_millis(300),
            icmp_suspect_to_down_after: Duration::from_millis(100),
            max_transmissions: NonZeroU8::MIN.saturating_add(5),
            gossip_interval: Duration::from_millis(50),
            gossip_fanout: NonZeroUsize::MIN.saturating_add(2),
            announce_interval: Duration::from_secs(5),
            announce_to_down_interval: Duration::from_secs(2),
            seed_retry_interval: Duration::from_secs(1),
            remove_down_after: Duration::from_secs(3600),
            max_datagram: 1400,
        }
    }
}

/// Everything needed to start a member.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    /// This speaker's node name (unique in the cluster).
    pub node_name: String,
    /// Socket to listen on, e.g. `0.0.0.0:7946`. Port 0 picks a free port (tests).
    pub bind_addr: SocketAddr,
    /// Address the others reach us at (`--host-ip` + `--gossip-port`). Defaults to the bound
    /// address, which must then be a specific IP.
    pub advertise_addr: Option<SocketAddr>,
    /// Addresses announced to at start and while alone. Our own address may be listed (it is
    /// skipped), so every speaker can be given the same list.
    pub seeds: Vec<SocketAddr>,
    pub keys: KeyRing,
    /// Files to read the keys from again when they change (`None`: the keys never change).
    pub reload: Option<KeyFiles>,
    pub timing: SwimTiming,
    /// Start out of the cluster, telling nobody of us, until [`super::GossipHandle::set_candidate`]
    /// brings us in (a speaker that cannot announce yet must not be elected).
    pub withdrawn: bool,
}

/// Why a member could not start.
#[derive(Debug, Error)]
pub enum GossipError {
    #[error("gossip: node name is empty")]
    EmptyNodeName,
    #[error("gossip: node name {name:?} is {len} bytes; at most {MAX_NAME_LEN} are allowed")]
    NodeNameTooLong { name: String, len: usize },
    #[error(
        "gossip: advertise address {0} is unspecified; set --host-ip (the address other \
         speakers reach this one at)"
    )]
    UnspecifiedAdvertiseAddr(SocketAddr),
    #[error("gossip timing: {0}")]
    InvalidTiming(String),
    #[error("gossip: cannot start the member's thread")]
    Thread(#[source] std::io::Error),
    #[error("gossip: cannot bind UDP {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl SwimTiming {
    pub fn validate(&self) -> Result<(), GossipError> {
        let bad = |what: &str| Err(GossipError::InvalidTiming(what.to_string()));
        let durations = [
            ("probe_period", self.probe_period),
            ("probe_rtt", self.probe_rtt),
            ("suspect_to_down_after", self.suspect_to_down_after),
            (
                "icmp_suspect_to_down_after",
                self.icmp_suspect_to_down_after,
            ),
            ("gossip_interval", self.gossip_interval),
            ("announce_interval", self.announce_interval),
            ("announce_to_down_interval", self.announce_to_down_interval),
            ("seed_retry_interval", self.seed_retry_interval),
            ("remove_down_after", self.remove_down_after),
        ];
        if let Some((name, _)) = durations.iter().find(|(_, d)| d.is_zero()) {
            return bad(&format!("{name} must be greater than zero"));
        }
        if self.probe_rtt >= self.probe_period {
            return bad(&format!(
                "probe_rtt ({:?}) must be shorter than probe_period ({:?}) to leave time for \
                 indirect probes",
                self.probe_rtt, self.probe_period
            ));
        }
        if self.max_datagram < MAX_OVERHEAD + 256 || self.max_datagram > 65_507 {
            return bad(&format!(
                "max_datagram ({}) must be between {} and 65507 bytes",
                self.max_datagram,
                MAX_OVERHEAD + 256
            ));
        }
        Ok(())
    }

    /// The foca configuration these settings stand for.
    pub(crate) fn foca_config(&self) -> foca::Config {
        let periodic = |frequency, num_members| {
            Some(foca::PeriodicParams {
                frequency,
                num_members,
            })
        };
        foca::Config {
            probe_period: self.probe_period,
            probe_rtt: self.probe_rtt,
            num_indirect_probes: self.num_indirect_probes,
            max_transmissions: self.max_transmissions,
            suspect_to_down_after: self.suspect_to_down_after,
            remove_down_after: Some(self.remove_down_after),
            // Every member must accept what the longest-named member sends, so budget for the
            // worst-case envelope rather than our own name's.
            max_packet_size: NonZeroUsize::new(self.max_datagram - MAX_OVERHEAD)
                .unwrap_or(NonZeroUsize::MIN),
            // A member wrongly declared down hears about it and rejoins with a new generation.
            notify_down_members: true,
            periodic_announce: periodic(self.announce_interval, NonZeroUsize::MIN),
            periodic_announce_to_down_members: periodic(
                self.announce_to_down_interval,
                NonZeroUsize::MIN.saturating_add(1),
            ),
            periodic_gossip: periodic(self.gossip_interval, self.gossip_fanout),
        }
    }
}

impl GossipConfig {
    /// Checks what can be checked before binding: the name and the timing.
    pub fn validate(&self) -> Result<(), GossipError> {
        if self.node_name.is_empty() {
            return Err(GossipError::EmptyNodeName);
        }
        if self.node_name.len() > MAX_NAME_LEN {
            return Err(GossipError::NodeNameTooLong {
                name: self.node_name.clone(),
                len: self.node_name.len(),
            });
        }
        self.timing.validate()
    }

    /// The address to advertise, given the socket actually bound.
    pub fn advertise_addr_for(&self, bound: SocketAddr) -> Result<SocketAddr, GossipError> {
        let advertise = self.advertise_addr.unwrap_or(bound);
        if advertise.ip().is_unspecified() || advertise.port() == 0 {
            return Err(GossipError::UnspecifiedAdvertiseAddr(advertise));
        }
        Ok(advertise)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GossipConfig {
        GossipConfig {
            node_name: "node-a".into(),
            bind_addr: "0.0.0.0:7946".parse().unwrap(),
            advertise_addr: None,
            seeds: vec![],
            keys: crate::gossip::GossipKey::from_bytes(b"0123456789abcdef", "test")
                .unwrap()
                .into(),
            reload: None,
            timing: SwimTiming::default(),
            withdrawn: false,
        }
    }

    #[test]
    fn defaults_are_valid_and_fit_an_mtu() {
        SwimTiming::default().validate().unwrap();
        let foca = SwimTiming::default().foca_config();
        assert!(foca.max_packet_size.get() + MAX_OVERHEAD <= 1400);
        assert!(foca.probe_rtt < foca.probe_period);
    }

    #[test]
    fn bad_settings_are_named() {
        let mut c = config();
        let bound: SocketAddr = "0.0.0.0:7946".parse().unwrap();
        c.validate().unwrap();
        let err = c.advertise_addr_for(bound).unwrap_err();
        assert!(
            matches!(err, GossipError::UnspecifiedAdvertiseAddr(_)),
            "{err}"
        );
        assert!(err.to_string().contains("--host-ip"));

        c.advertise_addr = Some("192.0.2.10:7946".parse().unwrap());
        assert_eq!(
            c.advertise_addr_for(bound).unwrap(),
            c.advertise_addr.unwrap()
        );

        c.timing.probe_rtt = c.timing.probe_period;
        let err = c.validate().unwrap_err();
        assert!(err.to_string().contains("probe_rtt"), "{err}");

        c.timing = SwimTiming::default();
        c.timing.gossip_interval = Duration::ZERO;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("gossip_interval")
        );

        c.timing = SwimTiming::default();
        c.node_name = "x".repeat(MAX_NAME_LEN + 1);
        assert!(matches!(
            c.validate(),
            Err(GossipError::NodeNameTooLong { .. })
        ));
        c.node_name.clear();
        assert!(matches!(c.validate(), Err(GossipError::EmptyNodeName)));
    }
}
